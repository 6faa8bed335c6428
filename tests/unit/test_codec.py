import cv2
import numpy as np
import pytest

from mobilevitpose.codec import (
    HeatmapCodec,
    blur_heatmaps,
    gaussian_heatmaps,
    get_heatmap_maximum,
    refine_dark,
    refine_dark_udp,
    refine_quarter_offset,
)
from mobilevitpose.geometry import apply_affine, fix_aspect_ratio, input_to_image, warp_matrix
from mobilevitpose.keypoints import FLIP_INDICES, NUM_KEYPOINTS
from mobilevitpose.models.flip import flip_heatmaps

INPUT_SIZE = (192, 256)  # non-square on purpose: catches swapped axes
HEATMAP_SIZE = (48, 64)
W, H = HEATMAP_SIZE
CODECS = {
    "msra": {"kind": "msra"},
    "dark": {"kind": "msra", "unbiased": True},
    "udp": {"kind": "udp"},
}


def make_codec(name: str) -> HeatmapCodec:
    return HeatmapCodec(input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE, **CODECS[name])


def encode_hm(codec: HeatmapCodec, keypoints_hm, visible=None):
    keypoints_hm = np.asarray(keypoints_hm, dtype=np.float64)
    if visible is None:
        visible = np.ones(len(keypoints_hm))
    return codec.encode(keypoints_hm * codec.scale_factor, visible)


def blobs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Noisy random Gaussian blobs, like a network's output."""
    codec = HeatmapCodec("msra", INPUT_SIZE, HEATMAP_SIZE, unbiased=True)
    maps = [
        encode_hm(codec, rng.uniform(-2, [W + 1, H + 1], (shape[1], 2)))[0]
        * rng.uniform(0.2, 1.0, (shape[1], 1, 1))
        for _ in range(shape[0])
    ]
    return (np.stack(maps) + rng.normal(0, 0.02, (*shape[:2], H, W))).astype(np.float32)


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "bound"), [("msra", 0.5), ("dark", 0.01), ("udp", 0.01)])
def test_round_trip_in_image_coordinates(name, bound):
    codec = make_codec(name)
    udp = codec.kind == "udp"
    rng = np.random.default_rng(0)
    margin = 3 * codec.sigma
    centers, scales, truth_img, heatmaps = [], [], [], []
    for _ in range(100):
        center = rng.uniform(100, 600, 2)
        scale = fix_aspect_ratio(rng.uniform(30, 400, 2) * 1.25, INPUT_SIZE[0] / INPUT_SIZE[1])
        matrix = warp_matrix(center, scale, 0.0, INPUT_SIZE, udp=udp)
        # Draw in the heatmap frame so every keypoint is >= 3 sigma inside, then go to the image.
        kp_hm = rng.uniform(margin, [W - 1 - margin, H - 1 - margin], (NUM_KEYPOINTS, 2))
        kp_img = apply_affine(cv2.invertAffineTransform(matrix), kp_hm * codec.scale_factor)
        maps, weights = codec.encode(apply_affine(matrix, kp_img), np.ones(NUM_KEYPOINTS))
        assert (weights == 1).all()
        centers.append(center)
        scales.append(scale)
        truth_img.append(kp_img)
        heatmaps.append(maps)

    kp_input, _ = codec.decode(np.stack(heatmaps))
    decoded_img = input_to_image(kp_input, np.stack(centers), np.stack(scales), INPUT_SIZE)
    image_px_per_hm_px = np.stack(scales)[:, None, :] / (np.asarray(HEATMAP_SIZE) - udp)
    error_hm = (decoded_img - np.stack(truth_img)) / image_px_per_hm_px
    distance = np.linalg.norm(error_hm, axis=-1)
    # Measured (seed 0, 1700 keypoints), mean: msra 0.384, dark 2.2e-4, udp 3.5e-5 heatmap px.
    print(f"\n{name}: round-trip error mean {distance.mean():.2e} max {distance.max():.2e} hm px")
    assert distance.mean() < bound
    if name == "msra":
        # The target peak sits on the rounded keypoint and is symmetric, so no quarter shift.
        assert np.abs(error_hm).max() <= 0.5 + 1e-4


# --- encoding -------------------------------------------------------------------------------


