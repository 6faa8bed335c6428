"""The evaluation settings, and their defaults: the reference's COCO protocol.

One owner for validation, `mvp-eval` and `mvp-predict`: a run stores its settings in every
checkpoint (and `mvp-export` in every exported file), and each of those reads them from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class EvaluationSettings:
    """How heatmaps become scored COCO results.

    `flip_test`: average with the flipped-back heatmaps of the mirrored crop (before decoding).
    `keypoint_score_thr`: an instance's score is its box score times the mean of its keypoint
    scores above this threshold (MMPose's `bbox_keypoint` score mode).
    `nms_thr`: OKS-NMS per image at this threshold; None keeps every instance.
    """

    flip_test: bool = True
    keypoint_score_thr: float = 0.2
    nms_thr: float | None = 0.9

    def __post_init__(self) -> None:
        if not isinstance(self.flip_test, bool):
            raise ValueError(f"evaluation.flip_test must be true or false; got {self.flip_test!r}")
        if not 0.0 <= self.keypoint_score_thr < 1.0:
            raise ValueError(
                f"evaluation.keypoint_score_thr must be in [0, 1); got {self.keypoint_score_thr}"
            )
        if self.nms_thr is not None and not 0.0 < self.nms_thr <= 1.0:
            raise ValueError(f"evaluation.nms_thr must be in (0, 1] or null; got {self.nms_thr}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> EvaluationSettings:
        """Settings from a config or checkpoint dict; missing keys keep their defaults."""
        values = dict(values or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(
                f"unknown evaluation setting(s) {unknown}; allowed: {', '.join(sorted(allowed))}"
            )
        return cls(**{k: v for k, v in values.items() if k in allowed})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
