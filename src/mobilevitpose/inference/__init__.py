"""Running a trained model without the training stack: the estimator, checkpoint and ONNX
loading, ONNX export, drawing.

Nothing here imports Lightning, Hydra, pycocotools or albumentations (a test checks).
"""
