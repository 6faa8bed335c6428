"""Benchmarks that write their measurements to reports/, never timed tests."""

from __future__ import annotations

from collections.abc import Sequence

# The paper's two sizes (Table 3): what every benchmark times unless told otherwise.
DEFAULT_MODELS = ("mobilevitpose_xxs", "mobilevitpose_s")
# The inference and deploy benchmarks add the lightest model of the seeds (Lite-HRNet-18, 6x
# fewer MACs than XXS): the row a user choosing a model for a device compares.
INFERENCE_MODELS = (*DEFAULT_MODELS, "litehrnet_18")


def input_size_overrides(input_size: Sequence[int] | None) -> list[str]:
    """The config overrides for a benchmark's `--input-size W H`; None keeps each model
    config's own input size."""
    if input_size is None:
        return []
    width, height = input_size
    return [f"model.input_size=[{width},{height}]"]


def describe_sizes(input_sizes: dict[str, Sequence[int]]) -> str:
    """'mobilevitpose_xxs 256x256, ...' for a report's settings."""
    return ", ".join(f"{name} {size[0]}x{size[1]}" for name, size in input_sizes.items())
