import cv2
import numpy as np
import pytest

from mobilevitpose.geometry import (
    BBOX_PADDING,
    Crop,
    apply_affine,
    bbox_xywh_to_xyxy,
    bbox_xyxy_to_center_scale,
    fix_aspect_ratio,
    input_to_image,
    val_crop,
    warp_matrix,
)

INPUT_SIZE = (192, 256)  # non-square on purpose: catches swapped axes
W_IN, H_IN = INPUT_SIZE
CENTER = np.array([310.0, 205.0])
SCALE = np.array([150.0, 200.0])  # aspect-fixed for 192x256: 150 / 200 == 0.75


def mmpose_warp_matrix(center, scale, rot_deg, output_size):
    """MMPose's `get_warp_matrix` as its spec describes it: three point pairs (the centre, the
    rotated half-width to the left, a third point at 90 degrees) through getAffineTransform."""

    def third_point(a, b):
        direction = a - b
        return b + np.array([-direction[1], direction[0]])

    theta = np.radians(rot_deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    src_dir = rotation @ np.array([-0.5 * scale[0], 0.0])
    dst_center = np.array([output_size[0] * 0.5, output_size[1] * 0.5])
    # Held in float32 arrays, the third point made from the rounded first two, as MMPose does.
    src = np.stack([center, center + src_dir, np.zeros(2)]).astype(np.float32)
    dst = np.stack([dst_center, dst_center - np.array([0.5 * output_size[0], 0.0]), np.zeros(2)])
    dst = dst.astype(np.float32)
    src[2], dst[2] = third_point(src[0], src[1]), third_point(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


# --- boxes ----------------------------------------------------------------------------------


def test_xywh_to_xyxy_single_and_batched_without_touching_the_input():
    boxes = np.array([[10, 20, 30, 40], [0.5, 1.5, 2.0, 3.0]])
    original = boxes.copy()
    np.testing.assert_allclose(bbox_xywh_to_xyxy(boxes), [[10, 20, 40, 60], [0.5, 1.5, 2.5, 4.5]])
    np.testing.assert_allclose(bbox_xywh_to_xyxy([10, 20, 30, 40]), [10, 20, 40, 60])
    np.testing.assert_array_equal(boxes, original)


def test_center_scale_is_the_box_centre_and_its_size_padded_by_1_25():
    center, scale = bbox_xyxy_to_center_scale(np.array([10, 20, 50, 100]))
    assert BBOX_PADDING == 1.25
    np.testing.assert_allclose(center, [30, 60])
    np.testing.assert_allclose(scale, [50, 100])
    # Integer boxes are not truncated to integer centres.
    center, scale = bbox_xyxy_to_center_scale(np.array([0, 0, 3, 5]), padding=1.0)
    np.testing.assert_allclose(center, [1.5, 2.5])
    np.testing.assert_allclose(scale, [3, 5])


def test_center_scale_batched():
    boxes = np.array([[0, 0, 4, 8], [10, 10, 12, 30]], dtype=np.float32)
    center, scale = bbox_xyxy_to_center_scale(boxes, padding=2.0)
    np.testing.assert_allclose(center, [[2, 4], [11, 20]])
    np.testing.assert_allclose(scale, [[8, 16], [4, 40]])


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ((60.0, 100.0), (75.0, 100.0)),  # too narrow: the width grows
        ((150.0, 100.0), (150.0, 200.0)),  # too wide: the height grows
        ((75.0, 100.0), (75.0, 100.0)),  # already 3:4
    ],
)
def test_fix_aspect_ratio_grows_the_short_side(scale, expected):
    np.testing.assert_allclose(fix_aspect_ratio(np.array(scale), 0.75), expected, rtol=1e-6)


def test_fix_aspect_ratio_never_shrinks_and_hits_the_ratio_batched():
    scales = np.random.default_rng(0).uniform(1, 500, (200, 2))
    fixed = fix_aspect_ratio(scales, 0.75)
    assert fixed.shape == (200, 2) and fixed.dtype == np.float32
    np.testing.assert_allclose(fixed[:, 0] / fixed[:, 1], 0.75, rtol=1e-5)
    assert (fixed >= scales.astype(np.float32) * (1 - 1e-6)).all()
    # Exactly one side keeps its size.
    kept = np.isclose(fixed, scales, rtol=1e-6)
    assert (kept.sum(axis=1) >= 1).all()


# --- warp matrices --------------------------------------------------------------------------


