import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from helpers import build_module, like_trained, save_checkpoint
from mobilevitpose.cli.export import main
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.inference.fidelity import random_inputs
from mobilevitpose.inference.onnx import INPUT_NAME, OUTPUT_NAME, export_onnx, load_onnx
from mobilevitpose.keypoints import FLIP_INDICES, KEYPOINT_NAMES
from mobilevitpose.models.pose_model import PoseModel
from mobilevitpose.training.config import build_model, compose

TINY = ["model.input_size=[64,64]"]


@pytest.fixture(scope="module")
def tiny_model() -> PoseModel:
    return like_trained(build_model("mobilevitpose_xxs", TINY))


@pytest.fixture(scope="module")
def codec() -> HeatmapCodec:
    return HeatmapCodec(kind="udp", input_size=(64, 64), heatmap_size=(16, 16), sigma=2.0)


@pytest.fixture(scope="module")
def exported(tiny_model, codec, tmp_path_factory) -> Path:
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "xxs.onnx", codec=codec).path


@pytest.mark.parametrize("batch_size", [1, 3])
def test_onnx_runtime_matches_pytorch_heatmaps(tiny_model, exported, batch_size):
    session, _ = load_onnx(exported)
    inputs = random_inputs(tiny_model, batch_size, seed=10 + batch_size)
    (heatmaps,) = session.run([OUTPUT_NAME], {INPUT_NAME: inputs.numpy()})
    with torch.inference_mode():
        expected = tiny_model(inputs).numpy()
    assert heatmaps.shape == (batch_size, 17, 16, 16)
    assert np.abs(expected).max() > 0.1  # parity below is measured against real signal
    np.testing.assert_allclose(heatmaps, expected, rtol=0, atol=1e-4)


def test_export_records_opset_dynamic_batch_and_its_parity_check(exported):
    proto = onnx.load(str(exported))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")
    _, metadata = load_onnx(exported)
    assert set(metadata["parity"]["max_abs_diff"]) == {"1", "3"}
    assert max(metadata["parity"]["max_abs_diff"].values()) <= 1e-4
    assert metadata["parity"]["max_abs_heatmap"] > 0.1


def test_metadata_round_trips_through_load_onnx(tiny_model, codec, exported):
    _, metadata = load_onnx(exported)
    assert metadata["model_name"] == "mobilevitpose_xxs"
    assert metadata["input_size"] == [64, 64] and metadata["heatmap_size"] == [16, 16]
    assert metadata["mean"] == list(tiny_model.mean) and metadata["std"] == list(tiny_model.std)
    assert metadata["keypoint_names"] == list(KEYPOINT_NAMES)
    assert metadata["flip_indices"] == list(FLIP_INDICES)
    assert HeatmapCodec(**metadata["codec"]) == codec
    assert metadata["opset"] == 17


def test_channels_last_model_exports_with_parity(tiny_model, codec, tmp_path):
    # What a quickstart checkpoint holds (`channels_last: true`); export_onnx checks parity.
    nhwc = copy.deepcopy(tiny_model).to(memory_format=torch.channels_last)
    off = EvaluationSettings(flip_test=False)
    path = export_onnx(nhwc, tmp_path / "nhwc.onnx", codec=codec, evaluation=off).path
    _, metadata = load_onnx(path)
    assert max(metadata["parity"]["max_abs_diff"].values()) <= 1e-4
    assert metadata["evaluation"] == off.to_dict()


def test_export_refuses_to_overwrite_unless_asked(tiny_model, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_onnx(tiny_model, path)
    assert path.read_bytes() == b"precious"
    export_onnx(tiny_model, path, overwrite=True)
    assert load_onnx(path)[1]["model_name"] == "mobilevitpose_xxs"


class _OffWhileTracing(nn.Module):
    """Adds 1 to the heatmaps in the traced graph only: an export that breaks parity."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(x)
        return out + 1.0 if torch.jit.is_tracing() else out


def test_a_parity_failure_raises_and_writes_nothing(tmp_path):
    model = build_model("mobilevitpose_xxs", TINY).eval()
    model.head = _OffWhileTracing(model.head)
    path = tmp_path / "broken.onnx"
    with pytest.raises(RuntimeError, match="differ by 1"):
        export_onnx(model, path)
    assert not path.exists()


def test_bad_arguments_and_foreign_files_give_clear_errors(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(tiny_model, tmp_path / "a.onnx", opset=13)
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        load_onnx(tmp_path / "missing.onnx")
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(
        nn.Linear(2, 2), (torch.zeros(1, 2),), str(foreign), input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME], opset_version=17, dynamo=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match="lacks the metadata"):
        load_onnx(foreign)


def test_cli_reports_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "m.onnx")])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("mvp-export: error: checkpoint not found: ")
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt"):  # --debug: the exception itself
        main([str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "m.onnx"), "--debug"])


def test_cli_exports_a_checkpoint_with_its_codec(tmp_path, capsys):
    # Run paths set: the saved run config resolves them, outside a Hydra app too.
    paths = [f"paths.output_dir={tmp_path}", f"paths.log_dir={tmp_path}"]
    module = build_module(compose("train", ["codec.kind=msra", "codec.sigma=1.5", *TINY, *paths]))
    like_trained(module.model)
    ckpt = tmp_path / "last.ckpt"
    save_checkpoint(module, ckpt, {})
    out = tmp_path / "model.onnx"
    main([str(ckpt), "--out", str(out)])
    assert "parity batch 3" in capsys.readouterr().out
    session, metadata = load_onnx(out)
    assert HeatmapCodec(**metadata["codec"]) == module.codec
    inputs = random_inputs(module.model, 2, seed=5)
    with torch.inference_mode():
        expected = module.model.eval()(inputs).numpy()
    np.testing.assert_allclose(session.run(None, {INPUT_NAME: inputs.numpy()})[0], expected,
                               rtol=0, atol=1e-4)  # fmt: skip


def test_cli_exports_a_model_config_and_refuses_overrides_for_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "cfg.onnx"
    main(["--model", "mobilevitpose_xxs", *[f"--set={o}" for o in TINY], "--out", str(out)])
    assert load_onnx(out)[1]["input_size"] == [64, 64]
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x.ckpt"), "--set", TINY[0], "--out", str(tmp_path / "x.onnx")])
    assert "--set applies to --model only" in capsys.readouterr().err


def test_a_file_that_is_not_onnx_is_named(tmp_path):
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"not a protobuf at all")
    with pytest.raises(ValueError, match=r"model\.onnx' is not an ONNX model that ONNX Runtime"):
        load_onnx(not_onnx)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_asking_for_a_gpu_without_one_says_so(tmp_path):
    from mobilevitpose.inference.estimator import PoseEstimator

    with pytest.raises(ValueError, match=r"device 'cuda': no CUDA GPU is available here"):
        PoseEstimator.from_checkpoint(tmp_path / "unused.ckpt", device="cuda")
    with pytest.raises(ValueError, match=r"device 'gpu0' is not a torch device"):
        PoseEstimator.from_checkpoint(tmp_path / "unused.ckpt", device="gpu0")
