"""Fixtures shared by the whole suite; helper functions live in helpers.py."""

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest

# Tests never reach wandb's servers (nor any network).
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Under pytest-xdist the workers share the cores, and so do the processes they start: one
# thread each, set before torch is imported.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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


@pytest.fixture(scope="session")
def tiny_people(tmp_path_factory) -> Path:
    """3 synthetic val images (and 1 train image)."""
    from mobilevitpose.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("tiny_people"), num_train=1, num_val=3, seed=1)


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder that `make` fills once per test session: under pytest-xdist the first worker to
    ask makes it, under a lock, and the others wait for it and read the same files (the
    fixtures below cost minutes)."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above each worker's own
    folder = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (folder / ".done").exists():
            folder.mkdir(exist_ok=True)
            make(folder)
            (folder / ".done").touch()
    return folder


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, tiny_people) -> Path:
    """XXS at 64x64 overfitted to the synthetic val people (150 steps): its heatmaps have real
    peaks, as a trained model's do, and its keypoints land near the ground truth."""

    def make(root: Path) -> None:
        import torch

        from helpers import build_module, fit_one_batch, save_checkpoint
        from mobilevitpose.training.config import build_datamodule, compose, to_plain

        cfg = compose("train", ["model.input_size=[64,64]", "codec.sigma=1.0",
                                f"paths.output_dir={root}", f"paths.log_dir={root}",
                                f"data.root={tiny_people}", "data.boxes=gt"])  # fmt: skip
        torch.manual_seed(0)
        module = build_module(cfg)
        datamodule = build_datamodule(cfg.data, module.codec)
        datamodule.setup("validate")
        fit_one_batch(module, next(iter(datamodule.val_dataloader())), steps=150)
        save_checkpoint(module, root / "last.ckpt", to_plain(cfg))

    return made_once(tmp_path_factory, "overfit_ckpt", make) / "last.ckpt"


HAS_EXECUTORCH = importlib.util.find_spec("executorch") is not None
needs_executorch = pytest.mark.skipif(
    not HAS_EXECUTORCH,
    reason="ExecuTorch is absent: install the deploy extra, pip install -e '.[deploy]'",
)


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory, tiny_ckpt, tiny_people) -> dict:
    """Every export format of `tiny_ckpt` (ExecuTorch ones where the deploy extra is installed),
    INT8 calibrated on the val people's crops: format -> (path, what its check measured)."""
    import json

    def make(folder: Path) -> None:
        from mobilevitpose.inference.artifacts import FORMATS, export_artifact
        from mobilevitpose.inference.calibration import split_crops
        from mobilevitpose.inference.checkpoint import load_pose_model

        model, codec, evaluation = load_pose_model(tiny_ckpt)
        crops = split_crops(tiny_people, "val", codec, count=None)
        checks = {}
        for fmt in FORMATS.values():
            if fmt.backend == "executorch" and not HAS_EXECUTORCH:
                continue
            path = folder / f"tiny-{fmt.name}{fmt.suffix}"
            checks[fmt.name] = [
                path.name,
                export_artifact(fmt.name, model, path, codec, evaluation, crops).check,
            ]
        (folder / "checks.json").write_text(json.dumps(checks))

    folder = made_once(tmp_path_factory, "artifacts", make)
    checks = json.loads((folder / "checks.json").read_text())
    return {name: (folder / file, checked) for name, (file, checked) in checks.items()}
