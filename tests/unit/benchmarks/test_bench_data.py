import json

import cv2
import torch

from mobilevitpose.cli import bench_data


def test_bench_data_writes_its_report(coco_sample_root, tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--out", str(out), "--coco-mini", str(coco_sample_root), "-n", "4", "--warmup", "1"]
    threads = (torch.get_num_threads(), cv2.getNumThreads())
    try:
        bench_data.main([*argv, "--repeats", "1", "--core", "-1"])
    finally:  # the benchmark goes single-threaded; give the rest of the session its threads back
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    report = json.loads(out.read_text())
    assert report["data"]["source"] == "coco_mini" and report["data"]["train_instances"] == 12
    for run in ("train", "train_reduced", "train_grouped", "train_grouped_reduced", "val"):
        assert report[f"{run}_dataset[i]"]["median"] > 0
    for run in ("train", "train_reduced"):
        assert set(report[f"{run}_stages"]["ms_per_sample"]) == {
            "geometry", "decode", "warp", "target", "tensor"
        }  # fmt: skip
    # Full-size decoding everywhere but where it is asked to reduce.
    assert set(report["train_stages"]["decode_reduction_counts"]) == {"1"}
    assert report["setting"]["variants"]["val"]["reduced_decode"] is False
