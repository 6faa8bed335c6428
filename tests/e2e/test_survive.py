"""Runs that survive: resume after SIGKILL, atomic checkpoints, the NaN guard, DDP training."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec.implementations.local
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from helpers import TINY_TRAIN, load_module
from mobilevitpose.training import module as module_lib
from mobilevitpose.training.config import compose
from mobilevitpose.training.train import train

# The end-to-end set: `make test-fast` leaves it out, CI runs it.
pytestmark = pytest.mark.slow

EPOCHS = ["trainer.max_epochs=5", "trainer.check_val_every_n_epoch=1", "scheduler.warmup_iters=3",
          "scheduler.milestones=[3]", "trainer.deterministic=true"]  # fmt: skip


def _train_command(run_dir: Path, root: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "mobilevitpose.cli.train", f"hydra.run.dir={run_dir}",
            f"data.root={root}", *TINY_TRAIN, *EPOCHS, *overrides]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "PYTHONHASHSEED": "0"}


def _final(run_dir: Path) -> tuple[dict, int]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return {k: v for k, v in metrics.items() if k.startswith("val/") or k == "epoch"}, last[
        "global_step"
    ]


def test_a_run_killed_mid_epoch_resumes_to_the_same_end(tmp_path, synthetic_root):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # Validation every 2 epochs: last.ckpt must still be written after every epoch.
    every_2 = "trainer.check_val_every_n_epoch=2"
    subprocess.run(_train_command(whole, synthetic_root, every_2), check=True, env=_env(),
                   timeout=600)  # fmt: skip

    proc = subprocess.Popen(_train_command(killed, synthetic_root, every_2), env=_env())
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    # Killed once epoch 1 has logged its row: the resumed run must keep epochs 0 and 1's rows.
    logged = set()
    while "1" not in logged and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        logged = {epoch for epoch, _ in _epoch_rows(killed)}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "metrics.json").exists()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)
    assert 1 <= killed_at["epoch"] < 4  # killed after epoch 1, before the last epoch

    # One override resumes it: the saved config, the last checkpoint, the same directory.
    subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.train", f"resume={killed}"],
        check=True, env=_env(), timeout=600,
    )  # fmt: skip
    assert _final(killed) == _final(whole)
    # The resumed run continues the CSV log of the killed one: a row for every epoch, those
    # before the checkpoint's epoch as the killed run logged them.
    assert [epoch for epoch, _ in _epoch_rows(killed)] == ["0", "1", "2", "3", "4"]
    before = [row for row in _epoch_rows(whole) if int(row[0]) < killed_at["epoch"]]
    assert before and set(before) <= set(_epoch_rows(killed))


def test_resume_refuses_overrides_it_would_ignore(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"the run's weights")
    done = subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.train", f"resume={run}",
         "trainer.max_epochs=9", "model=mobilevitpose_s"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot honour trainer.max_epochs=9, model=mobilevitpose_s" in done.stderr
    assert f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}" in done.stderr
    assert "Traceback" not in done.stderr


def _epoch_rows(run_dir: Path) -> list[tuple[str, str]]:
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return sorted((r["epoch"], r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch"))


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    import lightning as L

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        max_epochs=0)  # fmt: skip
    model = L.LightningModule()
    model.layer = torch.nn.Linear(2, 2)
    trainer.strategy.connect(model)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    before = path.read_bytes()

    def dies_halfway(self, data):
        self.f.write(data[: len(data) // 2])
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(fsspec.implementations.local.LocalFileOpener, "write", dies_halfway)
    with torch.no_grad():
        model.layer.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before  # Lightning writes a temp file and renames it


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path, synthetic_root, monkeypatch
):
    GlobalHydra.instance().clear()
    cfg = compose("train", [f"paths.output_dir={tmp_path}", f"paths.log_dir={tmp_path}",
                            f"data.root={synthetic_root}", *TINY_TRAIN, *EPOCHS])  # fmt: skip
    real_loss, calls = module_lib.keypoint_mse_loss, []

    def poisoned(*args):
        calls.append(1)
        loss = real_loss(*args)
        # 20 train instances, batches of 8: 2 steps an epoch; the 4th is in the second epoch
        return loss * float("nan") if len(calls) == 4 else loss

    monkeypatch.setattr(module_lib, "keypoint_mse_loss", poisoned)
    with pytest.raises(FloatingPointError, match=r"global step 3 .*image ids \[\d+"):
        train(cfg)
    module, _ = load_module(tmp_path / "checkpoints" / "last.ckpt")
    assert all(torch.isfinite(p).all() for p in module.parameters())
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=True)  # fmt: skip
    assert saved["global_step"] == 2 and saved["epoch"] == 0  # the end of the first epoch


def test_two_process_ddp_training_writes_the_run_once(tmp_path, synthetic_root):
    run = tmp_path / "ddp"
    subprocess.run(
        _train_command(run, synthetic_root, "trainer=ddp", "trainer.accelerator=cpu",
                       "trainer.devices=2", "trainer.max_epochs=2", "trainer.precision=32-true",
                       "trainer.benchmark=false"),
        check=True, env=_env(), timeout=600, cwd=tmp_path,
    )  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"val/AP", "val/AR"}
    assert (run / "checkpoints" / "last.ckpt").is_file()
    rows = (run / "csv" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch") and len(rows) > 2
    # One run directory, config, metrics log and results file (and the lock rank 0 held): rank
    # 1 adds only the console log Lightning's relaunch gives it (its job name), for debugging a
    # crash on that rank.
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [".hydra", ".lock", "checkpoints", "config.yaml", "csv", "metrics.json",
         "val.keypoints.json", "train.log", "train_ddp_process_1.log"]
    )  # fmt: skip
    assert not list(tmp_path.glob("runs"))


def test_bench_train_reports_real_and_in_memory_throughput(tmp_path, synthetic_root):
    from mobilevitpose.cli.bench_train import main as bench_train

    out = tmp_path / "bench_train.json"
    bench_train([
        "--models", "mobilevitpose_xxs", "--input-size", "64", "64", "--batch", "4",
        "--workers", "0", "--steps", "2", "--warmup", "1", "--device", "cpu",
        "--precision", "32-true", "--data-root", str(synthetic_root), "--out", str(out),
    ])  # fmt: skip
    result = json.loads(out.read_text())["models"]["mobilevitpose_xxs"]
    assert result["images_per_s"] > 0 and result["images_per_s_in_memory"] > 0
    assert isinstance(result["data_bound"], bool) and 0 < result["data_share"]
    assert result["train_instances"] == 20
