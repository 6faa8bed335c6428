import json
from pathlib import Path

import pytest

from mobilevitpose.files import write_json


def test_write_json_refuses_to_overwrite_when_asked_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    results = [{"image_id": 1, "category_id": 1, "keypoints": [1.5] * 51, "score": 0.25}]
    path = write_json(tmp_path / "run" / "keypoints.json", results, overwrite=False)
    assert json.loads(path.read_text()) == results
    with pytest.raises(FileExistsError, match=r"keypoints\.json"):
        write_json(path, [], overwrite=False)
    assert json.loads(path.read_text()) == results
    write_json(path, [])
    assert json.loads(path.read_text()) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["keypoints.json"]
