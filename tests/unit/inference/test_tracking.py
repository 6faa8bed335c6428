import numpy as np
import pytest

from helpers import STANDING_LAYOUT as LAYOUT
from mobilevitpose.inference.tracking import PoseTracker, box_iou, keypoint_oks
from mobilevitpose.keypoints import NUM_KEYPOINTS, OKS_SIGMAS


def _person(box, rng, noise=1.0):
    """Keypoints (K, 2) of a person in `box`, with seeded pixel noise, and their scores."""
    x0, y0, x1, y1 = box
    keypoints = np.array([x0, y0]) + LAYOUT * np.array([x1 - x0, y1 - y0])
    return keypoints + rng.normal(0, noise, keypoints.shape), np.full(NUM_KEYPOINTS, 0.9)


def _frame(boxes, rng):
    """The tracker's inputs for the people in `boxes` (a list of xyxy)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    people = [_person(box, rng) for box in boxes]
    keypoints = np.array([k for k, _ in people]).reshape(-1, NUM_KEYPOINTS, 2)
    scores = np.array([s for _, s in people]).reshape(-1, NUM_KEYPOINTS)
    return boxes, keypoints, scores


def _run(tracker, frames):
    """Per frame, {person name: track id} for frames given as {person name: box}."""
    rng = np.random.default_rng(0)
    out = []
    for people in frames:
        names = list(people)
        ids = tracker.update(*_frame([people[n] for n in names], rng))
        out.append(dict(zip(names, ids.tolist(), strict=True)))
    return out


def _id_switches(assigned):
    """How often a person's id changed from one frame where it was seen to the next."""
    last, switches = {}, 0
    for frame in assigned:
        for name, track_id in frame.items():
            switches += name in last and last[name] != track_id
            last[name] = track_id
    return switches


def _crossing(frames=60):
    """A far (small, higher) person walking right crosses a near (larger, lower) one walking
    left; their boxes overlap for 14 frames, the far one wholly inside the near one's for 2."""
    out = []
    for f in range(frames):
        far_x, near_x = 100 + 5 * f, 420 - 6 * f
        out.append({"far": (far_x, 100, far_x + 60, 250), "near": (near_x, 90, near_x + 90, 315)})
    return out


def _leave_and_return(gap, before=20, after=10):
    """'a' stands still throughout; 'b' stands still, is missed for `gap` frames, then is seen
    again where it was (an occlusion, missed detections)."""
    frames = []
    for f in range(before + gap + after):
        people = {"a": (50 + f, 100, 110 + f, 250)}
        if not before <= f < before + gap:
            people["b"] = (300, 120, 360, 270)
        frames.append(people)
    return frames


@pytest.mark.parametrize("mode", ["iou", "oks"])
def test_people_crossing_keep_their_ids(mode):
    assigned = _run(PoseTracker(mode=mode), _crossing())
    assert _id_switches(assigned) == 0
    assert assigned[0]["far"] != assigned[0]["near"]
    assert assigned[-1] == assigned[0]


@pytest.mark.parametrize("mode", ["iou", "oks"])
def test_a_person_back_within_max_lost_frames_keeps_its_id(mode):
    assigned = _run(PoseTracker(mode=mode, max_lost_frames=30), _leave_and_return(gap=30))
    assert _id_switches(assigned) == 0
    assert {i for frame in assigned for i in frame.values()} == {0, 1}


@pytest.mark.parametrize("mode", ["iou", "oks"])
def test_a_person_back_after_max_lost_frames_gets_a_new_id(mode):
    assigned = _run(PoseTracker(mode=mode, max_lost_frames=30), _leave_and_return(gap=31))
    old_b, new_b = assigned[0]["b"], assigned[-1]["b"]
    assert new_b != old_b and new_b > max(assigned[0].values())  # a fresh id, never reused
    assert _id_switches(assigned) == 1 and assigned[-1]["a"] == assigned[0]["a"]


def test_max_lost_frames_zero_matches_only_the_previous_frame():
    assigned = _run(PoseTracker(max_lost_frames=0), _leave_and_return(gap=1))
    assert assigned[-1]["b"] != assigned[0]["b"]
    assert _id_switches(_run(PoseTracker(max_lost_frames=0), _leave_and_return(gap=0))) == 0


def test_retired_tracks_leave_live_ids():
    tracker = PoseTracker(max_lost_frames=2)
    rng = np.random.default_rng(0)
    tracker.update(*_frame([(0, 0, 50, 100), (200, 0, 250, 100)], rng))
    assert tracker.live_ids == {0, 1}
    for _ in range(2):
        tracker.update(*_frame([(0, 0, 50, 100)], rng))
    assert tracker.live_ids == {0, 1}
    tracker.update(*_frame([(0, 0, 50, 100)], rng))
    assert tracker.live_ids == {0}
    tracker.reset()
    assert tracker.live_ids == frozenset()
    assert tracker.update(*_frame([(0, 0, 50, 100)], rng)).tolist() == [0]


def test_a_person_who_vanished_and_appears_elsewhere_gets_a_new_id():
    frames = [{"a": (0, 0, 60, 150)}] * 3 + [{"a": (400, 0, 460, 150)}]
    assigned = _run(PoseTracker(), frames)
    assert assigned[-1]["a"] == 1


