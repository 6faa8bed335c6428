"""mvp-predict: keypoints of every person in an image, a folder of images or a video.

    mvp-predict runs/train/.../checkpoints/last.ckpt photo.jpg
    mvp-predict model.onnx val2017/ --boxes COCO_val2017_detections_AP_H_56_person.json
    mvp-predict last.ckpt clip.mp4 --out clip_poses

Person boxes come from a COCO detection-results file, from a COCO annotation file (its person
boxes), or are the whole image. The output folder gets `results.keypoints.json` (COCO keypoint
results), `images.json` (image id -> file, so the results can be read back) and the images, or
the video, with skeletons drawn (the paper's Fig. 4 style). The PyTorch checkpoint and its
exported ONNX file go through the same crop, flip-test and decoding code, so they agree.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mobilevitpose.coco_eval import coco_results, write_results
from mobilevitpose.codec import HeatmapCodec, flip_test
from mobilevitpose.geometry import bbox_xywh_to_xyxy
from mobilevitpose.image_io import read_image, to_rgb_tensor
from mobilevitpose.keypoints import FLIP_INDICES
from mobilevitpose.pose_model import normalise_images
from mobilevitpose.transforms import val_crop
from mobilevitpose.visualize import draw_skeleton

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
BACKENDS = ("auto", "torch", "onnx")
RESULTS_FILE = "results.keypoints.json"


class PoseEstimator:
    """A trained pose network and what turns person boxes into keypoints in image pixels: the
    crop (the evaluation crop: padded, aspect-fixed box), flip test, decoding.

    `network` maps uint8 RGB crops (B, 3, h, w), as the data pipeline delivers them, to heatmaps
    (B, K, h/4, w/4) float32, normalising them where it runs (on the model's device for a
    checkpoint); `from_checkpoint` and `from_onnx` build one from a mvp-train checkpoint or a
    mvp-export file.
    """

    def __init__(
        self,
        network: Callable[[np.ndarray], np.ndarray],
        codec: HeatmapCodec,
        flip_test: bool = True,
        batch_size: int = 32,
    ) -> None:
        self.network = network
        self.codec = codec
        self.input_size = tuple(codec.input_size)
        self.flip_test = flip_test
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "cpu", flip_test: bool | None = None
    ) -> PoseEstimator:
        from mobilevitpose.runs import load_checkpoint

        module, _ = load_checkpoint(path)
        model = module.model.to(device).eval()

        @torch.inference_mode()
        def network(crops: np.ndarray) -> np.ndarray:
            images = model.normalise(torch.from_numpy(crops).to(device))
            return model(images).float().cpu().numpy()

        flip = module.flip_test if flip_test is None else flip_test
        return cls(network, module.codec, flip_test=flip)

    @classmethod
    def from_onnx(cls, path: str | Path, flip_test: bool | None = None) -> PoseEstimator:
        from mobilevitpose.export import INPUT_NAME, OUTPUT_NAME, load_onnx

        session, metadata = load_onnx(path)
        if "codec" not in metadata:
            raise ValueError(
                f"{path} carries no codec metadata; export it from a checkpoint with mvp-export"
            )

        mean, std = metadata["mean"], metadata["std"]

        def network(crops: np.ndarray) -> np.ndarray:
            # The graph takes normalised float crops, as a device runtime feeds it.
            images = normalise_images(torch.from_numpy(crops), mean, std).numpy()
            return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

        codec = HeatmapCodec(**metadata["codec"])
        # The training run's setting, as from_checkpoint uses it (files exported before the
        # setting was recorded: on).
        flip = metadata.get("flip_test", True) if flip_test is None else flip_test
        return cls(network, codec, flip_test=flip)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", device: str = "cpu",
             flip_test: bool | None = None) -> PoseEstimator:  # fmt: skip
        """A checkpoint (.ckpt, PyTorch) or an exported model (.onnx, ONNX Runtime)."""
        path = Path(path).expanduser()
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}; allowed: {', '.join(BACKENDS)}")
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path} (a .ckpt or .onnx file)")
        if backend == "auto":
            backend = "onnx" if path.suffix == ".onnx" else "torch"
        if backend == "onnx":
            if path.suffix != ".onnx":
                raise ValueError(f"backend=onnx needs an exported .onnx file; got {path}")
            return cls.from_onnx(path, flip_test=flip_test)
        if path.suffix == ".onnx":
            raise ValueError(f"{path} is an ONNX file; use backend=onnx (or auto)")
        return cls.from_checkpoint(path, device, flip_test)

    def crops(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, ...]:
        """uint8 RGB crops (N, 3, h, w) and their centres and scales (N, 2) in image px."""
        udp = self.codec.kind == "udp"
        crops, centers, scales = [], [], []
        for box in boxes_xyxy:
            crop = val_crop(np.asarray(box, dtype=np.float32), self.input_size)
            matrix = crop.image_matrix(self.input_size, udp)
            pixels = cv2.warpAffine(image_bgr, matrix, self.input_size, flags=cv2.INTER_LINEAR)
            crops.append(to_rgb_tensor(pixels).numpy())
            centers.append(crop.center)
            scales.append(crop.scale)
        return np.stack(crops), np.stack(centers), np.stack(scales)

    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """Network heatmaps, flip-tested as validation does when `flip_test` is on."""
        if not self.flip_test:
            return self.network(crops)
        return flip_test(self.network, crops, FLIP_INDICES, shift=self.codec.flip_shift)

    def __call__(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> dict[str, np.ndarray]:
        """Keypoints (N, K, 2) in image px, their scores (N, K), and the crops' areas (N,)
        (OKS-NMS uses them) for N person boxes (N, 4) xyxy in image px."""
        k = len(FLIP_INDICES)
        if len(boxes_xyxy) == 0:
            empty = np.zeros((0, k), np.float32)
            return {"keypoints_img": np.zeros((0, k, 2), np.float32), "keypoint_scores": empty,
                    "areas": np.zeros(0, np.float32)}  # fmt: skip
        crops, centers, scales = self.crops(image_bgr, boxes_xyxy)
        heatmaps = np.concatenate(
            [self.heatmaps(crops[i : i + self.batch_size])
             for i in range(0, len(crops), self.batch_size)]
        )  # fmt: skip
        keypoints_img, scores = self.codec.decode_to_image(heatmaps, centers, scales)
        return {"keypoints_img": keypoints_img, "keypoint_scores": scores,
                "areas": np.prod(scales, axis=1)}  # fmt: skip


@dataclass(frozen=True)
class Frame:
    image_id: int
    file_name: str
    image_bgr: np.ndarray


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return files


def coco_image_id(path: Path) -> int | None:
    """COCO names images by id (000000000785.jpg -> 785)."""
    return int(path.stem) if path.stem.isdigit() else None


@dataclass
class Boxes:
    """Person boxes per image id (xyxy image px, scores), and the file name -> id map that an
    annotation file gives (a detection file has none: ids then come from COCO file names)."""

    by_image: dict[int, tuple[np.ndarray, np.ndarray]]
    ids_by_file: dict[str, int]
    source: Path


def load_boxes(path: str | Path) -> Boxes:
    """Person boxes from a COCO detection-results list or a COCO annotation file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"boxes file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"boxes file {path} is not valid JSON: {err}") from err
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        entries = [a for a in data["annotations"] if a.get("category_id", 1) == 1
                   and not a.get("iscrowd", 0)]  # fmt: skip
        ids_by_file = {im["file_name"]: int(im["id"]) for im in data["images"]}
    elif isinstance(data, list):
        entries = [d for d in data if isinstance(d, dict) and d.get("category_id", 1) == 1]
        ids_by_file = {}
    else:
        raise ValueError(
            f"boxes file {path} is neither a COCO detection-results list nor a COCO annotation "
            "file (a dict with 'images' and 'annotations')"
        )
    grouped: dict[int, tuple[list, list]] = {}
    empty = 0
    for i, entry in enumerate(entries):
        if "image_id" not in entry or len(entry.get("bbox", ())) != 4:
            raise ValueError(f"box {i} in {path} needs an 'image_id' and a 4-value xywh 'bbox'")
        if min(entry["bbox"][2:]) <= 0:  # no crop can be cut from it
            empty += 1
            continue
        boxes, scores = grouped.setdefault(int(entry["image_id"]), ([], []))
        boxes.append(bbox_xywh_to_xyxy(np.asarray(entry["bbox"], dtype=np.float32)))
        scores.append(float(entry.get("score", 1.0)))
    if empty:
        log.info("%s: skipped %d boxes of zero or negative size", path, empty)
    by_image = {key: (np.stack(b), np.asarray(s, np.float32)) for key, (b, s) in grouped.items()}
    return Boxes(by_image, ids_by_file, path)


