import numpy as np
import pytest
import torch

from mobilevitpose.keypoints import FLIP_INDICES, NUM_KEYPOINTS
from mobilevitpose.models.flip import flip_heatmaps

W, H = 48, 64  # non-square on purpose: catches swapped axes


def test_flip_swaps_channels_and_mirrors_width():
    heatmaps = np.random.default_rng(5).random((2, NUM_KEYPOINTS, H, W)).astype(np.float32)
    flipped = flip_heatmaps(heatmaps, FLIP_INDICES, shift=False)
    np.testing.assert_array_equal(flipped[:, 1], heatmaps[:, 2, :, ::-1])
    np.testing.assert_array_equal(flipped[:, 0], heatmaps[:, 0, :, ::-1])
    shifted = flip_heatmaps(heatmaps, FLIP_INDICES, shift=True)
    np.testing.assert_array_equal(shifted[..., 1:], flipped[..., :-1])
    np.testing.assert_array_equal(shifted[..., 0], flipped[..., 0])


def test_flip_twice_is_identity_and_torch_matches_numpy():
    heatmaps = np.random.default_rng(6).random((2, NUM_KEYPOINTS, H, W)).astype(np.float32)
    twice = flip_heatmaps(flip_heatmaps(heatmaps, FLIP_INDICES, False), FLIP_INDICES, False)
    np.testing.assert_array_equal(twice, heatmaps)
    tensor = torch.from_numpy(heatmaps)
    for shift in (False, True):
        result = flip_heatmaps(tensor, FLIP_INDICES, shift)
        assert isinstance(result, torch.Tensor)
        np.testing.assert_array_equal(result.numpy(), flip_heatmaps(heatmaps, FLIP_INDICES, shift))
    twice = flip_heatmaps(flip_heatmaps(tensor, FLIP_INDICES, False), FLIP_INDICES, False)
    assert torch.equal(twice, tensor)


def test_flip_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="len\\(flip_indices\\) = 17"):
        flip_heatmaps(np.zeros((3, H, W)), FLIP_INDICES, shift=False)