def spec_patch_heatmap(kp_hm, sigma, subpixel):
    """The reference's description, written literally: a 13x13 patch pasted with clipping."""
    radius = int(3 * sigma)
    mu = (kp_hm + 0.5).astype(np.int64)
    left, top = mu - radius
    right, bottom = mu + radius + 1
    heatmap = np.zeros((H, W))
    if left >= W or top >= H or right < 0 or bottom < 0:
        return heatmap, 0.0
    grid = np.arange(2 * radius + 1)
    x0, y0 = radius + (kp_hm - mu if subpixel else np.zeros(2))
    patch = np.exp(-((grid[None, :] - x0) ** 2 + (grid[:, None] - y0) ** 2) / (2 * sigma**2))
    x1, x2 = max(left, 0), min(right, W)
    y1, y2 = max(top, 0), min(bottom, H)
    heatmap[y1:y2, x1:x2] = patch[y1 - top : y2 - top, x1 - left : x2 - left]
    return heatmap, 1.0


@pytest.mark.parametrize("name", ["msra", "udp"])
def test_windowed_encoding_matches_the_patch_description(name):
    codec = make_codec(name)
    keypoints = np.random.default_rng(1).uniform(-9, [W + 9, H + 9], (400, 2))
    maps, weights = encode_hm(codec, keypoints)
    for kp, heatmap, weight in zip(keypoints, maps, weights, strict=True):
        expected, expected_weight = spec_patch_heatmap(kp, codec.sigma, subpixel=name == "udp")
        assert weight == expected_weight
        np.testing.assert_allclose(heatmap, expected, atol=1e-6)


def test_msra_peak_is_one_at_rounded_keypoint_and_udp_peak_is_subpixel():
    kp = np.array([[20.3, 30.8]])
    msra, _ = encode_hm(make_codec("msra"), kp)
    udp, _ = encode_hm(make_codec("udp"), kp)
    assert msra[0, 31, 20] == 1.0
    assert np.unravel_index(udp[0].argmax(), (H, W)) == (31, 20)
    assert udp[0, 31, 20] == pytest.approx(np.exp(-(0.3**2 + 0.2**2) / 8), rel=1e-6)
    # UDP's sub-pixel centre is visible in the neighbours: 20.3 is nearer 21 than 19.
    assert udp[0, 31, 21] > udp[0, 31, 19]


def test_dark_encoding_covers_the_whole_map():
    maps, _ = encode_hm(make_codec("dark"), [[20.3, 30.8]])
    assert maps[0, 30, 30] == pytest.approx(np.exp(-(9.7**2 + 0.8**2) / 8), rel=1e-5)
    assert maps[0].argmax() == 31 * W + 20


@pytest.mark.parametrize("name", CODECS)
def test_keypoint_beyond_three_sigma_outside_gets_weight_zero_and_empty_map(name):
    far = [[-10.0, 20.0], [W + 10.0, 20.0], [20.0, -10.0], [20.0, H + 10.0]]
    maps, weights = encode_hm(make_codec(name), far)
    assert (weights == 0).all()
    assert not maps.any()


@pytest.mark.parametrize("name", CODECS)
def test_keypoint_just_outside_gets_weight_one_and_partial_gaussian(name):
    keypoints = np.array([[-3.0, 20.0], [W + 2.0, 30.0]])
    maps, weights = encode_hm(make_codec(name), keypoints)
    assert (weights == 1).all()
    # MSRA peaks on int(kp + 0.5), which truncates towards zero: int(-2.5) = -2.
    centre_x = [-2.0, W + 2.0] if name == "msra" else keypoints[:, 0]
    for heatmap, border, cx in zip(maps, [0, W - 1], centre_x, strict=True):
        assert heatmap.max() == pytest.approx(np.exp(-((border - cx) ** 2) / 8), rel=1e-6)
        assert heatmap.max(axis=0).argmax() == border


