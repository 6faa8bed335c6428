"""Data: COCO files -> person records -> augmented crops and heatmap targets; the embedded
synthetic set."""
