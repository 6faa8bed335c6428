import os
from pathlib import Path

import pytest
import torch
from torch import nn

# Tests never reach wandb's servers (nor any network).
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# XXS at 64x64 on a tiny synthetic set: seconds per epoch on a CPU.
TINY_TRAIN = [
    "model.input_size=[64,64]",
    "model.heatmap_size=[16,16]",
    "codec.sigma=1.0",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.batch_size=8",
    "data.val_batch_size=8",
    "data.synthetic=null",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MVP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent (the real-COCO samples live beside the repo)")
    return path


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """12 train and 7 val synthetic images. With this seed the val set has an odd number of
    instances, GT boxes (11) or detections (15), so a 2-process sampler must pad."""
    from mobilevitpose.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic"), num_train=12, num_val=7, seed=7)


@pytest.fixture(scope="session")
def coco_sample_root() -> Path:
    """4 real COCO val2017 images with annotations and a detection file."""
    return _shared("coco_sample")


@pytest.fixture(scope="session")
def coco_mini_root() -> Path:
    """159 real COCO images with official keypoint annotations (no detection file)."""
    return _shared("coco_mini")


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


def fit_one_batch(module, batch: dict, steps: int, lr: float = 1e-3) -> list[float]:
    """AdamW steps of `module` on one batch (BatchNorm in training mode); the losses."""
    from mobilevitpose.module import keypoint_mse_loss

    optimizer = torch.optim.AdamW(module.parameters(), lr=lr)
    module.train()
    losses = []
    images = module.model.normalise(batch["image"])
    for _ in range(steps):
        heatmaps = module.training_heatmaps(images)
        loss = keypoint_mse_loss(heatmaps, batch["heatmaps"], batch["keypoint_weights"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
