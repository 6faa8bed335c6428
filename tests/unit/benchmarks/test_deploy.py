"""mvp-bench-deploy end to end on a tiny model with the ONNX formats: the report's rows, what
they ran on, and the goals it names."""

import json
from pathlib import Path

import pytest

from mobilevitpose.cli.bench_deploy import main


@pytest.mark.slow
def test_accuracy_and_latency_rows_and_the_goal_verdicts(tiny_ckpt, tiny_people, tmp_path):
    main(["--checkpoint", str(tiny_ckpt), "--data", str(tiny_people), "--models",
          "mobilevitpose_xxs", "--input-size", "64", "64", "--formats", "onnx", "onnx-int8",
          "--runs", "3", "--warmup", "1", "--batch", "2", "--batch-runs", "2",
          "--calib-count", "4", "--threads", "1", "--out-dir", str(tmp_path)])  # fmt: skip
    report = json.loads((tmp_path / "deploy.json").read_text())
    rows = {row["format"]: row for row in report["accuracy"]["rows"]}
    assert list(rows) == ["checkpoint", "onnx", "onnx-int8"]
    assert rows["onnx"]["metrics"]["AP"] == pytest.approx(rows["checkpoint"]["metrics"]["AP"])
    assert rows["onnx"]["deviation"]["max_px"] < 0.01
    assert rows["onnx-int8"]["size_mb"] < rows["onnx"]["size_mb"] / 2
    latency = report["latency"]
    assert [(r["runtime"], r["format"]) for r in latency] == [
        ("PyTorch eager", None),
        ("ONNX Runtime", "onnx"),
        ("ONNX Runtime", "onnx-int8"),
    ]
    assert latency[0]["b1"]["vs_eager"] == 1.0 and latency[0]["b2"]["runs"] == 2
    assert all(r["input_size"] == [64, 64] for r in latency)
    assert report["settings"]["input_sizes"] == {"mobilevitpose_xxs": [64, 64]}
    fastest = min(latency[1:], key=lambda r: r["b1"]["vs_eager"])
    assert report["goals"]["mobilevitpose_xxs"]["format"] == fastest["format"]
    assert "AP drop onnx-int8" in report["goals"]
    markdown = Path(tmp_path / "deploy.md").read_text()
    assert "| onnx-int8 | ONNX Runtime | int8 |" in markdown and "## Goals" in markdown
