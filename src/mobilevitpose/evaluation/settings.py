"""The evaluation settings, and their defaults: the reference's COCO protocol.

One owner for validation, `mvp-eval` and `mvp-predict`: a run stores its settings in every
checkpoint (and `mvp-export` in every exported file), and each of those reads them from there.
The modes and their names are those of MMPose's CocoMetric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

SCORE_MODES = ("bbox_keypoint", "bbox", "keypoint", "bbox_rle")
NMS_MODES = ("oks_nms", "soft_oks_nms", "none")


@dataclass(frozen=True)
class EvaluationSettings:
    """How heatmaps become scored COCO results.

    `flip_test`: average with the flipped-back heatmaps of the mirrored crop (before decoding).
    `score_mode`: an instance's score: `bbox_keypoint`, its box score times the mean of its
    keypoint scores above `keypoint_score_thr` (0 if none is); `bbox`, its box score;
    `keypoint`, the mean of its keypoint scores; `bbox_rle`, box score + mean + max of them.
    `nms_mode`: per image, `oks_nms` drops instances whose OKS with a better one is above
    `nms_thr`; `soft_oks_nms` keeps the best 20, ranking by scores decayed by exp(-OKS^2 /
    `nms_thr`) (the results keep their scores); `none` keeps every instance.
    """

    flip_test: bool = True
    score_mode: str = "bbox_keypoint"
    keypoint_score_thr: float = 0.2
    nms_mode: str = "oks_nms"
    nms_thr: float = 0.9

    def __post_init__(self) -> None:
        if not isinstance(self.flip_test, bool):
            raise ValueError(f"evaluation.flip_test must be true or false; got {self.flip_test!r}")
        if self.score_mode not in SCORE_MODES:
            raise ValueError(
                f"evaluation.score_mode={self.score_mode!r}; allowed: {', '.join(SCORE_MODES)}"
            )
        if self.nms_mode not in NMS_MODES:
            raise ValueError(
                f"evaluation.nms_mode={self.nms_mode!r}; allowed: {', '.join(NMS_MODES)}"
            )
        if not 0.0 <= self.keypoint_score_thr < 1.0:
            raise ValueError(
                f"evaluation.keypoint_score_thr must be in [0, 1); got {self.keypoint_score_thr}"
            )
        if not 0.0 < self.nms_thr <= 1.0:
            raise ValueError(f"evaluation.nms_thr must be in (0, 1]; got {self.nms_thr}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> EvaluationSettings:
        """Settings from a config, checkpoint or export dict; missing keys keep their defaults.
        Files written before `nms_mode` existed turned NMS off with `nms_thr: null`."""
        values = dict(values or {})
        if "nms_thr" in values and values["nms_thr"] is None:
            del values["nms_thr"]
            values["nms_mode"] = "none"
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(
                f"unknown evaluation setting(s) {unknown}; allowed: {', '.join(sorted(allowed))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
