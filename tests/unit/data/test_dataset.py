import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mobilevitpose.coco import coco_paths
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data import image_io
from mobilevitpose.data.dataset import TopDownDataset
from mobilevitpose.data.image_io import (
    CropReader,
    ImageReadError,
    choose_reduction,
    read_image,
    reduced_matrix,
)
from mobilevitpose.data.instances import Instance, load_gt_instances
from mobilevitpose.geometry import Crop, val_crop
from mobilevitpose.models.pose_model import normalise_images
from mobilevitpose.training.config import augment_recipe

CODEC = HeatmapCodec(kind="udp", input_size=(192, 256), heatmap_size=(48, 64))
PAPER = augment_recipe("paper")


def _textured(width: int, height: int, blur: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=(height, width, 3)).astype(np.float32)
    image = cv2.GaussianBlur(noise, (0, 0), blur)
    return np.clip((image - image.mean()) / image.std() * 45 + 128, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def jpeg_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "photo.jpg"
    cv2.imwrite(str(path), _textured(640, 480, blur=3.0), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def _instance(path: Path, bbox, size=(640, 480), image_id=1, instance_id=1) -> Instance:
    keypoints = np.zeros((17, 2), dtype=np.float32)
    keypoints[:, 0] = np.linspace(bbox[0] + 5, bbox[2] - 5, 17)
    keypoints[:, 1] = np.linspace(bbox[1] + 5, bbox[3] - 5, 17)
    return Instance(
        image_id=image_id,
        image_path=str(path),
        image_size=size,
        instance_id=instance_id,
        bbox_xyxy=np.asarray(bbox, dtype=np.float32),
        bbox_score=0.9,
        keypoints_img=keypoints,
        keypoints_visible=np.ones(17, dtype=np.float32),
    )


@pytest.mark.parametrize("reduction", [2, 4, 8])
def test_reduced_decode_pixel_centres(tmp_path, reduction):
    # Reduced pixel i must be the block of original pixels [r i, r i + r): compare the DCT-scaled
    # decode with a box average of the full decode, and with the same average one pixel off.
    path = tmp_path / "smooth.jpg"
    cv2.imwrite(
        str(path), _textured(640, 480, blur=1.5 * reduction), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    full = read_image(path).astype(np.float32)
    reduced = read_image(path, reduction).astype(np.float32)
    assert reduced.shape == (480 // reduction, 640 // reduction, 3)

    def error(shift: int) -> float:
        shifted = np.roll(full, shift, axis=(0, 1))
        size = (640 // reduction, 480 // reduction)
        boxed = cv2.resize(shifted, size, interpolation=cv2.INTER_AREA)
        return float(np.abs(boxed - reduced)[2:-2, 2:-2].mean())

    assert error(0) < 3.0
    assert error(0) < error(1) and error(0) < error(-1)


def test_choose_reduction_and_matrix():
    crop = val_crop(np.array([0, 0, 200, 400], np.float32), (192, 256))  # 375 x 500 px box
    matrix = crop.image_matrix((192, 256), udp=True)
    assert choose_reduction(matrix) == 1  # 500 / 255 = 1.96: not yet a 2x downscale
    assert choose_reduction(crop.image_matrix((96, 128), udp=True)) == 2
    big = val_crop(np.array([0, 0, 1000, 1000], np.float32), (192, 256))
    assert choose_reduction(big.image_matrix((192, 256), udp=False)) == 4
    # The reduced matrix sends the reduced pixel centre of block 0 to where (1.5, 1.5) goes.
    point_full = matrix @ np.array([1.5, 1.5, 1.0])
    point_reduced = reduced_matrix(matrix, 4) @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(point_reduced, point_full)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level difference where both crops see the image (not the border)."""
    inside = (a > 0).any(2) & (b > 0).any(2)
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32))[inside].mean())


@pytest.mark.parametrize("box_width", [420.0, 900.0])
def test_reduced_crop_aligns_with_full_crop(jpeg_path, box_width):
    scale = np.array([box_width, box_width / 0.75])
    crop = Crop(center=np.array([320.0, 240.0]), scale=scale, rotation=17.0)
    matrix = crop.image_matrix(CODEC.input_size, udp=True)
    reduction = choose_reduction(matrix)
    assert reduction == (2 if box_width < 500 else 4)
    full = CropReader().crop(str(jpeg_path), (640, 480), matrix, CODEC.input_size)
    fast = CropReader(reduced_decode=True).crop(
        str(jpeg_path), (640, 480), matrix, CODEC.input_size
    )
    # Yardsticks: the same reduced image placed without the (r - 1) / 2 centre offset, and the
    # full-size crop moved by half an output pixel (plain interpolation error).
    reduced = read_image(jpeg_path, reduction)
    no_offset = matrix @ np.diag([reduction, reduction, 1.0])
    misplaced = cv2.warpAffine(reduced, no_offset, CODEC.input_size, flags=cv2.INTER_LINEAR)
    half_pixel = matrix + np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5]])
    nudged = cv2.warpAffine(read_image(jpeg_path), half_pixel, CODEC.input_size)
    assert _mad(fast, full) < 0.5 * _mad(misplaced, full)
    assert _mad(fast, full) < 0.5 * _mad(nudged, full)


def _augmented(instance: Instance, reduced: bool) -> list[dict]:
    ds = TopDownDataset(
        [instance],
        CODEC,
        train=True,
        recipe=augment_recipe("mmpose1x"),
        reduced_decode=reduced,
        seed=4,
    )
    samples = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        samples.append(ds[0])
    return samples


def _assert_reduced_matches_full(fast, slow, max_mad):
    for a, b in zip(fast, slow, strict=True):
        # The geometry and the targets do not depend on how the image was decoded.
        for key in ("keypoints_input", "heatmaps", "keypoint_weights", "center", "scale"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        grey = [t["image"].permute(1, 2, 0).numpy().astype(np.float32) for t in (a, b)]
        assert _mad(*grey) < max_mad


def test_reduced_decode_dataset_matches_full_decode(jpeg_path):
    instance = _instance(jpeg_path, [60, 10, 600, 470])
    fast, slow = _augmented(instance, True), _augmented(instance, False)
    # UDP zoom is (size_in - 1) / scale; some crops must have used a reduced decode.
    downscales = [min(s["scale"][0] / 191, s["scale"][1] / 255) for s in slow]
    assert max(downscales) >= 2, downscales
    # Reduced decoding low-passes where bilinear full-size sampling aliases: a few grey levels.
    _assert_reduced_matches_full(fast, slow, max_mad=8.0)


def test_reduced_decode_crops_match_full_decode_coco_mini(coco_mini_root):
    instances = load_gt_instances(*coco_paths(coco_mini_root, "train"))
    large = sorted(instances, key=lambda i: i.bbox_xyxy[0] - i.bbox_xyxy[2])[:4]
    for instance in large:
        matrix = val_crop(instance.bbox_xyxy, CODEC.input_size).image_matrix(CODEC.input_size, True)
        assert choose_reduction(matrix) >= 2
        args = (instance.image_path, instance.image_size, matrix, CODEC.input_size)
        fast, slow = CropReader(reduced_decode=True).crop(*args), CropReader().crop(*args)
        assert _mad(fast, slow) < 6.0


def test_evaluation_crops_are_the_references_full_size_warp(coco_sample_root):
    # What the reference's TopdownAffine does: the whole decoded image, one bilinear warp.
    instances = load_gt_instances(*coco_paths(coco_sample_root, "val"))
    dataset = TopDownDataset(instances, CODEC, train=False)
    for index, instance in enumerate(instances):
        matrix = val_crop(instance.bbox_xyxy, CODEC.input_size).image_matrix(CODEC.input_size, True)
        reference = cv2.warpAffine(cv2.imread(instance.image_path), matrix, CODEC.input_size,
                                   flags=cv2.INTER_LINEAR)  # fmt: skip
        ours = dataset[index]["image"].permute(1, 2, 0).numpy()[..., ::-1]
        np.testing.assert_array_equal(ours, reference)
    with pytest.raises(ValueError, match="reduced_decode is for training only"):
        TopDownDataset(instances, CODEC, train=False, reduced_decode=True)


def test_reduced_decode_pixels_do_not_depend_on_what_was_read_before(jpeg_path):
    # A small person (its crop enlarges the image: full-size decode) and a large one (a 1/2
    # decode) of the same photo; the full-size decode cached first must not serve the large one.
    small = _instance(jpeg_path, [200, 100, 300, 230])
    large = _instance(jpeg_path, [0, 0, 600, 470])
    grouped = dict(train=True, recipe=PAPER, reduced_decode=True, cache_size=4, seed=0)
    alone = TopDownDataset([small, large], CODEC, **grouped)[1]["image"]
    after = TopDownDataset([small, large], CODEC, **grouped)
    after[0]
    torch.testing.assert_close(after[1]["image"], alone, rtol=0, atol=0)
    assert after.reader.num_decodes == 2  # the two crops asked for two different decodes


def test_item_contents_and_collate(jpeg_path):
    instance = _instance(jpeg_path, [100, 50, 300, 400], instance_id=99)
    ds = TopDownDataset([instance] * 3, CODEC, train=True, recipe=PAPER, seed=1)
    item = ds[0]
    shapes = {k: tuple(v.shape) for k, v in item.items()}
    assert shapes == {
        "image": (3, 256, 192), "heatmaps": (17, 64, 48), "keypoint_weights": (17,),
        "keypoints_input": (17, 2), "center": (2,), "scale": (2,), "image_id": (),
        "instance_id": (), "bbox_score": (),
    }  # fmt: skip
    assert item["image"].dtype == torch.uint8 and item["instance_id"].item() == 99
    assert item["image_id"].dtype == torch.int64
    assert item["bbox_score"].item() == pytest.approx(0.9)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 256, 192) and batch["instance_id"].tolist() == [99] * 3
    # Same (seed, epoch, index) -> same sample; another epoch or index -> another one.
    torch.testing.assert_close(ds[0]["image"], item["image"])
    assert not torch.equal(ds[1]["keypoints_input"], item["keypoints_input"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["keypoints_input"], item["keypoints_input"])


def test_photometric_augmentation_is_seeded_and_keeps_geometry(jpeg_path):
    instance = _instance(jpeg_path, [100, 50, 300, 400])
    plain = TopDownDataset([instance], CODEC, train=True, recipe=PAPER, seed=2)[0]
    coloured = TopDownDataset([instance], CODEC, train=True, recipe=PAPER, seed=2, photometric=True)
    first, again = coloured[0], coloured[0]
    torch.testing.assert_close(first["image"], again["image"])
    torch.testing.assert_close(first["keypoints_input"], plain["keypoints_input"])
    assert (first["image"].float() - plain["image"].float()).abs().mean() > 1


def test_items_are_rgb_and_the_model_normalises_them(tmp_path):
    path = tmp_path / "red.png"
    bgr = np.zeros((100, 100, 3), np.uint8)
    bgr[..., 2] = 255  # pure red
    cv2.imwrite(str(path), bgr)
    ds = TopDownDataset([_instance(path, [30, 30, 70, 70], (100, 100))], CODEC, train=False)
    image = ds[0]["image"]
    assert image[:, 128, 96].tolist() == [255, 0, 0]
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 2.0)
    normalised = normalise_images(image[None], mean, std)
    torch.testing.assert_close(normalised[0, :, 128, 96], torch.tensor([1.0, -1.0, 0.0]))
    with pytest.raises(ValueError, match="uint8 RGB"):
        normalise_images(normalised, mean, std)


def test_val_item_is_deterministic_and_back_projects(jpeg_path):
    instance = _instance(jpeg_path, [100, 50, 300, 400])
    ds = TopDownDataset([instance], CODEC, train=False)
    item = ds[0]
    crop = val_crop(instance.bbox_xyxy, CODEC.input_size)
    np.testing.assert_allclose(item["center"], crop.center)
    np.testing.assert_allclose(item["scale"], crop.scale)
    ds.set_epoch(3)
    torch.testing.assert_close(ds[0]["image"], item["image"])


def test_val_cache_decodes_each_image_once(jpeg_path, monkeypatch):
    calls = []

    def counting_read(path, reduction=1):
        calls.append((path, reduction))
        return read_image(path, reduction)

    monkeypatch.setattr(image_io, "read_image", counting_read)
    persons = [_instance(jpeg_path, [20 * i, 30, 20 * i + 150, 330]) for i in range(5)]
    ds = TopDownDataset(persons, CODEC, train=False)
    for index in range(len(ds)):
        ds[index]
    assert len(calls) == 1


@pytest.fixture()
def corrupt_path(tmp_path) -> Path:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    return path


def test_corrupt_image_is_an_error_naming_the_file(corrupt_path):
    with pytest.raises(ImageReadError, match=r"broken\.jpg"):
        read_image(corrupt_path)
    ds = TopDownDataset(
        [_instance(corrupt_path, [10, 10, 50, 90])], CODEC, train=True, recipe=PAPER
    )
    with pytest.raises(ImageReadError, match=r"broken\.jpg"):
        ds[0]
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jpg"):
        read_image(corrupt_path.parent / "nowhere.jpg")


def test_skip_bad_images_warns_counts_and_returns_another(corrupt_path, jpeg_path):
    good = _instance(jpeg_path, [100, 50, 300, 400], instance_id=5)
    bad = _instance(corrupt_path, [10, 10, 50, 90], instance_id=6)
    ds = TopDownDataset([bad, good], CODEC, train=True, recipe=PAPER, skip_bad_images=True)
    with pytest.warns(UserWarning, match=r"broken\.jpg"):
        item = ds[0]
    assert item["instance_id"].item() == 5
    assert ds.num_skipped == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[1]
    assert ds.num_skipped == 1


def test_image_size_mismatch_is_an_error(jpeg_path):
    ds = TopDownDataset([_instance(jpeg_path, [10, 10, 50, 90], (500, 480))], CODEC, train=False)
    with pytest.raises(ImageReadError, match=r"640x480 px .* annotation says 500x480"):
        ds[0]
