"""Scoring a checkpoint with the exact COCO keypoint protocol, on its run's data or another."""

from __future__ import annotations

import contextlib
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from mobilevitpose.inference.checkpoint import read_checkpoint
from mobilevitpose.training.config import build_datamodule, config_dir, instantiate, to_plain
from mobilevitpose.training.module import module_from_checkpoint
from mobilevitpose.training.runs import (
    METRICS_FILE,
    check_unclaimed,
    format_metrics,
    owned,
    write_hydra_record,
    write_metrics,
)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Validate `cfg.ckpt_path` with its run's data settings, updated by the non-null values of
    `cfg.data`, and its evaluation settings, updated by `cfg.evaluation`."""
    output_dir = Path(cfg.paths.output_dir)
    # DDP workers re-enter here, into the directory the first process has claimed and writes.
    first_process = rank_zero_only.rank == 0  # type: ignore[attr-defined]
    _check_settings(cfg)
    if first_process:
        check_unclaimed(
            output_dir,
            "mvp-eval writes into a directory of its own (by default a new one under runs/eval/): "
            "drop hydra.run.dir or give a new one",
        )
    checkpoint = read_checkpoint(cfg.ckpt_path)
    data_cfg = OmegaConf.create(checkpoint.data)
    for key, value in cfg.data.items():
        if value is not None:
            data_cfg[key] = value
    data_cfg.synthetic = None  # evaluating never generates data
    data_cfg.recipe = None  # nor trains
    module = module_from_checkpoint(
        checkpoint, evaluation=to_plain(cfg.evaluation), results_dir=output_dir
    )
    datamodule = build_datamodule(data_cfg, module.codec, seed=checkpoint.run.get("seed", 0))
    trainer: L.Trainer = instantiate(cfg.trainer)
    with owned(output_dir, "mvp-eval") if first_process else contextlib.nullcontext():
        if first_process:
            write_hydra_record(output_dir, cfg)
        trainer.validate(module, datamodule=datamodule, verbose=False)
        metrics = module.coco_metrics
        if trainer.is_global_zero:
            write_metrics(output_dir / METRICS_FILE, metrics, checkpoint=str(cfg.ckpt_path),
                          boxes=datamodule.box_source)  # fmt: skip
            print(f"\nCOCO keypoint metrics of {cfg.ckpt_path}:\n{format_metrics(metrics)}\n")
    return metrics


def _check_settings(cfg: DictConfig) -> None:
    """Refuse settings mvp-eval cannot honour: the model, codec and normalisation are the
    checkpoint's, so only the entries conf/eval.yaml has (and its groups) apply."""
    own = OmegaConf.load(config_dir() / "eval.yaml")
    groups = [next(iter(entry)) for entry in own.defaults if not isinstance(entry, str)]
    allowed = {str(key) for key in (*own.keys(), *groups)} - {"defaults"}
    ignored = sorted({str(key) for key in cfg.keys()} - allowed)
    if ignored:
        raise ValueError(
            f"mvp-eval cannot honour {', '.join(ignored)}: the model, codec and normalisation "
            f"come from the checkpoint; it takes {', '.join(sorted(allowed))}"
        )