def test_normal_warp_maps_the_box_edges_to_the_crop_edges():
    matrix = warp_matrix(CENTER, SCALE, 0.0, INPUT_SIZE, udp=False)
    corners = CENTER + np.array([[-0.5, -0.5], [0.5, 0.5], [0.0, 0.0]]) * SCALE
    np.testing.assert_allclose(
        apply_affine(matrix, corners), [[0, 0], [W_IN, H_IN], [W_IN / 2, H_IN / 2]], atol=1e-9
    )


def test_udp_warp_maps_the_box_edges_to_the_first_and_last_pixel_centres():
    # Per-axis scales: even a box that is not 3:4 lands exactly on the corner pixels.
    scale = np.array([100.0, 300.0])
    matrix = warp_matrix(CENTER, scale, 0.0, INPUT_SIZE, udp=True)
    corners = CENTER + np.array([[-0.5, -0.5], [0.5, 0.5], [0.0, 0.0]]) * scale
    expected = [[0, 0], [W_IN - 1, H_IN - 1], [(W_IN - 1) / 2, (H_IN - 1) / 2]]
    np.testing.assert_allclose(apply_affine(matrix, corners), expected, atol=1e-9)


@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0, 180.0])
def test_normal_warp_matches_mmpose_three_point_construction(rot):
    np.testing.assert_allclose(
        warp_matrix(CENTER, SCALE, rot, INPUT_SIZE, udp=False),
        mmpose_warp_matrix(CENTER, SCALE, rot, INPUT_SIZE),
        rtol=0,
        atol=1e-12,  # the same float32 points: the same matrix, not just the same transform
    )


def test_rotation_directions_of_normal_and_udp_warps_are_opposite():
    """The spec: normal is R(-rot), UDP is R(+rot) (harmless: the augmentation is symmetric).
    With rot = 90 a point right of the centre goes up in the normal crop, down in the UDP one."""
    right = CENTER + np.array([40.0, 0.0])
    normal = apply_affine(warp_matrix(CENTER, SCALE, 90.0, INPUT_SIZE, udp=False), right)
    np.testing.assert_allclose(normal, [W_IN / 2, H_IN / 2 - 40 * W_IN / SCALE[0]], atol=1e-9)
    udp = apply_affine(warp_matrix(CENTER, SCALE, 90.0, INPUT_SIZE, udp=True), right)
    np.testing.assert_allclose(
        udp, [(W_IN - 1) / 2, (H_IN - 1) / 2 + 40 * (H_IN - 1) / SCALE[1]], atol=1e-9
    )


@pytest.mark.parametrize("udp", [False, True])
def test_warp_keeps_the_centre_fixed_and_scales_distances_under_rotation(udp):
    matrix = warp_matrix(CENTER, SCALE, 37.0, INPUT_SIZE, udp=udp)
    centre_out = np.array(INPUT_SIZE, dtype=np.float64) / 2 - (0.5 if udp else 0.0)
    np.testing.assert_allclose(apply_affine(matrix, CENTER), centre_out, atol=1e-9)
    if not udp:  # a similarity: lengths scale by w_in / sw in every direction
        points = np.random.default_rng(0).uniform(0, 600, (20, 2))
        mapped = apply_affine(matrix, points)
        np.testing.assert_allclose(
            np.linalg.norm(mapped - centre_out, axis=1),
            np.linalg.norm(points - CENTER, axis=1) * W_IN / SCALE[0],
            rtol=1e-6,  # the normal matrix is solved from float32 points, as the reference's
        )


def test_warp_accepts_float32_arrays_and_returns_float64_2x3():
    matrix = warp_matrix(CENTER.astype(np.float32), SCALE.astype(np.float32), 0, INPUT_SIZE, True)
    assert matrix.shape == (2, 3) and matrix.dtype == np.float64


def test_apply_affine_broadcasts_over_leading_axes_like_cv2_transform():
    matrix = np.array([[2.0, 0.5, 10.0], [-1.0, 3.0, -4.0]])
    np.testing.assert_allclose(apply_affine(matrix, [1.0, 2.0]), [13.0, 1.0])
    points = np.random.default_rng(1).uniform(-50, 50, (3, 5, 2))
    expected = cv2.transform(points.reshape(-1, 1, 2), matrix).reshape(3, 5, 2)
    out = apply_affine(matrix, points)
    assert out.shape == (3, 5, 2)
    np.testing.assert_allclose(out, expected, atol=1e-9)


