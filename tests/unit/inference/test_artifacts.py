"""Every export format: loads in its runtime, follows PyTorch, carries its metadata; corrupt
files, unknown formats, a missing extra and drifting INT8 keypoints give clear errors."""

import sys

import numpy as np
import pytest
import torch

from conftest import needs_executorch
from mobilevitpose.cli.export import main as export_main
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.inference.artifacts import FORMATS, export_artifact, load_artifact
from mobilevitpose.inference.calibration import split_crops
from mobilevitpose.inference.checkpoint import load_pose_model
from mobilevitpose.inference.fidelity import (
    int8_tolerance_px,
    keypoint_deviation,
    random_inputs,
    reference_heatmaps,
)
from mobilevitpose.training.config import build_model

pytestmark = pytest.mark.slow  # ExecuTorch lowering takes a minute per program


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_loads_in_its_runtime_and_follows_pytorch(name, tiny_artifacts, tiny_ckpt,
                                                               tiny_people):  # fmt: skip
    if name not in tiny_artifacts:
        pytest.skip("ExecuTorch is absent: install the deploy extra, pip install -e '.[deploy]'")
    path, checked = tiny_artifacts[name]
    model, codec, evaluation = load_pose_model(tiny_ckpt)
    network, metadata = load_artifact(path, threads=1)
    assert metadata["precision"] == ("int8" if FORMATS[name].int8 else "fp32")
    assert HeatmapCodec(**metadata["codec"]) == codec
    assert metadata["evaluation"] == evaluation.to_dict()
    assert metadata["input_size"] == [64, 64]
    if not FORMATS[name].int8:
        assert max(checked["max_abs_diff"].values()) <= 1e-4
        assert checked["max_abs_heatmap"] > 0.1  # measured against real peaks
        inputs = random_inputs(model, 5, seed=3).numpy()
        np.testing.assert_allclose(network(inputs), reference_heatmaps(model, inputs), atol=1e-4)
        return
    # INT8: judged by where the keypoints land, on crops it was not calibrated on (the train
    # image's), in input px; one heatmap cell at 64x64 is 4 px.
    crops = split_crops(tiny_people, "train", codec, count=None)
    inputs = model.normalise(torch.from_numpy(crops.crops)).numpy()
    moved = keypoint_deviation(reference_heatmaps(model, inputs), network(inputs), codec)
    assert moved["keypoints"] > 0
    assert moved["median_px"] <= int8_tolerance_px(codec) == 4.0
    assert checked["keypoints"] > 0 and checked["median_px"] <= 4.0


def test_int8_keypoints_beyond_the_tolerance_are_refused(tiny_ckpt, tiny_people, tmp_path):
    model, codec, evaluation = load_pose_model(tiny_ckpt)
    crops = split_crops(tiny_people, "val", codec, count=None)
    path = tmp_path / "m.int8.onnx"
    with pytest.raises(RuntimeError, match=r"INT8 keypoints moved .* > 0 px.*was not written"):
        export_artifact("onnx-int8", model, path, codec, evaluation, crops,
                        check_keypoints_px=0.0)  # fmt: skip
    assert not path.exists()


def test_an_untrained_network_cannot_be_checked_in_int8(tiny_ckpt, tiny_people, tmp_path):
    model = build_model("mobilevitpose_xxs", ["model.input_size=[64,64]"]).eval()
    _, codec, _ = load_pose_model(tiny_ckpt)
    crops = split_crops(tiny_people, "val", codec, count=None)
    with pytest.raises(RuntimeError, match=r"no keypoint scored >= 0\.3 .* quantise a trained"):
        export_artifact("onnx-int8", model, tmp_path / "m.onnx", codec, None, crops)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_names_and_files_give_clear_errors(tiny_ckpt, tmp_path, capsys):
    model, codec, _ = load_pose_model(tiny_ckpt)
    with pytest.raises(
        ValueError, match=r"unknown export format 'tflite'; allowed: onnx, onnx-int8"
    ):
        export_artifact("tflite", model, tmp_path / "m.tflite", codec)
    with pytest.raises(ValueError, match=r"format executorch writes \.pte files; got"):
        export_artifact("executorch", model, tmp_path / "m.onnx", codec)
    with pytest.raises(ValueError, match="format onnx-int8 needs calibration crops"):
        export_artifact("onnx-int8", model, tmp_path / "m.onnx", codec)
    with pytest.raises(SystemExit):
        export_main([str(tiny_ckpt), "--format", "tflite", "--out", str(tmp_path / "m")])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="its suffix must be one of"):
        load_artifact(tmp_path / "model.tflite")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model" * 10)
    with pytest.raises(ValueError, match="is not an ONNX model"):
        load_artifact(corrupt)


@needs_executorch
def test_a_truncated_executorch_program_gives_a_clear_error(tiny_artifacts, tmp_path):
    path, _ = tiny_artifacts["executorch"]
    truncated = tmp_path / "truncated.pte"
    truncated.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(ValueError, match="is not an ExecuTorch program this runtime can load"):
        load_artifact(truncated)


def test_a_missing_deploy_extra_is_named(tiny_ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "executorch", None)  # import executorch -> ImportError
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(tiny_ckpt), "--format", "executorch", "--out", str(tmp_path / "m.pte")])
    assert exit_info.value.code == 2
    assert "pip install -e '.[deploy]'" in capsys.readouterr().err
    assert not (tmp_path / "m.pte").exists()
