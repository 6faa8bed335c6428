"""Writes tests/data/mmpose_import_coco_sample.json: what MMPose 1.3.2's top-down inference gives
for coco_sample's val2017 images and person detections, with Lite-HRNet-18's COCO config and the
reproducible weights of tests/unit/training/mmpose_fakes.py (plus 1 on the heatmap biases, so
that every heatmap has a positive maximum).

Run in MMPose's venv, never the project's (MMPose is no dependency of mobilevitpose):
    bash ../shared/tools/mmpose/install_mmpose.sh /tmp/venvMM
    /tmp/venvMM/bin/python tools/mmpose_coco_sample_reference.py
"""

import json
import sys
from pathlib import Path

import mmpose
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(SHARED / "tools" / "mmpose"))
sys.path.insert(0, str(REPO / "tests" / "unit" / "training"))
import mm_stubs  # noqa: E402  (stand-ins for compiled mmcv ops the model code imports)

mm_stubs.install_all()

from mmpose.apis import inference_topdown, init_model  # noqa: E402
from mmpose_fakes import fake_weights, mmpose_keys  # noqa: E402

CONFIG = (
    Path(mmpose.__file__).parent
    / ".mim/configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_litehrnet-18_8xb64-210e_coco-256x192.py"
)
SAMPLE = SHARED / "data" / "coco_sample"
DETECTIONS = SAMPLE / "person_detection_results" / "COCO_val2017_detections_AP_H_56_person.json"
OUT = REPO / "tests" / "data" / "mmpose_import_coco_sample.json"
GAIN, BIAS, BBOX_THR = 0.35, 1.0, 0.0


def main() -> None:
    model = init_model(str(CONFIG), checkpoint=None, device="cpu")
    state = fake_weights(mmpose_keys("litehrnet_18"), seed=0, gain=GAIN)
    state["head.final_layer.bias"] += BIAS
    model.load_state_dict(state)
    images = {p.name: p for p in (SAMPLE / "val2017").glob("*.jpg")}
    detections = json.loads(DETECTIONS.read_text())
    results = []
    for image_id in sorted({d["image_id"] for d in detections}):
        path = images[f"{image_id:012d}.jpg"]
        kept = [d for d in detections if d["image_id"] == image_id and d["score"] >= BBOX_THR]
        boxes = np.array([d["bbox"] for d in kept], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        for box, sample in zip(boxes, inference_topdown(model, str(path), boxes, "xyxy")):
            pred = sample.pred_instances
            results.append(
                {
                    "image_id": image_id,
                    "box": box.tolist(),
                    "keypoints": pred.keypoints[0].tolist(),
                    "keypoint_scores": pred.keypoint_scores[0].tolist(),
                }
            )
    reference = {"mmpose": mmpose.__version__, "gain": GAIN, "bias": BIAS, "bbox_thr": BBOX_THR}
    OUT.write_text(json.dumps({**reference, "results": results}) + "\n")
    print(f"wrote {OUT}: {len(results)} people")


if __name__ == "__main__":
    main()
