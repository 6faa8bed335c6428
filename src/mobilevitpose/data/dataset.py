"""Top-down person-crop dataset: one COCO `Instance` -> uint8 crop, heatmaps and metadata."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.augment import AugmentRecipe, Photometric, train_crop
from mobilevitpose.data.image_io import CropReader, ImageReadError, to_rgb_tensor
from mobilevitpose.data.instances import Instance
from mobilevitpose.geometry import Crop, apply_affine, val_crop

# Validation walks the persons of an image in a row (about 20 detections per val2017 image); a
# per-person shuffled training order almost never revisits an image, so training caches nothing
# unless its persons come grouped by image (datamodule's group_by_image).
VAL_CACHE_SIZE = 8
# A run of unreadable files this long means a broken dataset, not a few bad images.
MAX_CONSECUTIVE_SKIPS = 64


class TopDownDataset(Dataset):
    """Person crops for heatmap training and evaluation.

    Each item is a dict of tensors: `image` (3, h_in, w_in) uint8 RGB (the model normalises it
    on the device: `PoseModel.normalise`), `heatmaps` (K, H, W), `keypoint_weights` (K,),
    `keypoints_input` (K, 2) in input-crop px, `center` / `scale` (2,) of the aspect-fixed
    padded box in image px (what evaluation back-projects with; prod(scale) is the OKS-NMS
    area), `image_id`, `instance_id` (int64) and `bbox_score` (f32).

    Train items are random (`recipe`: an AugmentRecipe, as `conf/augment/` holds them;
    optional `photometric` colour/blur) from a generator seeded by (seed, epoch,
    index): reproducible in any DataLoader worker; call `set_epoch` before each epoch's workers
    start. With `skip_bad_images`, an unreadable image gives a warning, is counted in `num_skipped`
    (per process) and the next index is returned.
    `reduced_decode` (training only) decodes JPEGs at reduced size when the crop shrinks them:
    faster, with pixels that differ from the reference's full-size warp (`data.image_io`).
    `cache_size` decoded images are kept per worker (default: none for train, VAL_CACHE_SIZE
    for val).
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        codec: HeatmapCodec,
        train: bool,
        recipe: AugmentRecipe | None = None,
        photometric: bool = False,
        seed: int = 0,
        skip_bad_images: bool = False,
        reduced_decode: bool = False,
        cache_size: int | None = None,
    ) -> None:
        self.instances = list(instances)
        self.codec = codec
        self.train = train
        if train and recipe is None:
            raise ValueError("a training dataset needs an augmentation recipe (conf/augment/)")
        self.recipe = recipe
        self.photometric = Photometric() if photometric and train else None
        self.seed = seed
        self.skip_bad_images = skip_bad_images
        if reduced_decode and not train:
            raise ValueError(
                "reduced_decode is for training only: evaluation crops are the reference's"
            )
        if cache_size is None:
            cache_size = 0 if train else VAL_CACHE_SIZE
        self.reader = CropReader(cache_size=cache_size, reduced_decode=reduced_decode)
        self.input_size = codec.input_size
        self.udp = codec.kind == "udp"
        self.epoch = 0
        self.num_skipped = 0

    def __len__(self) -> int:
        return len(self.instances)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))

    def crop_geometry(
        self, instance: Instance, rng: np.random.Generator | None
    ) -> tuple[Crop, np.ndarray, np.ndarray]:
        """The crop and the keypoints / visibility in its image frame (train: augmented)."""
        if not self.train:
            crop = val_crop(instance.bbox_xyxy, self.input_size)
            return crop, instance.keypoints_img, instance.keypoints_visible
        assert self.recipe is not None and rng is not None  # checked in __init__; train draws
        return train_crop(
            instance.bbox_xyxy,
            instance.keypoints_img,
            instance.keypoints_visible,
            instance.image_size[0],
            self.input_size,
            self.recipe,
            rng,
        )

    def load(self, index: int) -> dict[str, torch.Tensor]:
        instance = self.instances[index]
        rng = self.rng(index) if self.train else None  # validation draws nothing
        crop, keypoints, visible = self.crop_geometry(instance, rng)
        pixels = self.reader.crop(
            instance.image_path,
            instance.image_size,
            crop.image_matrix(self.input_size, self.udp),
            self.input_size,
        )
        if self.photometric is not None:
            assert rng is not None  # photometric is only set for training
            rgb = self.photometric(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), rng)
            pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        keypoints_input = apply_affine(crop.keypoint_matrix(self.input_size, self.udp), keypoints)
        heatmaps, weights = self.codec.encode(keypoints_input, visible)
        return {
            "image": to_rgb_tensor(pixels),
            "heatmaps": torch.from_numpy(heatmaps),
            "keypoint_weights": torch.from_numpy(weights),
            "keypoints_input": torch.from_numpy(keypoints_input.astype(np.float32)),
            "center": torch.from_numpy(np.asarray(crop.center, dtype=np.float32)),
            "scale": torch.from_numpy(np.asarray(crop.scale, dtype=np.float32)),
            "image_id": torch.tensor(instance.image_id, dtype=torch.int64),
            "instance_id": torch.tensor(instance.instance_id, dtype=torch.int64),
            "bbox_score": torch.tensor(instance.bbox_score, dtype=torch.float32),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not self.skip_bad_images:
            return self.load(index)
        for attempt in range(min(MAX_CONSECUTIVE_SKIPS, len(self))):
            candidate = (index + attempt) % len(self)
            try:
                return self.load(candidate)
            except (FileNotFoundError, ImageReadError) as err:
                self.num_skipped += 1
                warnings.warn(f"skipping sample {candidate}: {err}", stacklevel=2)
        raise ImageReadError(
            f"{min(MAX_CONSECUTIVE_SKIPS, len(self))} consecutive samples from index {index} "
            "have unreadable images; check the image folder"
        )