@pytest.mark.parametrize(
    ("name", "x", "weight", "drawn"),
    [
        # Windowed codecs test the box [mu - 6, mu + 7) of mu = int(x + 0.5) against the map.
        ("msra", W + 5.4, 1, True),  # mu = W + 5: the window still reaches column W - 1
        ("msra", W + 5.6, 0, False),  # mu = W + 6
        ("udp", W + 5.4, 1, True),
        ("udp", W + 5.6, 0, False),
        ("udp", -7.6, 1, False),  # mu = -7: right = 0 is not < 0, yet nothing lands on the map
        ("udp", -8.6, 0, False),  # mu = -8: right = -1
        # DARK tests the float box [x - 6, x + 7).
        ("dark", W + 5.9, 1, True),
        ("dark", W + 6.0, 0, False),
        ("dark", -6.9, 1, True),
        ("dark", -7.1, 0, False),
    ],
)
def test_out_of_map_rule_at_its_boundary(name, x, weight, drawn):
    maps, weights = encode_hm(make_codec(name), [[x, 20.0]])
    assert weights[0] == weight
    assert maps.any() == drawn


@pytest.mark.parametrize("name", CODECS)
def test_invisible_keypoint_gets_weight_zero_and_empty_map(name):
    keypoints = np.array([[20.0, 20.0], [np.nan, np.nan], [10.0, 10.0]])
    maps, weights = encode_hm(make_codec(name), keypoints, visible=np.array([0, 0, 1]))
    np.testing.assert_array_equal(weights, [0, 0, 1])
    assert not maps[:2].any()
    assert maps[2].max() > 0.9


def test_visible_non_finite_keypoint_is_rejected():
    with pytest.raises(ValueError, match="finite"):
        gaussian_heatmaps(
            np.array([[np.nan, 1.0]]),
            np.ones(1),
            HEATMAP_SIZE,
            2.0,
            subpixel_centre=True,
            window=True,
        )


def test_encode_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        make_codec("udp").encode(np.zeros((17, 2)), np.ones(16))


# --- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CODECS)
def test_decode_without_positive_maximum_gives_minus_one(name):
    codec = make_codec(name)
    keypoints, scores = codec.decode(np.zeros((NUM_KEYPOINTS, H, W), np.float32))
    assert (keypoints == -1).all()
    assert (scores == 0).all()
    keypoints, scores = codec.decode(np.full((2, 3, H, W), -0.5, np.float32))
    assert (keypoints == -1).all()
    assert (scores == -0.5).all()


@pytest.mark.parametrize("name", CODECS)
def test_batch_decode_equals_per_instance_decode_and_scores_are_raw_maxima(name):
    codec = make_codec(name)
    heatmaps = blobs(np.random.default_rng(2), (6, NUM_KEYPOINTS))
    heatmaps[1, 3] = 0.0  # a map with no positive value inside a batch
    keypoints, scores = codec.decode(heatmaps)
    assert keypoints.shape == (6, NUM_KEYPOINTS, 2)
    assert keypoints.dtype == scores.dtype == np.float32
    for instance, expected_kp, expected_scores in zip(heatmaps, keypoints, scores, strict=True):
        kp, sc = codec.decode(instance)
        np.testing.assert_array_equal(kp, expected_kp)
        np.testing.assert_array_equal(sc, expected_scores)
    np.testing.assert_array_equal(scores, heatmaps.max(axis=(-2, -1)))
    assert (keypoints[1, 3] == -1).all()


def test_decode_rejects_heatmaps_of_another_size():
    with pytest.raises(ValueError, match=r"\(K, 64, 48\)"):
        make_codec("msra").decode(np.zeros((17, 48, 64), np.float32))


def test_heatmap_maximum_is_x_then_y_and_minus_one_without_positive_value():
    heatmaps = np.zeros((2, H, W), np.float32)
    heatmaps[0, 7, 30] = 0.8
    locations, scores = get_heatmap_maximum(heatmaps)
    np.testing.assert_array_equal(locations, [[30, 7], [-1, -1]])
    np.testing.assert_array_equal(scores, [np.float32(0.8), 0])


def spec_blur(heatmap):
    padded = np.pad(heatmap, 5)
    blurred = cv2.GaussianBlur(padded, (11, 11), 0)[5:-5, 5:-5]
    return blurred * (heatmap.max() / blurred.max())