def image_ids(files: Sequence[Path], boxes: Boxes | None) -> list[int]:
    """An id per image: from the annotation file's file names, from COCO file names, or, when
    some name is not a number and no boxes need matching, each file's position (1-based)."""
    if boxes is None and any(coco_image_id(path) is None for path in files):
        return list(range(1, len(files) + 1))
    ids = []
    for path in files:
        if boxes is not None and boxes.ids_by_file:
            if path.name not in boxes.ids_by_file:
                raise ValueError(
                    f"image {path} is not listed in the annotation file {boxes.source}"
                )
            ids.append(boxes.ids_by_file[path.name])
        elif boxes is not None:
            image_id = coco_image_id(path)
            if image_id is None:
                raise ValueError(
                    f"cannot match {path.name} to the detection file {boxes.source}: detections "
                    "name images by id, so the files need COCO names (000000000785.jpg); pass the "
                    "COCO annotation file as --boxes instead"
                )
            ids.append(image_id)
        else:
            ids.append(coco_image_id(path))
    if len(set(ids)) != len(ids):
        raise ValueError("two input images map to the same image id; rename them")
    return ids


def check_boxes_match(boxes: Boxes, known_ids: Sequence[int], what: str) -> None:
    unknown = sorted(set(boxes.by_image) - set(known_ids))
    if unknown:
        raise ValueError(
            f"{boxes.source} has boxes for {len(unknown)} image id(s) that are not among the "
            f"{what}: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}; give the boxes of "
            "these inputs only"
        )


