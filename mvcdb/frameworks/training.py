"""What the training-loop helpers share: the metadata they fill in and scalar-only log values.

The PyTorch helper (torch_training) and the Keras callback (keras_callback) both record the same
metadata shape, so `db.versions(where="metadata.hyper.lr < 0.01")` works whichever trained it:
    {"datasets": {...}, "hyper": {...}, "framework": {"name", "version"}, "model_class": "...",
     ...the caller's own metadata (which wins on a clash)}
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """value with what JSON cannot hold (NaN/inf, objects) turned into null, e.g. optimizer configs."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def training_metadata(
    *,
    framework: str,
    version: str,
    model: object,
    datasets: Mapping[str, Any] | None,
    hyper: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The metadata a helper records: datasets, hyper-parameters, framework, model class, extras.

    `extra` holds what the helper found out itself (optimizer settings, frozen layers...); the
    caller's `metadata` wins on any clash, and its "hyper" entries win over discovered ones.
    """
    meta: dict[str, Any] = {
        "framework": {"name": framework, "version": version},
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
    }
    for key, value in extra.items():
        if key != "hyper":
            meta[key] = value
    merged_hyper = {**dict(extra.get("hyper") or {}), **dict(hyper or {})}
    if merged_hyper:
        meta["hyper"] = merged_hyper
    if datasets:
        meta["datasets"] = dict(datasets)
    own = dict(metadata or {})
    if "hyper" in own and isinstance(own["hyper"], Mapping) and "hyper" in meta:
        own["hyper"] = {**meta["hyper"], **own["hyper"]}
    meta.update(own)
    return meta


def scalar(value: Any) -> int | float | None:
    """A loggable metric value as a Python int (integers stay exact, as run.log keeps them) or
    float (tensors of one element too); None if not a scalar (bools: logged as arrays, no metric)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    numel = getattr(value, "numel", None)
    count = numel() if callable(numel) else size() if callable(size) else size
    if callable(item) and count == 1:
        try:
            result = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        if isinstance(result, numbers.Real) and not isinstance(result, bool):
            return scalar(result)
    return None
