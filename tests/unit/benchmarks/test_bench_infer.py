import json

import numpy as np
import pytest

from mobilevitpose.benchmarks import infer as bench_infer
from mobilevitpose.benchmarks import timing
from mobilevitpose.benchmarks.pipeline import PARTS, build_detector, person_boxes
from mobilevitpose.cli.bench_infer import main as bench_infer_main

TINY = ["model.input_size=[64,64]"]


def test_timing_warms_every_backend_up_then_takes_turns_in_settled_blocks():
    calls: list[str] = []
    backends = [
        timing.Backend(name, "cpu", "fp32", "NCHW", lambda name=name: calls.append(name))
        for name in ("a", "b")
    ]
    times = timing.time_interleaved(backends, runs=3, warmup=2, synchronize=lambda: None, block=2)
    # warm-up, then per block one untimed call and up to `block` timed ones
    assert calls == ["a"] * 2 + ["b"] * 2 + ["a"] * 3 + ["b"] * 3 + ["a"] * 2 + ["b"] * 2
    assert [len(t) for t in times] == [3, 3] and min(min(t) for t in times) >= 0


def test_bench_writes_json_and_markdown_for_every_backend(tmp_path):
    bench_infer_main(
        ["--models", "mobilevitpose_xxs", "--input-size", "64", "64", "--runs", "2",
         "--warmup", "1", "--batch", "2", "--batch-runs", "1", "--no-cuda",
         "--detectors", "--out-dir", str(tmp_path)]
    )  # fmt: skip
    report = json.loads((tmp_path / "bench_infer.json").read_text())
    backends = {(r["name"], r["precision"], r["memory_format"]) for r in report["results"]}
    assert ("onnxruntime", "fp32", "NCHW") in backends
    assert (bench_infer.BASELINE, "fp32", "NCHW") in backends
    assert len(backends) == 4
    assert all(r["throughput"]["batch"] == 2 for r in report["results"])
    assert report["machine"]["threads"] == bench_infer.usable_cores()
    assert "| mobilevitpose_xxs | cpu | onnxruntime |" in (tmp_path / "bench_infer.md").read_text()


def test_photo_to_poses_times_the_detector_the_pose_model_and_both(tmp_path):
    bench_infer_main(
        ["--models", "mobilevitpose_xxs", "--input-size", "64", "64", "--runs", "1",
         "--warmup", "0", "--batch", "1", "--batch-runs", "1", "--no-cuda",
         "--detectors", "ssdlite320_mobilenet_v3_large", "--detector-weights", "random",
         "--people", "2", "--pipeline-runs", "2", "--pipeline-warmup", "0",
         "--out-dir", str(tmp_path)]
    )  # fmt: skip
    pipeline = json.loads((tmp_path / "bench_infer.json").read_text())["pipeline"]
    assert pipeline["settings"]["people"] == 2
    assert pipeline["settings"]["detector_weights"] == "random"
    (row,) = pipeline["rows"]
    assert (row["detector"], row["model"], row["input_size"]) == (
        "ssdlite320_mobilenet_v3_large",
        "mobilevitpose_xxs",
        [64, 64],
    )
    assert all(row["latency"][part]["runs"] == 2 for part in PARTS)
    markdown = (tmp_path / "bench_infer.md").read_text()
    assert "## Photo to poses" in markdown
    assert "| ssdlite320_mobilenet_v3_large | mobilevitpose_xxs | 64x64 |" in markdown


def test_pipeline_boxes_lie_inside_the_photo_one_per_person():
    image = np.zeros((480, 640, 3), np.uint8)
    boxes = person_boxes(image, 3)
    assert boxes.shape == (3, 4)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 640).all()
    assert (boxes[:, 3] <= 480).all() and (np.diff(boxes[:, 0]) > 0).all()
    assert (boxes[:-1, 2] <= boxes[1:, 0]).all()  # side by side, not overlapping


def test_an_unknown_detector_or_weights_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown detector 'yolo'.*allowed: fasterrcnn"):
        build_detector("yolo", "random", tmp_path)
    with pytest.raises(ValueError, match="detector weights 'imagenet'; allowed: coco, random"):
        build_detector("ssdlite320_mobilenet_v3_large", "imagenet", tmp_path)
