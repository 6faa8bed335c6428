from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.augment import (
    AugmentRecipe,
    Photometric,
    flip_keypoints,
    half_body_box,
    random_box_transform,
    train_crop,
    truncated_normal,
)
from mobilevitpose.data.dataset import TopDownDataset
from mobilevitpose.data.instances import Instance
from mobilevitpose.geometry import Crop, val_crop
from mobilevitpose.keypoints import FLIP_INDICES, KEYPOINT_NAMES
from mobilevitpose.training.config import augment_recipe

RECIPES = ("paper", "mmpose1x")

IMAGE_SIZE = (400, 480)
# A standing person, COCO order; float positions so sub-pixel errors would show.
BODY = np.array(
    [[200.4, 80.2], [190.1, 70.7], [210.6, 70.3], [180.2, 76.5], [220.8, 76.1],
     [170.3, 140.6], [230.7, 140.2], [150.2, 200.4], [250.9, 200.8], [141.3, 259.6],
     [260.2, 258.4], [180.5, 270.3], [220.1, 270.9], [180.7, 360.2], [220.4, 360.6],
     [180.3, 440.8], [220.6, 440.1]],
    dtype=np.float32,
)  # fmt: skip
MARKED = KEYPOINT_NAMES.index("left_wrist")
SPOT_SIGMA = 1.5


def _spot_image(path: Path) -> None:
    """Black image with one Gaussian spot centred (sub-pixel) on the marked keypoint."""
    ys, xs = np.mgrid[: IMAGE_SIZE[1], : IMAGE_SIZE[0]]
    kx, ky = BODY[MARKED]
    spot = 255.0 * np.exp(-((xs - kx) ** 2 + (ys - ky) ** 2) / (2 * SPOT_SIGMA**2))
    cv2.imwrite(str(path), np.repeat(spot.round().astype(np.uint8)[..., None], 3, axis=2))


def _person(path: Path) -> Instance:
    bbox = np.concatenate([BODY.min(axis=0) - 10, BODY.max(axis=0) + 10]).astype(np.float32)
    return Instance(
        image_id=1,
        image_path=str(path),
        image_size=IMAGE_SIZE,
        instance_id=7,
        bbox_xyxy=bbox,
        bbox_score=1.0,
        keypoints_img=BODY,
        keypoints_visible=np.ones(len(BODY), dtype=np.float32),
    )


def _spot_centre(image: np.ndarray) -> np.ndarray:
    """Intensity centroid of the spot in a (3, h, w) crop, around its brightest pixel."""
    plane = image[0].numpy().astype(np.float64)
    y, x = np.unravel_index(plane.argmax(), plane.shape)
    y0, x0 = max(y - 6, 0), max(x - 6, 0)
    window = plane[y0 : y + 7, x0 : x + 7]
    ys, xs = np.mgrid[y0 : y0 + window.shape[0], x0 : x0 + window.shape[1]]
    return np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()


@pytest.mark.parametrize("style", ["paper", "mmpose1x"])
@pytest.mark.parametrize("kind", ["msra", "udp"])
@pytest.mark.parametrize("input_size", [(192, 256), (48, 64)])
def test_marked_pixel_lands_on_transformed_keypoint(tmp_path, style, kind, input_size):
    path = tmp_path / "spot.png"
    _spot_image(path)
    heatmap_size = (input_size[0] // 4, input_size[1] // 4)
    codec = HeatmapCodec(kind=kind, input_size=input_size, heatmap_size=heatmap_size)
    forced = replace(augment_recipe(style), flip_prob=1.0, half_body_prob=1.0, rotate_prob=1.0)
    dataset = TopDownDataset([_person(path)], codec, train=True, recipe=forced, seed=3)
    full_box = val_crop(_person(path).bbox_xyxy, input_size).scale
    landed = 0
    for epoch in range(40):
        dataset.set_epoch(epoch)
        sample = dataset[0]
        # Flip moved the left wrist into the right-wrist slot.
        expected = sample["keypoints_input"][FLIP_INDICES[MARKED]].numpy()
        # Half-body always applies here (17 visible): the box is a body half, so smaller.
        assert sample["scale"][1] < full_box[1] * 1.5
        if not (4 <= expected[0] < input_size[0] - 4 and 4 <= expected[1] < input_size[1] - 4):
            continue  # the lower half was chosen, or rotation/scale pushed the wrist out
        np.testing.assert_allclose(_spot_centre(sample["image"]), expected, atol=1.0)
        landed += 1
    assert landed >= 5


def test_flip_is_folded_into_the_warp():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 2)
    crop = Crop(
        center=np.array([70.0, 60.0]),
        scale=np.array([90.0, 120.0]),
        rotation=25.0,
        flipped=True,
        image_width=160,
    )
    size = (48, 64)
    for udp in (False, True):
        mirrored = cv2.warpAffine(
            np.ascontiguousarray(image[:, ::-1]), crop.keypoint_matrix(size, udp), size
        )
        folded = cv2.warpAffine(image, crop.image_matrix(size, udp), size)
        assert np.abs(mirrored.astype(int) - folded.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="image width"):
        Crop(center=crop.center, scale=crop.scale, flipped=True)