# --- back to the image ----------------------------------------------------------------------


def test_input_to_image_maps_crop_corners_to_box_edges():
    """The reference's add_pred_to_datasample: kp / input_size * scale + center - scale / 2."""
    out = input_to_image(np.array([[0.0, 0.0], [W_IN, H_IN], [W_IN / 4, H_IN / 2]]),
                         CENTER, SCALE, INPUT_SIZE)  # fmt: skip
    np.testing.assert_allclose(out, [[235, 105], [385, 305], [272.5, 205]])


def test_input_to_image_inverts_the_normal_warp_for_batches():
    rng = np.random.default_rng(2)
    centers = rng.uniform(100, 600, (4, 2))
    scales = fix_aspect_ratio(rng.uniform(30, 400, (4, 2)), W_IN / H_IN)
    keypoints_img = rng.uniform(0, 700, (4, 17, 2))
    keypoints_input = np.stack(
        [
            apply_affine(warp_matrix(c, s, 0.0, INPUT_SIZE, udp=False), k)
            for c, s, k in zip(centers, scales, keypoints_img, strict=True)
        ]
    )
    back = input_to_image(keypoints_input, centers, scales, INPUT_SIZE)
    assert back.shape == (4, 17, 2)
    np.testing.assert_allclose(back, keypoints_img, atol=1e-3)


# --- crops ----------------------------------------------------------------------------------


def test_val_crop_pads_and_fixes_the_aspect_ratio_without_augmentation():
    crop = val_crop(np.array([10.0, 20.0, 50.0, 100.0]), INPUT_SIZE)
    np.testing.assert_allclose(crop.center, [30, 60])
    np.testing.assert_allclose(crop.scale, [75, 100])  # padded (50, 100), widened to 3:4
    assert crop.rotation == 0.0 and not crop.flipped
    wide = val_crop(np.array([0.0, 0.0, 200.0, 100.0]), INPUT_SIZE)
    np.testing.assert_allclose(wide.scale, [250, 250 / 0.75], rtol=1e-6)


@pytest.mark.parametrize("udp", [False, True])
def test_unflipped_crop_uses_one_matrix_for_pixels_and_keypoints(udp):
    crop = Crop(center=CENTER, scale=SCALE, rotation=12.0)
    np.testing.assert_array_equal(
        crop.image_matrix(INPUT_SIZE, udp), crop.keypoint_matrix(INPUT_SIZE, udp)
    )
    np.testing.assert_array_equal(
        crop.keypoint_matrix(INPUT_SIZE, udp), warp_matrix(CENTER, SCALE, 12.0, INPUT_SIZE, udp)
    )


@pytest.mark.parametrize("udp", [False, True])
def test_flipped_crop_image_matrix_folds_in_the_mirror_x_to_width_minus_1_minus_x(udp):
    width = 640
    crop = Crop(center=CENTER, scale=SCALE, rotation=20.0, flipped=True, image_width=width)
    points = np.random.default_rng(3).uniform(0, [width, 480], (30, 2))
    mirrored = np.stack([width - 1 - points[:, 0], points[:, 1]], axis=1)
    np.testing.assert_allclose(
        apply_affine(crop.image_matrix(INPUT_SIZE, udp), points),
        apply_affine(crop.keypoint_matrix(INPUT_SIZE, udp), mirrored),
        atol=1e-9,
    )


def test_flipped_crop_shows_the_original_box_mirrored():
    """A box at cx in the original is at width - 1 - cx in the mirrored image: its left edge
    comes out on the crop's right."""
    width = 640
    box_center = np.array([100.0, 205.0])
    crop = Crop(center=np.array([width - 1 - 100.0, 205.0]), scale=SCALE, flipped=True,
                image_width=width)  # fmt: skip
    matrix = crop.image_matrix(INPUT_SIZE, udp=False)
    left_edge = box_center - [SCALE[0] / 2, 0.0]
    np.testing.assert_allclose(apply_affine(matrix, box_center), [W_IN / 2, H_IN / 2], atol=1e-9)
    np.testing.assert_allclose(apply_affine(matrix, left_edge), [W_IN, H_IN / 2], atol=1e-9)


@pytest.mark.parametrize("width", [0, -5])
def test_flipped_crop_without_image_width_is_refused(width):
    with pytest.raises(ValueError, match=rf"image width; got {width}"):
        Crop(center=CENTER, scale=SCALE, flipped=True, image_width=width)
