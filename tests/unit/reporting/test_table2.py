import pytest

from mobilevitpose.reporting.runs import Run
from mobilevitpose.reporting.table2 import PAPER_TABLE2, accuracy_of, count
from mobilevitpose.training.config import build_model


@pytest.mark.parametrize("name", ["mobilevitpose_xxs", "mobilevitpose_s"])
def test_mobilevitpose_complexity_matches_the_paper(name):
    row = next(r for r in PAPER_TABLE2 if r.model == name)
    params, gmacs, attention_gmacs = count(build_model(name), row.input_size)
    param_tol = 0.01 if name == "mobilevitpose_s" else 0.02
    assert params == pytest.approx(row.params_m, rel=param_tol)
    assert gmacs == pytest.approx(row.gmacs, rel=0.03)
    # The attention products, counted apart whatever torch's counter knows: q @ k^T and attn @ v
    # of every MobileViT block (the paper's counter never sees them).
    assert attention_gmacs == pytest.approx(
        {"mobilevitpose_xxs": 0.0782, "mobilevitpose_s": 0.1776}[name], rel=0.01
    )


def test_table2_accuracy_comes_from_the_best_run_of_that_model_and_input_size():
    row = next(r for r in PAPER_TABLE2 if r.model == "hrnet_w32" and r.input_size == (288, 384))
    runs = [
        Run("a", "hrnet_w32", "plain", "x", {"AP": 0.70, "AR": 0.75}, input_size=(288, 384)),
        Run("b", "hrnet_w32", "imagenet", "x", {"AP": 0.756, "AR": 0.80}, input_size=(288, 384)),
        Run("c", "hrnet_w32", "imagenet", "x", {"AP": 0.90, "AR": 0.90}, input_size=(192, 256)),
        Run("d", "hrnet_w48", "imagenet", "x", {"AP": 0.95, "AR": 0.95}, input_size=(288, 384)),
    ]
    assert accuracy_of(row, runs) == {"AP": 75.6, "AR": 80.0, "init": "imagenet", "run": "b"}
    assert accuracy_of(row, runs[2:]) is None
