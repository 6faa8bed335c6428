"""mvp-train: train a pose model with Hydra config, then evaluate its best checkpoint."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig

from mobilevitpose.cli.errors import hydra_debug, reported_as_user_errors
from mobilevitpose.evaluation.coco_metric import STAT_NAMES
from mobilevitpose.training.config import hydra_main
from mobilevitpose.training.train import describe, train

# metrics.json and the loggers name the COCO stats `val/<stat>`; train() returns them bare.
METRIC_PREFIX = "val/"


def optimized_stat(name: str | None) -> str:
    """The COCO stat that `optimized_metric` names ("val/AP50" or "AP50"; None: AP)."""
    if name is None:
        return "AP"
    stat = name.removeprefix(METRIC_PREFIX)
    if stat not in STAT_NAMES:
        names = ", ".join(METRIC_PREFIX + s for s in STAT_NAMES)
        raise ValueError(f"optimized_metric={name} names no metric; available: {names}")
    return stat


def optimized_value(metrics: Mapping[str, float], name: str | None) -> float:
    """The value a Hydra sweeper optimises: the stat `optimized_metric` names (NaN where the
    run computed no metrics)."""
    return float(metrics.get(optimized_stat(name), float("nan")))


@hydra_main("train")
def main(cfg: DictConfig) -> float:
    with reported_as_user_errors("mvp-train", hydra_debug()):
        optimized_stat(cfg.get("optimized_metric"))  # a misspelt name fails before training
        if cfg.dry_run:
            print(f"[dry run] {describe(cfg)}")
            return 0.0  # a placeholder a sweeper can record: Optuna fails a trial on NaN
        metrics = train(cfg)
        return optimized_value(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
