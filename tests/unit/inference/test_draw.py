import numpy as np
import pytest

from mobilevitpose.inference.draw import SIDE_COLOURS, draw_skeleton
from mobilevitpose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON

GREY = 50


def _canvas(height=100, width=120):
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def _person(shown=(), at=None):
    """Keypoints spread over the canvas, scores 0.9 for the `shown` indices and 0 elsewhere."""
    keypoints = np.stack([10 + 5 * np.arange(NUM_KEYPOINTS), np.full(NUM_KEYPOINTS, 50.0)], 1)
    for k, xy in (at or {}).items():
        keypoints[k] = xy
    scores = np.zeros(NUM_KEYPOINTS)
    scores[list(shown)] = 0.9
    return keypoints, scores


def _changed(before, after):
    return np.any(before != after, axis=-1)


def test_draws_on_a_copy():
    image = _canvas()
    keypoints, scores = _person(shown=range(NUM_KEYPOINTS))
    drawn = draw_skeleton(image, keypoints, scores)
    assert drawn is not image and drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (image == GREY).all()
    assert _changed(image, drawn).any()


def test_nothing_is_drawn_when_every_score_is_under_the_threshold():
    image = _canvas()
    keypoints, _ = _person()
    scores = np.full(NUM_KEYPOINTS, 0.29)
    np.testing.assert_array_equal(draw_skeleton(image, keypoints, scores, score_thr=0.3), image)
    # The threshold is the caller's: lowered, the same scores are drawn.
    assert _changed(image, draw_skeleton(image, keypoints, scores, score_thr=0.1)).any()


@pytest.mark.parametrize(
    ("name", "side"), [("left_wrist", "left"), ("right_knee", "right"), ("nose", "center")]
)
def test_a_lone_keypoint_is_a_filled_dot_in_its_side_colour(name, side):
    k = KEYPOINT_NAMES.index(name)
    image = _canvas()
    keypoints, scores = _person(shown=[k], at={k: (60.0, 40.0)})
    drawn = draw_skeleton(image, keypoints, scores, radius=5)
    assert tuple(drawn[40, 60]) == SIDE_COLOURS[side]
    assert tuple(drawn[40, 63]) == SIDE_COLOURS[side]  # filled, not a ring
    # Nothing beyond the radius: one keypoint alone draws no limb.
    ys, xs = np.nonzero(_changed(image, drawn))
    assert np.hypot(xs - 60, ys - 40).max() <= 6.5


def test_side_colours_are_three_distinct_colours():
    assert len({SIDE_COLOURS["left"], SIDE_COLOURS["right"], SIDE_COLOURS["center"]}) == 3


@pytest.mark.parametrize(
    ("limb", "side"),
    [
        (("left_knee", "left_ankle"), "left"),
        (("right_shoulder", "right_elbow"), "right"),
        (("left_shoulder", "right_shoulder"), "center"),  # a limb across the body
        (("left_hip", "right_hip"), "center"),
    ],
)
def test_limb_colour_follows_its_side(limb, side):
    a, b = (KEYPOINT_NAMES.index(n) for n in limb)
    assert (a, b) in SKELETON or (b, a) in SKELETON
    image = _canvas()
    keypoints, scores = _person(shown=[a, b], at={a: (20.0, 50.0), b: (100.0, 50.0)})
    drawn = draw_skeleton(image, keypoints, scores, radius=3, thickness=3)
    assert tuple(drawn[50, 60]) == SIDE_COLOURS[side]  # the middle of the limb


def test_a_limb_needs_both_ends_shown():
    knee, ankle = KEYPOINT_NAMES.index("left_knee"), KEYPOINT_NAMES.index("left_ankle")
    image = _canvas()
    keypoints, scores = _person(shown=[knee, ankle], at={knee: (20.0, 50.0), ankle: (100.0, 50.0)})
    scores[ankle] = 0.1
    drawn = draw_skeleton(image, keypoints, scores, radius=3, thickness=3)
    assert tuple(drawn[50, 60]) == (GREY,) * 3
    assert tuple(drawn[50, 20]) == SIDE_COLOURS["left"]  # the knee itself is still drawn


def test_keypoints_are_rounded_to_the_nearest_pixel():
    k = KEYPOINT_NAMES.index("nose")
    image = _canvas()
    keypoints, scores = _person(shown=[k], at={k: (30.6, 20.4)})
    ys, xs = np.nonzero(_changed(image, draw_skeleton(image, keypoints, scores, radius=4)))
    assert (xs.mean(), ys.mean()) == pytest.approx((31.0, 20.0), abs=0.05)


def test_one_person_or_many():
    image = _canvas()
    one, scores = _person(shown=range(NUM_KEYPOINTS))
    two = np.stack([one, one + np.array([0.0, 30.0])])
    drawn_one = draw_skeleton(image, one, scores)
    np.testing.assert_array_equal(draw_skeleton(image, one[None], scores[None]), drawn_one)
    drawn_two = draw_skeleton(image, two, np.stack([scores, scores]))
    # The second person is the first moved down by 30 px.
    np.testing.assert_array_equal(drawn_two[60:90], drawn_one[30:60])
    assert _changed(drawn_one, drawn_two).any()


def test_dot_size_grows_with_the_image():
    """Defaults: radius max(2, size // 160), so 10 px on a 1600 px image."""
    k = KEYPOINT_NAMES.index("nose")
    image = np.zeros((1600, 1200, 3), dtype=np.uint8)
    keypoints, scores = _person(shown=[k], at={k: (600.0, 800.0)})
    drawn = draw_skeleton(image, keypoints, scores)
    ys, xs = np.nonzero(_changed(image, drawn))
    assert 9.5 <= np.hypot(xs - 600, ys - 800).max() <= 11.5
    assert tuple(drawn[800, 609]) == SIDE_COLOURS["center"]


def test_keypoints_outside_the_image_are_clipped_not_an_error():
    image = _canvas()
    keypoints, scores = _person(shown=range(NUM_KEYPOINTS))
    keypoints[::2] = (-500.0, 1e5)
    drawn = draw_skeleton(image, keypoints, scores)
    assert drawn.shape == image.shape
