"""Person ids that last across the frames of a video: a greedy pose tracker in the manner of
MMPose's pose-tracking demo (`_track_by_iou` / `_track_by_oks` in `mmpose.apis`) and rtmlib's
`PoseTracker`.

Each frame, the people found are matched to the live tracks by the IoU of their boxes (the
default) or the OKS of their keypoints, best pair first; a pair matches when its similarity is
above `threshold`. A person left unmatched starts a new track; a track left unmatched for more
than `max_lost_frames` frames in a row is retired, and its id is never handed out again.

Usage, once per frame in order::

    tracker = PoseTracker()
    track_ids = tracker.update(boxes_xyxy, keypoints_img, keypoint_scores, areas)
    # or, with the estimator's outputs: tracker.update(boxes_xyxy, **estimator(image, boxes_xyxy))

What it is not: there is no motion model, so a track is compared at the place it was last
seen. A person hidden for a while comes back under the same id only if they reappear where
they vanished (an occlusion, a few missed detections); one who walks off and back in
elsewhere gets a new id. Two people alike in size and pose who cross head-on on the same line
swap ids (in either mode): at the frame they pass, each is nearer where the other was than
where it was itself. People crossing at different depths (sizes, heights) keep their ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobilevitpose.keypoints import OKS_SIGMAS

MODES = ("iou", "oks")
# MMPose's pose-tracking demos (`--tracking-thr`, both modes) and rtmlib's PoseTracker
# (`tracking_thr`) use 0.3.
DEFAULT_THRESHOLD = 0.3
# About a second at 30 fps: long enough to bridge an occlusion or a run of missed detections,
# short enough that a stale track's last box is unlikely to capture a stranger. MMPose's demo
# keeps only the last frame's people (the equivalent of 0).
DEFAULT_MAX_LOST_FRAMES = 30
# A keypoint counts towards OKS only where both poses are at least this sure of it: a guessed
# (occluded) keypoint lands anywhere and would only blur the comparison. 0.3 is the default
# keypoint threshold of MMPose's demos and of mvp-predict's drawing.
DEFAULT_KEYPOINT_THR = 0.3


@dataclass
class _Track:
    box: np.ndarray  # (4,) xyxy, as last seen
    keypoints: np.ndarray  # (K, 2)
    scores: np.ndarray  # (K,)
    area: float
    lost: int = 0  # frames in a row without a match


class PoseTracker:
    """Gives every person of each frame a track id (an int >= 0) that stays with them from
    frame to frame.

    Args:
        mode: "iou" matches by the IoU of the person boxes; "oks" by the OKS of the keypoints
            (COCO's keypoint similarity, the mean over the keypoints that both poses score at
            least `keypoint_thr`; 0 when there is none).
        threshold: a person and a track match only when their similarity is above this, in
            [0, 1).
        max_lost_frames: a track unmatched for more than this many frames in a row is retired
            (0: only the previous frame's people can be matched, as in MMPose's demo).
        keypoint_thr: OKS mode only, see `mode`.
        sigmas: OKS mode only, the per-keypoint sigmas (default: COCO-17's).

    Unlike MMPose's demo, which lets each person in turn (in detection order) take its best
    remaining track, all pairs are ranked and the best pair overall is taken first, so the
    result does not depend on the order of the detections.
    """

    def __init__(
        self,
        mode: str = "iou",
        threshold: float = DEFAULT_THRESHOLD,
        max_lost_frames: int = DEFAULT_MAX_LOST_FRAMES,
        keypoint_thr: float = DEFAULT_KEYPOINT_THR,
        sigmas: np.ndarray = OKS_SIGMAS,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(
                f"threshold must be in [0, 1) (a similarity above it matches), got {threshold}"
            )
        if isinstance(max_lost_frames, bool) or not isinstance(max_lost_frames, int | np.integer):
            raise ValueError(
                f"max_lost_frames must be an int >= 0 (frames), got {max_lost_frames!r}"
            )
        if max_lost_frames < 0:
            raise ValueError(f"max_lost_frames must be an int >= 0 (frames), got {max_lost_frames}")
        if not 0.0 <= keypoint_thr <= 1.0:
            raise ValueError(f"keypoint_thr must be in [0, 1], got {keypoint_thr}")
        sigmas = np.asarray(sigmas, dtype=np.float64)
        if sigmas.ndim != 1 or not (sigmas > 0).all():
            raise ValueError(f"sigmas must be a 1-D array of positive values, got {sigmas}")
        self.mode = mode
        self.threshold = float(threshold)
        self.max_lost_frames = int(max_lost_frames)
        self.keypoint_thr = float(keypoint_thr)
        self.sigmas = sigmas
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video); ids start again from 0."""
        self._tracks: dict[int, _Track] = {}
        self._next_id = 0

    @property
    def live_ids(self) -> frozenset[int]:
        """The ids of the tracks not yet retired (those seen this frame and those lost for at
        most `max_lost_frames` frames); e.g. for `TrackSmoother.retain`."""
        return frozenset(self._tracks)

    def update(
        self,
        boxes_xyxy: np.ndarray,
        keypoints_img: np.ndarray,
        keypoint_scores: np.ndarray,
        areas: np.ndarray | None = None,
    ) -> np.ndarray:
        """Track ids (N,) int64 of the N people of the next frame, in their order.

        Args:
            boxes_xyxy: (N, 4) person boxes in image px.
            keypoints_img: (N, K, 2) keypoints in image px.
            keypoint_scores: (N, K) keypoint scores.
            areas: (N,) the people's areas in px^2 for OKS (e.g. the estimator's `areas`);
                default: the boxes' areas, as MMPose's tracking takes them.
        """
        boxes, keypoints, scores, areas = self._checked(
            boxes_xyxy, keypoints_img, keypoint_scores, areas
        )
        track_ids = list(self._tracks)
        similarity = self._similarity(boxes, keypoints, scores, areas, track_ids)
        assigned = np.full(len(boxes), -1, dtype=np.int64)
        matched_tracks: set[int] = set()
        people, columns = np.nonzero(similarity > self.threshold)
        # Best pair first; ties go to the earlier person, then the older track, so the result
        # is deterministic.
        order = np.lexsort((columns, people, -similarity[people, columns]))
        for person, column in zip(people[order], columns[order], strict=True):
            track_id = track_ids[column]
            if assigned[person] >= 0 or track_id in matched_tracks:
                continue
            assigned[person] = track_id
            matched_tracks.add(track_id)

        for track_id in track_ids:
            if track_id not in matched_tracks:
                self._tracks[track_id].lost += 1
                if self._tracks[track_id].lost > self.max_lost_frames:
                    del self._tracks[track_id]
        for person in range(len(boxes)):
            if assigned[person] < 0:
                assigned[person] = self._next_id
                self._next_id += 1
            self._tracks[int(assigned[person])] = _Track(
                boxes[person], keypoints[person], scores[person], float(areas[person])
            )
        return assigned

    def _similarity(
        self,
        boxes: np.ndarray,
        keypoints: np.ndarray,
        scores: np.ndarray,
        areas: np.ndarray,
        track_ids: list[int],
    ) -> np.ndarray:
        """(N, T) similarity of each person to each live track."""
        if not track_ids or not len(boxes):
            return np.zeros((len(boxes), len(track_ids)))
        tracks = [self._tracks[i] for i in track_ids]
        if self.mode == "iou":
            return box_iou(boxes, np.stack([t.box for t in tracks]))
        return keypoint_oks(
            keypoints,
            np.stack([t.keypoints for t in tracks]),
            areas,
            np.array([t.area for t in tracks]),
            self.sigmas,
            visible_a=scores >= self.keypoint_thr,
            visible_b=np.stack([t.scores for t in tracks]) >= self.keypoint_thr,
        )

    def _checked(
        self,
        boxes: np.ndarray,
        keypoints: np.ndarray,
        scores: np.ndarray,
        areas: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        boxes = np.asarray(boxes, dtype=np.float64)
        keypoints = np.asarray(keypoints, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        n = len(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy must be (N, 4), got {boxes.shape}")
        if keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 2:
            raise ValueError(f"keypoints_img must be ({n}, K, 2), got {keypoints.shape}")
        if scores.shape != keypoints.shape[:2]:
            raise ValueError(
                f"keypoint_scores must be {keypoints.shape[:2]} to match keypoints_img, got "
                f"{scores.shape}"
            )
        if self.mode == "oks" and keypoints.shape[1] != len(self.sigmas):
            raise ValueError(
                f"OKS tracking has {len(self.sigmas)} sigmas but the poses have "
                f"{keypoints.shape[1]} keypoints; pass matching sigmas"
            )
        if areas is None:
            areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
        areas = np.asarray(areas, dtype=np.float64)
        if areas.shape != (n,):
            raise ValueError(f"areas must be ({n},) to match boxes_xyxy, got {areas.shape}")
        return boxes, keypoints, scores, areas


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of xyxy boxes; 0 where both are empty."""
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a = np.prod(np.clip(boxes_a[:, 2:] - boxes_a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(boxes_b[:, 2:] - boxes_b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def keypoint_oks(
    keypoints_a: np.ndarray,
    keypoints_b: np.ndarray,
    areas_a: np.ndarray,
    areas_b: np.ndarray,
    sigmas: np.ndarray = OKS_SIGMAS,
    visible_a: np.ndarray | None = None,
    visible_b: np.ndarray | None = None,
) -> np.ndarray:
    """(A, B) OKS between two sets of poses (A, K, 2) and (B, K, 2).

    COCO's formula with the pair's mean area as the scale, as MMPose's `oks_iou` takes it; the
    mean runs over the keypoints visible in both (all where no mask is given), and a pair with
    none visible in both has OKS 0.
    """
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    sq_dist = ((keypoints_a[:, None] - keypoints_b[None]) ** 2).sum(axis=-1)
    mean_area = (areas_a[:, None] + areas_b[None, :]) / 2 + np.spacing(1)
    similarity = np.exp(-sq_dist / variances / mean_area[..., None] / 2)
    k = keypoints_a.shape[1]
    vis_a = np.ones(keypoints_a.shape[:2], bool) if visible_a is None else visible_a
    vis_b = np.ones((len(keypoints_b), k), bool) if visible_b is None else visible_b
    counted = vis_a[:, None, :] & vis_b[None, :, :]
    total = (similarity * counted).sum(axis=-1)
    count = counted.sum(axis=-1)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)
