"""mvp-train: train a pose model with Hydra config, then evaluate its best checkpoint."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from mobilevitpose.config import hydra_main
from mobilevitpose.runs import (
    build_datamodule,
    build_module,
    format_metrics,
    to_plain,
    write_metrics,
)

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig) -> list:
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values()]
    # The whole run config, not only the module's arguments, so that dashboards can group and
    # filter by init, data and trainer settings too.
    for logger in loggers:
        logger.log_hyperparams(to_plain(cfg))
    return loggers


def _resumed_config(cfg: DictConfig, output_dir: Path) -> DictConfig | None:
    """The saved config of the run in `output_dir` when this start continues it, else None.

    A run continues when `resume` names it (Hydra then put us in its directory), or when SLURM
    requeues a preempted job into the same directory. Any other start in a directory that
    already holds checkpoints is refused, so nothing a run made is overwritten.
    """
    last = output_dir / "checkpoints" / "last.ckpt"
    requeued = bool(os.environ.get("SLURM_RESTART_COUNT")) and last.is_file()
    if cfg.get("resume") or requeued:
        saved = OmegaConf.load(output_dir / "config.yaml")
        saved.ckpt_path = str(last)
        saved.resume = str(output_dir)
        return saved
    existing = sorted((output_dir / "checkpoints").glob("*.ckpt"))
    if existing and cfg.get("ckpt_path") is None:
        raise FileExistsError(
            f"{output_dir} already holds checkpoints ({existing[0].name}, ...); continue that "
            f"run with resume={output_dir}, or pick a new hydra.run.dir. Nothing was overwritten."
        )
    return None


def _pin_wandb_run(cfg: DictConfig) -> None:
    # A fixed run id, saved in config.yaml, lets a resumed run log into the same wandb run.
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is not None and not wandb_cfg.get("id"):
        # wandb's own id helper moved between releases; any unique [a-z0-9] string will do.
        with open_dict(wandb_cfg):
            wandb_cfg.id = secrets.token_hex(4)
            wandb_cfg.resume = "allow"


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then validate the best checkpoint; returns its ten COCO stats."""
    output_dir = Path(cfg.paths.output_dir)
    resumed = _resumed_config(cfg, output_dir)
    if resumed is not None:
        cfg = resumed
        log.info("resuming %s from %s", output_dir, cfg.ckpt_path)
    elif rank_zero_only.rank == 0:  # DDP workers re-enter here: the run is written once
        _pin_wandb_run(cfg)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)

    module = build_module(cfg)
    module.results_dir = output_dir
    datamodule = build_datamodule(cfg.data, module.codec, cfg.seed)
    loggers = build_loggers(cfg)
    callbacks = [instantiate(node) for node in cfg.callbacks.values()]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    failed = True
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        if trainer.fast_dev_run:
            failed = False
            return module.last_metrics
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.validate(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics = module.last_metrics
        if trainer.is_global_zero:
            write_metrics(
                output_dir / "metrics.json",
                metrics,
                checkpoint=best,
                epoch=torch.load(best, map_location="cpu", weights_only=False)["epoch"]
                if best
                else trainer.current_epoch,
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
    return (
        f"model={cfg.model.name} init={cfg.init.name} input={list(cfg.model.input_size)} "
        f"data={cfg.data.root} recipe={cfg.data.recipe} boxes={cfg.data.boxes} "
        f"codec={cfg.codec.kind} optimizer={cfg.optimizer._target_.rsplit('.', 1)[-1]} "
        f"lr={cfg.optimizer.lr} batch={cfg.data.batch_size} epochs={cfg.trainer.max_epochs} "
        f"milestones={list(cfg.scheduler.milestones) if cfg.scheduler else None} "
        f"flip_test={cfg.evaluation.flip_test} out={cfg.paths.output_dir}"
    )


@hydra_main("train")
def main(cfg: DictConfig) -> float:
    if cfg.dry_run:
        print(f"[dry run] {describe(cfg)}")
        return float("nan")
    metrics = train(cfg)
    return metrics.get("AP", float("nan"))  # for Hydra sweepers that optimise a value


if __name__ == "__main__":
    main()
