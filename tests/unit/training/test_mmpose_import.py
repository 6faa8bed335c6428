"""mvp-import: MMPose top-down heatmap checkpoints as mobilevitpose checkpoints.

The MMPose files are written here, in MMPose's layouts (tests/data/mmpose_keys, see
mmpose_fakes.py), with reproducible weights. MMPose's outputs for those weights were measured
once in MMPose 1.3.2's own environment (`bash /work/shared/tools/mmpose/install_mmpose.sh VENV`;
`import mm_stubs; mm_stubs.install_all()` before `mmpose.models`) and are committed:

- tests/data/mmpose_import_reference.safetensors: per model (litehrnet_18, hrnet_w32,
  simplebaseline_r50) a 1x3x64x64 input and what `TopdownPoseEstimator._forward` of
  `MODELS.build(Config.fromfile(CONFIG).model)` gave in eval mode with
  `fake_weights(mmpose_keys(model), seed=0, gain=GAINS[model])` loaded (CONFIG: `SUPPORTED`).
- tests/data/mmpose_import_coco_sample.json: the keypoints and scores `mmpose.apis.
  inference_topdown` gave for coco_sample's val2017 images and all its person detections
  (boxes in xyxy), with Lite-HRNet-18's config (`init_model`, flip test on) and the same
  weights plus 1 on the heatmap biases: tools/mmpose_coco_sample_reference.py wrote it.
"""

import json
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from mmpose_fakes import fake_weights, in_layout, mmpose_keys
from safetensors.torch import load_file

from mobilevitpose.cli.import_mmpose import main
from mobilevitpose.inference.checkpoint import read_checkpoint
from mobilevitpose.inference.estimator import PoseEstimator
from mobilevitpose.inference.predict import predict
from mobilevitpose.training.mmpose_import import (
    SUPPORTED,
    ImportSettings,
    MMPoseWeights,
    fitting_models,
    import_mmpose,
    read_mmpose_checkpoint,
)
from mobilevitpose.training.module import module_from_checkpoint

DATA = Path(__file__).resolve().parents[2] / "data"
REFERENCE = DATA / "mmpose_import_reference.safetensors"
COCO_SAMPLE_REFERENCE = DATA / "mmpose_import_coco_sample.json"
# Per-model weight scales that give heatmaps of about unit size at 64x64 (larger ones grow
# through the depth, and a float32 comparison to 1e-4 would then test rounding).
GAINS = {"litehrnet_18": 0.35, "hrnet_w32": 0.4, "simplebaseline_r50": 1.2}