def test_flip_twice_is_identity():
    visible = (np.arange(17) % 3 > 0).astype(np.float32)
    once, once_visible = flip_keypoints(BODY, visible, image_width=400)
    twice, twice_visible = flip_keypoints(once, once_visible, image_width=400)
    np.testing.assert_allclose(twice, BODY, atol=1e-4)
    np.testing.assert_array_equal(twice_visible, visible)
    # Mirrored about the image centre line (x -> 399 - x), left and right swapped.
    np.testing.assert_allclose(once[2, 0], 399 - BODY[1, 0], atol=1e-4)
    np.testing.assert_array_equal(once_visible[1], visible[2])


def test_flip_indices_swap_left_right_pairs():
    assert FLIP_INDICES == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    for index, partner in enumerate(FLIP_INDICES):
        name, other = KEYPOINT_NAMES[index], KEYPOINT_NAMES[partner]
        assert other == name.replace("left", "tmp").replace("right", "left").replace("tmp", "right")


def test_truncated_normal_bounds_spread_and_reproducibility():
    draws = truncated_normal(np.random.default_rng(1), 40_000)
    assert np.abs(draws).max() <= 1.0
    assert draws.std() == pytest.approx(0.538, abs=0.01)  # std of N(0, 1) cut to [-1, 1]
    np.testing.assert_array_equal(truncated_normal(np.random.default_rng(1), 40_000), draws)


def test_recipe_configs_and_validation():
    paper, mm = augment_recipe("paper"), augment_recipe("mmpose1x")
    assert (paper.style, paper.scale_factor, paper.rotate_factor) == ("0.x", 0.5, 40.0)
    assert (paper.rotate_prob, paper.half_body_prob, paper.shift_prob) == (0.6, 0.3, 0.0)
    assert (mm.style, mm.shift_factor, mm.shift_prob, mm.rotate_factor) == ("1.x", 0.16, 0.3, 80)
    with pytest.raises(ValueError, match="rotate_prob"):
        replace(paper, rotate_prob=1.5)
    with pytest.raises(ValueError, match="style"):
        AugmentRecipe(**{**paper.__dict__, "style": "2.x"})


@pytest.mark.parametrize("name", ["paper", "mmpose1x"])
def test_random_box_transform_ranges(name):
    recipe = augment_recipe(name)
    rng = np.random.default_rng(0)
    center, scale = np.array([100.0, 100.0]), np.array([80.0, 120.0])
    out = [random_box_transform(center, scale, recipe, rng) for _ in range(3000)]
    ratios = np.array([s[0] / 80.0 for _, s, _ in out])
    rotations = np.array([r for _, _, r in out])
    shifts = np.array([np.abs(c - center) / scale for c, _, _ in out])
    assert 0.5 <= ratios.min() < 0.6 and 1.4 < ratios.max() <= 1.5
    assert np.abs(rotations).max() <= 80.0 and np.abs(rotations).max() > 70.0
    assert (rotations == 0).mean() == pytest.approx(0.4, abs=0.04)
    if recipe.shift_prob == 0:
        assert shifts.max() == 0
    else:
        assert shifts.max() <= 0.16 + 1e-6
        assert (shifts.max(axis=1) > 0).mean() == pytest.approx(0.3, abs=0.04)


def test_half_body_rules():
    visible = np.ones(17, dtype=np.float32)
    always = {name: replace(augment_recipe(name), half_body_prob=1.0) for name in RECIPES}
    for recipe in always.values():
        center, scale = half_body_box(BODY, visible, recipe, np.random.default_rng(0), 0.75)
        assert scale[1] < (BODY[:, 1].max() - BODY[:, 1].min()) * 1.5
    # 1.x needs >= 9 visible keypoints, 0.x more than 8: both skip with 8.
    eight = np.zeros(17, dtype=np.float32)
    eight[:8] = 1
    for recipe in always.values():
        assert half_body_box(BODY, eight, recipe, np.random.default_rng(0), 0.75) is None
    # 1.x with fewer than 3 lower-body keypoints takes the upper body: centre from ids 0..10.
    upper_only = np.ones(17, dtype=np.float32)
    upper_only[12:] = 0
    center, scale = half_body_box(
        BODY, upper_only, always["mmpose1x"], np.random.default_rng(0), 0.75
    )
    np.testing.assert_allclose(center, BODY[:11].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(scale, (BODY[:11].max(0) - BODY[:11].min(0)) * 1.5, rtol=1e-5)


def test_val_crop_is_padded_and_aspect_fixed():
    crop = val_crop(np.array([10.0, 20.0, 110.0, 220.0], dtype=np.float32), (192, 256))
    np.testing.assert_allclose(crop.center, [60.0, 120.0])
    np.testing.assert_allclose(crop.scale, [250.0 * 0.75, 250.0])
    assert crop.rotation == 0.0 and not crop.flipped


def test_train_crop_is_reproducible_for_a_seed():
    args = (np.array([100, 50, 300, 460], np.float32), BODY, np.ones(17), 400, (192, 256))
    a = train_crop(*args, augment_recipe("mmpose1x"), np.random.default_rng(5))
    b = train_crop(*args, augment_recipe("mmpose1x"), np.random.default_rng(5))
    np.testing.assert_array_equal(
        a[0].image_matrix((192, 256), True), b[0].image_matrix((192, 256), True)
    )
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].scale[0] / a[0].scale[1] == pytest.approx(0.75)


def test_photometric_is_reproducible_and_changes_colours():
    image = cv2.GaussianBlur(
        np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8), (0, 0), 2
    )
    photometric = Photometric()
    a = photometric(image, np.random.default_rng(11))
    b = photometric(image, np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - image.astype(int)).mean() > 1.0
