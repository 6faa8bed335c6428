"""A new user's first hour: what `make train` makes is predicted on and exported, inputs fail
early and by name, and nothing the user made is changed."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra

from helpers import TINY_TRAIN, build_module, like_trained, save_checkpoint
from mobilevitpose.data.synthetic import generate
from mobilevitpose.inference.estimator import PoseEstimator
from mobilevitpose.inference.onnx import export_onnx
from mobilevitpose.inference.predict import RESULTS_FILE, predict
from mobilevitpose.training.config import compose, to_plain
from mobilevitpose.training.train import train

# The end-to-end set: `make test-fast` leaves it out, CI runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def people_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("people"), num_train=4, num_val=2, seed=5)


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"}


# What `make train` (the quickstart) and `experiment=paper` write, and the codecs and flip tests
# a run can choose: every kind of checkpoint mvp-predict must run.
CHECKPOINT_KINDS = {
    "quickstart": ["channels_last=true", "bf16_head=auto", "codec=udp"],
    "paper": ["channels_last=false", "bf16_head=false", "codec=udp"],
    "msra_no_flip": ["channels_last=true", "codec=msra", "evaluation.flip_test=false"],
    "dark": ["bf16_head=true", "codec=dark"],
}


@pytest.mark.parametrize("kind", sorted(CHECKPOINT_KINDS))
def test_predict_runs_on_every_kind_of_checkpoint(kind, people_root, tmp_path):
    cfg = compose("train", [f"paths.output_dir={tmp_path}", f"data.root={people_root}",
                            *TINY_TRAIN, *CHECKPOINT_KINDS[kind]])  # fmt: skip
    module = build_module(cfg)
    like_trained(module.model)
    ckpt = tmp_path / "last.ckpt"
    save_checkpoint(module, ckpt, to_plain(cfg))
    results = predict(ckpt, people_root / "val2017", tmp_path / "poses", progress=False)
    assert len(results) == 2 and all(np.isfinite(r["keypoints"]).all() for r in results)
    onnx_file = export_onnx(module.model, tmp_path / "m.onnx", codec=module.codec).path
    from_onnx = predict(onnx_file, people_root / "val2017", tmp_path / "onnx", progress=False)
    assert len(from_onnx) == len(results)


def test_make_train_then_the_readmes_predict_and_export_commands(tmp_path):
    """The quickstart (shortened), then `mvp-predict` and `mvp-export` on its checkpoint, as
    the README tells a new user to run them."""
    data, runs = tmp_path / "data", tmp_path / "runs"
    short = ["trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1",
             "trainer.limit_train_batches=3", "data.synthetic.num_train=60",
             "data.synthetic.num_val=6", "trainer.enable_progress_bar=false"]  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.train", "experiment=quickstart",
         f"paths.data_dir={data}", f"paths.log_dir={runs}", *short],
        check=True, env=_env(), timeout=900,
    )  # fmt: skip
    (best,) = runs.glob("train/quickstart/*/checkpoints/best-*.ckpt")
    val = data / "synthetic_single" / "val2017"
    for command in (
        ["mobilevitpose.cli.predict", str(best), str(val), "--out", str(tmp_path / "poses"),
         "--detector", "none"],
        ["mobilevitpose.cli.export", str(best), "--out", str(tmp_path / "model.onnx")],
        ["mobilevitpose.cli.predict", str(tmp_path / "model.onnx"), str(val), "--detector", "none",
         "--out", str(tmp_path / "onnx_poses")],
    ):  # fmt: skip
        subprocess.run([sys.executable, "-m", *command], check=True, env=_env(), timeout=600)
    torch_results = json.loads((tmp_path / "poses" / RESULTS_FILE).read_text())
    onnx_results = json.loads((tmp_path / "onnx_poses" / RESULTS_FILE).read_text())
    assert len(torch_results) == len(onnx_results) == 6
    assert [r["image_id"] for r in torch_results] == [r["image_id"] for r in onnx_results]
    # Three training steps leave flat heatmaps whose argmax ties flip on rounding noise, so
    # their keypoints may differ by many pixels; the heatmaps themselves must agree.
    from_ckpt = PoseEstimator.load(best)
    from_onnx = PoseEstimator.load(tmp_path / "model.onnx")
    image = cv2.imread(str(sorted(val.glob("*.jpg"))[0]))
    height, width = image.shape[:2]
    crops, _, _ = from_ckpt.crops(image, np.array([[0, 0, width, height]], np.float32))
    expected, actual = from_ckpt.heatmaps(crops), from_onnx.heatmaps(crops)
    assert np.abs(expected).max() > 0
    assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


def _train_cfg(tmp_path, root, *overrides):
    return compose("train", [f"paths.output_dir={tmp_path}", f"paths.log_dir={tmp_path}",
                             f"data.root={root}", *TINY_TRAIN, *overrides])  # fmt: skip


def test_a_train_split_smaller_than_one_batch_stops_before_training(people_root, tmp_path):
    with pytest.raises(
        ValueError, match=r"fewer than one batch of data\.batch_size=64.*lower data\.batch_size"
    ):
        train(_train_cfg(tmp_path, people_root, "data.batch_size=64"))
    assert not list(tmp_path.glob("checkpoints/*.ckpt"))


def test_images_without_annotations_stop_before_training(people_root, tmp_path):
    import shutil

    root = tmp_path / "no_annotations"
    shutil.copytree(people_root, root)
    ann_file = root / "annotations" / "person_keypoints_train2017.json"
    ann_file.write_text(json.dumps({**json.loads(ann_file.read_text()), "annotations": []}))
    with pytest.raises(ValueError, match=r"has 0 person instances .* fewer than one batch"):
        train(_train_cfg(tmp_path / "run", root))


def test_validation_without_instances_stops_and_names_the_box_file(people_root, tmp_path):
    empty = tmp_path / "no_detections.json"
    empty.write_text("[]")
    with pytest.raises(ValueError, match=r"no_detections\.json gives no usable person box"):
        train(_train_cfg(tmp_path / "run", people_root, f"data.bbox_file={empty}"))


def test_a_mistyped_config_value_fails_before_any_data_is_generated(tmp_path):
    root = tmp_path / "never_generated"
    cfg = compose("train", [f"paths.output_dir={tmp_path}", f"data.root={root}",
                            "data.batch_size=abc"])  # fmt: skip
    with pytest.raises(ValueError, match=r"data\.batch_size='abc': expected a whole number"):
        train(cfg)
    assert not root.exists()


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_refused_run_leaves_the_run_directory_byte_identical(people_root, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"precious weights")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- the run's own overrides\n")
    (run / "train.log").write_text("the run's own log\n")
    before = _checksums(run)
    done = subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.train", f"hydra.run.dir={run}",
         f"data.root={people_root}", *TINY_TRAIN, "seed=7"],
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode != 0
    assert "already holds checkpoints" in done.stderr and "Traceback" not in done.stderr
    assert _checksums(run) == before


def test_user_errors_print_one_line_and_exit_2_without_a_traceback(tmp_path):
    missing = tmp_path / "missing.ckpt"
    done = subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.predict", str(missing), str(tmp_path)],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"mvp-predict: error: model file not found: {missing} (a .ckpt, or a .onnx or .pte file)"
    ]
    debug = subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.predict", str(missing), str(tmp_path),
         "--debug"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.fixture(scope="module")
def checkpoint(people_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    cfg = compose("train", [f"paths.output_dir={root}", f"data.root={people_root}", *TINY_TRAIN])
    module = build_module(cfg)
    like_trained(module.model)
    save_checkpoint(module, root / "last.ckpt", to_plain(cfg))
    return root / "last.ckpt"


def test_predict_never_writes_into_the_input_folder_nor_over_a_users_file(
    checkpoint, people_root, tmp_path
):
    images = tmp_path / "vis"  # the name predict gives its drawings' folder
    images.mkdir()
    for path in sorted((people_root / "val2017").glob("*.jpg")):
        (images / path.name).write_bytes(path.read_bytes())
    before = _checksums(images)
    for out in (images, images / "poses", tmp_path):  # the last would draw into tmp_path/vis
        with pytest.raises(ValueError, match="would write into the input folder"):
            predict(checkpoint, images, out, progress=False)
    assert _checksums(images) == before
    # A drawing never replaces a file that is already there.
    out = tmp_path / "out"
    (out / "vis").mkdir(parents=True)
    users = out / "vis" / sorted(p.name for p in images.iterdir())[0]
    users.write_bytes(b"the user's own picture")
    with pytest.raises(FileExistsError, match="--overwrite"):
        predict(checkpoint, images, out, progress=False)
    assert users.read_bytes() == b"the user's own picture"


def test_a_checkpoint_of_another_model_is_named_before_the_run_starts(
    checkpoint, people_root, tmp_path
):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"holds the weights of 'mobilevitpose_xxs'.*do not fit"):
        train(_train_cfg(run, people_root, "model=mobilevitpose_s", f"ckpt_path={checkpoint}"))
    assert not (run / "config.yaml").exists() and not (run / ".hydra").exists()


def test_mvp_eval_refuses_what_it_cannot_honour_and_another_runs_directory(checkpoint, tmp_path):
    ignored = subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.evaluate", f"ckpt_path={checkpoint}",
         "+model=mobilevitpose_s", f"hydra.run.dir={tmp_path / 'eval'}"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ignored.returncode == 2
    assert "mvp-eval cannot honour model: the model, codec and normalisation" in ignored.stderr
    run = tmp_path / "train_run"
    run.mkdir()
    (run / "metrics.json").write_text('{"val/AP": 0.7}')
    before = _checksums(run)
    into_a_run = subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.evaluate", f"ckpt_path={checkpoint}",
         f"hydra.run.dir={run}"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert into_a_run.returncode == 2
    assert "already holds another run's metrics.json" in into_a_run.stderr
    assert {k: v for k, v in _checksums(run).items() if k != "evaluate.log"} == before


def test_a_new_run_never_starts_in_another_runs_directory(checkpoint, people_root, tmp_path):
    run = tmp_path / "finished"
    run.mkdir()
    (run / "config.yaml").write_text("the finished run's config\n")
    (run / "metrics.json").write_text('{"val/AP": 0.7}')
    before = _checksums(run)
    with pytest.raises(FileExistsError, match=r"already holds another run's config\.yaml"):
        train(_train_cfg(run, people_root, f"ckpt_path={checkpoint}"))
    assert _checksums(run) == before


def test_a_checkpoint_of_weights_alone_starts_a_new_run_from_them(
    checkpoint, people_root, tmp_path
):
    # What mvp-import writes: no optimizer or loop state, so Lightning could not resume it.
    run = tmp_path / "finetune"
    metrics = train(_train_cfg(run, people_root, f"ckpt_path={checkpoint}",
                               "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                               "data.batch_size=2"))  # fmt: skip
    assert set(metrics) >= {"AP", "AR"}
    assert list((run / "checkpoints").glob("last.ckpt"))
