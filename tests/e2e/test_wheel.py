"""The package as a user installs it: a wheel in a fresh virtual environment, its console
scripts run from a folder outside the repository, with the Hydra configs it carries."""

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROJECT_ROOT")}
    env.update(WANDB_MODE="disabled", HYDRA_FULL_ERROR="1")
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding only the wheel of this checkout (its dependencies come from the test's
    own environment, through a path entry, as no index is reachable)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy, so that the build leaves the checkout as it is
    for name in ("src", "conf", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name, **({"symlinks": True} if copy is shutil.copytree else {}))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", tmp / "dist", source], cwd=tmp)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("mobilevitpose-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp
        ).stdout.strip()
    )
    # Appended after the venv's own site-packages: the wheel's package comes first, and the
    # editable install's hooks in the outer environment are not run.
    deps = [*site.getsitepackages(), sysconfig.get_path("purelib")]
    (purelib / "outer_dependencies.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "-q", wheel], cwd=tmp)  # fmt: skip
    return env_dir


def test_a_wheel_trains_evaluates_and_predicts_outside_the_repository(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    bin_dir = installed / "bin"
    where = _run([bin_dir / "python", "-c", "import mobilevitpose; print(mobilevitpose.__file__)"],
                 work).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(installed), where
    _run([bin_dir / "mvp-train", "experiment=quickstart", "model.input_size=[64,64]",
          "codec.sigma=1.0", "data.synthetic.num_train=12", "data.synthetic.num_val=2",
          "data.batch_size=4", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
          "scheduler.milestones=[]", "trainer.enable_progress_bar=false"], work)  # fmt: skip
    (best,) = work.glob("runs/train/quickstart/*/checkpoints/best-*.ckpt")
    evaluated = _run([bin_dir / "mvp-eval", f"ckpt_path={best}"], work)
    assert "COCO keypoint metrics" in evaluated.stdout
    val = work / "data" / "synthetic_single" / "val2017"
    _run([bin_dir / "mvp-predict", best, val, "--out", work / "poses", "--detector", "none"], work)
    assert (work / "poses" / "results.keypoints.json").is_file()
