"""Objects from config nodes that name their class or function in `_target_`, as Hydra writes
them: the one way the package turns config into objects, in training and inference alike.

Written out rather than calling `hydra.utils.instantiate` because inference (checkpoints and
exported files) must run without Hydra installed or imported. It covers what the configs use:
`_target_`, `_partial_`, `_recursive_: false` (nested nodes passed on as plain dicts) and
nested nodes; `_convert_` has nothing left to do, since nodes arrive as plain containers.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

_RESERVED = ("_target_", "_partial_", "_recursive_", "_convert_")


def locate(path: str) -> Any:
    """The object a dotted `_target_` path names, e.g. 'mobilevitpose.models.heads.DeconvHead'."""
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"_target_ {path!r} names nothing importable: {err}") from None


def build_from_config(node: Any, **kwargs: Any) -> Any:
    """Instantiate a config node of plain containers: mappings with `_target_` become objects
    (partials with `_partial_: true`), depth first unless `_recursive_: false`; everything else
    is returned as plain values. `kwargs` go to the top-level target as they are."""
    if isinstance(node, Mapping):
        recursive = node.get("_recursive_", True)
        values = {
            k: build_from_config(v) if recursive else v
            for k, v in node.items()
            if k not in _RESERVED
        }
        if "_target_" not in node:
            return {**values, **kwargs}
        target = locate(node["_target_"])
        if node.get("_partial_", False):
            return functools.partial(target, **values, **kwargs)
        return target(**values, **kwargs)
    if kwargs:
        raise TypeError(f"keyword arguments {sorted(kwargs)} given for a node without _target_")
    if isinstance(node, list | tuple):
        return [build_from_config(v) for v in node]
    return node