# MMPose files imported in full (file -> checkpoint -> forward): each family and both layouts,
# with the input size each is checked at (the zoo's 256x192 once; 64x64 for speed otherwise).
# HRNet-W48 and ResNet-152 differ from W32 and ResNet-50 in widths and depths only, and are
# checked by names and shapes (test_every_mmpose_layout_fits_its_model_and_no_other).
IMPORTED = {
    ("litehrnet_18", "0.x"): (192, 256),
    ("litehrnet_18", "1.x"): (64, 64),
    ("litehrnet_30", "0.x"): (64, 64),
    ("wider_naive_litehrnet_18", "1.x"): (64, 64),
    ("hrnet_w32", "1.x"): (64, 64),
    ("simplebaseline_r50", "0.x"): (64, 64),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Lite-HRNet and HRNet run many small convolutions, where a second thread costs more in
    synchronisation than it saves, and far more on a busy machine (a 64x64 Lite-HRNet-18
    forward: 0.08 s on one thread, seconds on two shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mmpose_file(path: Path, name: str, layout: str = "1.x", **kwargs) -> Path:
    """A checkpoint as MMPose writes it: a meta dict (numpy arrays in it, as in 1.x's dataset
    meta) and the state dict."""
    state = in_layout(fake_weights(mmpose_keys(name), seed=0, gain=GAINS.get(name, 1.0)), layout)
    meta = {"mmpose_version": "1.3.2", "dataset_meta": {"sigmas": np.full(17, 0.05, np.float32)}}
    torch.save({"meta": meta, "state_dict": state, **kwargs}, path)
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict:
    """(model, layout) -> (MMPose file, imported checkpoint)."""
    folder = tmp_path_factory.mktemp("mmpose")
    files = {}
    for (name, layout), input_size in IMPORTED.items():
        source = _mmpose_file(folder / f"{name}-{layout}.pth", name, layout)
        out = folder / f"{name}-{layout}.ckpt"
        report = import_mmpose(source, out, name, ImportSettings(input_size=input_size))
        assert (report.model, report.layout) == (name, layout)
        files[name, layout] = (source, out)
    return files


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_mmpose_layout_fits_its_model_and_no_other(name):
    """MMPose's tensor names and shapes (names mapped, nothing reshaped) against every model
    config's, without weights (meta tensors)."""
    state = {key: torch.empty(shape, device="meta") for key, shape in mmpose_keys(name)}
    weights = MMPoseWeights(Path(f"{name}.pth"), state, "1.x")
    assert fitting_models(weights) == [name]


@pytest.mark.parametrize(("name", "layout"), list(IMPORTED))
def test_imported_checkpoint_is_an_ordinary_one(imported, name, layout):
    source, path = imported[name, layout]
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.hyper_parameters
    assert hparams["model"]["name"] == name
    assert hparams["model"]["input_size"] == list(IMPORTED[name, layout])
    assert hparams["model"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert hparams["model"]["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert hparams["init"]["pretrained"] is False
    assert {k: hparams["codec"][k] for k in ("kind", "sigma")} == {"kind": "msra", "sigma": 2.0}
    assert checkpoint.evaluation.flip_test is True
    assert set(hparams) >= {"optimizer", "scheduler", "channels_last", "bf16_head"}
    assert checkpoint.data["root"].endswith("coco") and checkpoint.data["boxes"] == "detections"
    facts = checkpoint.run["mmpose_import"]
    assert facts["layout"] == layout and facts["source"] == str(source.resolve())
    assert facts["filled_tensors"] == (78 if name == "hrnet_w32" else 0)

    estimator = PoseEstimator.load(path)
    assert estimator.codec.flip_shift  # MMPose's shift_heatmap=True for MSRA heatmaps
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    predicted = estimator(image, np.array([[20, 10, 140, 230]], np.float32))
    assert predicted["keypoints_img"].shape == (1, 17, 2)
    assert np.isfinite(predicted["keypoints_img"]).all()


@pytest.mark.parametrize(("name", "layout"), [case for case in IMPORTED if case[0] in GAINS])
def test_heatmaps_equal_mmposes_forward_of_the_same_weights(imported, name, layout):
    reference = load_file(str(REFERENCE))
    inputs, expected = reference[f"{name}.input"], reference[f"{name}.heatmaps"]
    model, _ = read_checkpoint(imported[name, layout][1]).pose_model()
    with torch.no_grad():
        heatmaps = model(inputs)
    assert heatmaps.shape == expected.shape == (1, 17, 16, 16)
    assert expected.std() > 1.0  # not near-zeros: the comparison means something
    # Measured: 1.9e-6 (Lite-HRNet-18), 0 (HRNet-W32, ResNet-50).
    assert (heatmaps - expected).abs().max().item() < 1e-4


def test_lightning_module_rebuilds_from_an_imported_checkpoint(imported):
    checkpoint = read_checkpoint(imported["litehrnet_18", "0.x"][1])
    module = module_from_checkpoint(checkpoint)  # as mvp-eval rebuilds it
    weights = checkpoint.model_state_dict()["head.final.bias"]
    assert torch.equal(module.model.head.final.bias, weights)


def test_hrnet_outputs_mmpose_drops_are_written_as_neutral_layers(imported):
    """MMPose's HRNet keeps one output of its last module; timm's keeps four. The fusion layers
    of the other three are written as zero convolutions and identity BatchNorms."""
    state = read_checkpoint(imported["hrnet_w32", "1.x"][1]).model_state_dict()
    unused = {k: v for k, v in state.items() if ".stage4.2.fuse_layers.1." in k}
    assert len(unused) == 18  # one conv + BN from each of branches 0, 2 and 3
    for key, value in unused.items():
        batch_norm_one = value.ndim == 1 and key.endswith((".weight", ".running_var"))
        assert torch.all(value == (1 if batch_norm_one else 0)), key


def test_input_size_codec_and_flip_test_are_the_mmpose_configs(imported, tmp_path):
    source = imported["litehrnet_18", "0.x"][0]
    settings = ImportSettings(input_size=(288, 384), codec="dark", flip_test=False)
    checkpoint = read_checkpoint(import_mmpose(source, tmp_path / "a.ckpt", None, settings).path)
    hparams = checkpoint.hyper_parameters
    assert hparams["model"]["input_size"] == [288, 384]
    # MMPose's 384x288 configs draw sigma-3 targets.
    assert hparams["codec"]["unbiased"] is True and hparams["codec"]["sigma"] == 3.0
    assert checkpoint.evaluation.flip_test is False
    settings = ImportSettings(codec="udp", sigma=1.5)
    estimator = PoseEstimator.load(import_mmpose(source, tmp_path / "b.ckpt", None, settings).path)
    assert (estimator.codec.kind, estimator.codec.sigma) == ("udp", 1.5)
    assert not estimator.codec.flip_shift  # MMPose's UDP configs: shift_heatmap=False


def test_wrappers_prefixes_and_numpy_meta_read_alike(imported, tmp_path):
    source = imported["litehrnet_18", "1.x"][0]
    expected = read_mmpose_checkpoint(source)
    state = torch.load(source, weights_only=False)["state_dict"]
    variants = {
        "bare": state,
        "model": {"model": state},
        "ddp": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
    }
    for label, contents in variants.items():
        torch.save(contents, tmp_path / f"{label}.pth")
        weights = read_mmpose_checkpoint(tmp_path / f"{label}.pth")
        assert weights.state.keys() == expected.state.keys(), label
    assert expected.layout == "1.x" and expected.meta["mmpose_version"] == "1.3.2"


def test_numpy_arrays_pickled_by_numpy_1_load_too(imported, tmp_path):
    """A file written under numpy 1.x names numpy.core.multiarray where numpy 2 writes
    numpy._core.multiarray; torch.save's pickle protocol 2 spells them out in text."""
    source = imported["litehrnet_18", "0.x"][0]
    rewritten = tmp_path / "numpy1.pth"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(rewritten, "w") as copy:
        for item in original.infolist():
            data = original.read(item)
            if item.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                assert b"numpy.core.multiarray" in data
            copy.writestr(item, data)
    weights = read_mmpose_checkpoint(rewritten)
    assert weights.meta["dataset_meta"]["sigmas"].shape == (17,)


# --- wrong inputs ---------------------------------------------------------------------------
def _save(path: Path, state: dict, **kwargs) -> Path:
    torch.save({"state_dict": state, **kwargs}, path)
    return path


def _tensors(*keys: str) -> dict:
    return {k: torch.zeros(2, 2, 1, 1) for k in keys}


def test_a_checkpoint_of_another_architecture_names_the_model_it_fits(imported, tmp_path):
    lite18 = imported["litehrnet_18", "0.x"][0]
    with pytest.raises(ValueError, match=r"does not fit --model litehrnet_30.*missing.*unexpected"
                       r".*it is a litehrnet_18 checkpoint: use --model litehrnet_18"):  # fmt: skip
        import_mmpose(lite18, tmp_path / "x.ckpt", "litehrnet_30")
    w32 = imported["hrnet_w32", "1.x"][0]
    with pytest.raises(ValueError, match=r"0 missing.*of another shape \[backbone\..*use --model "
                       r"hrnet_w32"):  # fmt: skip
        import_mmpose(w32, tmp_path / "x.ckpt", "hrnet_w48")
    assert not (tmp_path / "x.ckpt").exists()
    # A model no supported config fits: the closest is named with what differs.
    state = torch.load(lite18, weights_only=False)["state_dict"]
    state["backbone.extra_layer.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"fits none of the models.*closest, litehrnet_18, has "
                       r"0 missing.*1 unexpected \[backbone\.extra_layer\.weight\]"):  # fmt: skip
        import_mmpose(_save(tmp_path / "other.pth", state), tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="cannot be imported from MMPose; supported: litehrnet_18"):
        import_mmpose(lite18, tmp_path / "x.ckpt", "mobilevitpose_s")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        # timm / torchvision ImageNet ResNet
        (("conv1.weight", "layer1.0.conv1.weight", "fc.weight"), "is a classification checkpoint"),
        (("backbone.conv1.weight", "head.fc.weight", "head.loss_module.flow.weight"),
         r"regression head with a learnt loss \(RLE.*head\.fc\.weight, head\.loss_module"),
        (("backbone.conv1.weight", "keypoint_head.fc.weight"), r"fully connected head \(DeepPose"),
        (("backbone.conv1.weight", "keypoint_head.final_layers.0.weight"), "bottom-up head"),
        (("backbone.conv1.weight", "head.heatmap_conv_layers.0.weight"), "bottom-up head"),
        (("backbone.conv1.weight", "head.mlp.0.weight", "head.cls_x.weight"), "SimCC head"),
        (("backbone.conv1.weight", "neck.conv.weight", "head.final_layer.weight"),
         r"outside backbone and head \(neck\.conv\.weight"),
        (("backbone.conv1.weight", "head.final_layer.weight", "keypoint_head.final_layer.weight"),
         r"both keypoint_head\.\* \(0\.x\) and head\.\* \(1\.x\)"),
        (("backbone.conv1.weight",), "has no head tensors"),
        (("encoder.layer.0.weight",), "no backbone.* tensors"),
    ],
)  # fmt: skip
def test_what_is_no_top_down_heatmap_model_is_named(tmp_path, keys, message):
    source = _save(tmp_path / "m.pth", _tensors(*keys))
    with pytest.raises(ValueError, match=message):
        import_mmpose(source, tmp_path / "out.ckpt", "litehrnet_18")


def test_a_model_of_another_keypoint_set_is_named(imported, tmp_path):
    state = torch.load(imported["litehrnet_18", "1.x"][0], weights_only=False)["state_dict"]
    state["head.final_layer.weight"] = state["head.final_layer.weight"][:16]
    state["head.final_layer.bias"] = state["head.final_layer.bias"][:16]
    with pytest.raises(ValueError, match="predicts 16 keypoints: a model of another keypoint set"):
        read_mmpose_checkpoint(_save(tmp_path / "mpii.pth", state))


def test_files_that_are_no_mmpose_checkpoint(imported, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="is not a torch checkpoint file"):
        read_mmpose_checkpoint(text)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(imported["litehrnet_18", "1.x"][0].read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cannot read .* \(truncated, or not a torch file\)"):
        read_mmpose_checkpoint(truncated)
    with pytest.raises(FileNotFoundError, match="MMPose checkpoint not found"):
        read_mmpose_checkpoint(tmp_path / "absent.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds no state dict"):
        read_mmpose_checkpoint(tmp_path / "list.pth")
    with pytest.raises(ValueError, match="already a mobilevitpose"):
        read_mmpose_checkpoint(imported["litehrnet_18", "1.x"][1])


def test_python_objects_are_refused_not_unpickled(tmp_path):
    """weights_only=True with numpy allowlisted, never a silent weights_only=False."""
    source = _save(tmp_path / "m.pth", _tensors("backbone.conv1.weight"),
                   meta={"ratio": Fraction(1, 3)})  # fmt: skip
    with pytest.raises(ValueError, match=r"Python objects \(fractions\.Fraction\).*weights_only"):
        read_mmpose_checkpoint(source)


def test_an_existing_out_is_kept_without_overwrite(imported, tmp_path):
    source = imported["litehrnet_18", "1.x"][0]
    out = tmp_path / "lhr.ckpt"
    out.write_text("keep me")
    with pytest.raises(FileExistsError, match="exists; pass --overwrite"):
        import_mmpose(source, out, "litehrnet_18")
    assert out.read_text() == "keep me"
    import_mmpose(source, out, "litehrnet_18", overwrite=True)
    assert read_checkpoint(out).hyper_parameters["model"]["name"] == "litehrnet_18"


def test_cli_writes_and_reports_errors_on_one_line(imported, tmp_path, capsys):
    source = imported["litehrnet_18", "0.x"][0]
    out = tmp_path / "lhr.ckpt"
    main([str(source), "--out", str(out), "--input-size", "288", "384", "--sigma", "2.5"])
    printed = capsys.readouterr().out
    assert "litehrnet_18 from MMPose 0.x weights" in printed and "sigma 2.5" in printed
    assert read_checkpoint(out).hyper_parameters["model"]["input_size"] == [288, 384]
    with pytest.raises(SystemExit) as exit_info:
        main([str(source), "--out", str(out)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("mvp-import: error: ") and error.count("\n") == 1
    with pytest.raises(SystemExit):
        main([str(source), "--out", str(tmp_path / "y.ckpt"), "--model", "litehrnet_30"])
    assert "use --model litehrnet_18" in capsys.readouterr().err


def test_keypoints_equal_mmposes_top_down_inference_on_real_images(tmp_path, coco_sample_root):
    """mvp-predict's keypoints for real COCO images and person boxes equal MMPose's
    `inference_topdown` (flip test, MSRA decoding) of the same weights to 1e-2 px, for every
    detected box, low scores and near-tied heatmap peaks included."""
    reference = json.loads(COCO_SAMPLE_REFERENCE.read_text())
    state = fake_weights(mmpose_keys("litehrnet_18"), seed=0, gain=reference["gain"])
    state["head.final_layer.bias"] += reference["bias"]
    source = tmp_path / "lhr18.pth"
    torch.save({"state_dict": in_layout(state, "0.x")}, source)
    checkpoint = import_mmpose(source, tmp_path / "lhr18.ckpt", "litehrnet_18").path
    results = predict(
        checkpoint,
        coco_sample_root / "val2017",
        tmp_path / "poses",
        boxes_file=coco_sample_root
        / "person_detection_results"
        / "COCO_val2017_detections_AP_H_56_person.json",
        bbox_score_thr=reference["bbox_thr"],
        evaluation={"nms_mode": "none"},
        render=False,
        progress=False,
    )
    expected = reference["results"]
    assert [r["image_id"] for r in results] == [r["image_id"] for r in expected]
    ours = np.array([r["keypoints"] for r in results]).reshape(len(results), 17, 3)
    theirs = np.array([r["keypoints"] for r in expected])
    scores = np.array([r["keypoint_scores"] for r in expected])
    assert (scores > 0).all()
    assert np.abs(ours[..., :2] - theirs).max() < 1e-2
    assert np.abs(ours[..., 2] - scores).max() < 1e-3  # measured: 1.9e-4