def spec_refine_dark(x, y, heatmap):
    """The DARK step as the spec words it, one keypoint at a time."""
    f = np.log(np.maximum(spec_blur(heatmap), 1e-10)).astype(np.float64)
    if not (1 < x < W - 2 and 1 < y < H - 2):
        return np.array([x, y], np.float64)
    gradient = np.array([f[y, x + 1] - f[y, x - 1], f[y + 1, x] - f[y - 1, x]]) / 2
    dxx = (f[y, x + 2] - 2 * f[y, x] + f[y, x - 2]) / 4
    dyy = (f[y + 2, x] - 2 * f[y, x] + f[y - 2, x]) / 4
    dxy = (f[y + 1, x + 1] - f[y - 1, x + 1] - f[y + 1, x - 1] + f[y - 1, x - 1]) / 4
    hessian = np.array([[dxx, dxy], [dxy, dyy]])
    return np.array([x, y]) - np.linalg.solve(hessian, gradient)


def spec_refine_dark_udp(x, y, heatmap):
    """The DARK-UDP step as the spec words it, one keypoint at a time."""
    f = np.pad(np.log(np.clip(spec_blur(heatmap), 1e-3, 50)), 1, mode="edge").astype(np.float64)
    px, py = x + 1, y + 1
    gradient = np.array([f[py, px + 1] - f[py, px - 1], f[py + 1, px] - f[py - 1, px]]) / 2
    dxx = f[py, px + 1] - 2 * f[py, px] + f[py, px - 1]
    dyy = f[py + 1, px] - 2 * f[py, px] + f[py - 1, px]
    dxy = 0.5 * (
        f[py + 1, px + 1] - f[py, px + 1] - f[py + 1, px] + 2 * f[py, px]
        - f[py, px - 1] - f[py - 1, px] + f[py - 1, px - 1]
    )  # fmt: skip
    hessian = np.array([[dxx, dxy], [dxy, dyy]]) + np.finfo(np.float32).eps * np.eye(2)
    return np.array([x, y]) - np.linalg.solve(hessian, gradient)


@pytest.mark.parametrize(
    ("refine", "spec"), [(refine_dark, spec_refine_dark), (refine_dark_udp, spec_refine_dark_udp)]
)
def test_dark_refinements_match_the_spec_on_noisy_maps(refine, spec):
    heatmaps = blobs(np.random.default_rng(7), (4, NUM_KEYPOINTS))
    # Include maxima on and next to the border, where the bounds and edge padding matter.
    for channel, x in enumerate([0, 1, 2, W - 3, W - 2, W - 1]):
        heatmaps[0, channel, 20, x] = 5.0
    # A faint and a strong map, whose blurred values around the maximum pass DARK-UDP's clip
    # bounds [1e-3, 50].
    heatmaps[1, 0] *= 1.1e-3 / heatmaps[1, 0].max()
    heatmaps[1, 1] *= 55.0 / heatmaps[1, 1].max()
    locations, _ = get_heatmap_maximum(heatmaps)
    refined = refine(locations, heatmaps)
    for index in np.ndindex(locations.shape[:2]):
        x, y = locations[index].astype(int)
        expected = spec(x, y, heatmaps[index])
        np.testing.assert_allclose(refined[index], expected, atol=1e-5)


def peak_with_right_neighbour(x: int, y: int) -> np.ndarray:
    heatmap = np.zeros((1, H, W), np.float32)
    heatmap[0, y, x] = 1.0
    heatmap[0, y, min(x + 1, W - 1)] = 0.5 if x + 1 < W else 1.0
    heatmap[0, min(y + 1, H - 1), x] = 0.5 if y + 1 < H else 1.0
    return heatmap


@pytest.mark.parametrize(
    ("x", "y", "shift"),
    [
        (2, 5, (0.25, 0.25)),
        (1, 5, (0.0, 0.25)),  # x moves only when 1 < x
        (W - 2, 5, (0.25, 0.25)),
        (W - 1, 5, (0.0, 0.25)),  # ... and x < W - 1
        (5, 0, (0.0, 0.0)),  # x needs 0 < y; y needs 1 < y
        (5, 1, (0.25, 0.0)),
        (5, H - 2, (0.25, 0.25)),
        (5, H - 1, (0.25, 0.0)),
    ],
)
def test_quarter_refinement_bounds(x, y, shift):
    refined = refine_quarter_offset(np.array([[x, y]], np.float32), peak_with_right_neighbour(x, y))
    np.testing.assert_allclose(refined[0], np.add((x, y), shift))


