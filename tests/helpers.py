"""Helpers that tests import (fixtures live in conftest.py)."""

import numpy as np
import torch
from torch import nn

from mobilevitpose.inference.checkpoint import CONFIG_KEY, read_checkpoint, run_facts
from mobilevitpose.training.config import instantiate
from mobilevitpose.training.module import PoseLitModule, module_from_checkpoint
from mobilevitpose.training.step import train_step

# A standing person's COCO-17 keypoints as fractions of its box (x right, y down).
STANDING_LAYOUT = np.array(
    [[0.50, 0.08], [0.55, 0.06], [0.45, 0.06], [0.60, 0.08], [0.40, 0.08],
     [0.70, 0.22], [0.30, 0.22], [0.78, 0.38], [0.22, 0.38], [0.80, 0.52],
     [0.20, 0.52], [0.62, 0.55], [0.38, 0.55], [0.63, 0.75], [0.37, 0.75],
     [0.64, 0.95], [0.36, 0.95]]
)  # fmt: skip

# XXS at 64x64 on a tiny synthetic set: seconds per epoch on a CPU.
TINY_TRAIN = [
    "model.input_size=[64,64]",
    "codec.sigma=1.0",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.batch_size=8",
    "data.val_batch_size=8",
    "data.synthetic=null",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
]


def like_trained(model: nn.Module, seed: int = 0) -> nn.Module:
    """A fresh head's heatmaps are ~1e-6, against which parity checks prove nothing and whose
    maxima are ties: give the head unit-scale weights and every BatchNorm non-trivial
    statistics."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0.0, 0.1)
    for module in model.head.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.reset_parameters()
    return model.eval()


def fit_one_batch(module: PoseLitModule, batch: dict, steps: int, lr: float = 1e-3) -> list[float]:
    """`steps` AdamW steps of `module` on one batch (BatchNorm in training mode), through the
    training step mvp-train runs; the losses."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr)
    module.train()
    return [train_step(module, batch, optimizer).item() for _ in range(steps)]


def build_module(cfg, **kwargs) -> PoseLitModule:
    """The LightningModule of a composed train config, as mvp-train instantiates it."""
    return instantiate(cfg.module, **kwargs)


def load_module(path) -> tuple[PoseLitModule, dict]:
    """The module of a checkpoint file and the run config saved in it."""
    checkpoint = read_checkpoint(path)
    return module_from_checkpoint(checkpoint), checkpoint.run


def save_checkpoint(module: PoseLitModule, path, run_config: dict) -> None:
    """What a Lightning checkpoint of mvp-train holds, written without a Trainer."""
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)  # as Lightning calls it while saving
    torch.save({**checkpoint, CONFIG_KEY: run_facts(run_config)}, path)
