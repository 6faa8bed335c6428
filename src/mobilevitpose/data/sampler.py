"""Image-grouped shuffling: the persons of one image in a row, so one JPEG decode serves them all.

A per-person shuffle (what the reference toolbox does) almost never visits an image twice in a
row, so every training sample pays a full JPEG decode, the largest cost of the data pipeline.
Shuffling images instead, and emitting each image's persons together, lets a DataLoader worker
(which builds whole batches) decode an image once for all its persons (COCO train2017: 2.6
persons with keypoints per image) through TopDownDataset's decoded-image cache. Every person is
still seen once per epoch in a fresh random order; what changes is batch composition: a batch
of B crops holds about B / 2.6 images instead of B.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from mobilevitpose.distributed import world_size


class ImageGroupedSampler(Sampler[int]):
    """Dataset indices, image by image: images shuffled, each image's persons shuffled in a row.

    `image_ids[i]` is the image of dataset index i. The order is a function of (seed, epoch):
    call `set_epoch` before each epoch. Under DDP, Lightning wraps a custom sampler in a
    DistributedSamplerWrapper that deals positions round-robin without shuffling (rank r gets
    positions r, r + W, ...); the stream is laid out so that each rank's share is one contiguous
    run of whole images.
    """

    def __init__(self, image_ids: Sequence[int], seed: int = 0) -> None:
        ids = np.asarray(image_ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("ImageGroupedSampler needs a non-empty sequence of image ids")
        _, group_of = np.unique(ids, return_inverse=True)
        order = np.argsort(group_of, kind="stable")
        bounds = np.flatnonzero(np.diff(group_of[order])) + 1
        self.groups = np.split(order, bounds)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        stream = np.concatenate(
            [rng.permutation(self.groups[g]) for g in rng.permutation(len(self.groups))]
        )
        world = world_size()
        if world > 1:
            dealt = np.empty_like(stream)
            start = 0
            for rank in range(world):
                share = len(range(rank, len(stream), world))
                dealt[rank::world] = stream[start : start + share]
                start += share
            stream = dealt
        return iter(stream.tolist())
