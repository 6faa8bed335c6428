"""mvp-eval: evaluate a checkpoint with the exact COCO keypoint protocol."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mobilevitpose.config import hydra_main
from mobilevitpose.runs import build_datamodule, format_metrics, load_checkpoint, write_metrics

EVALUATION_KEYS = ("flip_test", "keypoint_score_thr", "nms_thr")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    module, saved = load_checkpoint(cfg.ckpt_path)
    if not saved.get("data"):
        raise ValueError(f"{cfg.ckpt_path} carries no data config; was it written by mvp-train?")
    data_cfg = OmegaConf.create(saved["data"])
    for key, value in cfg.data.items():
        if value is not None:
            data_cfg[key] = value
    data_cfg.synthetic = None  # evaluating never generates data
    for key, value in cfg.evaluation.items():
        if key not in EVALUATION_KEYS:
            raise ValueError(f"evaluation.{key} is not a setting; allowed: {EVALUATION_KEYS}")
        setattr(module, key, value)

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    module.results_dir = output_dir
    datamodule = build_datamodule(data_cfg, module.codec, seed=saved.get("seed", 0))
    trainer: L.Trainer = instantiate(cfg.trainer)
    trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = module.last_metrics
    if trainer.is_global_zero:
        write_metrics(output_dir / "metrics.json", metrics, checkpoint=str(cfg.ckpt_path),
                      boxes=datamodule.box_source)  # fmt: skip
        print(f"\nCOCO keypoint metrics of {cfg.ckpt_path}:\n{format_metrics(metrics)}\n")
    return metrics


@hydra_main("eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
