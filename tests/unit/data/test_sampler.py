import itertools

import pytest
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data import sampler
from mobilevitpose.data.sampler import ImageGroupedSampler
from mobilevitpose.training.config import build_datamodule, compose

# Dataset index -> image id: 6 images holding 1 to 4 persons, not stored image by image.
IMAGE_IDS = [7, 3, 7, 9, 3, 7, 11, 5, 9, 7, 5, 2, 3]


def _runs(order: list[int]) -> list[int]:
    """Image ids of the consecutive runs of persons from one image."""
    ids = [IMAGE_IDS[i] for i in order]
    return [ids[0]] + [b for a, b in itertools.pairwise(ids) if a != b]


def test_each_epoch_visits_every_person_once_image_by_image() -> None:
    s = ImageGroupedSampler(IMAGE_IDS, seed=1)
    orders = []
    for epoch in range(3):
        s.set_epoch(epoch)
        order = list(s)
        assert sorted(order) == list(range(len(IMAGE_IDS))) == sorted(range(len(s)))
        runs = _runs(order)
        assert sorted(runs) == sorted(set(IMAGE_IDS)), "an image's persons were split up"
        orders.append(order)
    assert len({tuple(o) for o in orders}) == 3, "the order must change with the epoch"
    s.set_epoch(1)
    assert list(s) == orders[1], "the order must be a function of (seed, epoch)"
    assert list(ImageGroupedSampler(IMAGE_IDS, seed=2)) != orders[0]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_ranks_each_get_whole_images(monkeypatch, world_size: int) -> None:
    # What Lightning wraps a custom train sampler in under DDP (the loader does not shuffle).
    monkeypatch.setattr(sampler, "world_size", lambda: world_size)
    grouped = ImageGroupedSampler(IMAGE_IDS, seed=0)
    shares = [
        list(DistributedSamplerWrapper(grouped, num_replicas=world_size, rank=rank, shuffle=False))
        for rank in range(world_size)
    ]
    assert sorted({i for share in shares for i in share}) == list(range(len(IMAGE_IDS)))
    # Each rank's share is a contiguous piece of the grouped order: only the cut between two
    # ranks (and the pad DistributedSampler repeats) may split an image.
    split = sum(len(_runs(share)) for share in shares) - len(set(IMAGE_IDS))
    assert split <= 2 * (world_size - 1)


def test_empty_image_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ImageGroupedSampler([])


def test_grouped_loading_decodes_each_image_about_once(synthetic_root) -> None:
    codec = HeatmapCodec(kind="udp", input_size=(96, 128), heatmap_size=(24, 32))
    decodes, samples = {}, {}
    for grouped in (False, True):
        cfg = compose("train", [f"data.root={synthetic_root}", "data.boxes=gt",
                                "data.batch_size=4", "data.num_workers=0", "data.synthetic=null",
                                f"data.group_by_image={grouped}"])  # fmt: skip
        dm = build_datamodule(cfg.data, codec)
        dm.setup("fit")
        dm.set_epoch(0)
        seen = [i for batch in dm.train_dataloader() for i in batch["instance_id"].tolist()]
        assert len(set(seen)) == len(seen)
        decodes[grouped], samples[grouped] = dm.train_dataset.reader.num_decodes, len(seen)
    assert isinstance(dm.train_dataloader().sampler, ImageGroupedSampler)
    assert decodes[False] == samples[False], "a per-person shuffle decodes every sample"
    # Grouped: one decode per image, plus one where a person needs a sharper decode than the
    # cached one.
    num_images = len({i.image_id for i in dm.train_dataset.instances})
    assert num_images < samples[True]
    assert decodes[True] <= 2 * num_images and decodes[True] < decodes[False]
