"""End-to-end: training steps, fast_dev_run of every experiment, train -> eval, wandb, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from mobilevitpose.config import available, compose
from mobilevitpose.evaluate import evaluate
from mobilevitpose.module import keypoint_mse_loss
from mobilevitpose.runs import build_module, load_checkpoint
from mobilevitpose.synthetic import generate
from mobilevitpose.train import build_datamodule, train

TINY = [  # XXS at 64x64 on a tiny synthetic set: seconds per epoch on a CPU
    "model.input_size=[64,64]",
    "model.heatmap_size=[16,16]",
    "codec.sigma=1.0",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.batch_size=8",
    "data.val_batch_size=8",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    # 7 val images: the number of val instances is odd for this seed (checked in the DDP test).
    return generate(tmp_path_factory.mktemp("synthetic"), num_train=12, num_val=7, seed=3)


@pytest.fixture(autouse=True)
def _fresh_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def _cfg(tmp_path: Path, root: Path, *overrides: str, name: str = "train"):
    return compose(
        name,
        [
            f"paths.output_dir={tmp_path}",
            f"paths.log_dir={tmp_path}",
            f"data.root={root}",
            *TINY,
            *overrides,
        ],
    )


def test_a_few_training_steps_lower_the_loss(tmp_path, synthetic_root):
    torch.manual_seed(0)
    cfg = _cfg(tmp_path, synthetic_root, "optimizer.lr=3e-3", "scheduler=null")
    module = build_module(cfg)
    datamodule = build_datamodule(cfg, module.codec)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    module.train()
    losses = []
    for _ in range(15):
        heatmaps = module(batch["image"])
        loss = keypoint_mse_loss(heatmaps, batch["heatmaps"], batch["keypoint_weights"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", available("experiment"))
def test_fast_dev_run_of_every_experiment(tmp_path, synthetic_root, coco_sample_root, experiment):
    # paper/table3 read real COCO (detections for validation): the coco_sample miniature.
    real = experiment in ("paper", "table3")
    root = coco_sample_root if real else synthetic_root
    overrides = [f"experiment={experiment}", "debug=fast_dev_run", "trainer=cpu",
                 "model=mobilevitpose_xxs", "init=plain"]  # fmt: skip
    cfg = _cfg(tmp_path, root, *overrides)
    cfg.data.root = str(root)
    train(cfg)


@pytest.mark.slow
def test_train_then_eval_gives_identical_metrics(tmp_path, synthetic_root):
    cfg = _cfg(tmp_path / "run", synthetic_root, "trainer.max_epochs=2",
               "trainer.check_val_every_n_epoch=1", "scheduler.warmup_iters=5")  # fmt: skip
    metrics = train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["val/AP"] == metrics["AP"]
    assert (run / "val.keypoints.json").is_file()
    assert (run / "csv" / "metrics.csv").is_file()
    best = Path(saved["checkpoint"])
    assert best.parent == run / "checkpoints" and (run / "checkpoints" / "last.ckpt").is_file()
    # the checkpoint rebuilds itself from its saved config, with no pickled objects
    _, run_config = load_checkpoint(best)
    assert run_config["model"]["name"] == "mobilevitpose_xxs"
    GlobalHydra.instance().clear()
    eval_cfg = compose("eval", [f"ckpt_path={best}", f"paths.output_dir={tmp_path / 'eval'}"])
    assert evaluate(eval_cfg) == metrics
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["val/AP"] == metrics["AP"]


@pytest.mark.slow
def test_a_run_directory_with_checkpoints_is_never_overwritten(tmp_path, synthetic_root):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="ckpt_path="):
        train(_cfg(tmp_path, synthetic_root, "trainer.max_epochs=1"))
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == b"precious"


@pytest.mark.slow
def test_wandb_offline_run_holds_the_final_ap(tmp_path, synthetic_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = _cfg(tmp_path, synthetic_root, "logger=wandb", "trainer.max_epochs=1",
               "trainer.check_val_every_n_epoch=1", "trainer.limit_train_batches=2")  # fmt: skip
    metrics = train(cfg)
    summaries = list(tmp_path.rglob("wandb-summary.json"))
    assert summaries, "no offline wandb run directory"
    summary = json.loads(summaries[0].read_text())
    assert summary["val/AP"] == pytest.approx(metrics["AP"])
    config = next(tmp_path.rglob("config.yaml"), None)
    assert config is not None


@pytest.mark.slow
def test_two_process_ddp_validation_equals_single_process(tmp_path, synthetic_root):
    cfg = _cfg(tmp_path / "run", synthetic_root, "trainer.max_epochs=1",
               "trainer.check_val_every_n_epoch=1", "trainer.limit_train_batches=2")  # fmt: skip
    single = train(cfg)
    datamodule = build_datamodule(cfg, build_module(cfg).codec)
    datamodule.setup("validate")
    assert len(datamodule.val_dataset) % 2 == 1, "pick a val set that does not divide by 2"
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    out = tmp_path / "ddp"
    subprocess.run(
        [sys.executable, "-m", "mobilevitpose.evaluate", f"ckpt_path={ckpt}",
         f"paths.output_dir={out}", f"hydra.run.dir={out}", "trainer.devices=2",
         "+trainer.strategy=ddp", "trainer.accelerator=cpu", "data.num_workers=0"],
        check=True, env=env, timeout=600,
    )  # fmt: skip
    ddp = json.loads((out / "metrics.json").read_text())
    assert {k[4:]: v for k, v in ddp.items() if k.startswith("val/")} == single
