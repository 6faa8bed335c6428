"""The reference schedule: linear warm-up per iteration, then x gamma at milestone epochs."""

import pytest
import torch

from mobilevitpose.training.schedulers import warmup_multistep


def _rates(steps: int, **settings) -> list[float]:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = warmup_multistep(optimizer, **settings)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_warm_up_from_the_factor_then_a_drop_at_each_milestone_epoch():
    rates = _rates(40, steps_per_epoch=10, max_epochs=4, warmup_iters=5, warmup_factor=0.1,
                   milestones=[2, 3], gamma=0.5)  # fmt: skip
    assert rates[0] == pytest.approx(0.1)
    assert rates[:6] == pytest.approx([0.1, 0.28, 0.46, 0.64, 0.82, 1.0])
    assert rates[6:20] == pytest.approx([1.0] * 14)  # epochs 0 and 1 after the warm-up
    assert rates[20:30] == pytest.approx([0.5] * 10)  # epoch 2
    assert rates[30:40] == pytest.approx([0.25] * 10)  # epoch 3


def test_no_milestones_keep_the_rate_after_the_warm_up():
    rates = _rates(30, steps_per_epoch=10, max_epochs=3, warmup_iters=2, warmup_factor=0.5,
                   milestones=[], gamma=0.1)  # fmt: skip
    assert rates[2:] == pytest.approx([1.0] * 28)


@pytest.mark.parametrize("milestones", [[20], [5, 20], [21]])
def test_a_milestone_the_run_never_reaches_is_named_with_both_settings(milestones):
    with pytest.warns(UserWarning, match=r"scheduler\.milestones.*trainer\.max_epochs=20"):
        _rates(1, steps_per_epoch=10, max_epochs=20, warmup_iters=5, warmup_factor=0.1,
               milestones=milestones, gamma=0.1)  # fmt: skip


def test_an_open_ended_run_takes_any_milestone():
    assert _rates(1, steps_per_epoch=10, max_epochs=-1, warmup_iters=5, warmup_factor=0.1,
                  milestones=[170], gamma=0.1) == pytest.approx([0.1])  # fmt: skip
