"""mvp-train: train a pose model with Hydra config, then evaluate its best checkpoint."""

from __future__ import annotations

from omegaconf import DictConfig

from mobilevitpose.cli.errors import hydra_debug, reported_as_user_errors
from mobilevitpose.training.config import hydra_main
from mobilevitpose.training.train import describe, train


@hydra_main("train")
def main(cfg: DictConfig) -> float:
    if cfg.dry_run:
        print(f"[dry run] {describe(cfg)}")
        return float("nan")
    with reported_as_user_errors("mvp-train", hydra_debug()):
        metrics = train(cfg)
    return metrics.get("AP", float("nan"))  # for Hydra sweepers that optimise a value


if __name__ == "__main__":
    main()