def test_the_best_pair_is_matched_first_whatever_the_detection_order():
    # Person p prefers track x (IoU 0.67) but q fits x better (IoU 1); p's second choice y
    # (IoU 0.43) is above the threshold. Taking people in their order, as MMPose's demo does,
    # would give x to p and leave q unmatched.
    x, y, p, q = (0, 0, 10, 10), (6, 0, 16, 10), (2, 0, 12, 10), (0, 0, 10, 10)
    for order in ([p, q], [q, p]):
        tracker = PoseTracker()
        rng = np.random.default_rng(0)
        assert tracker.update(*_frame([x, y], rng)).tolist() == [0, 1]
        ids = tracker.update(*_frame(order, rng)).tolist()
        assert dict(zip(["p", "q"] if order[0] == p else ["q", "p"], ids, strict=True)) == {
            "p": 1,
            "q": 0,
        }


def test_no_match_at_or_below_the_threshold():
    tracker = PoseTracker(threshold=0.5, max_lost_frames=0)
    rng = np.random.default_rng(0)
    tracker.update(*_frame([(0, 0, 10, 10)], rng))
    # Each box has IoU exactly 0.5 with the previous one.
    assert tracker.update(*_frame([(0, 0, 10, 5)], rng)).tolist() == [1]
    assert tracker.update(*_frame([(0, 0, 10, 10)], rng)).tolist() == [2]
    tracker = PoseTracker(threshold=0.49)
    tracker.update(*_frame([(0, 0, 10, 10)], rng))
    assert tracker.update(*_frame([(0, 0, 10, 5)], rng)).tolist() == [0]


def test_an_empty_frame_is_fine():
    tracker = PoseTracker(mode="oks")
    empty = (np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0, NUM_KEYPOINTS)))
    ids = tracker.update(*empty)
    assert ids.shape == (0,) and ids.dtype == np.int64
    rng = np.random.default_rng(0)
    tracker.update(*_frame([(0, 0, 50, 100)], rng))
    assert tracker.update(*empty).shape == (0,)
    assert tracker.update(*_frame([(0, 0, 50, 100)], rng)).tolist() == [0]


def test_oks_ignores_keypoints_that_either_pose_is_unsure_of():
    rng = np.random.default_rng(0)
    _, keypoints, scores = _frame([(0, 0, 60, 150)], rng)
    moved = keypoints.copy()
    moved[0, 9:11] += 80  # the wrists are guessed far away
    unsure = scores.copy()
    unsure[0, 9:11] = 0.1
    areas = np.array([9000.0])
    assert keypoint_oks(keypoints, moved, areas, areas)[0, 0] < 0.9
    visible = unsure >= 0.3
    assert keypoint_oks(keypoints, moved, areas, areas, visible_a=visible)[0, 0] == 1.0
    assert keypoint_oks(keypoints, moved, areas, areas, visible_a=visible & False)[0, 0] == 0.0
    tracker = PoseTracker(mode="oks", threshold=0.9)
    tracker.update(np.array([[0, 0, 60, 150]]), keypoints, scores)
    assert tracker.update(np.array([[0, 0, 60, 150]]), moved, unsure).tolist() == [0]


def test_box_iou():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 20, 20]], dtype=float)
    iou = box_iou(boxes, boxes)
    np.testing.assert_allclose(iou[0], [1.0, 1 / 3, 0.0])
    assert iou[2, 2] == 0.0  # empty boxes match nothing


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"mode": "kalman"}, "mode must be one of 'iou', 'oks'"),
        ({"threshold": 1.0}, "threshold must be in"),
        ({"threshold": -0.1}, "threshold must be in"),
        ({"max_lost_frames": -1}, "max_lost_frames must be an int >= 0"),
        ({"max_lost_frames": 2.5}, "max_lost_frames must be an int >= 0"),
        ({"max_lost_frames": True}, "max_lost_frames must be an int >= 0"),
        ({"keypoint_thr": 1.5}, "keypoint_thr must be in"),
        ({"sigmas": np.zeros(17)}, "sigmas must be"),
    ],
)
def test_options_are_checked(kwargs, named):
    with pytest.raises(ValueError, match=named):
        PoseTracker(**kwargs)


def test_inputs_are_checked():
    tracker = PoseTracker(mode="oks")
    boxes, keypoints, scores = _frame([(0, 0, 50, 100)], np.random.default_rng(0))
    with pytest.raises(ValueError, match="boxes_xyxy must be"):
        tracker.update(boxes[:, :3], keypoints, scores)
    with pytest.raises(ValueError, match="keypoints_img must be"):
        tracker.update(boxes, keypoints[..., :1], scores)
    with pytest.raises(ValueError, match="keypoint_scores must be"):
        tracker.update(boxes, keypoints, scores[:, :5])
    with pytest.raises(ValueError, match="areas must be"):
        tracker.update(boxes, keypoints, scores, np.ones(2))
    with pytest.raises(ValueError, match="17 sigmas but the poses have 5 keypoints"):
        tracker.update(boxes, keypoints[:, :5], scores[:, :5])
    assert PoseTracker(mode="oks", sigmas=OKS_SIGMAS[:5]).update(
        boxes, keypoints[:, :5], scores[:, :5]
    ).tolist() == [0]
