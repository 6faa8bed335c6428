import json

from mobilevitpose.benchmarks import infer as bench_infer
from mobilevitpose.cli.bench_infer import main as bench_infer_main

TINY = ["model.input_size=[64,64]"]


def test_timing_warms_every_backend_up_then_takes_turns_in_settled_blocks():
    calls: list[str] = []
    backends = [
        bench_infer.Backend(name, "cpu", "fp32", "NCHW", lambda name=name: calls.append(name))
        for name in ("a", "b")
    ]
    times = bench_infer.time_interleaved(
        backends, runs=3, warmup=2, synchronize=lambda: None, block=2
    )
    # warm-up, then per block one untimed call and up to `block` timed ones
    assert calls == ["a"] * 2 + ["b"] * 2 + ["a"] * 3 + ["b"] * 3 + ["a"] * 2 + ["b"] * 2
    assert [len(t) for t in times] == [3, 3] and min(min(t) for t in times) >= 0


def test_bench_writes_json_and_markdown_for_every_backend(tmp_path):
    bench_infer_main(
        ["--models", "mobilevitpose_xxs", "--input-size", "64", "64", "--runs", "2",
         "--warmup", "1", "--batch", "2", "--batch-runs", "1", "--no-cuda",
         "--out-dir", str(tmp_path)]
    )  # fmt: skip
    report = json.loads((tmp_path / "bench_infer.json").read_text())
    backends = {(r["name"], r["precision"], r["memory_format"]) for r in report["results"]}
    assert ("onnxruntime", "fp32", "NCHW") in backends
    assert (bench_infer.BASELINE, "fp32", "NCHW") in backends
    assert len(backends) == 4
    assert all(r["throughput"]["batch"] == 2 for r in report["results"])
    assert report["machine"]["threads"] == bench_infer.usable_cores()
    assert "| mobilevitpose_xxs | cpu | onnxruntime |" in (tmp_path / "bench_infer.md").read_text()
