import numpy as np
import pytest

from helpers import STANDING_LAYOUT as LAYOUT
from mobilevitpose.inference.smoothing import OneEuroFilter, TrackSmoother, person_size
from mobilevitpose.keypoints import NUM_KEYPOINTS

FPS = 30.0
BOX = np.array([120.0, 240.0])  # width, height in px
POSE = LAYOUT * BOX  # its keypoint extent is about 72 x 214 px: a person size of 143 px
SIZE = person_size(POSE, np.ones(NUM_KEYPOINTS, bool))
CONFIDENT = np.full(NUM_KEYPOINTS, 0.9)


def _track(path, noise_px=2.0, seed=0):
    """Clean and noisy keypoints (T, K, 2) of a person whose origin follows `path` (T, 2)."""
    clean = path[:, None, :] + POSE[None]
    rng = np.random.default_rng(seed)
    return clean, clean + rng.normal(0.0, noise_px, clean.shape)


def _sway(frames=300, amplitude=0.05, hz=0.25):
    """Someone standing and swaying: peak speed 2 pi * 0.05 * 0.25 = 0.08 sizes/s."""
    phase = 2 * np.pi * hz * np.arange(frames) / FPS
    return np.stack([np.sin(phase), 0.5 * np.cos(phase)], 1) * amplitude * SIZE + 300


def _walk(frames=300, speed=1.0):
    """Someone walking across at `speed` sizes/s, bobbing 3% of their size at 2 Hz."""
    t = np.arange(frames) / FPS
    return np.stack([speed * SIZE * t, 0.03 * SIZE * np.sin(2 * np.pi * 2 * t)], 1) + 100


def _smooth(keypoints, smoother=None, track_id=7):
    smoother = smoother or TrackSmoother(fps=FPS)
    return np.stack(
        [smoother(np.array([track_id]), k[None], CONFIDENT[None])[0] for k in keypoints]
    )


def jitter(keypoints):
    """Mean absolute frame-to-frame second difference (px), after the first second."""
    return float(np.abs(np.diff(keypoints[30:], n=2, axis=0)).mean())


def rms_error(keypoints, clean):
    """RMS distance (px) to the clean keypoints, after the first second."""
    return float(np.sqrt(((keypoints[30:] - clean[30:]) ** 2).sum(-1).mean()))


def step_lag(fraction, **settings):
    """Frames after a jump of the whole person by `fraction` of its size until every smoothed
    keypoint is within 10% of the jump of where it landed (0: on the frame of the jump)."""
    path = np.zeros((60, 2)) + 100
    path[20:, 0] += fraction * SIZE
    clean, _ = _track(path, noise_px=0.0)
    smoothed = _smooth(clean, TrackSmoother(fps=FPS, **settings))
    error = np.abs(smoothed[20:] - clean[20:]).max(axis=(1, 2))
    within = np.nonzero(error <= 0.1 * fraction * SIZE)[0]
    return int(within[0]) if len(within) else len(error)


def test_jitter_of_a_noisy_standing_person_drops():
    clean, noisy = _track(_sway())
    smoothed = _smooth(noisy)
    # Measured (seed 0, 2 px noise): jitter 3.94 -> 1.21 px, RMS error 2.83 -> 1.85 px.
    assert jitter(smoothed) < 0.4 * jitter(noisy)
    assert rms_error(smoothed, clean) < 0.75 * rms_error(noisy, clean)


def test_jitter_of_a_noisy_walking_person_drops_without_losing_track():
    clean, noisy = _track(_walk())
    smoothed = _smooth(noisy)
    # Measured (seed 0, 2 px noise): jitter 3.95 -> 2.69 px, RMS error 2.83 -> 2.61 px: the
    # filter opens up while the person moves, so it keeps up at the price of less smoothing.
    assert jitter(smoothed) < 0.8 * jitter(noisy)
    assert rms_error(smoothed, clean) < rms_error(noisy, clean)


@pytest.mark.parametrize(
    ("fraction", "max_lag"), [(0.02, 4), (0.05, 2), (0.1, 2), (0.25, 1), (0.5, 1)]
)
def test_a_jump_is_followed_within_a_frame_or_two(fraction, max_lag):
    # Measured lags: 3, 1, 1, 0, 0 frames; the bounds leave a frame. A jump of 2% of the
    # person's size (3 px here) is barely above the noise, and is smoothed like it.
    assert step_lag(fraction) <= max_lag


def test_a_lower_beta_lags_more():
    assert step_lag(0.1, beta=2.0) > step_lag(0.1)


def test_smoothing_does_not_depend_on_the_image_scale():
    _, noisy = _track(_walk(frames=60))
    np.testing.assert_allclose(_smooth(noisy * 5.0), _smooth(noisy) * 5.0, rtol=1e-9)


def test_the_first_frame_of_a_track_passes_through():
    keypoints = POSE[None] + 10.0
    assert np.array_equal(TrackSmoother()(np.array([3]), keypoints, CONFIDENT[None]), keypoints)


