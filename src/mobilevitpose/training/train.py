"""Training a pose model from a composed config, then scoring its best checkpoint."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from mobilevitpose.data.datamodule import CocoDataModule
from mobilevitpose.inference.checkpoint import CONFIG_KEY, read_checkpoint, run_facts
from mobilevitpose.training.callbacks import RunConfigInCheckpoints
from mobilevitpose.training.config import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    instantiate,
    to_plain,
)
from mobilevitpose.training.module import PoseLitModule
from mobilevitpose.training.runs import (
    CONFIG_FILE,
    METRICS_FILE,
    format_metrics,
    owned,
    pin_wandb_run,
    read_csv_log,
    restore_csv_log,
    resumed_config,
    write_hydra_record,
    write_metrics,
)

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then validate the best checkpoint; returns its ten COCO stats."""
    output_dir = Path(cfg.paths.output_dir)
    # DDP workers re-enter here, into the directory the first process has claimed and writes.
    first_process = rank_zero_only.rank == 0  # type: ignore[attr-defined]
    resumed = resumed_config(cfg, output_dir, check=first_process)
    if resumed is not None:
        cfg = resumed
        log.info("resuming %s from %s", output_dir, cfg.ckpt_path)
    L.seed_everything(cfg.seed, workers=True)

    # Built and checked before the run directory is written: a bad setting leaves nothing.
    module: PoseLitModule = instantiate(cfg.module, results_dir=str(output_dir))
    fit_from = cfg.get("ckpt_path")
    if fit_from and resumed is None:
        checkpoint = read_checkpoint(fit_from)
        checkpoint.check_fits(module.model, "ckpt_path")
        if "optimizer_states" not in checkpoint.contents:
            # Weights alone (e.g. mvp-import's): a new run starts from them, as fine-tuning does.
            module.model.load_state_dict(checkpoint.model_state_dict())
            fit_from = None
    datamodule = build_datamodule(cfg.data, module.codec, cfg.seed)
    with owned(output_dir, "mvp-train") if first_process else contextlib.nullcontext():
        if resumed is None and first_process:
            # Again under the lock: a run started beside this one may have finished meanwhile.
            resumed_config(cfg, output_dir)
        return _fit(cfg, module, datamodule, output_dir, fit_from, resumed is not None,
                    first_process)  # fmt: skip


def _fit(
    cfg: DictConfig,
    module: PoseLitModule,
    datamodule: CocoDataModule,
    output_dir: Path,
    fit_from: str | None,
    resumed: bool,
    first_process: bool,
) -> dict[str, float]:
    csv_header: list[str] = []
    csv_rows: list[dict[str, str]] = []
    if resumed:
        csv_header, csv_rows = read_csv_log(output_dir, read_checkpoint(cfg.ckpt_path).epoch or 0)
    elif first_process:
        pin_wandb_run(cfg)
        write_hydra_record(output_dir, cfg)
        (output_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    loggers = build_loggers(cfg)
    restore_csv_log(loggers, csv_header, csv_rows)
    callbacks = [
        *build_callbacks(cfg),
        RunConfigInCheckpoints(run_facts(to_plain(cfg)), key=CONFIG_KEY),
    ]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    failed = True
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=fit_from)
        if trainer.fast_dev_run:  # type: ignore[attr-defined]  # set by Trainer.__init__
            failed = False
            return module.coco_metrics
        best = (
            # a ModelCheckpoint (conf/callbacks/); the `Checkpoint` base class declares no path
            trainer.checkpoint_callback.best_model_path  # type: ignore[attr-defined]
            if trainer.checkpoint_callback
            else ""
        )
        trainer.validate(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics = module.coco_metrics
        if trainer.is_global_zero:
            write_metrics(
                output_dir / METRICS_FILE,
                metrics,
                checkpoint=best,
                epoch=read_checkpoint(best).epoch if best else trainer.current_epoch,
                boxes=datamodule.box_source,
                model=cfg.model.name,
                init=cfg.init.name,
                experiment=cfg.experiment_name,
            )
            print(f"\nCOCO keypoint metrics of {best or 'the last weights'}:\n"
                  f"{format_metrics(metrics)}\n")  # fmt: skip
        failed = False
        return metrics
    finally:
        # A crash still closes the wandb run, marked failed rather than left running.
        for logger in loggers:
            experiment = getattr(logger, "_experiment", None)
            if experiment is not None and hasattr(experiment, "finish"):
                experiment.finish(exit_code=1 if failed else 0)


def describe(cfg: DictConfig) -> str:
    """One line per setting that tells runs of a sweep apart, for dry runs and logs."""
    augment = cfg.augment
    return (
        f"model={cfg.model.name} init={cfg.init.name} input={list(cfg.model.input_size)} "
        f"data={cfg.data.root} augment=({augment.style}, rotate {augment.rotate_factor}, "
        f"flip {augment.flip_prob}) boxes={cfg.data.boxes} "
        f"codec={cfg.codec.kind} optimizer={cfg.optimizer._target_.rsplit('.', 1)[-1]} "
        f"lr={cfg.optimizer.lr} batch={cfg.data.batch_size} epochs={cfg.trainer.max_epochs} "
        f"milestones={list(cfg.scheduler.milestones) if cfg.scheduler else None} "
        f"flip_test={cfg.evaluation.flip_test} out={cfg.paths.output_dir}"
    )
