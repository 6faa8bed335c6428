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
def coco_sample_root() -> Path:
    """4 real COCO val2017 images with annotations and a detection file."""
    return _shared("coco_sample")


@pytest.fixture(scope="session")
def coco_mini_root() -> Path:
    """159 real COCO images with official keypoint annotations (no detection file)."""
    return _shared("coco_mini")