def test_low_confidence_keypoints_pass_through_and_keep_the_state():
    smoother = TrackSmoother(fps=FPS, score_thr=0.3)
    scores = CONFIDENT.copy()
    for _ in range(10):
        smoother(np.array([0]), POSE[None], scores[None])
    guessed = POSE.copy()
    guessed[9] += 200.0  # the left wrist, occluded, guessed far away
    scores[9] = 0.1
    for _ in range(5):
        out = smoother(np.array([0]), guessed[None], scores[None])[0]
        assert np.array_equal(out[9], guessed[9])
        others = np.arange(NUM_KEYPOINTS) != 9
        np.testing.assert_allclose(out[others], POSE[others])  # at rest, and they stay
    scores[9] = 0.9
    out = smoother(np.array([0]), POSE[None], scores[None])[0]
    # Seen again where it was: the state never moved towards the guesses.
    np.testing.assert_allclose(out, POSE)


def test_tracks_are_smoothed_separately_whatever_their_order():
    _, noisy_a = _track(_sway(frames=40), seed=1)
    _, noisy_b = _track(_walk(frames=40), seed=2)
    alone = _smooth(noisy_a, track_id=5)
    together, swapped = TrackSmoother(fps=FPS), TrackSmoother(fps=FPS)
    ids, scores = np.array([5, 9]), np.stack([CONFIDENT, CONFIDENT])
    for f in range(40):
        both = together(ids, np.stack([noisy_a[f], noisy_b[f]]), scores)
        back = swapped(ids[::-1], np.stack([noisy_b[f], noisy_a[f]]), scores)
        np.testing.assert_allclose(both[0], alone[f])
        np.testing.assert_allclose(back[::-1], both)


def test_untracked_people_pass_through():
    keypoints = np.stack([POSE, POSE + 50.0])
    smoother = TrackSmoother()
    smoother(np.array([0, -1]), keypoints, np.stack([CONFIDENT, CONFIDENT]))
    out = smoother(np.array([0, -1]), keypoints + 3.0, np.stack([CONFIDENT, CONFIDENT]))
    assert np.array_equal(out[1], keypoints[1] + 3.0) and not np.array_equal(out[0], POSE + 3.0)
    assert smoother.track_ids == {0}


def test_retain_forgets_retired_tracks():
    smoother = TrackSmoother()
    ids, scores = np.array([0, 1]), np.stack([CONFIDENT, CONFIDENT])
    smoother(ids, np.stack([POSE, POSE]), scores)
    smoother.retain({1, 4})
    assert smoother.track_ids == {1}
    out = smoother(ids, np.stack([POSE, POSE]) + 20.0, scores)
    assert np.array_equal(out[0], POSE + 20.0)  # track 0 starts afresh
    assert not np.array_equal(out[1], POSE + 20.0)
    smoother.reset()
    assert smoother.track_ids == frozenset()


def test_frame_indices_give_the_time_step():
    _, noisy = _track(_walk(frames=12))
    frames = [0, 1, 2, 5, 6, 11]  # a track missing some frames
    smoother, one_euro = TrackSmoother(fps=25.0), OneEuroFilter()
    for f in frames:
        out = smoother(np.array([0]), noisy[f][None], CONFIDENT[None], frame_index=f)[0]
        expected = one_euro(noisy[f], f / 25.0, scale=person_size(noisy[f], CONFIDENT > 0))
        np.testing.assert_allclose(out, expected)
    with pytest.raises(ValueError, match="frame_index must increase"):
        smoother(np.array([0]), noisy[0][None], CONFIDENT[None], frame_index=11)


def test_one_euro_filter_at_rest_and_its_time_checks():
    one_euro = OneEuroFilter()
    for step in range(5):
        assert np.array_equal(one_euro(np.full((3, 2), 4.0), step / 30), np.full((3, 2), 4.0))
    with pytest.raises(ValueError, match="time must increase"):
        one_euro(np.zeros((3, 2)), 4 / 30)
    with pytest.raises(ValueError, match="changed shape"):
        one_euro(np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="scale must be"):
        one_euro(np.zeros((3, 2)), 1.0, scale=0.0)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"min_cutoff": 0.0}, "min_cutoff must be a finite number > 0"),
        ({"beta": -1.0}, "beta must be a finite number >= 0"),
        ({"d_cutoff": float("nan")}, "d_cutoff must be a finite number > 0"),
        ({"fps": 0.0}, "fps must be a finite number > 0"),
    ],
)
def test_options_are_checked(kwargs, named):
    with pytest.raises(ValueError, match=named):
        TrackSmoother(**kwargs)


def test_inputs_are_checked():
    smoother = TrackSmoother()
    with pytest.raises(ValueError, match="keypoints_img"):
        smoother(np.array([0]), POSE, CONFIDENT[None])
    with pytest.raises(ValueError, match="keypoint_scores must be"):
        smoother(np.array([0]), POSE[None], CONFIDENT)
    with pytest.raises(ValueError, match="a track id appears twice"):
        smoother(np.array([2, 2]), np.stack([POSE, POSE]), np.stack([CONFIDENT, CONFIDENT]))
