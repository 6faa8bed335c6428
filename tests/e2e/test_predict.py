"""mvp-predict: images, folders and videos; boxes from files or whole images; ONNX backend."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from helpers import load_module
from mobilevitpose.cli.predict import main
from mobilevitpose.coco import read_annotations
from mobilevitpose.data.image_io import ImageReadError
from mobilevitpose.evaluation.coco_metric import CocoKeypointEvaluator
from mobilevitpose.inference.artifacts import FORMATS
from mobilevitpose.inference.onnx import export_onnx
from mobilevitpose.inference.predict import RESULTS_FILE, predict
from mobilevitpose.training.config import compose

# The end-to-end set: `make test-fast` leaves it out, CI runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def onnx_file(tiny_ckpt, tmp_path_factory) -> Path:
    module, _ = load_module(tiny_ckpt)
    folder = tmp_path_factory.mktemp("onnx")
    return export_onnx(module.model, folder / "m.onnx", codec=module.codec).path


def _load_results(gt_file: Path, results_file: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(gt_file)).loadRes(str(results_file))


def test_coco_sample_with_its_detection_file(tiny_ckpt, coco_sample_root, tmp_path):
    boxes = (
        coco_sample_root / "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    )
    out = tmp_path / "out"
    results = predict(tiny_ckpt, coco_sample_root / "val2017", out, boxes_file=boxes,
                      progress=False)  # fmt: skip
    gt_file = coco_sample_root / "annotations/person_keypoints_val2017.json"
    loaded = _load_results(gt_file, out / RESULTS_FILE)
    assert len(loaded.anns) == len(results) > 0
    detections = json.loads(boxes.read_text())
    assert len(results) <= len(detections)  # OKS-NMS may drop some, never adds
    assert len(list((out / "vis").glob("*.jpg"))) == 4
    # Keypoints land in image coordinates, about the crop of a detection: the box padded by
    # 1.25 and made square. The median of the found keypoints (heatmap maximum > 0) is checked:
    # on real photos, far from the synthetic people this model was fitted to, its heatmaps are
    # flat, and the UDP decoding's Newton refinement throws a few of their maxima far away.
    boxes_by_image: dict[int, list] = {}
    for det in detections:
        boxes_by_image.setdefault(det["image_id"], []).append(det["bbox"])
    for result in results:
        keypoints = np.asarray(result["keypoints"]).reshape(-1, 3)
        xy = np.median(keypoints[keypoints[:, 2] > 0, :2], axis=0)
        assert any(
            np.abs(xy - [x + w / 2, y + h / 2]).max() <= 1.25 * max(w, h) / 2
            for x, y, w, h in boxes_by_image[result["image_id"]]
        )


def test_annotation_file_boxes_and_whole_images_on_synthetic(tiny_ckpt, tiny_people, tmp_path):
    gt_file = tiny_people / "annotations/person_keypoints_val2017.json"
    gt = json.loads(gt_file.read_text())
    people = [a for a in gt["annotations"] if not a.get("iscrowd", 0)]
    results = predict(tiny_ckpt, tiny_people / "val2017", tmp_path / "gt_boxes",
                      boxes_file=gt_file, evaluation={"nms_mode": "none"},
                      progress=False)  # fmt: skip
    assert len(results) == len(people)
    assert len(_load_results(gt_file, tmp_path / "gt_boxes" / RESULTS_FILE).anns) == len(people)
    # the model was overfitted to these people: its keypoints, in image px, are theirs
    assert CocoKeypointEvaluator(read_annotations(gt_file)).evaluate(results)["AP"] > 0.5

    whole = predict(tiny_ckpt, tiny_people / "val2017", tmp_path / "whole", progress=False)
    index = json.loads((tmp_path / "whole" / "images.json").read_text())
    assert len(whole) == len(index) == 3  # one box per image: the image
    assert {r["image_id"] for r in whole} == {im["id"] for im in gt["images"]}  # COCO file names


def test_onnx_predictor_defaults_to_the_runs_evaluation_settings(tiny_ckpt, tmp_path):
    from mobilevitpose.evaluation.settings import EvaluationSettings
    from mobilevitpose.inference.estimator import PoseEstimator

    module, _ = load_module(tiny_ckpt)
    settings = EvaluationSettings(flip_test=False, keypoint_score_thr=0.3, nms_thr=0.8)
    off = export_onnx(
        module.model, tmp_path / "off.onnx", codec=module.codec, evaluation=settings
    ).path
    unrecorded = export_onnx(module.model, tmp_path / "old.onnx", codec=module.codec).path
    assert PoseEstimator.load(off).evaluation == settings
    assert PoseEstimator.load(off).with_evaluation(flip_test=True).evaluation.flip_test is True
    # Files and calls from before nms_mode turned NMS off with nms_thr=None.
    assert PoseEstimator.load(off).with_evaluation(nms_thr=None).evaluation.nms_mode == "none"
    assert PoseEstimator.load(unrecorded).evaluation == EvaluationSettings()
    assert PoseEstimator.load(tiny_ckpt).evaluation == module.evaluation


def test_onnx_backend_gives_the_same_keypoints_as_pytorch(tiny_ckpt, onnx_file, tiny_people,
                                                          tmp_path):  # fmt: skip
    images = tiny_people / "val2017"
    boxes = tiny_people / "annotations/person_keypoints_val2017.json"
    torch_results = predict(tiny_ckpt, images, tmp_path / "pt", boxes_file=boxes, progress=False)
    onnx_results = predict(onnx_file, images, tmp_path / "onnx", boxes_file=boxes,
                           backend="onnx", progress=False)  # fmt: skip
    assert len(torch_results) == len(onnx_results) > 0
    torch_kpts = np.asarray([r["keypoints"] for r in torch_results]).reshape(-1, 3)
    onnx_kpts = np.asarray([r["keypoints"] for r in onnx_results]).reshape(-1, 3)
    assert [r["image_id"] for r in torch_results] == [r["image_id"] for r in onnx_results]
    np.testing.assert_allclose(onnx_kpts[:, 2], torch_kpts[:, 2], rtol=0, atol=1e-5)
    assert np.abs(onnx_kpts[:, :2] - torch_kpts[:, :2]).max() < 0.01


@pytest.mark.parametrize("name", [name for name in FORMATS if name != "onnx"])
def test_every_other_artifact_runs_through_predict_as_the_checkpoint(
    name, tiny_artifacts, tiny_ckpt, tiny_people, tmp_path
):
    # The same boxes, crops, flip test, decoding and outputs; fp32 to the checkpoint's keypoints,
    # INT8 to within 0.05 of its AP.
    if name not in tiny_artifacts:
        pytest.skip("ExecuTorch is absent: install the deploy extra, pip install -e '.[deploy]'")
    path, _ = tiny_artifacts[name]
    images = tiny_people / "val2017"
    boxes = tiny_people / "annotations/person_keypoints_val2017.json"
    torch_results = predict(tiny_ckpt, images, tmp_path / "pt", boxes_file=boxes, progress=False)
    main([str(path), str(images), "--boxes", str(boxes), "--out", str(tmp_path / name)])
    results = json.loads((tmp_path / name / RESULTS_FILE).read_text())
    assert (tmp_path / name / "vis").is_dir()
    assert [r["image_id"] for r in results] == [r["image_id"] for r in torch_results]
    if FORMATS[name].int8:
        evaluator = CocoKeypointEvaluator(read_annotations(boxes))
        assert evaluator.evaluate(results)["AP"] >= evaluator.evaluate(torch_results)["AP"] - 0.05
        return
    ours = np.asarray([r["keypoints"] for r in results]).reshape(-1, 3)
    theirs = np.asarray([r["keypoints"] for r in torch_results]).reshape(-1, 3)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=0.01)


def test_a_video_gives_results_per_frame_and_a_rendered_video(tiny_ckpt, tiny_people, tmp_path):
    video = tmp_path / "clip.mp4"
    frames = [cv2.imread(str(p)) for p in sorted((tiny_people / "val2017").glob("*.jpg"))]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (width, height))
    for frame in frames:
        writer.write(cv2.resize(frame, (width, height)))
    writer.release()
    main([str(tiny_ckpt), str(video), "--out", str(tmp_path / "poses"), "--detector", "none"])
    results = json.loads((tmp_path / "poses" / RESULTS_FILE).read_text())
    assert sorted(r["image_id"] for r in results) == [0, 1, 2]
    rendered = cv2.VideoCapture(str(tmp_path / "poses" / "clip.pose.mp4"))
    assert int(rendered.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_bad_inputs_give_clear_errors_and_keep_earlier_results(tiny_ckpt, tiny_people,
                                                               tmp_path):  # fmt: skip
    note = tmp_path / "notes.txt"
    note.write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.txt is neither an image"):
        predict(tiny_ckpt, note, tmp_path / "a", progress=False)
    corrupt = tmp_path / "folder" / "000000000001.jpg"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ImageReadError, match=r"000000000001\.jpg"):
        predict(tiny_ckpt, corrupt.parent, tmp_path / "b", progress=False)
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt"):
        predict(tmp_path / "missing.ckpt", tiny_people / "val2017", tmp_path / "c")

    # boxes that name images the input does not have
    one = tmp_path / "one"
    one.mkdir()
    first = sorted((tiny_people / "val2017").glob("*.jpg"))[0]
    shutil.copy(first, one / first.name)
    detections = tiny_people / "person_detection_results"
    (det_file,) = detections.glob("*.json")
    with pytest.raises(ValueError, match="not among the 1 input images"):
        predict(tiny_ckpt, one, tmp_path / "d", boxes_file=det_file, progress=False)

    # results already there are never replaced without --overwrite
    predict(tiny_ckpt, one, tmp_path / "e", progress=False)
    before = (tmp_path / "e" / RESULTS_FILE).read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        predict(tiny_ckpt, one, tmp_path / "e", progress=False)
    assert (tmp_path / "e" / RESULTS_FILE).read_bytes() == before


def test_predict_with_gt_boxes_gives_what_mvp_eval_validated(tiny_ckpt, tiny_people, tmp_path):
    # One crop, decode and scoring path: the keypoints and scores validation wrote for the same
    # checkpoint, boxes and evaluation settings (a detection file's boxes likewise).
    from hydra.core.global_hydra import GlobalHydra

    from mobilevitpose.training.evaluate import evaluate

    GlobalHydra.instance().clear()
    evaluate(compose("eval", [f"ckpt_path={tiny_ckpt}", f"paths.output_dir={tmp_path / 'eval'}",
                              f"data.root={tiny_people}", "data.boxes=gt"]))  # fmt: skip
    validated = json.loads((tmp_path / "eval" / "val.keypoints.json").read_text())
    gt_file = tiny_people / "annotations" / "person_keypoints_val2017.json"
    predicted = predict(tiny_ckpt, tiny_people / "val2017", tmp_path / "predict",
                        boxes_file=gt_file, render=False, progress=False)  # fmt: skip
    assert [r["image_id"] for r in predicted] == [r["image_id"] for r in validated]
    for ours, theirs in zip(predicted, validated, strict=True):
        np.testing.assert_allclose(ours["keypoints"], theirs["keypoints"], rtol=0, atol=1e-3)
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-6)


@pytest.fixture(scope="module")
def detector_weights(tmp_path_factory) -> Path:
    """torchvision's smallest COCO detector with seeded random weights: the real architecture
    and loading path, no network."""
    import torch

    from mobilevitpose.inference.detector import DETECTORS

    torch.manual_seed(0)
    spec = DETECTORS["ssdlite320_mobilenet_v3_large"]
    model = spec.builder(weights=None, weights_backbone=None, num_classes=91)
    # Random weights see no class in particular: a large person logit for every anchor makes
    # it find people (wherever its random regression puts their boxes).
    with torch.no_grad():
        for column in model.head.classification_head.module_list:
            last = [m for m in column.modules() if isinstance(m, torch.nn.Conv2d)][-1]
            last.bias[1::91] = 10.0
    path = tmp_path_factory.mktemp("detector") / "ssdlite.pth"
    torch.save(model.state_dict(), path)
    return path


DETECT = ["--detector", "ssdlite320_mobilenet_v3_large"]


def test_a_photo_without_boxes_is_detected_then_every_person_predicted(
    tiny_ckpt, tiny_people, detector_weights, tmp_path
):
    images = tiny_people / "val2017"
    out = tmp_path / "poses"
    main([str(tiny_ckpt), str(images), "--out", str(out), *DETECT, "--detector-weights",
          str(detector_weights), "--det-score-thr", "0", "--max-people", "3",
          "--no-nms"])  # fmt: skip
    results = json.loads((out / RESULTS_FILE).read_text())
    per_image = {
        i: [r for r in results if r["image_id"] == i] for i in {r["image_id"] for r in results}
    }
    assert results and all(1 <= len(people) <= 3 for people in per_image.values())
    for result in results:
        _, _, w, h = result["bbox"]
        assert w > 0 and h > 0 and 0.0 <= result["bbox_score"] <= 1.0
    assert len(list((out / "vis").glob("*.jpg"))) == len(list(images.glob("*.jpg")))
    # The files load in pycocotools as keypoint results.
    _load_results(tiny_people / "annotations" / "person_keypoints_val2017.json", out / RESULTS_FILE)


def test_boxes_win_over_the_detector_which_is_then_never_built(tiny_ckpt, tiny_people, tmp_path):
    gt = tiny_people / "annotations" / "person_keypoints_val2017.json"
    out = tmp_path / "poses"
    # A detector that could not load (no such weights file) is not needed with --boxes.
    main([str(tiny_ckpt), str(tiny_people / "val2017"), "--out", str(out), "--boxes", str(gt),
          *DETECT, "--detector-weights", str(tmp_path / "missing.pth")])  # fmt: skip
    results = json.loads((out / RESULTS_FILE).read_text())
    assert results and all(r["bbox_score"] == 1.0 for r in results)


def test_offline_without_detector_weights_one_line_says_where_and_how(
    tiny_ckpt, tiny_people, tmp_path, monkeypatch, capsys
):
    import urllib.error

    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tiny_ckpt), str(tiny_people / "val2017"), "--out", str(tmp_path / "p"),
              *DETECT])  # fmt: skip
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "detector 'ssdlite320_mobilenet_v3_large'" in line
    assert "--detector-weights FILE" in line and "--detector none" in line
    assert not (tmp_path / "p").exists()


def test_a_video_keeps_each_persons_id_and_smooths_on_request(tiny_ckpt, tiny_people, tmp_path):
    video = tmp_path / "clip.mp4"
    frame = cv2.imread(str(sorted((tiny_people / "val2017").glob("*.jpg"))[0]))
    height, width = frame.shape[:2]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (width, height))
    rng = np.random.default_rng(0)
    for _ in range(6):  # the same person, with sensor noise
        noisy = frame.astype(np.int16) + rng.integers(-6, 7, frame.shape)
        writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
    writer.release()
    # Two people: the left and the right half of each frame.
    boxes = tmp_path / "boxes.json"
    halves = [[0, 0, width / 2, height], [width / 2, 0, width / 2, height]]
    boxes.write_text(json.dumps([
        {"image_id": i, "category_id": 1, "bbox": box, "score": 0.9}
        for i in range(6) for box in halves
    ]))  # fmt: skip
    runs = {}
    for name, extra in (("raw", []), ("smooth", ["--smooth"])):
        main([str(tiny_ckpt), str(video), "--out", str(tmp_path / name), "--boxes", str(boxes),
              "--no-nms", *extra])  # fmt: skip
        runs[name] = json.loads((tmp_path / name / RESULTS_FILE).read_text())
    raw, smooth = runs["raw"], runs["smooth"]
    assert [r["frame"] for r in raw] == [r["image_id"] for r in raw]
    ids = {(r["frame"], r["bbox"][0]): r["track_id"] for r in raw}
    assert len(ids) == 12
    assert {ids[f, 0.0] for f in range(6)} == {0} and {ids[f, width / 2] for f in range(6)} == {1}

    def jitter(results):
        xy = np.asarray([r["keypoints"] for r in results if r["track_id"] == 0])
        return np.abs(np.diff(xy.reshape(6, -1, 3)[..., :2], axis=0)).mean()

    assert jitter(smooth) < jitter(raw)
