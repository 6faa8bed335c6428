"""Fixtures shared by the whole suite; helper functions live in helpers.py."""

import os
from pathlib import Path

import pytest

# Tests never reach wandb's servers (nor any network).
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
    from mobilevitpose.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic"), num_train=12, num_val=7, seed=7)


@pytest.fixture(scope="session")
def coco_sample_root() -> Path:
    """4 real COCO val2017 images with annotations and a detection file."""
    return _shared("coco_sample")


@pytest.fixture(scope="session")
def coco_mini_root() -> Path:
    """159 real COCO images with official keypoint annotations (no detection file)."""
    return _shared("coco_mini")