def read_images(files: Sequence[Path], ids: Sequence[int]) -> Iterator[Frame]:
    for path, image_id in zip(files, ids, strict=True):
        yield Frame(image_id, path.name, read_image(path))


def open_video(path: Path) -> tuple[cv2.VideoCapture, int, float]:
    """The capture, its frame count as the container states it (a progress-bar estimate),
    and its frame rate."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {path} (corrupt, or a codec OpenCV lacks)")
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return capture, frames, capture.get(cv2.CAP_PROP_FPS) or 25.0


def read_video(capture: cv2.VideoCapture, stem: str) -> Iterator[Frame]:
    """Frames with ids 0, 1, ... (a detection file for a video names frames by these ids)."""
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield Frame(index, f"{stem}_{index:06d}.jpg", frame)
        index += 1


def predict(
    model: str | Path,
    source: str | Path,
    out_dir: str | Path,
    boxes_file: str | Path | None = None,
    backend: str = "auto",
    device: str = "cpu",
    flip_test: bool | None = None,
    bbox_score_thr: float = 0.0,
    keypoint_draw_thr: float = 0.3,
    nms_thr: float | None = 0.9,
    render: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Predict every person of `source` (an image, a folder of images or a video) and write the
    results into `out_dir`; returns the COCO keypoint results."""
    source, out_dir = Path(source).expanduser(), Path(out_dir).expanduser()
    results_path = out_dir / RESULTS_FILE
    if results_path.exists() and not overwrite:
        raise FileExistsError(f"{results_path} exists; pick another --out or pass --overwrite")
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source} (an image, a folder or a video)")
    estimator = PoseEstimator.load(model, backend, device, flip_test)
    boxes = load_boxes(boxes_file) if boxes_file else None

    writer: cv2.VideoWriter | None = None
    if source.is_dir() or source.suffix.lower() in IMAGE_SUFFIXES:
        files = list_images(source) if source.is_dir() else [source]
        ids = image_ids(files, boxes)
        if boxes is not None:
            check_boxes_match(boxes, ids, f"{len(files)} input images")
        frames, total, kind = read_images(files, ids), len(files), "images"
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        capture, total, fps = open_video(source)
        frames, kind = read_video(capture, source.stem), "frames"
    else:
        raise ValueError(
            f"{source} is neither an image ({', '.join(IMAGE_SUFFIXES)}), a video "
            f"({', '.join(VIDEO_SUFFIXES)}) nor a folder"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    results, index = [], []
    for frame in tqdm(
        frames, total=total, unit=kind[:-1], desc="mvp-predict", disable=not progress
    ):
        height, width = frame.image_bgr.shape[:2]
        if boxes is None:
            frame_boxes = np.array([[0, 0, width, height]], np.float32)
            frame_scores = np.ones(1, np.float32)
        else:
            frame_boxes, frame_scores = boxes.by_image.get(
                frame.image_id, (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
            )
            keep = frame_scores >= bbox_score_thr
            frame_boxes, frame_scores = frame_boxes[keep], frame_scores[keep]
        predicted = estimator(frame.image_bgr, frame_boxes)
        frame_results = coco_results(
            image_ids=np.full(len(frame_boxes), frame.image_id),
            instance_ids=np.arange(len(frame_boxes)),
            bbox_scores=frame_scores,
            nms_thr=nms_thr,
            **predicted,
        )
        results.extend(frame_results)
        index.append({"id": frame.image_id, "file_name": frame.file_name,
                      "width": width, "height": height})  # fmt: skip
        if render:
            drawn = _draw(frame.image_bgr, frame_results, keypoint_draw_thr)
            if kind == "frames":
                if writer is None:
                    video = str(out_dir / f"{source.stem}.pose.mp4")
                    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                    writer = cv2.VideoWriter(video, fourcc, fps, (width, height))
                    if not writer.isOpened():
                        raise RuntimeError(f"OpenCV cannot write {video} (mp4v codec missing?)")
                writer.write(drawn)
            else:
                (out_dir / "vis").mkdir(exist_ok=True)
                cv2.imwrite(str(out_dir / "vis" / frame.file_name), drawn)
    if writer is not None:
        writer.release()
    if kind == "frames" and boxes is not None:  # a video's frame count is known only now
        check_boxes_match(boxes, [entry["id"] for entry in index], f"{len(index)} video frames")
    write_results(results_path, results, overwrite=overwrite)
    (out_dir / "images.json").write_text(json.dumps(index, indent=1) + "\n")
    return results


def _draw(image_bgr: np.ndarray, results: list[dict], score_thr: float) -> np.ndarray:
    if not results:
        return image_bgr
    flat = np.asarray([r["keypoints"] for r in results], dtype=np.float32).reshape(
        len(results), -1, 3
    )
    return draw_skeleton(image_bgr, flat[..., :2], flat[..., 2], score_thr=score_thr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mvp-predict", description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", type=Path, help="a mvp-train checkpoint (.ckpt) or a mvp-export .onnx file"
    )
    parser.add_argument("input", type=Path, help="an image, a folder of images, or a video")
    parser.add_argument("--boxes", type=Path, help="COCO detection results or annotation file; "
                        "default: one box per image, the whole image")  # fmt: skip
    parser.add_argument("--out", type=Path, help="output folder (default: <input name>_poses)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: onnx for .onnx files, else torch")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--no-flip", action="store_true", help="turn the flip test off")
    parser.add_argument("--bbox-thr", type=float, default=0.0, help="drop boxes scored lower")
    parser.add_argument("--kpt-thr", type=float, default=0.3, help="hide keypoints scored lower")
    parser.add_argument("--nms-thr", type=float, default=0.9, help="OKS-NMS threshold per image")
    parser.add_argument("--no-nms", action="store_true", help="keep every person box's result")
    parser.add_argument("--no-render", action="store_true", help="write the JSON files only")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    args = parser.parse_args(argv)
    source = args.input.expanduser().resolve()
    out = args.out or source.with_name(f"{source.stem}_poses")
    results = predict(
        args.model, args.input, out, boxes_file=args.boxes, backend=args.backend,
        device=args.device, flip_test=False if args.no_flip else None, bbox_score_thr=args.bbox_thr,
        keypoint_draw_thr=args.kpt_thr, nms_thr=None if args.no_nms else args.nms_thr,
        render=not args.no_render, overwrite=args.overwrite,
    )  # fmt: skip
    print(f"{len(results)} people -> {out / RESULTS_FILE}")


if __name__ == "__main__":
    main()
