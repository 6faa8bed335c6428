"""Stand-in ImageNet weights for smoke runs, where the model hub is out of reach.

A short supervised pre-training of a timm backbone on synthetic person crops (the task: which
of four quarter-turns was applied to the crop, so the backbone must learn what an upright
person looks like), saved as a timm-format safetensors file with its classifier. The pose
model then loads it through `init=imagenet init.file=...`, exactly the path a user takes with
weights downloaded elsewhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import save_file
from torch.nn import functional as F

from mobilevitpose.coco import coco_paths
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.dataset import TopDownDataset
from mobilevitpose.data.instances import load_gt_instances
from mobilevitpose.models.pose_model import normalise_images
from mobilevitpose.training.config import augment_recipe
from mobilevitpose.training.step import backward_and_step

log = logging.getLogger(__name__)


def pretrain_backbone(
    backbone: str,
    data_root: str | Path,
    out_file: str | Path,
    steps: int = 60,
    input_size: int = 64,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, float]:
    """Train `backbone` to classify crop rotations; write its weights to `out_file`."""
    out_file = Path(out_file)
    if out_file.exists() and not overwrite:
        raise FileExistsError(f"{out_file} exists; pass overwrite=True (--overwrite) to replace it")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pretrained_cfg = timm.get_pretrained_cfg(backbone)
    codec = HeatmapCodec("udp", (input_size, input_size), (input_size // 4, input_size // 4))
    dataset = TopDownDataset(
        load_gt_instances(*coco_paths(data_root, "train")),
        codec=codec,
        train=True,
        recipe=augment_recipe("paper"),
        seed=seed,
    )
    model = timm.create_model(backbone, pretrained=False, num_classes=4)
    assert pretrained_cfg is not None  # every registered timm model has one
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    correct = total = 0
    for step in range(steps):
        indices = rng.integers(len(dataset), size=batch_size)
        images = torch.stack([dataset[int(i)]["image"] for i in indices])
        images = normalise_images(images, pretrained_cfg.mean, pretrained_cfg.std)
        turns = torch.from_numpy(rng.integers(4, size=batch_size))
        images = torch.stack(
            [torch.rot90(im, int(k), dims=(1, 2)) for im, k in zip(images, turns, strict=True)]
        )
        logits = model(images)
        loss = F.cross_entropy(logits, turns)
        backward_and_step(optimizer, loss)
        if step >= steps // 2:  # accuracy over the second half, once it has learnt something
            correct += int((logits.argmax(1) == turns).sum())
            total += batch_size
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_file))
    stats = {"loss": float(loss), "accuracy": correct / max(total, 1)}
    log.info("pre-trained %s for %d steps: %s -> %s", backbone, steps, stats, out_file)
    return stats
