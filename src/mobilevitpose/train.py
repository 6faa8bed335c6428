"""mvp-train: train a pose model with Hydra config, then evaluate its best checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mobilevitpose.runs import build_module, write_metrics

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig, codec) -> L.LightningDataModule:
    return instantiate(cfg.data, codec=codec, mean=cfg.model.mean, std=cfg.model.std,
                       seed=cfg.seed)  # fmt: skip


def build_loggers(cfg: DictConfig) -> list:
    return [instantiate(node) for node in (cfg.get("logger") or {}).values()]


def _check_fresh_run_dir(output_dir: Path, ckpt_path: str | None) -> None:
    existing = sorted((output_dir / "checkpoints").glob("*.ckpt"))
    if existing and ckpt_path is None:
        raise FileExistsError(
            f"{output_dir} already holds checkpoints ({existing[0].name}, ...); resume with "
            f"ckpt_path={existing[-1]} or pick a new hydra.run.dir. Nothing was overwritten."
        )


def format_metrics(metrics: dict[str, float]) -> str:
    names = list(metrics)
    head = " | ".join(f"{n:>6}" for n in names)
    values = " | ".join(f"{metrics[n]:6.4f}" for n in names)
    return f"{head}\n{values}"


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then validate the best checkpoint; returns its ten COCO stats."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    _check_fresh_run_dir(output_dir, cfg.get("ckpt_path"))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    module = build_module(cfg)
    module.results_dir = output_dir
    datamodule = build_datamodule(cfg, module.codec)
    loggers = build_loggers(cfg)
    callbacks = [instantiate(node) for node in cfg.callbacks.values()]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        if trainer.fast_dev_run:
            return module.last_metrics
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.validate(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics = module.last_metrics
        if trainer.is_global_zero:
            write_metrics(
                output_dir / "metrics.json",
                metrics,
                checkpoint=best,
                epoch=trainer.current_epoch,
                boxes=datamodule.box_source,
                model=cfg.model.name,
                init=cfg.init.name,
                experiment=cfg.experiment_name,
            )
            log.info("final validation (%s):\n%s", best or "last weights",
                     format_metrics(metrics))  # fmt: skip
            print(f"\nCOCO keypoint metrics of {best or 'the last weights'}:\n"
                  f"{format_metrics(metrics)}\n")  # fmt: skip
        return metrics
    finally:
        # A crash still closes the wandb run (it is marked failed, not left running).
        for logger in loggers:
            experiment = getattr(logger, "_experiment", None)
            if experiment is not None and hasattr(experiment, "finish"):
                experiment.finish()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    metrics = train(cfg)
    return metrics.get("AP", float("nan"))  # for Hydra sweepers that optimise a value


if __name__ == "__main__":
    main()
