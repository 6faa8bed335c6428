"""mvp-predict keeps what it finished: an unreadable image, a stopped run and boxes for frames a
video lacks cost no finished results, and a rerun adds the missing images without --overwrite."""

import json
import re
import shutil
from pathlib import Path

import cv2
import pytest

from helpers import build_module, like_trained, save_checkpoint
from mobilevitpose.cli.predict import main
from mobilevitpose.data.image_io import ImageReadError
from mobilevitpose.inference import predict as predict_module
from mobilevitpose.inference import sources
from mobilevitpose.inference.predict import IMAGES_FILE, RESULTS_FILE, VIS_DIR, predict
from mobilevitpose.inference.sources import check_frames_exist
from mobilevitpose.training.config import compose, to_plain


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """An untrained XXS at 64x64 with trained-like weights: these tests look at which images get
    results, not at the keypoints, and the suite's tiny_ckpt takes minutes of training."""
    folder = tmp_path_factory.mktemp("ckpt")
    cfg = compose("train", ["model.input_size=[64,64]", f"paths.output_dir={folder}",
                            f"paths.log_dir={folder}"])  # fmt: skip
    module = build_module(cfg)
    like_trained(module.model)
    save_checkpoint(module, folder / "last.ckpt", to_plain(cfg))
    return folder / "last.ckpt"


