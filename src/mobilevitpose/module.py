"""The LightningModule: heatmap training and exact COCO evaluation of a PoseModel."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from hydra.utils import instantiate
from torch import Tensor
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, MultiStepLR

from mobilevitpose.coco_eval import (
    STAT_NAMES,
    CocoKeypointEvaluator,
    coco_results,
    gather_predictions,
    write_results,
)
from mobilevitpose.codec import HeatmapCodec, flip_test
from mobilevitpose.keypoints import FLIP_INDICES

CONFIG_KEY = "mvp_config"  # the run's resolved config, stored in every checkpoint


def keypoint_mse_loss(heatmaps: Tensor, targets: Tensor, keypoint_weights: Tensor) -> Tensor:
    """MMPose's KeypointMSELoss with target weights: mean of w * (pred - gt)^2, no 0.5 factor.

    Computed in fp32 whatever the autocast dtype: squared errors of ~1e-3 heatmap values
    underflow in fp16.
    """
    with torch.autocast(device_type=heatmaps.device.type, enabled=False):
        weights = keypoint_weights.float()[:, :, None, None]
        return ((heatmaps.float() - targets.float()) ** 2 * weights).mean()


def warmup_multistep(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    warmup_iters: int = 500,
    warmup_factor: float = 0.001,
    milestones: tuple[int, ...] = (170, 200),
    gamma: float = 0.1,
) -> ChainedScheduler:
    """The reference schedule, stepped every iteration: linear warm-up over `warmup_iters` from
    `warmup_factor` x lr, then x`gamma` at each epoch in `milestones`."""
    return ChainedScheduler(
        [
            LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup_iters),
            MultiStepLR(optimizer, [m * steps_per_epoch for m in milestones], gamma=gamma),
        ]
    )


class PoseLitModule(L.LightningModule):
    """Trains `model` on heatmap targets; validates with flip test, decoding, OKS-NMS and COCOeval.

    Every argument is a plain config dict (Hydra node with `_target_`), saved as the
    checkpoint's hyperparameters, so a checkpoint rebuilds itself without pickled objects.
    """

    def __init__(
        self,
        model: dict[str, Any],
        codec: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
        channels_last: bool = False,
        bf16_head: bool | str = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = instantiate(model)
        # NHWC activations: oneDNN (CPU) and tensor cores (mixed precision) run convolutions
        # faster in that layout. Weights convert here; inputs in `forward`.
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        if not (isinstance(bf16_head, bool) or bf16_head == "auto"):
            raise ValueError(f"bf16_head: {bf16_head!r} is not allowed; use true, false or auto")
        self.bf16_head = bf16_head
        self.codec: HeatmapCodec = instantiate(codec)
        evaluation = evaluation or {}
        self.flip_test = bool(evaluation.get("flip_test", True))
        self.keypoint_score_thr = float(evaluation.get("keypoint_score_thr", 0.2))
        self.nms_thr = evaluation.get("nms_thr", 0.9)
        self.evaluator: CocoKeypointEvaluator | None = None
        self.results_dir: Path | None = None
        self.last_metrics: dict[str, float] = {}
        self.run_config: dict[str, Any] = {}  # the whole run's config, saved in checkpoints
        self._predictions: list[dict[str, np.ndarray]] = []

    def forward(self, images: Tensor, head_in_bf16: bool = False) -> Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        # A branch, not autocast(enabled=head_in_bf16): a disabled autocast would also switch
        # off the one Lightning opens for trainer.precision=bf16-mixed / 16-mixed.
        if not head_in_bf16:
            return self.model(images)
        features = self.model.backbone(images)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
            return self.model.head(features)

    def training_heatmaps(self, images: Tensor) -> Tensor:
        """Heatmaps for the loss, the head in bf16 where `bf16_head` says so.

        Only the head: the deconv head holds most of the multiply-adds (81% of XXS's), and on
        CPU the MobileViT blocks run slower in bf16 than in fp32. Evaluation stays fp32.
        """
        return self(images, head_in_bf16=self._head_in_bf16())

    def _head_in_bf16(self) -> bool:
        if self.bf16_head == "auto":
            # A CPU without native bf16 (AVX512-BF16, AMX) emulates it, slower than fp32. On
            # GPU, trainer.precision=bf16-mixed is the switch, for the whole model.
            return self.device.type == "cpu" and torch.cpu._is_avx512_bf16_supported()
        return self.bf16_head

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.run_config

    # --- training -----------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        # Augmentation randomness is drawn per (seed, epoch, index) inside the dataset; workers
        # are created per epoch, so they see this epoch number.
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        # Batches hold uint8 crops: the float work of normalising them happens on the device.
        heatmaps = self.training_heatmaps(self.model.normalise(batch["image"]))
        loss = keypoint_mse_loss(heatmaps, batch["heatmaps"], batch["keypoint_weights"])
        self._check_finite(loss, batch)
        batch_size = batch["image"].shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=batch_size)  # fmt: skip
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=batch_size)  # fmt: skip
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False,
                 batch_size=batch_size)  # fmt: skip
        return loss

    def _check_finite(self, loss: Tensor, batch: dict[str, Tensor]) -> None:
        # Every rank takes the same decision, so one rank's NaN cannot leave the others
        # waiting in a collective.
        finite = self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True)
        if not finite:
            ids = batch["image_id"].tolist()
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at global step {self.global_step} "
                f"(epoch {self.current_epoch}) on a rank whose batch has image ids {ids}. "
                "Training stopped; the last good checkpoint is kept in the run's checkpoints/."
            )

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = instantiate(self.hparams.optimizer)(self.parameters())
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        max_epochs = max(self.trainer.max_epochs or 1, 1)
        steps_per_epoch = max(math.ceil(self.trainer.estimated_stepping_batches / max_epochs), 1)
        scheduler = instantiate(self.hparams.scheduler)(optimizer, steps_per_epoch=steps_per_epoch)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # --- evaluation ---------------------------------------------------------------------------
    def predict_heatmaps(self, images: Tensor) -> Tensor:
        """Heatmaps in fp32, flip-tested when `flip_test` is on."""

        def network(crops: Tensor) -> Tensor:
            return self(crops).float()

        if not self.flip_test:
            return network(images)
        return flip_test(network, images, FLIP_INDICES, shift=self.codec.flip_shift)

    def on_validation_epoch_start(self) -> None:
        self._predictions = []
        if self.trainer.is_global_zero:  # only rank 0 runs COCOeval; others skip loading the GT
            self._setup_evaluator()

    def _setup_evaluator(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        ann_file = getattr(datamodule, "val_ann_file", None)
        if ann_file is None:
            raise RuntimeError("validation needs a datamodule with a `val_ann_file` (COCO GT)")
        if self.evaluator is None or self.evaluator.ann_file != Path(ann_file):
            self.evaluator = CocoKeypointEvaluator(ann_file)

    @torch.no_grad()
    def predict_keypoints(self, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        """Per-instance predictions of a batch of (uint8) crops, keypoints in image coordinates."""
        heatmaps = self.predict_heatmaps(self.model.normalise(batch["image"]))
        scale = batch["scale"].cpu().numpy()
        keypoints_img, keypoint_scores = self.codec.decode_to_image(
            heatmaps.cpu().numpy(), batch["center"].cpu().numpy(), scale
        )
        return {
            "image_ids": batch["image_id"].cpu().numpy(),
            "instance_ids": batch["instance_id"].cpu().numpy(),
            "keypoints_img": keypoints_img,
            "keypoint_scores": keypoint_scores,
            "bbox_scores": batch["bbox_score"].cpu().numpy(),
            "areas": np.prod(scale, axis=1),
        }

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._predictions.append(self.predict_keypoints(batch))

    def on_validation_epoch_end(self) -> None:
        local = {
            key: np.concatenate([p[key] for p in self._predictions])
            for key in self._predictions[0]
        } if self._predictions else _empty_predictions()  # fmt: skip
        self._predictions = []
        predictions = gather_predictions(local)
        metrics: dict[str, float] | None = None
        if self.trainer.is_global_zero:
            results = coco_results(
                **predictions, nms_thr=self.nms_thr, keypoint_score_thr=self.keypoint_score_thr
            )
            metrics = self.evaluator.evaluate(results)
            if self.results_dir is not None and not self.trainer.sanity_checking:
                write_results(self.results_dir / "val.keypoints.json", results, overwrite=True)
        # COCOeval runs once, on rank 0; every rank logs the same numbers.
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        self.last_metrics = metrics
        for name in STAT_NAMES:
            self.log(f"val/{name}", metrics[name], sync_dist=False, rank_zero_only=False)


def _empty_predictions() -> dict[str, np.ndarray]:
    k = len(FLIP_INDICES)
    return {
        "image_ids": np.zeros(0, np.int64),
        "instance_ids": np.zeros(0, np.int64),
        "keypoints_img": np.zeros((0, k, 2), np.float32),
        "keypoint_scores": np.zeros((0, k), np.float32),
        "bbox_scores": np.zeros(0, np.float32),
        "areas": np.zeros(0, np.float32),
    }
