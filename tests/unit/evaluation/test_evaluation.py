import json
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.utils.data import DistributedSampler

from mobilevitpose.coco import read_annotations
from mobilevitpose.evaluation.coco_metric import STAT_NAMES, CocoKeypointEvaluator
from mobilevitpose.evaluation.gather import gather_predictions
from mobilevitpose.evaluation.nms import oks_nms, soft_oks_nms
from mobilevitpose.evaluation.rescoring import instance_scores
from mobilevitpose.evaluation.results import coco_results
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.geometry import bbox_xywh_to_xyxy, bbox_xyxy_to_center_scale, fix_aspect_ratio
from mobilevitpose.keypoints import OKS_SIGMAS

DEFAULTS = EvaluationSettings()
NO_NMS = EvaluationSettings(nms_mode="none")

INPUT_SIZE = (192, 256)  # (width, height)
TINY_PERSONS_PER_IMAGE = {11: 3, 22: 2, 33: 2}  # 7 valid instances: does not divide by 2


def write_tiny_coco(path: Path) -> Path:
    """A 3-image COCO keypoint file with 7 labelled people of medium and large size."""
    rng = np.random.default_rng(0)
    images, annotations = [], []
    ann_id = 100
    for image_id, count in TINY_PERSONS_PER_IMAGE.items():
        images.append(
            {"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": 640, "height": 480}
        )
        for _ in range(count):
            w, h = rng.uniform(40, 200), rng.uniform(80, 300)
            x0, y0 = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            xy = np.stack([rng.uniform(x0, x0 + w, 17), rng.uniform(y0, y0 + h, 17)], axis=-1)
            v = rng.choice([0, 1, 2], size=17, p=[0.2, 0.3, 0.5])
            xy[v == 0] = 0.0
            keypoints = np.concatenate([xy.round(2), v[:, None]], axis=-1).ravel()
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [float(x0), float(y0), float(w), float(h)],
                    "area": 0.6 * float(w * h),
                    "num_keypoints": int((v > 0).sum()),
                    "keypoints": keypoints.tolist(),
                }
            )
            ann_id += 1
    # An unlabelled person: COCOeval ignores it and our GT predictions must skip it.
    annotations.append(
        {
            "id": ann_id,
            "image_id": 11,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [5.0, 5.0, 30.0, 60.0],
            "area": 1200.0,
            "num_keypoints": 0,
            "keypoints": [0] * 51,
        }
    )
    names = [f"k{i}" for i in range(17)]
    categories = [{"id": 1, "name": "person", "keypoints": names, "skeleton": []}]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def gt_predictions(ann_file: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Valid GT instances as predictions (scores from visibility) and their xywh boxes."""
    coco = COCO(str(ann_file))
    anns = [
        a
        for a in coco.loadAnns(coco.getAnnIds())
        if not a["iscrowd"] and a["num_keypoints"] > 0 and a["bbox"][2] > 0 and a["bbox"][3] > 0
    ]
    keypoints = np.array([a["keypoints"] for a in anns], dtype=np.float32).reshape(len(anns), -1, 3)
    bbox_xywh = np.array([a["bbox"] for a in anns], dtype=np.float32)
    _, scale = bbox_xyxy_to_center_scale(bbox_xywh_to_xyxy(bbox_xywh))
    scale = fix_aspect_ratio(scale, INPUT_SIZE[0] / INPUT_SIZE[1])
    preds = {
        "image_ids": np.array([a["image_id"] for a in anns]),
        "instance_ids": np.array([a["id"] for a in anns]),
        "keypoints_img": keypoints[..., :2],
        "keypoint_scores": (keypoints[..., 2] > 0).astype(np.float32),
        "bbox_scores": np.ones(len(anns), dtype=np.float32),
        "areas": np.prod(scale, axis=1),
    }
    return preds, bbox_xywh


def shifted(preds: dict[str, np.ndarray], offsets: np.ndarray) -> dict[str, np.ndarray]:
    return {**preds, "keypoints_img": preds["keypoints_img"] + offsets[:, None, :]}


@pytest.fixture
def tiny_ann(tmp_path: Path) -> Path:
    return write_tiny_coco(tmp_path / "tiny_keypoints.json")


@pytest.fixture(params=["tiny", "coco_sample", "synthetic"])
def ann_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "tiny":
        return write_tiny_coco(tmp_path / "tiny_keypoints.json")
    root = request.getfixturevalue(f"{request.param}_root")
    return root / "annotations" / "person_keypoints_val2017.json"


def test_ground_truth_scores_perfect_and_a_shift_lowers_it(ann_file: Path) -> None:
    evaluator = CocoKeypointEvaluator(read_annotations(ann_file))
    preds, bbox_xywh = gt_predictions(ann_file)
    perfect = evaluator.evaluate(coco_results(**preds, settings=DEFAULTS))
    assert perfect["AP"] == 1.0
    assert perfect["AR"] == 1.0
    assert perfect["AP75"] == 1.0

    # Shifting every keypoint by a fraction of its box lowers AP, more for a larger shift.
    slightly = evaluator.evaluate(
        coco_results(**shifted(preds, 0.03 * bbox_xywh[:, 2:]), settings=DEFAULTS)
    )
    badly = evaluator.evaluate(
        coco_results(**shifted(preds, 0.1 * bbox_xywh[:, 2:]), settings=DEFAULTS)
    )
    assert 0.0 < slightly["AP"] < 1.0
    assert slightly["AR"] < 1.0
    assert badly["AP"] < slightly["AP"]


def test_evaluator_reports_every_stat_and_leaves_results_untouched(tiny_ann: Path) -> None:
    evaluator = CocoKeypointEvaluator(read_annotations(tiny_ann))
    preds, _ = gt_predictions(tiny_ann)
    results = coco_results(**preds, settings=DEFAULTS)
    before = json.dumps(results)
    stats = evaluator.evaluate(results)
    assert tuple(stats) == STAT_NAMES
    assert all(isinstance(v, float) for v in stats.values())
    assert json.dumps(results) == before  # loadRes adds id/area/bbox to what it is given


def test_evaluator_empty_results_give_zeros(tiny_ann: Path) -> None:
    assert CocoKeypointEvaluator(read_annotations(tiny_ann)).evaluate([]) == dict.fromkeys(
        STAT_NAMES, 0.0
    )


def test_evaluator_rejects_bad_input(tiny_ann: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        CocoKeypointEvaluator(read_annotations(tmp_path / "missing.json"))
    evaluator = CocoKeypointEvaluator(read_annotations(tiny_ann))
    good = {"image_id": 11, "category_id": 1, "keypoints": [1.0] * 51, "score": 0.5}
    with pytest.raises(ValueError, match="image_id 999"):
        evaluator.evaluate([{**good, "image_id": 999}])
    with pytest.raises(ValueError, match="51 values"):
        evaluator.evaluate([{**good, "keypoints": [1.0] * 34}])
    with pytest.raises(ValueError, match="score"):
        evaluator.evaluate([{k: v for k, v in good.items() if k != "score"}])


def test_bbox_keypoint_score_threshold_and_all_below() -> None:
    kpt = np.array([[0.9, 0.5, 0.2, 0.1], [0.2, 0.1, 0.0, 0.15], [0.3, 0.3, 0.3, 0.3]])
    bbox = np.array([0.5, 1.0, 0.8])
    # 0.2 is not above the threshold: only 0.9 and 0.5 count in the first row; none in the second.
    np.testing.assert_allclose(
        instance_scores(kpt, bbox, "bbox_keypoint", 0.2), [0.5 * 0.7, 0.0, 0.8 * 0.3]
    )
    np.testing.assert_allclose(
        instance_scores(kpt, bbox, "bbox_keypoint", 0.0), [0.5 * 1.7 / 4, 0.45 / 3, 0.8 * 0.3]
    )
    assert (
        instance_scores(kpt.astype(np.float32), bbox.astype(np.float32), "bbox_keypoint", 0.2).dtype
        == np.float32
    )
    with pytest.raises(ValueError, match="bbox_scores"):
        instance_scores(kpt, bbox[:2], "bbox_keypoint", 0.2)


def test_the_other_score_modes() -> None:
    kpt = np.array([[0.9, 0.5, 0.2, 0.1], [0.2, 0.1, 0.0, 0.15]])
    bbox = np.array([0.5, 1.0])
    np.testing.assert_allclose(instance_scores(kpt, bbox, "bbox", 0.2), bbox)
    np.testing.assert_allclose(instance_scores(kpt, bbox, "keypoint", 0.2), [0.425, 0.1125])
    np.testing.assert_allclose(
        instance_scores(kpt, bbox, "bbox_rle", 0.2), [0.5 + 0.425 + 0.9, 1.0 + 0.1125 + 0.2]
    )
    with pytest.raises(ValueError, match=r"score_mode='rle'; allowed: bbox_keypoint, bbox"):
        instance_scores(kpt, bbox, "rle", 0.2)
    with pytest.raises(ValueError, match=r"evaluation\.nms_mode='nms'; allowed: oks_nms"):
        EvaluationSettings(nms_mode="nms")
    # Checkpoints written before nms_mode existed turned NMS off with nms_thr: null.
    assert EvaluationSettings.from_dict({"nms_thr": None}).nms_mode == "none"


def test_soft_oks_nms_decays_overlapping_people_and_keeps_at_most_max_dets() -> None:
    rng = np.random.default_rng(3)
    person = rng.uniform(0, 100, size=(17, 2))
    # Instances 0 and 1 are the same person, 2 another one far away.
    keypoints = np.stack([person, person + 0.5, person + 500])
    areas = np.full(3, 100.0**2)
    scores = np.array([0.9, 0.8, 0.7])
    # Greedy NMS drops 1; soft NMS keeps it but ranks it behind 2, its score decayed by the
    # near-total overlap with 0.
    np.testing.assert_array_equal(oks_nms(keypoints, scores, areas, 0.9), [0, 2])
    np.testing.assert_array_equal(soft_oks_nms(keypoints, scores, areas, 0.9), [0, 2, 1])
    np.testing.assert_array_equal(soft_oks_nms(keypoints, scores, areas, 0.9, max_dets=2), [0, 2])


def _person(rng: np.random.Generator, offset: float) -> np.ndarray:
    return rng.uniform(0, 100, size=(17, 2)) + offset


def test_oks_nms_drops_duplicates_keeps_people_orders_by_score() -> None:
    rng = np.random.default_rng(1)
    a, b = _person(rng, 0.0), _person(rng, 300.0)
    keypoints = np.stack([a, b, a + 0.5, b + 40.0])
    scores = np.array([0.6, 0.7, 0.9, 0.5])
    areas = np.full(4, 100.0 * 130.0)
    # 2 (best) suppresses its near-copy 0; 1 stays; 3 is b moved far enough to be someone else.
    np.testing.assert_array_equal(oks_nms(keypoints, scores, areas, 0.9), [2, 1, 3])
    np.testing.assert_array_equal(oks_nms(keypoints, scores, areas, thr=1.0), [2, 1, 0, 3])


def _pycocotools_oks(gt_xy: np.ndarray, dt_xy: np.ndarray, area: float) -> float:
    # Reference value from COCOeval.computeOks: a fully visible GT with `area`.
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": area,
                "num_keypoints": 17,
                "bbox": [0, 0, 1, 1],
                "keypoints": np.concatenate([gt_xy, np.full((17, 1), 2.0)], 1).ravel().tolist(),
            }
        ],
    }
    gt.createIndex()
    dt_keypoints = np.concatenate([dt_xy, np.ones((17, 1))], 1).ravel().tolist()
    dt = gt.loadRes([{"image_id": 1, "category_id": 1, "score": 1.0, "keypoints": dt_keypoints}])
    coco_eval = COCOeval(gt, dt, iouType="keypoints")
    coco_eval.evaluate()
    return float(coco_eval.ious[(1, 1)][0, 0])


def test_oks_nms_threshold_keeps_equal_drops_above() -> None:
    rng = np.random.default_rng(2)
    a = _person(rng, 0.0)
    b = a + rng.normal(0, 3.0, size=a.shape)
    area = 90.0 * 120.0
    oks = _pycocotools_oks(a, b, area)
    assert 0.3 < oks < 0.99
    keypoints, scores, areas = np.stack([a, b]), np.array([0.9, 0.8]), np.full(2, area)
    np.testing.assert_array_equal(oks_nms(keypoints, scores, areas, thr=oks), [0, 1])
    np.testing.assert_array_equal(oks_nms(keypoints, scores, areas, thr=oks - 1e-9), [0])
    np.testing.assert_array_equal(oks_nms(keypoints, scores[::-1], areas, thr=oks - 1e-9), [1])
    with pytest.raises(ValueError, match="sigmas"):
        oks_nms(keypoints, scores, areas, 0.9, sigmas=OKS_SIGMAS[:5])


def test_coco_results_dedups_per_id_and_suppresses_only_within_an_image() -> None:
    rng = np.random.default_rng(3)
    a = _person(rng, 0.0)
    keypoints = np.stack([a, a, a, a + 0.1]).astype(np.float32)
    kwargs = {
        "image_ids": np.array([5, 5, 7, 7]),
        "instance_ids": np.array([1, 1, 2, 3]),  # instance 1 padded in twice (DDP)
        "keypoints_img": keypoints,
        "keypoint_scores": np.full((4, 17), 0.8, dtype=np.float32),
        "bbox_scores": np.array([0.9, 0.9, 0.9, 0.5], dtype=np.float32),
        "areas": np.full(4, 1e4),
    }
    results = coco_results(**kwargs, settings=DEFAULTS)
    # Image 5: one entry despite the repeat. Image 7: the lower-scored copy is suppressed,
    # but the identical person in image 5 is not (NMS does not cross images).
    assert [(r["image_id"], r["score"]) for r in results] == [
        (5, pytest.approx(0.72)),
        (7, pytest.approx(0.72)),
    ]
    assert results[0]["category_id"] == 1
    flat = np.array(results[1]["keypoints"]).reshape(17, 3)
    np.testing.assert_array_equal(flat[:, :2], keypoints[2])
    np.testing.assert_allclose(flat[:, 2], 0.8, rtol=1e-6)

    no_nms = coco_results(**kwargs, settings=NO_NMS)
    assert [r["image_id"] for r in no_nms] == [5, 7, 7]
    shuffled = {k: v[[3, 1, 2, 0]] for k, v in kwargs.items()}
    assert coco_results(**shuffled, settings=NO_NMS) == no_nms
    assert coco_results(**{k: v[:0] for k, v in kwargs.items()}, settings=DEFAULTS) == []
    with pytest.raises(ValueError, match="N rows"):
        coco_results(**{**kwargs, "areas": np.ones(3)}, settings=DEFAULTS)


def test_gather_predictions_is_identity_without_a_process_group() -> None:
    local = {"instance_ids": np.array([3, 3, 1]), "scores": np.array([0.1, 0.1, 0.2])}
    assert gather_predictions(local) is local
    with pytest.raises(ValueError, match="instance_ids"):
        gather_predictions({"scores": np.ones(2)})


def ddp_predictions(ann_file: Path) -> dict[str, np.ndarray]:
    """Imperfect predictions (varied shifts and scores) so the metrics are not trivially 1."""
    preds, bbox_xywh = gt_predictions(ann_file)
    n = len(preds["instance_ids"])
    preds = shifted(preds, 0.04 * np.arange(n)[:, None] * bbox_xywh[:, 2:])
    confidence = np.linspace(0.9, 0.3, n, dtype=np.float32)
    preds["keypoint_scores"] = preds["keypoint_scores"] * confidence[:, None]
    return preds


def _ddp_worker(rank: int, world_size: int, init_file: str, ann_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        preds = ddp_predictions(Path(ann_file))
        n = len(preds["instance_ids"])
        sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=False)
        indices = list(sampler)
        gathered = gather_predictions({k: v[indices] for k, v in preds.items()})
        metrics = CocoKeypointEvaluator(read_annotations(ann_file)).evaluate(
            coco_results(**gathered, settings=DEFAULTS)
        )
        report = {
            "local": len(indices),
            "ids": gathered["instance_ids"].tolist(),
            "metrics": metrics,
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gather_predictions_two_process_gloo_matches_single_process(
    tiny_ann: Path, tmp_path: Path
) -> None:
    world_size = 2
    mp.spawn(
        _ddp_worker,
        args=(world_size, str(tmp_path / "pg_init"), str(tiny_ann), str(tmp_path)),
        nprocs=world_size,
    )
    preds = ddp_predictions(tiny_ann)
    expected = CocoKeypointEvaluator(read_annotations(tiny_ann)).evaluate(
        coco_results(**preds, settings=DEFAULTS)
    )
    assert 0.0 < expected["AP"] < 1.0
    for rank in range(world_size):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert report["local"] == 4  # 7 instances -> 4 + 4 with one padded repeat
        assert sorted(report["ids"]) == sorted(preds["instance_ids"].tolist())
        assert report["metrics"] == expected