BAD_CONTENTS = {
    "text": lambda good: b"not an image, only its name says so",
    "truncated": lambda good: good[: len(good) // 2],
}


def _good_images(tiny_people: Path) -> list[Path]:
    return sorted((tiny_people / "val2017").glob("*.jpg"))


def _folder(tmp_path: Path, tiny_people: Path, names: list[str]) -> list[Path]:
    """The tiny set's images copied under `names` (a folder of its own)."""
    folder = tmp_path / "input"
    folder.mkdir()
    paths = []
    for name, good in zip(names, _good_images(tiny_people), strict=False):
        paths.append(folder / name)
        shutil.copy(good, paths[-1])
    return paths


def _read(out: Path) -> tuple[list[dict], list[dict]]:
    return (
        json.loads((out / RESULTS_FILE).read_text()),
        json.loads((out / IMAGES_FILE).read_text()),
    )


@pytest.mark.parametrize("bad", sorted(BAD_CONTENTS))
def test_an_unreadable_last_image_keeps_the_results_of_the_others(bad, ckpt, tiny_people, tmp_path):
    # Old code: the error came at the last image and no results were written.
    first, _, last = _folder(tmp_path, tiny_people, ["a.jpg", "b.jpg", "c.jpg"])
    last.write_bytes(BAD_CONTENTS[bad](last.read_bytes()))
    out = tmp_path / "out"
    with pytest.raises(ImageReadError, match=r"1 of 3 images could not be read: .*c\.jpg") as err:
        predict(ckpt, first.parent, out, progress=False)
    assert "--resume" in str(err.value) and str(out / RESULTS_FILE) in str(err.value)
    results, index = _read(out)
    assert [entry["file_name"] for entry in index] == ["a.jpg", "b.jpg"]
    assert {r["image_id"] for r in results} == {entry["id"] for entry in index}
    assert sorted(p.name for p in (out / VIS_DIR).iterdir()) == ["a.jpg", "b.jpg"]


def test_the_console_script_says_it_in_one_line_and_exits_2(ckpt, tiny_people, tmp_path, capsys):
    # Old code: the same one line, but nothing written.
    first, *_, last = _folder(tmp_path, tiny_people, ["a.jpg", "b.jpg", "c.jpg"])
    last.write_text("not an image")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([str(ckpt), str(first.parent), "--out", str(out), "--no-render",
              "--detector", "none"])  # fmt: skip
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("mvp-predict: error: 1 of 3 images")
    assert "c.jpg" in errors[0] and "--resume" in errors[0]
    assert [entry["file_name"] for entry in _read(out)[1]] == ["a.jpg", "b.jpg"]


def test_a_rerun_with_resume_adds_the_fixed_image_and_keeps_the_rest(ckpt, tiny_people, tmp_path):
    # Old code: no results to keep, and a rerun was refused for the drawings (no `resume`).
    paths = _folder(tmp_path, tiny_people, ["a.jpg", "b.jpg", "c.jpg"])
    fixed = paths[2].read_bytes()
    paths[2].write_bytes(fixed[:100])
    out = tmp_path / "out"
    with pytest.raises(ImageReadError):
        predict(ckpt, paths[0].parent, out, progress=False)
    drawn = {p.name: p.stat().st_mtime_ns for p in (out / VIS_DIR).iterdir()}

    paths[2].write_bytes(fixed)
    with pytest.raises(FileExistsError, match="--resume"):
        predict(ckpt, paths[0].parent, out, progress=False)
    resumed = predict(ckpt, paths[0].parent, out, progress=False, resume=True)

    whole = predict(ckpt, paths[0].parent, tmp_path / "whole", progress=False)
    assert resumed == whole  # as one uninterrupted run, in input order
    assert _read(out) == _read(tmp_path / "whole")
    assert {
        p.name: p.stat().st_mtime_ns for p in (out / VIS_DIR).iterdir() if p.name in drawn
    } == drawn
    assert (out / VIS_DIR / "c.jpg").is_file()


def test_resume_after_the_failed_file_is_removed_renumbers_by_position(ckpt, tiny_people, tmp_path):
    # Names that are no COCO ids number images by position: removing b.jpg moves c.jpg from 3
    # to 2, and the earlier result of c.jpg must follow it. Old code: no `resume`.
    paths = _folder(tmp_path, tiny_people, ["a.jpg", "b.jpg", "c.jpg"])
    paths[1].write_text("not an image")
    out = tmp_path / "out"
    with pytest.raises(ImageReadError, match=r"b\.jpg"):
        predict(ckpt, paths[0].parent, out, render=False, progress=False)
    assert [(e["id"], e["file_name"]) for e in _read(out)[1]] == [(1, "a.jpg"), (3, "c.jpg")]

    paths[1].unlink()
    predict(ckpt, paths[0].parent, out, render=False, progress=False, resume=True)
    predict(ckpt, paths[0].parent, tmp_path / "whole", render=False, progress=False)
    assert _read(out) == _read(tmp_path / "whole")
    assert [(e["id"], e["file_name"]) for e in _read(out)[1]] == [(1, "a.jpg"), (2, "c.jpg")]


def test_a_folder_of_only_unreadable_images_writes_nothing(ckpt, tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "a.jpg").write_text("not an image")
    (folder / "b.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"2 of 2 images could not be read: .*a\.jpg"):
        predict(ckpt, folder, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_stopped_run_keeps_what_it_finished_and_resume_adds_the_rest(
    ckpt, tiny_people, tmp_path, monkeypatch
):
    # Ctrl-C (or any error) at the second image. Old code: nothing written.
    paths = _folder(tmp_path, tiny_people, ["a.jpg", "b.jpg", "c.jpg"])
    read_image = sources.read_image

    def interrupted_at_b(path, *args):
        if Path(path).name == "b.jpg":
            raise KeyboardInterrupt
        return read_image(path, *args)

    monkeypatch.setattr(sources, "read_image", interrupted_at_b)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        predict(ckpt, paths[0].parent, out, progress=False)
    assert [entry["file_name"] for entry in _read(out)[1]] == ["a.jpg"]

    monkeypatch.undo()
    predict(ckpt, paths[0].parent, out, progress=False, resume=True)
    predict(ckpt, paths[0].parent, tmp_path / "whole", progress=False)
    assert _read(out) == _read(tmp_path / "whole")


def test_resume_and_overwrite_exclude_each_other(ckpt, tiny_people, tmp_path):
    with pytest.raises(ValueError, match=r"--resume .* --overwrite"):
        predict(ckpt, tiny_people / "val2017", tmp_path / "out", resume=True, overwrite=True)


# --- video ----------------------------------------------------------------------------------


@pytest.fixture
def clip(tiny_people, tmp_path) -> Path:
    """The tiny set's 3 images as a 3-frame MJPG video."""
    frames = [cv2.imread(str(p)) for p in _good_images(tiny_people)]
    height, width = frames[0].shape[:2]
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (width, height))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for frame in frames:
        writer.write(cv2.resize(frame, (width, height)))
    writer.release()
    return path


def _detections(path: Path, frame_ids: list[int]) -> Path:
    detections = [{"image_id": i, "category_id": 1, "bbox": [2, 2, 40, 60], "score": 0.9}
                  for i in frame_ids]  # fmt: skip
    path.write_text(json.dumps(detections))
    return path


def test_boxes_for_frames_past_a_videos_end_are_refused_before_any_drawing(
    clip, ckpt, tmp_path, monkeypatch
):
    # Old code: the whole video was processed and drawn, then "not among the 3 video frames".
    boxes = _detections(tmp_path / "dets.json", [0, 2, 5, 7])

    def no_frame_yet(self, *args):
        raise AssertionError("a frame was predicted before the boxes were checked")

    monkeypatch.setattr(predict_module.PoseEstimator, "__call__", no_frame_yet)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        predict(ckpt, clip, out, boxes_file=boxes, progress=False)
    message = str(err.value)
    assert str(boxes) in message and str(clip) in message
    assert re.search(r"\(3 frames, ids 0 to 2\) does not have: \[5, 7\]", message)
    assert not out.exists()


def test_a_video_of_unstated_length_is_checked_at_the_end_with_results_kept(
    clip, ckpt, tmp_path, monkeypatch
):
    # Some containers state no frame count (0): the frames read decide, after the run.
    # Old code: the same error, but no results written.
    open_video = predict_module.open_video

    def count_unknown(path):
        capture, _, fps = open_video(path)
        return capture, 0, fps

    monkeypatch.setattr(predict_module, "open_video", count_unknown)
    boxes = _detections(tmp_path / "dets.json", [0, 1, 9])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"\(3 frames, ids 0 to 2\) does not have: \[9\]"):
        predict(ckpt, clip, out, boxes_file=boxes, render=False, progress=False)
    results, index = _read(out)
    assert [entry["id"] for entry in index] == [0, 1, 2]
    assert {r["image_id"] for r in results} == {0, 1}


def test_frame_check_names_the_files_the_ids_and_the_count(tmp_path):
    with pytest.raises(ValueError, match=r"dets\.json has boxes for 2 frame id\(s\) that the "
                       r"video .*clip\.avi \(0 frames\) does not have: \[-1, 0\]"):  # fmt: skip
        check_frames_exist([0, -1], tmp_path / "dets.json", tmp_path / "clip.avi", 0)
    check_frames_exist([0, 4], tmp_path / "dets.json", tmp_path / "clip.avi", 5)


def test_annotation_boxes_of_an_image_whose_record_has_another_size_are_refused_first(
    ckpt, tiny_people, tmp_path
):
    gt = json.loads((tiny_people / "annotations" / "person_keypoints_val2017.json").read_text())
    image = gt["images"][0]
    image["width"] += 40  # the boxes were clipped to a size the file does not have
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(gt))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=rf"{image['file_name']} is \d+x\d+ px but its 'width'"):
        predict(ckpt, tiny_people / "val2017", out, boxes_file=ann_file, progress=False)
    assert not out.exists()
