"""MobileViTPose: top-down COCO human pose estimation with MobileViT backbones.

Data flows one way through the sub-packages: `data` (file -> record -> crop + target),
`models` (crop -> heatmaps), `codec` (heatmaps -> keypoints), `evaluation` (keypoints ->
COCO results -> metrics); `training`, `inference`, `reporting` and `benchmarks` compose them,
and `cli` holds the console scripts. `keypoints`, `geometry` and `codec` are the vocabulary
they share.
"""
