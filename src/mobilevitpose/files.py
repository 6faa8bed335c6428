"""Writing the JSON files a run, a benchmark or a prediction leaves behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    overwrite: bool = True,
    indent: int | None = 2,
    **dumps_kwargs: Any,
) -> Path:
    """Write `obj` as JSON to `path` atomically: a temporary file beside it, then a rename, so a
    reader (or a killed run) never leaves half a file. `overwrite=False` refuses an existing file.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps(obj, indent=indent, **dumps_kwargs)
    try:
        tmp.write_text(text + "\n" if indent is not None else text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
