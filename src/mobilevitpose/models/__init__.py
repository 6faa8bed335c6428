"""Crop -> heatmaps: timm backbones, heatmap heads, the pose model, its loss, the test-time flip."""
