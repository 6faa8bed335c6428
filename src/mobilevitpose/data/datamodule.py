"""COCO person crops for Lightning: train and val datasets and their loaders."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from mobilevitpose.coco import DETECTION_FILE, coco_paths
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.augment import AugmentRecipe
from mobilevitpose.data.dataset import TopDownDataset
from mobilevitpose.data.instances import load_detection_instances, load_gt_instances
from mobilevitpose.data.sampler import ImageGroupedSampler
from mobilevitpose.distributed import world_size

BOX_SOURCES = ("detections", "gt")
# Decoded images each train worker keeps when persons come grouped by image: the current image,
# plus sharper/coarser decodes of it that its persons' crops asked for.
GROUPED_CACHE_SIZE = 4


class CocoDataModule(L.LightningDataModule):
    """COCO 2017 keypoints (real or synthetic) under `root`, as top-down person crops.

    Validation uses either ground-truth boxes or a person-detection file (`boxes`), as the
    published protocol does. `synthetic` holds generator settings: when given and `root` has
    no dataset yet, one is generated there first (then read like any COCO); a COCO dataset the
    generator did not make is read as it is.
    `group_by_image` shuffles training images rather than persons and serves each image's
    persons in a row, so a worker decodes each image once (sampler.ImageGroupedSampler).
    `reduced_decode` decodes training JPEGs at reduced size where the crop allows (faster, not
    the reference's pixels: `image_io`); validation always decodes at full size.
    Every setting is given: conf/data/coco.yaml holds the defaults.
    """

    def __init__(
        self,
        root: str,
        codec: HeatmapCodec,
        *,
        boxes: str,
        bbox_file: str | None,
        bbox_score_thr: float,
        recipe: AugmentRecipe | None,
        photometric: bool,
        batch_size: int,
        val_batch_size: int,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        skip_bad_images: bool,
        group_by_image: bool,
        reduced_decode: bool,
        synthetic: dict[str, Any] | None,
        seed: int,
    ) -> None:
        super().__init__()
        if boxes not in BOX_SOURCES:
            raise ValueError(f"data.boxes={boxes!r}; allowed: {', '.join(BOX_SOURCES)}")
        for name, value, least in (
            ("batch_size", batch_size, 2),
            ("val_batch_size", val_batch_size, 1),
            ("num_workers", num_workers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"data.{name}={value!r}: expected a whole number >= {least}")
        if not isinstance(bbox_score_thr, int | float) or not 0.0 <= bbox_score_thr <= 1.0:
            raise ValueError(f"data.bbox_score_thr={bbox_score_thr!r}: expected a number in [0, 1]")
        self.root = Path(root).expanduser()
        self.codec = codec
        self.boxes = boxes
        self.bbox_file = Path(bbox_file) if bbox_file else self.root / DETECTION_FILE
        self.bbox_score_thr = bbox_score_thr
        self.recipe = recipe  # training augmentation (conf/augment/); evaluation needs none
        self.photometric = photometric
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.skip_bad_images = skip_bad_images
        self.group_by_image = group_by_image
        self.reduced_decode = reduced_decode
        self.synthetic = dict(synthetic) if synthetic else None
        self.seed = seed
        # Shuffling is seeded per epoch (set_epoch), so a resumed run sees the same order.
        self._shuffle = torch.Generator().manual_seed(seed)
        self.train_dataset: TopDownDataset | None = None
        self.val_dataset: TopDownDataset | None = None
        self.train_sampler: ImageGroupedSampler | None = None

    @property
    def val_ann_file(self) -> Path:
        """The ground truth that validation scores against."""
        return coco_paths(self.root, "val")[0]

    @property
    def box_source(self) -> str:
        return str(self.bbox_file) if self.boxes == "detections" else "gt"

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            from mobilevitpose.data.synthetic import ensure_dataset

            ensure_dataset(self.root, **self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        common: dict[str, Any] = dict(
            codec=self.codec, skip_bad_images=self.skip_bad_images, seed=self.seed
        )
        if stage in (None, "fit") and self.train_dataset is None:
            instances = load_gt_instances(*coco_paths(self.root, "train"))
            self.train_dataset = TopDownDataset(
                instances,
                train=True,
                recipe=self.recipe,
                photometric=self.photometric,
                cache_size=GROUPED_CACHE_SIZE if self.group_by_image else 0,
                reduced_decode=self.reduced_decode,
                **common,
            )
            if self.group_by_image:
                self.train_sampler = ImageGroupedSampler(
                    [instance.image_id for instance in instances], seed=self.seed
                )
            # The distributed sampler pads every device to ceil(N / devices) samples.
            per_device = math.ceil(len(instances) / world_size())
            if per_device < self.batch_size:
                fix = (
                    f"lower data.batch_size (at most {per_device})"
                    if per_device >= 2
                    else "a batch needs 2 crops or more: give more training data"
                )
                raise ValueError(
                    f"the train split of {self.root} has {len(instances)} person instances "
                    f"({per_device} per device), fewer than one batch of data.batch_size="
                    f"{self.batch_size}; incomplete batches are dropped (BatchNorm needs two "
                    f"crops or more), so training would take no step: {fix}"
                )
        if self.val_dataset is None:
            ann_file, image_dir = coco_paths(self.root, "val")
            if self.boxes == "gt":
                instances = load_gt_instances(ann_file, image_dir)
            else:
                instances = load_detection_instances(
                    ann_file, image_dir, self.bbox_file, score_threshold=self.bbox_score_thr
                )
            if not instances:
                fix = (
                    "give annotations with labelled keypoints for the val images"
                    if self.boxes == "gt"
                    else "give a detection file for these images (data.bbox_file), lower "
                    "data.bbox_score_thr, or use data.boxes=gt"
                )
                raise ValueError(
                    f"validation has no person instances: {self.box_source} gives no usable "
                    f"person box for the images of {ann_file} (data.boxes={self.boxes}, "
                    f"data.bbox_score_thr={self.bbox_score_thr}): {fix}"
                )
            self.val_dataset = TopDownDataset(instances, train=False, **common)

    def set_epoch(self, epoch: int) -> None:
        self._shuffle.manual_seed(self.seed * 1_000_003 + epoch)
        if self.train_dataset is not None:
            self.train_dataset.set_epoch(epoch)
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)

    def train_dataloader(self) -> DataLoader:
        # Train workers are not persistent: each epoch's workers must pick up the dataset's
        # new epoch number, which seeds the augmentation.
        assert self.train_dataset is not None, "call setup('fit') first"
        return DataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            shuffle=self.train_sampler is None,
            sampler=self.train_sampler,
            generator=self._shuffle,
            drop_last=True,  # a batch of 1 breaks BatchNorm
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_dataset is not None, "call setup() first"
        return DataLoader(
            self.val_dataset,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )
