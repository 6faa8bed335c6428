"""Less keypoint jitter in videos: the One-Euro filter (Casiez, Roussel and Vogel, "1€ Filter:
A Simple Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012), one
state per keypoint coordinate of each tracked person.

The filter is a first-order low-pass whose cutoff rises with the signal's speed:
cutoff = min_cutoff + beta * |speed|. A keypoint that stays put is smoothed hard (little
jitter); one that moves fast is followed closely (little lag).

Units: time in seconds, so `min_cutoff` and `d_cutoff` are in Hz. `TrackSmoother` measures a
keypoint's speed in person sizes per second (the size is the mean of the width and height of
the person's keypoints, as MediaPipe scales its landmark filters), so `beta` is in Hz per
(person size / s) and the same settings suit a person 100 px or 1000 px tall.

Defaults: MediaPipe's pose-landmark filter (mediapipe/modules/pose_landmark/
pose_landmark_filtering.pbtxt: min_cutoff 0.1 Hz, beta 40, derivate_cutoff 1 Hz, values
scaled by the object size, timestamps in seconds). MMPose's `OneEuroFilter` smoother
(min_cutoff=0.004, beta=0.7, d_cutoff=1.0, from VIBE) counts time in frames and speed in raw
pixels: at 30 fps that is min_cutoff 0.12 Hz, about MediaPipe's, but d_cutoff 30 Hz and a beta
under which a jitter of a pixel or two already opens the filter, so it barely smooths image
keypoints (on test_smoothing.py's swaying person with 2 px of noise it takes the jitter from
3.9 to 3.4 px, these defaults to 1.2 px). rtmlib's PoseTracker has no smoothing. The paper's
tuning guidance: raise `min_cutoff` until a keypoint at rest stops jittering (with beta 0),
then raise `beta` until fast motion stops lagging.

Low-confidence keypoints (score below `score_thr`) pass through unsmoothed and leave the
filter's state as it was: a guessed position would drag the smoothed one away, and when the
keypoint is seen again it continues from its last confident position (the time since then
counts, so the filter follows a keypoint that moved meanwhile).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# MediaPipe's pose-landmark One-Euro settings (see the module docstring).
DEFAULT_MIN_CUTOFF = 0.1  # Hz
DEFAULT_BETA = 40.0  # Hz per (person size / s)
DEFAULT_D_CUTOFF = 1.0  # Hz
DEFAULT_FPS = 30.0
# Below this a keypoint is a guess: MMPose's demos and mvp-predict's drawing threshold.
DEFAULT_SCORE_THR = 0.3


def _alpha(dt: np.ndarray, cutoff: np.ndarray | float) -> np.ndarray:
    """Weight of the new sample in an exponential low-pass with this cutoff (Hz) and time step
    (s): the paper's 1 / (1 + tau / dt), tau = 1 / (2 pi cutoff)."""
    r = 2.0 * np.pi * cutoff * dt
    return r / (r + 1.0)


