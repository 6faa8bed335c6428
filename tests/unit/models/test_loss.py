import pytest
import torch

from mobilevitpose.models.loss import keypoint_mse_loss


def _ones(batch=1, joints=2, size=4):
    return torch.ones(batch, joints, size, size), torch.ones(batch, joints)


def test_perfect_prediction_has_zero_loss():
    targets = torch.rand(2, 17, 8, 6, generator=torch.Generator().manual_seed(0))
    loss = keypoint_mse_loss(targets.clone(), targets, torch.ones(2, 17))
    assert loss.shape == () and loss.item() == 0.0


def test_mean_over_every_element_without_a_half_factor():
    """One of two channels off by 1 everywhere: mean squared error 0.5 (the 0.5-factor loss of
    the original HRNet code would give 0.25)."""
    targets, weights = _ones()
    heatmaps = targets.clone()
    heatmaps[:, 0] = 0.0
    assert keypoint_mse_loss(heatmaps, targets, weights).item() == pytest.approx(0.5)


def test_zero_weight_removes_a_keypoint_but_keeps_it_in_the_mean():
    """Channel 0 is wildly wrong but weighted 0; channel 1 is off by 2 (squared 4) weighted 1:
    MMPose's mean over B*K*H*W gives 4 / 2 = 2."""
    targets, _ = _ones()
    heatmaps = targets.clone()
    heatmaps[:, 0] = 1000.0
    heatmaps[:, 1] = 3.0
    loss = keypoint_mse_loss(heatmaps, targets, torch.tensor([[0.0, 1.0]]))
    assert loss.item() == pytest.approx(2.0)


def test_weight_multiplies_the_squared_error_once():
    targets, _ = _ones(joints=1)
    loss = keypoint_mse_loss(torch.zeros_like(targets), targets, torch.tensor([[0.5]]))
    assert loss.item() == pytest.approx(0.5)  # w, not w^2 = 0.25


def test_weights_apply_per_sample_and_keypoint():
    targets = torch.zeros(2, 3, 2, 2)
    heatmaps = torch.zeros(2, 3, 2, 2)
    heatmaps[1, 2] = 1.0  # only sample 1, keypoint 2 is wrong
    weights = torch.ones(2, 3)
    assert keypoint_mse_loss(heatmaps, targets, weights).item() == pytest.approx(1 / 6)
    weights[1, 2] = 0.0
    assert keypoint_mse_loss(heatmaps, targets, weights).item() == 0.0
    weights[1, 2], weights[0, 2] = 1.0, 0.0  # the other sample's weight does not hide it
    assert keypoint_mse_loss(heatmaps, targets, weights).item() == pytest.approx(1 / 6)


def test_equals_mmpose_0x_joints_mse_loss_for_binary_weights():
    """The spec: 0.x JointsMSELoss (per joint: mean over (B, HW) of the squared error of the
    weighted maps; summed over joints, divided by K) is numerically the same."""
    gen = torch.Generator().manual_seed(1)
    heatmaps = torch.rand(3, 17, 16, 12, generator=gen)
    targets = torch.rand(3, 17, 16, 12, generator=gen)
    weights = (torch.rand(3, 17, generator=gen) > 0.3).float()
    per_joint = []
    for k in range(17):
        w = weights[:, k, None]
        pred, gt = heatmaps[:, k].reshape(3, -1) * w, targets[:, k].reshape(3, -1) * w
        per_joint.append(torch.nn.functional.mse_loss(pred, gt))
    expected = torch.stack(per_joint).sum() / 17
    assert keypoint_mse_loss(heatmaps, targets, weights).item() == pytest.approx(expected.item())


def test_zero_weighted_keypoints_get_no_gradient():
    gen = torch.Generator().manual_seed(2)
    heatmaps = torch.rand(2, 4, 5, 5, generator=gen, requires_grad=True)
    targets = torch.rand(2, 4, 5, 5, generator=gen)
    weights = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    keypoint_mse_loss(heatmaps, targets, weights).backward()
    grad = heatmaps.grad
    assert (grad[0, 1] == 0).all() and (grad[1, 0] == 0).all()
    # d/dp mean((p - t)^2) = 2 (p - t) / N on the weighted channels.
    n = heatmaps.numel()
    torch.testing.assert_close(grad[0, 0], 2 * (heatmaps[0, 0] - targets[0, 0]).detach() / n)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_fp32(dtype):
    """Under mixed precision the head gives half-precision heatmaps. Differences of 2^-14
    square to 2^-28, which is 0 in fp16 (smallest subnormal 2^-24)."""
    heatmaps = torch.full((2, 3, 4, 4), 2.0**-14, dtype=dtype)
    targets = torch.zeros(2, 3, 4, 4, dtype=dtype)
    loss = keypoint_mse_loss(heatmaps, targets, torch.ones(2, 3, dtype=dtype))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(2.0**-28, rel=1e-6)