@pytest.mark.parametrize(("x", "moves"), [(1, False), (2, True), (W - 3, True), (W - 2, False)])
def test_dark_refinement_bounds(x, moves):
    codec = make_codec("dark")
    heatmap, _ = encode_hm(codec, [[x + 0.3, 20.0]])
    refined = refine_dark(np.array([[x, 20]], np.float32), heatmap)
    # Near the border the zero-padded blur biases the step, so only test whether it is taken.
    assert (refined[0, 0] != x) == moves
    assert refined[0, 1] == pytest.approx(20.0, abs=1e-4)


def test_blur_matches_zero_padding_then_crop_and_keeps_each_max():
    maps = blobs(np.random.default_rng(3), (2, 3))
    blurred = blur_heatmaps(maps)
    for source, result in zip(maps.reshape(-1, H, W), blurred.reshape(-1, H, W), strict=True):
        padded = np.pad(source, 5)
        reference = cv2.GaussianBlur(padded, (11, 11), 0)[5:-5, 5:-5]
        reference *= source.max() / reference.max()
        np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(blurred.max(axis=(-2, -1)), maps.max(axis=(-2, -1)), rtol=1e-6)


# --- flip test ------------------------------------------------------------------------------


def symmetric_pose(rng: np.random.Generator, integer: bool) -> np.ndarray:
    """Input-crop keypoints of a left/right symmetric person: the crop equals its mirror image."""
    w_in, h_in = INPUT_SIZE
    keypoints = np.zeros((NUM_KEYPOINTS, 2))
    for i, j in enumerate(FLIP_INDICES):
        if i == j:
            keypoints[i] = ((w_in - 1) / 2, rng.uniform(30, h_in - 30))
        elif i < j:
            x = rng.uniform(30, (w_in - 1) / 2 - 4)
            keypoints[i] = (np.round(x) if integer else x, rng.uniform(30, h_in - 30))
            keypoints[j] = (w_in - 1 - keypoints[i, 0], keypoints[i, 1])
    return keypoints


# --- configuration --------------------------------------------------------------------------


def test_codec_validates_its_settings():
    with pytest.raises(ValueError, match=r"\('msra', 'udp'\).*'dark'"):
        HeatmapCodec("dark", INPUT_SIZE, HEATMAP_SIZE)
    with pytest.raises(ValueError, match="msra' only"):
        HeatmapCodec("udp", INPUT_SIZE, HEATMAP_SIZE, unbiased=True)
    with pytest.raises(ValueError, match="blur_kernel_size"):
        HeatmapCodec("msra", INPUT_SIZE, HEATMAP_SIZE, blur_kernel_size=10)
    with pytest.raises(ValueError, match="heatmap_size"):
        HeatmapCodec("msra", INPUT_SIZE, (64,))
    # Hydra passes lists: they become tuples, so the codec stays hashable.
    assert HeatmapCodec("udp", [192, 256], [48, 64]).input_size == (192, 256)


@pytest.mark.parametrize("name", ["msra", "udp"])
def test_flipped_back_heatmaps_peak_where_the_unflipped_ones_do(name):
    codec = make_codec(name)
    keypoints = symmetric_pose(np.random.default_rng(4), integer=name == "msra")
    # The mirrored crop shows the same symmetric person, so the model's ideal output is the same.
    heatmaps, _ = codec.encode(keypoints, np.ones(NUM_KEYPOINTS))
    flipped_back = flip_heatmaps(heatmaps, FLIP_INDICES, shift=codec.flip_shift)
    peaks = heatmaps.reshape(NUM_KEYPOINTS, -1).argmax(axis=1)
    np.testing.assert_array_equal(flipped_back.reshape(NUM_KEYPOINTS, -1).argmax(axis=1), peaks)
    # The other shift setting is misaligned by a pixel: the codec's choice is the one that works.
    misaligned = flip_heatmaps(heatmaps, FLIP_INDICES, shift=not codec.flip_shift)
    assert (misaligned.reshape(NUM_KEYPOINTS, -1).argmax(axis=1) != peaks).all()
    if name == "udp":
        decoded, _ = codec.decode(heatmaps)
        decoded_back, _ = codec.decode(flipped_back)
        np.testing.assert_allclose(decoded_back, decoded, atol=1e-3)


def test_flip_shift_is_on_for_msra_and_dark_only():
    assert make_codec("msra").flip_shift
    assert make_codec("dark").flip_shift
    assert not make_codec("udp").flip_shift
