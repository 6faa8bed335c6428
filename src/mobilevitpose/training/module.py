"""The LightningModule: heatmap training and exact COCO evaluation of a PoseModel."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.utilities.types import OptimizerConfig, OptimizerLRSchedulerConfig
from torch import Tensor

from mobilevitpose.coco import read_annotations
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.distributed import world_size
from mobilevitpose.evaluation.coco_metric import STAT_NAMES, CocoKeypointEvaluator
from mobilevitpose.evaluation.gather import gather_predictions
from mobilevitpose.evaluation.results import coco_results
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.files import write_json
from mobilevitpose.inference.checkpoint import FORMAT, FORMAT_KEY, Checkpoint
from mobilevitpose.keypoints import NUM_KEYPOINTS
from mobilevitpose.models.build import build_codec, build_pose_model
from mobilevitpose.models.flip import predict_heatmaps
from mobilevitpose.models.loss import keypoint_mse_loss
from mobilevitpose.models.pose_model import PoseModel
from mobilevitpose.training.config import instantiate

VAL_RESULTS_FILE = "val.keypoints.json"


class PoseLitModule(L.LightningModule):
    """Trains `model` on heatmap targets; validates with flip test, decoding, OKS-NMS and COCOeval.

    `model`, `init`, `codec`, `optimizer`, `scheduler` and `evaluation` are plain config dicts
    (`conf/module/default.yaml` wires them from their groups), saved as the checkpoint's
    hyperparameters, so a checkpoint rebuilds itself without pickled objects:
    `PoseLitModule.load_from_checkpoint(path)` works offline (its `init` is saved as plain, the
    weights being in the checkpoint). Validation scores against the datamodule's
    `val_ann_file`; `results_dir`, when given, receives the validation results
    (`val.keypoints.json`): it belongs to the run, not the model, so it is no hyperparameter.
    """

    def __init__(
        self,
        model: dict[str, Any],
        codec: dict[str, Any],
        optimizer: dict[str, Any],
        init: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
        channels_last: bool = False,
        bf16_head: bool | str = False,
        results_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["results_dir"])
        self.model: PoseModel = build_pose_model(model, init)
        # NHWC activations: oneDNN (CPU) and tensor cores (mixed precision) run convolutions
        # faster in that layout. Weights convert here; inputs in `forward`.
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        if not (isinstance(bf16_head, bool) or bf16_head == "auto"):
            raise ValueError(f"bf16_head: {bf16_head!r} is not allowed; use true, false or auto")
        self.bf16_head = bf16_head
        self.codec: HeatmapCodec = build_codec(codec, self.model)
        self.evaluation = EvaluationSettings.from_dict(evaluation)
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.evaluator: CocoKeypointEvaluator | None = None
        self._predictions: list[dict[str, np.ndarray]] = []
        self._coco_metrics: dict[str, float] = {}

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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        hparams = checkpoint["hyper_parameters"]
        # The weights are in the checkpoint: rebuilding it must not fetch ImageNet weights.
        hparams["init"] = {**(hparams.get("init") or {}), "pretrained": False, "file": None}
        # The normalisation the weights were trained with, not what the timm installed when the
        # checkpoint is read says.
        model = dict(hparams["model"])
        hparams["model"] = {**model, "mean": list(self.model.mean), "std": list(self.model.std)}
        checkpoint[FORMAT_KEY] = FORMAT

    # --- training -----------------------------------------------------------------------------
    def training_heatmaps(self, images: Tensor) -> Tensor:
        """Heatmaps for the loss, the head in bf16 where `bf16_head` says so.

        Only the head: it holds most of the multiply-adds, and on CPU the MobileViT blocks run
        slower in bf16 than in fp32. Evaluation stays fp32.
        """
        return self(images, head_in_bf16=self._head_in_bf16())

    def training_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The heatmap loss of a batch of uint8 crops: the one training step's forward, shared
        by `training_step`, `mvp-bench-train` and the tests (`training.step`)."""
        # Batches hold uint8 crops: the float work of normalising them happens on the device.
        heatmaps = self.training_heatmaps(self.model.normalise(batch["image"]))
        return keypoint_mse_loss(heatmaps, batch["heatmaps"], batch["keypoint_weights"])

    def _head_in_bf16(self) -> bool:
        if self.bf16_head == "auto":
            # A CPU without native bf16 (AVX512-BF16, AMX) emulates it, slower than fp32. On
            # GPU, trainer.precision=bf16-mixed is the switch, for the whole model.
            return self.device.type == "cpu" and torch.cpu._is_avx512_bf16_supported()
        return bool(self.bf16_head)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.training_loss(batch)
        self._check_finite(loss, batch)
        batch_size = batch["image"].shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=batch_size)  # fmt: skip
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=batch_size)  # fmt: skip
        optimizer: Any = self.optimizers()
        self.log("lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False,
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

    def configure_optimizers(self) -> OptimizerConfig | OptimizerLRSchedulerConfig:
        optimizer = instantiate(self.hparams["optimizer"])(self.parameters())
        if not self.hparams.get("scheduler"):
            return {"optimizer": optimizer}
        max_epochs = max(self.trainer.max_epochs or 1, 1)
        steps_per_epoch = max(math.ceil(self.trainer.estimated_stepping_batches / max_epochs), 1)
        scheduler = instantiate(self.hparams["scheduler"])(
            optimizer, steps_per_epoch=steps_per_epoch, max_epochs=self.trainer.max_epochs
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # --- evaluation ---------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._predictions = []
        if self.trainer.is_global_zero:  # only rank 0 runs COCOeval; others skip loading the GT
            ann_file = getattr(self.trainer.datamodule, "val_ann_file", None)  # type: ignore[attr-defined]
            if ann_file is None:
                raise ValueError(
                    "validation needs the COCO ground truth: validate with a datamodule that "
                    "has val_ann_file, as CocoDataModule does"
                )
            if self.evaluator is None or self.evaluator.ann_file != Path(ann_file):
                self.evaluator = CocoKeypointEvaluator(read_annotations(ann_file))

    @torch.no_grad()
    def predict_keypoints(self, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        """Per-instance predictions of a batch of (uint8) crops, keypoints in image coordinates."""

        def network(crops: Tensor) -> Tensor:
            return self(crops).float()

        heatmaps = predict_heatmaps(
            network,
            self.model.normalise(batch["image"]),
            self.evaluation.flip_test,
            shift=self.codec.flip_shift,
        )
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
        predictions: dict[str, Any] = gather_predictions(local)
        metrics: dict[str, float] | None = None
        if self.trainer.is_global_zero:
            assert self.evaluator is not None  # set up in on_validation_epoch_start
            results = coco_results(**predictions, settings=self.evaluation)
            metrics = self.evaluator.evaluate(results)
            if self.results_dir is not None and not self.trainer.sanity_checking:
                write_json(self.results_dir / VAL_RESULTS_FILE, results, indent=None)
        # COCOeval runs once, on rank 0; every rank logs the same numbers.
        if world_size() > 1:
            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        assert metrics is not None
        self._coco_metrics = metrics
        for name in STAT_NAMES:
            self.log(f"val/{name}", metrics[name], sync_dist=False, rank_zero_only=False)

    @property
    def coco_metrics(self) -> dict[str, float]:
        """The ten COCO stats of the latest validation (on every rank), as COCOeval computes
        them: what Lightning logs and `trainer.validate` returns is rounded to float32."""
        return dict(self._coco_metrics)


def _empty_predictions() -> dict[str, np.ndarray]:
    k = NUM_KEYPOINTS
    return {
        "image_ids": np.zeros(0, np.int64),
        "instance_ids": np.zeros(0, np.int64),
        "keypoints_img": np.zeros((0, k, 2), np.float32),
        "keypoint_scores": np.zeros((0, k), np.float32),
        "bbox_scores": np.zeros(0, np.float32),
        "areas": np.zeros(0, np.float32),
    }


def module_from_checkpoint(
    checkpoint: Checkpoint,
    *,
    evaluation: Mapping[str, Any] | None = None,
    results_dir: str | Path | None = None,
) -> PoseLitModule:
    """Rebuild the PoseLitModule of a checkpoint read by `read_checkpoint` (earlier formats
    upgraded), its evaluation settings updated by `evaluation`."""
    hparams = dict(checkpoint.hyper_parameters)
    hparams["evaluation"] = {**(hparams.get("evaluation") or {}), **dict(evaluation or {})}
    module = PoseLitModule(**hparams, results_dir=results_dir)
    module.load_state_dict(checkpoint.contents["state_dict"])
    return module
