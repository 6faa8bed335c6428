import pytest
import torch

from mobilevitpose.reporting import table2
from mobilevitpose.reporting.runs import Run
from mobilevitpose.reporting.table2 import (
    MMPOSE_LITEHRNET,
    PAPER_TABLE2,
    SEED_README_LITEHRNET,
    accuracy_of,
    count,
    litehrnet_report,
    to_markdown,
)
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


def test_the_seed_readme_litehrnet_rows_are_all_there_with_mmpose_figures():
    assert [(r.label, r.input_size) for r in SEED_README_LITEHRNET] == [
        ("Wider Naive Lite-HRNet-18", (192, 256)),
        ("Lite-HRNet-18", (192, 256)),
        ("Lite-HRNet-18", (288, 384)),
        ("Lite-HRNet-30", (192, 256)),
        ("Lite-HRNet-30", (288, 384)),
    ]
    assert set(MMPOSE_LITEHRNET) == {(r.model, r.input_size) for r in SEED_README_LITEHRNET}


def test_litehrnet_rows_carry_what_the_counter_counts(monkeypatch):
    """Ours come from `count` on the built model at the row's input size, never from a table."""
    built = []

    def fake_build(name, overrides):
        built.append((name, overrides))
        return name

    def fake_count(model, input_size):
        return (
            {"litehrnet_18": 1.2, "litehrnet_30": 2.0}.get(model, 1.0),
            0.25 * (input_size[0] * input_size[1] / (192 * 256)),
            0.0,
        )

    monkeypatch.setattr(table2, "build_model", fake_build)
    monkeypatch.setattr(table2, "count", fake_count)
    rows = litehrnet_report()
    assert built[2] == ("litehrnet_18", ["model.input_size=[288,384]"])
    row = rows[2]
    assert (row["label"], row["input_size"]) == ("Lite-HRNet-18", (288, 384))
    assert row["ours_params_m"] == 1.2
    assert row["params_delta_pct"] == pytest.approx(100 * (1.2 - 1.1) / 1.1, abs=0.05)
    assert row["ours_gmacs"] == 0.5625
    assert row["gmacs_delta_pct"] == pytest.approx(100 * (0.5625 - 0.4616) / 0.4616, abs=0.05)
    assert row["mmpose_conv_delta_pct"] == pytest.approx(
        100 * (0.5625 - 0.545144448) / 0.545144448, abs=0.005
    )
    markdown = to_markdown(rows)
    assert "## Lite-HRNet: the seed README's rows" in markdown
    line = next(
        x for x in markdown.splitlines() if x.startswith("| Lite-HRNet-18 |") and "384" in x
    )
    assert line.startswith("| Lite-HRNet-18 | `litehrnet_18` | 384x288 | 1.1M | 1.200M | +9.1% ")
    assert "| 461.6M | 562.5M | +21.9% | 545.1M | +3.2% | 599.1M |" in line


@pytest.mark.parametrize("name", ["litehrnet_18", "litehrnet_30", "wider_naive_litehrnet_18"])
def test_litehrnet_complexity_matches_the_readme_and_mmpose(name):
    # Built once and counted at every input size the README lists (the model's weights do not
    # depend on it), on the meta device: the counter needs shapes only (`mvp-table2` counts on
    # the CPU; the numbers are the same).
    model = build_model(name).to("meta")
    for row in (r for r in SEED_README_LITEHRNET if r.model == name):
        with torch.device("meta"):
            params, gmacs, attention_gmacs = count(model, row.input_size)
        mmpose = MMPOSE_LITEHRNET[(row.model, row.input_size)]
        # The README rounds to 0.1M: 5% is a real check of the architecture.
        assert params == pytest.approx(row.params_m, rel=0.05)
        assert round(params * 1e6) == mmpose.params
        # Convolutions only, on both sides: the same rule.
        assert gmacs == pytest.approx(mmpose.conv_macs / 1e9, rel=0.03), row.input_size
        assert attention_gmacs == 0
        # The README's counter counts fewer than either (what the report's note says).
        assert row.gmacs < gmacs < mmpose.total_macs / 1e9
