"""mvp-eval: evaluate a checkpoint with the exact COCO keypoint protocol."""

from __future__ import annotations

from omegaconf import DictConfig

from mobilevitpose.cli.errors import hydra_debug, reported_as_user_errors
from mobilevitpose.training.config import hydra_main
from mobilevitpose.training.evaluate import evaluate


@hydra_main("eval")
def main(cfg: DictConfig) -> None:
    with reported_as_user_errors("mvp-eval", hydra_debug()):
        evaluate(cfg)


if __name__ == "__main__":
    main()
