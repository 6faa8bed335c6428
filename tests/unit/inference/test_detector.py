"""The person detector: torchvision's architectures with weights the tests write themselves
(never the network), person boxes only, its options, and the offline error."""

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from mobilevitpose.inference import detector as detector_lib
from mobilevitpose.inference.detector import DETECTORS, PersonDetector

SMALLEST = "ssdlite320_mobilenet_v3_large"


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    model = DETECTORS[SMALLEST].builder(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path_factory.mktemp("detector") / "ssdlite.pth"
    torch.save(model.state_dict(), path)
    return path


def test_a_weights_file_of_the_architecture_runs_on_a_photo(weights_file):
    detector = PersonDetector(SMALLEST, weights_file=weights_file, score_threshold=0.0)
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes, scores = detector(image)
    assert boxes.dtype == np.float32 and boxes.shape == (len(scores), 4)
    assert np.all(np.diff(scores) <= 0), "best first"
    assert np.all(boxes[:, 2:] >= boxes[:, :2])


class _Fixed(torch.nn.Module):
    """Stands in for the network: what a COCO detector returns for one image."""

    def forward(self, images):
        return [{
            "boxes": torch.tensor([[0, 0, 10, 10], [1, 1, 5, 5], [2, 2, 8, 9], [3, 3, 6, 6.0]]),
            "labels": torch.tensor([1, 3, 1, 1]),  # 3: a car
            "scores": torch.tensor([0.4, 0.99, 0.9, 0.1]),
        }]  # fmt: skip


def test_person_boxes_only_above_the_threshold_best_first_at_most_max_people(weights_file):
    detector = PersonDetector(SMALLEST, weights_file=weights_file, score_threshold=0.3)
    detector.model = _Fixed()
    image = np.zeros((20, 20, 3), np.uint8)
    boxes, scores = detector(image)
    np.testing.assert_allclose(scores, [0.9, 0.4])
    np.testing.assert_allclose(boxes, [[2, 2, 8, 9], [0, 0, 10, 10]])
    detector.max_people = 1
    assert detector(image)[0].tolist() == [[2, 2, 8, 9]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "yolo"}, r"unknown detector 'yolo' \(--detector\); allowed: .*none"),
        ({"score_threshold": 1.5}, r"--det-score-thr must be in \[0, 1\]"),
        ({"max_people": 0}, r"--max-people must be >= 1"),
    ],
)
def test_bad_options_are_named(weights_file, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PersonDetector(**{"name": SMALLEST, "weights_file": weights_file, **kwargs})


def test_weights_of_another_detector_are_refused(tmp_path, weights_file):
    with pytest.raises(ValueError, match=r"weights given for detector .*fasterrcnn.* another"):
        PersonDetector("fasterrcnn_mobilenet_v3_large_320_fpn", weights_file=weights_file)
    missing = tmp_path / "missing.pth"
    with pytest.raises(FileNotFoundError, match=r"missing\.pth \(--detector-weights\)"):
        PersonDetector(SMALLEST, weights_file=missing)


def test_offline_without_a_file_one_line_names_the_detector_the_cache_and_the_fix(
    tmp_path, monkeypatch
):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    # torchvision's weights enum downloads through its own import of torch's hub function.
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConnectionError) as caught:
        PersonDetector(SMALLEST)
    message = str(caught.value)
    assert SMALLEST in message and str(tmp_path / "hub") in message
    assert "--detector-weights FILE" in message and "--detector none" in message
    assert detector_lib.DETECTORS[SMALLEST].weights.url in message
