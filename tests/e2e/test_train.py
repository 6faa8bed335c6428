"""End-to-end: training steps, fast_dev_run of every experiment, train -> eval, wandb, DDP."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from helpers import TINY_TRAIN, build_module, fit_one_batch, like_trained, load_module
from mobilevitpose.evaluation.coco_metric import STAT_NAMES
from mobilevitpose.training.config import available, build_datamodule, compose
from mobilevitpose.training.evaluate import evaluate
from mobilevitpose.training.module import PoseLitModule
from mobilevitpose.training.train import train

# The end-to-end set: `make test-fast` leaves it out, CI runs it.
pytestmark = pytest.mark.slow


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
            *TINY_TRAIN,
            *overrides,
        ],
    )


@pytest.mark.parametrize("bf16_head", [False, True])
def test_a_few_training_steps_lower_the_loss(tmp_path, synthetic_root, bf16_head):
    torch.manual_seed(0)
    cfg = _cfg(tmp_path, synthetic_root, "scheduler=none", f"bf16_head={bf16_head}")
    module = build_module(cfg)
    datamodule = build_datamodule(cfg.data, module.codec)
    datamodule.setup("fit")
    losses = fit_one_batch(module, next(iter(datamodule.train_dataloader())), steps=30)
    # A fresh head outputs ~0, so the first loss is the targets' energy; learning must beat it.
    assert losses[-1] < 0.75 * losses[0]


def test_channels_last_module_computes_the_same_heatmaps(tmp_path, synthetic_root):
    cfg = _cfg(tmp_path, synthetic_root)
    default = build_module(cfg).eval()
    cfg.channels_last = True
    nhwc = build_module(cfg).eval()
    nhwc.load_state_dict(default.state_dict())
    weight = "model.head.deconv.0.weight"
    assert nhwc.get_parameter(weight).is_contiguous(memory_format=torch.channels_last)
    assert not default.get_parameter(weight).is_contiguous(memory_format=torch.channels_last)
    images = torch.randint(0, 256, (2, 3, *cfg.model.input_size[::-1]), dtype=torch.uint8)
    with torch.no_grad():
        expected = default(default.model.normalise(images))
        actual = nhwc(nhwc.model.normalise(images))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6)


def _bf16_module(tmp_path, root, setting):
    cfg = _cfg(tmp_path, root, f"bf16_head={setting}")
    module = build_module(cfg)
    like_trained(module.model)
    images = torch.randint(0, 256, (2, 3, *cfg.model.input_size[::-1]), dtype=torch.uint8)
    return module, module.model.normalise(images)


def test_bf16_head_runs_only_the_head_in_bf16_and_agrees_with_fp32(tmp_path, synthetic_root):
    module, images = _bf16_module(tmp_path, synthetic_root, "true")
    feature_dtypes = []
    module.model.backbone.register_forward_hook(lambda m, i, out: feature_dtypes.append(out.dtype))
    with torch.no_grad():
        reference = module(images)
        heatmaps = module.training_heatmaps(images)
    assert (reference.dtype, heatmaps.dtype) == (torch.float32, torch.bfloat16)
    assert feature_dtypes == [torch.float32, torch.float32]
    # bf16 keeps 8 significant bits: agreement to a few parts in a hundred of the peak.
    error = (heatmaps.float() - reference).abs().max()
    assert 0 < error <= 0.03 * reference.abs().max()


@pytest.mark.parametrize("native_bf16", [False, True])
def test_bf16_head_auto_follows_the_cpu(tmp_path, synthetic_root, monkeypatch, native_bf16):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native_bf16)
    module, images = _bf16_module(tmp_path, synthetic_root, "auto")
    with torch.no_grad():
        heatmaps = module.training_heatmaps(images)
    assert heatmaps.dtype == (torch.bfloat16 if native_bf16 else torch.float32)


def test_bf16_head_rejects_an_unknown_setting(tmp_path, synthetic_root):
    for setting in ("yes", "1"):
        with pytest.raises(ValueError, match=f"bf16_head: .?{setting}.? is not allowed; use true"):
            build_module(_cfg(tmp_path, synthetic_root, f"bf16_head={setting}"))


@pytest.mark.parametrize("experiment", available("experiment"))
def test_fast_dev_run_of_every_experiment(tmp_path, synthetic_root, request, experiment):
    # paper/table3 read real COCO (detections for validation): the coco_sample miniature.
    real = experiment in ("paper", "table3")
    root = request.getfixturevalue("coco_sample_root") if real else synthetic_root
    overrides = [f"experiment={experiment}", "debug=fast_dev_run", "trainer=cpu",
                 "model=mobilevitpose_xxs", "init=plain"]  # fmt: skip
    cfg = _cfg(tmp_path, root, *overrides)
    cfg.data.root = str(root)
    assert set(train(cfg)) == set(STAT_NAMES)


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
    module, run_config = load_module(best)
    assert module.hparams["model"]["name"] == "mobilevitpose_xxs"
    assert run_config["data"]["root"] == str(synthetic_root)
    GlobalHydra.instance().clear()
    eval_cfg = compose("eval", [f"ckpt_path={best}", f"paths.output_dir={tmp_path / 'eval'}"])
    assert evaluate(eval_cfg) == metrics
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["val/AP"] == metrics["AP"]
    flipped = json.loads((tmp_path / "eval" / "val.keypoints.json").read_text())
    assert flipped == json.loads((run / "val.keypoints.json").read_text())
    # Evaluation settings change through the config, not by poking the module.
    GlobalHydra.instance().clear()
    no_flip = compose("eval", [f"ckpt_path={best}", f"paths.output_dir={tmp_path / 'no_flip'}",
                               "+evaluation.flip_test=false"])  # fmt: skip
    evaluate(no_flip)
    unflipped = json.loads((tmp_path / "no_flip" / "val.keypoints.json").read_text())
    assert len(unflipped) == len(flipped)
    assert [r["keypoints"] for r in unflipped] != [r["keypoints"] for r in flipped]
    # Lightning's own loader rebuilds the same network, offline.
    loaded = PoseLitModule.load_from_checkpoint(best, map_location="cpu").eval()
    module, _ = load_module(best)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(loaded.model.normalise(images)),
                                   module.eval()(module.model.normalise(images)))  # fmt: skip


def test_a_run_directory_with_checkpoints_is_never_overwritten(tmp_path, synthetic_root):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="resume="):
        train(_cfg(tmp_path, synthetic_root, "trainer.max_epochs=1"))
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == b"precious"


def _wandb_records(path: Path):
    """The records of an offline run's .wandb transaction log. wandb ships no Python reader
    for it any more; the file is a LevelDB-style log (32 KiB blocks of chunks with a 7-byte
    header: crc, length, type) of protobuf `Record`s after a 7-byte W&B header."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    pos, chunks = 7, []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zeroed space (a writer's flush or preallocation): the next block goes on
            pos += block - pos % block
            continue
        chunks.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def test_wandb_offline_run_holds_the_final_ap_and_the_grouping(
    tmp_path, synthetic_root, monkeypatch
):
    import wandb

    # An earlier test in this process may have left a wandb run open (Lightning's logger would
    # join it) and wandb's settings of its first use (disabled, as the suite runs it): reset both.
    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = _cfg(tmp_path, synthetic_root, "logger=wandb", "trainer.max_epochs=1",
               "trainer.check_val_every_n_epoch=1", "trainer.limit_train_batches=2",
               "experiment_name=rq2")  # fmt: skip
    metrics = train(cfg)
    (log,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    history, config, run = {}, {}, None
    for record in _wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.update(
                {"/".join(i.nested_key) or i.key: i.value_json for i in record.history.item}
            )
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "run":
            run = record.run
    # the last logged val/AP is the final metric; the run is grouped and tagged for RQ2
    assert "val/AP" in history, f"{log} ({log.stat().st_size} bytes) holds history {history}"
    assert json.loads(history["val/AP"]) == pytest.approx(metrics["AP"])
    assert run.run_group == "rq2"
    assert {"mobilevitpose_xxs", "plain", "rq2"} <= set(run.tags)
    assert run.display_name == "mobilevitpose_xxs-plain-rq2-seed42"
    assert config["init"]["name"] == "plain" and config["model"]["name"] == "mobilevitpose_xxs"


def test_two_process_ddp_validation_equals_single_process(tmp_path, synthetic_root):
    cfg = _cfg(tmp_path / "run", synthetic_root, "trainer.max_epochs=1",
               "trainer.check_val_every_n_epoch=1", "trainer.limit_train_batches=2")  # fmt: skip
    single = train(cfg)
    datamodule = build_datamodule(cfg.data, build_module(cfg).codec)
    datamodule.setup("validate")
    assert len(datamodule.val_dataset) % 2 == 1, "pick a val set that does not divide by 2"
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    out = tmp_path / "ddp"
    subprocess.run(
        [sys.executable, "-m", "mobilevitpose.cli.evaluate", f"ckpt_path={ckpt}",
         f"paths.output_dir={out}", f"hydra.run.dir={out}", "trainer.devices=2",
         "+trainer.strategy=ddp", "trainer.accelerator=cpu", "data.num_workers=0"],
        check=True, env=env, timeout=600,
    )  # fmt: skip
    ddp = json.loads((out / "metrics.json").read_text())
    assert {k[4:]: v for k, v in ddp.items() if k.startswith("val/")} == single