def _check_positive(name: str, value: float, zero_ok: bool = False) -> float:
    value = float(value)
    if not (np.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return value


class OneEuroFilter:
    """One-Euro filter over an array of independent values (e.g. a person's (K, 2) keypoints),
    each with its own state.

    Args:
        min_cutoff: cutoff (Hz) for a value at rest; lower = less jitter, more lag.
        beta: how fast the cutoff rises with speed, in Hz per (unit of `scale` / s); higher =
            less lag in fast motion, more jitter.
        d_cutoff: cutoff (Hz) of the low-pass on the speed estimate.
    """

    def __init__(
        self,
        min_cutoff: float = DEFAULT_MIN_CUTOFF,
        beta: float = DEFAULT_BETA,
        d_cutoff: float = DEFAULT_D_CUTOFF,
    ) -> None:
        self.min_cutoff = _check_positive("min_cutoff", min_cutoff)
        self.beta = _check_positive("beta", beta, zero_ok=True)
        self.d_cutoff = _check_positive("d_cutoff", d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next values pass through and start it afresh."""
        self._x: np.ndarray | None = None  # last output, per value
        self._dx: np.ndarray | None = None  # smoothed speed, per value
        self._t: np.ndarray | None = None  # time of the last update, per value
        self._seen: np.ndarray | None = None  # whether a value has had an update yet

    def __call__(
        self,
        x: np.ndarray,
        t: float,
        scale: np.ndarray | float = 1.0,
        update: np.ndarray | None = None,
    ) -> np.ndarray:
        """The filtered values of `x` sampled at time `t` (s).

        Args:
            x: the values; the same shape on every call.
            t: the time of this sample in seconds; it must exceed the time of every earlier
                update of a value updated now.
            scale: the unit `beta`'s speeds are measured in (broadcast against `x`), e.g. the
                person's size in px; 1 measures them in `x`'s own units, as the paper does.
            update: bool mask like `x`; where False the value is returned as given and its
                state is kept as it was (default: all True).
        """
        x = np.asarray(x, dtype=np.float64)
        mask = np.ones(x.shape, bool) if update is None else np.asarray(update, bool)
        if mask.shape != x.shape:
            raise ValueError(f"update must have the shape of x {x.shape}, got {mask.shape}")
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), x.shape)
        if not (np.isfinite(scale) & (scale > 0)).all():
            raise ValueError("scale must be finite and > 0")
        if self._x is None or self._dx is None or self._t is None or self._seen is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            self._t, self._seen = np.full(x.shape, float(t)), np.zeros(x.shape, bool)
        elif x.shape != self._x.shape:
            raise ValueError(f"x changed shape from {self._x.shape} to {x.shape}; reset first")
        out = x.copy()
        first = mask & ~self._seen
        self._x[first], self._t[first], self._seen[first] = x[first], t, True
        step = mask & ~first
        if not step.any():
            return out
        dt = t - self._t[step]
        if (dt <= 0).any():
            raise ValueError(f"time must increase between updates: t={t} after {self._t.max()}")
        x_prev, x_now = self._x[step], x[step]
        # Speed against the last output, as in the paper's algorithm.
        dx = (x_now - x_prev) / dt
        a_d = _alpha(dt, self.d_cutoff)
        dx_hat = a_d * dx + (1.0 - a_d) * self._dx[step]
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat) / scale[step]
        a = _alpha(dt, cutoff)
        x_hat = a * x_now + (1.0 - a) * x_prev
        self._x[step], self._dx[step], self._t[step] = x_hat, dx_hat, t
        out[step] = x_hat
        return out


class TrackSmoother:
    """One-Euro smoothing of each tracked person's keypoints, frame by frame.

    Each track id has its own `OneEuroFilter`; call once per frame with the people of that
    frame and their track ids (from `PoseTracker.update`), and drop the retired tracks with
    `retain(tracker.live_ids)`.

    Args:
        fps: the video's frame rate; frame i is at time i / fps s.
        min_cutoff, beta, d_cutoff: as `OneEuroFilter`'s; beta's speeds are in person sizes
            per second.
        score_thr: keypoints scored below it pass through unsmoothed, their state kept.
    """

    def __init__(
        self,
        fps: float = DEFAULT_FPS,
        min_cutoff: float = DEFAULT_MIN_CUTOFF,
        beta: float = DEFAULT_BETA,
        d_cutoff: float = DEFAULT_D_CUTOFF,
        score_thr: float = DEFAULT_SCORE_THR,
    ) -> None:
        self.fps = _check_positive("fps", fps)
        # Checked here, not first at a track's first frame.
        OneEuroFilter(min_cutoff, beta, d_cutoff)
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.score_thr = float(score_thr)
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self._filters: dict[int, OneEuroFilter] = {}
        self._frame = -1

    @property
    def track_ids(self) -> frozenset[int]:
        """The ids that have a filter state."""
        return frozenset(self._filters)

    def retain(self, live_ids: Iterable[int]) -> None:
        """Forget the tracks not among `live_ids` (those the tracker retired)."""
        live = set(live_ids)
        for track_id in [i for i in self._filters if i not in live]:
            del self._filters[track_id]

    def __call__(
        self,
        track_ids: np.ndarray,
        keypoints_img: np.ndarray,
        keypoint_scores: np.ndarray,
        frame_index: int | None = None,
    ) -> np.ndarray:
        """The smoothed (N, K, 2) keypoints of the N people of a frame.

        Args:
            track_ids: (N,) each person's track id; a negative id (untracked) passes through.
            keypoints_img: (N, K, 2) keypoints in image px.
            keypoint_scores: (N, K).
            frame_index: the frame's index in the video (skipped frames then count in the
                time step); default: the frame after the previous call's.
        """
        track_ids = np.asarray(track_ids)
        keypoints = np.asarray(keypoints_img, dtype=np.float64)
        scores = np.asarray(keypoint_scores, dtype=np.float64)
        n = len(track_ids)
        if track_ids.shape != (n,) or keypoints.ndim != 3 or keypoints.shape[::2] != (n, 2):
            raise ValueError(
                f"track_ids must be (N,) and keypoints_img (N, K, 2), got {track_ids.shape} "
                f"and {keypoints.shape}"
            )
        if scores.shape != keypoints.shape[:2]:
            raise ValueError(f"keypoint_scores must be {keypoints.shape[:2]}, got {scores.shape}")
        live = track_ids[track_ids >= 0]
        if len(set(live.tolist())) != len(live):
            raise ValueError(f"a track id appears twice in one frame: {track_ids.tolist()}")
        frame = self._frame + 1 if frame_index is None else int(frame_index)
        if frame <= self._frame:
            raise ValueError(f"frame_index must increase: {frame} after {self._frame}")
        self._frame = frame
        t = frame / self.fps

        smoothed = keypoints.copy()
        for person, track_id in enumerate(track_ids.tolist()):
            if track_id < 0:
                continue
            confident = scores[person] >= self.score_thr
            one_euro = self._filters.get(track_id)
            if one_euro is None:
                one_euro = OneEuroFilter(self.min_cutoff, self.beta, self.d_cutoff)
                self._filters[track_id] = one_euro
            smoothed[person] = one_euro(
                keypoints[person],
                t,
                scale=person_size(keypoints[person], confident),
                update=np.repeat(confident[:, None], 2, axis=1),
            )
        return smoothed


def person_size(keypoints: np.ndarray, confident: np.ndarray) -> float:
    """Mean of the width and height (px) spanned by a person's confident keypoints (all of
    them when fewer than two are), at least 1 px."""
    points = keypoints[confident] if confident.sum() >= 2 else keypoints
    extent = points.max(axis=0) - points.min(axis=0)
    return max(float(extent.mean()), 1.0)
