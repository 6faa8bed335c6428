"""Synthetic COCO people, the embedded default dataset: posed 3D stick-figure bodies (`body`)
drawn into scenes whose keypoint visibility is read off the pixels (`render`), and written in
the COCO 2017 layout with a val detection file (`writer`), byte-identical for a seed, into a
folder that holds nothing else (`MARKER_FILE` marks it as the writer's).
"""

from mobilevitpose.data.synthetic.body import KEYPOINT_PARTS, Part
from mobilevitpose.data.synthetic.render import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_MAX_PEOPLE,
    MIN_AREA,
    MIN_KEYPOINTS,
    OCCLUDER_LABEL,
    RenderedImage,
    RenderedPerson,
    image_rng,
    render_image,
)
from mobilevitpose.data.synthetic.writer import (
    DEFAULT_NUM_TRAIN,
    DEFAULT_NUM_VAL,
    MARKER_FILE,
    ensure_dataset,
    generate,
)

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_MAX_PEOPLE",
    "DEFAULT_NUM_TRAIN",
    "DEFAULT_NUM_VAL",
    "KEYPOINT_PARTS",
    "MARKER_FILE",
    "MIN_AREA",
    "MIN_KEYPOINTS",
    "OCCLUDER_LABEL",
    "Part",
    "RenderedImage",
    "RenderedPerson",
    "ensure_dataset",
    "generate",
    "image_rng",
    "render_image",
]
