"""scikit-learn: a fitted estimator's learned attributes, in and out; pipelines by step name.

Imported only when an object is a scikit-learn estimator. What an estimator learned lives in its
public attributes ending in "_" (coef_, intercept_, classes_, n_features_in_...). Those that are
numbers (arrays and scalars) are recorded as tensors named "coef_" or, inside a Pipeline /
FeatureUnion / ColumnTransformer, "step.coef_" (nested: "outer.inner.coef_"); a list of numeric
arrays (MLP's coefs_) as one tensor an item, "coefs_.0", "coefs_.1"... The rest that JSON can hold
exactly (string class labels, categories, feature names, plain strings) goes into the version's
metadata under "sklearn", with the estimator's class (and its steps'), which restore(into=) checks.
State that only a pickle could hold (a fitted tree's tree_, nested estimators) makes record()
refuse the estimator: mvcdb stores no pickles, and an incomplete model would not predict.
Private fitted state (KMeans' _n_threads, MLPClassifier's _label_binarizer) is not recorded:
such estimators restore into an already fitted instance. Restored arrays are C-ordered: where an
estimator held a Fortran-ordered array (PCA.components_) results can differ in the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MvcdbError
from ..tensors import check_dtype
from .checks import Slot, check_fits, stored_dtype_name

#: The metadata key of what record() adds: {"classes": {step path: class}, "state": {name: JSON}}.
META_KEY = "sklearn"

#: Attributes of a fitted composite that hold its steps, which are recorded step by step instead.
_STEP_HOLDERS = ("transformers_", "named_transformers_")

#: numpy kinds whose values JSON holds exactly (floats up to 64 bits; no complex, bytes, dates).
_JSON_KINDS = "biufUO"


class _Unstorable(Exception):
    """A learned value that is neither numbers nor JSON-able: only a pickle could hold it."""


def _steps(est: Any) -> list[tuple[str, Any]]:
    """The named sub-estimators of a composite (Pipeline, FeatureUnion, fitted ColumnTransformer)."""
    for attr in ("steps", "transformer_list", "transformers_"):
        items = getattr(est, attr, None)
        if isinstance(items, list) and all(isinstance(i, tuple) and len(i) >= 2 for i in items):
            return [(str(i[0]), i[1]) for i in items if not isinstance(i[1], str) and i[1] is not None]
    return []


def _estimators(est: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(step path, estimator) of est ("") and of its steps, depth first ("features.pca")."""
    yield path, est
    for step, sub in _steps(est):
        yield from _estimators(sub, f"{path}.{step}" if path else step)


def _step_at(est: Any, path: str, name: str) -> Any:
    """The sub-estimator at a step path ("" is est itself); name is what the error names."""
    for step in path.split(".") if path else ():
        found = dict(_steps(est)).get(step)
        if found is None:
            raise MvcdbError(f"cannot load {name!r} into the {type(est).__name__}: it has no step {step!r}")
        est = found
    return est


def _is_learned(attr: str) -> bool:
    """sklearn's convention: public attributes ending in a single '_' are learned by fit()."""
    return attr.endswith("_") and not attr.startswith("_") and not attr.endswith("__")


def _attributes(est: Any) -> Iterator[tuple[str, Any]]:
    """(attribute, value) of est's own learned attributes, sorted by name."""
    holders = _STEP_HOLDERS if _steps(est) else ()
    for attr, value in sorted(vars(est).items()):
        if _is_learned(attr) and attr not in holders:
            yield attr, value


def _class_name(est: Any) -> str:
    return f"{type(est).__module__}.{type(est).__qualname__}"


def _numeric(value: Any) -> np.ndarray | None:
    """value as a numpy array if it is a numeric array or scalar, else None."""
    if isinstance(value, (bool, int, float, complex, np.generic, np.ndarray)):
        try:
            arr = np.asarray(value)
            check_dtype("", arr.dtype)
        except (OverflowError, MvcdbError):
            return None
        return arr
    return None


def _numeric_list(value: Any) -> list[np.ndarray] | None:
    """The items of a non-empty list of numeric arrays (MLP's coefs_), else None."""
    if type(value) is not list:
        return None
    items: list[np.ndarray] = []
    for v in value:
        arr = _numeric(v) if isinstance(v, np.ndarray) else None
        if arr is None:
            return None
        items.append(arr)
    return items or None


def _encode_numpy(arr: np.ndarray) -> list[Any]:
    """The items of an array as JSON, flattened; _Unstorable for dtypes JSON cannot hold exactly."""
    kind = arr.dtype.kind
    if kind not in _JSON_KINDS or arr.dtype.fields is not None or (kind == "f" and arr.dtype.itemsize > 8):
        raise _Unstorable
    return [_encode(v) for v in arr.ravel().tolist()]


def _encode(value: Any) -> Any:
    """value as JSON that _decode turns back into an equal value of the same type.

    Plain None/bool/str/int/finite float stay themselves; the rest is tagged: {"scalar", "dtype"}
    (numpy scalars), {"array", "dtype", "shape"}, {"list"}, {"tuple"}, {"dict"}, {"slice"},
    {"float": "nan"}. Anything else (an object: a fitted tree, an estimator) raises _Unstorable.
    """
    if isinstance(value, np.generic):
        return {"scalar": _encode_numpy(np.asarray(value))[0], "dtype": value.dtype.str}
    if isinstance(value, np.ndarray):
        return {"array": _encode_numpy(value), "dtype": value.dtype.str, "shape": list(value.shape)}
    if value is None or type(value) in (bool, str, int):  # exactly: an IntEnum would come back an int
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if type(value) in (list, tuple):
        return {type(value).__name__: [_encode(v) for v in value]}
    if type(value) is dict and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v) for k, v in value.items()}}
    if type(value) is slice:
        return {"slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    raise _Unstorable


def _decode(data: Any) -> Any:
    """The value _encode(value) was made from."""
    if not isinstance(data, dict):
        return data
    try:
        if "scalar" in data:
            return np.array(_decode(data["scalar"]), dtype=np.dtype(data["dtype"]))[()]
        if "array" in data:
            dtype = np.dtype(data["dtype"])
            items = [_decode(v) for v in data["array"]]
            arr = np.empty(len(items), dtype=dtype)
            for i, item in enumerate(items):  # one by one: object arrays must not be re-shaped
                arr[i] = item
            return arr.reshape(tuple(data["shape"]))
        if "list" in data:
            return [_decode(v) for v in data["list"]]
        if "tuple" in data:
            return tuple(_decode(v) for v in data["tuple"])
        if "dict" in data:
            return {str(k): _decode(v) for k, v in data["dict"].items()}
        if "slice" in data:
            return slice(*(_decode(v) for v in data["slice"]))
        if "float" in data:
            return float(data["float"])
    except (TypeError, ValueError, KeyError, AttributeError):
        pass
    raise MvcdbError(f"the version's metadata holds unreadable scikit-learn state: {str(data)[:80]}")


@dataclass
class _Learned:
    """What an estimator learned, sorted for storage: tensors, JSON state, classes by step path."""

    params: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    unstorable: list[str] = field(default_factory=list)


def _capture(obj: Any) -> _Learned:
    """Every learned attribute of obj and its steps, as tensors, JSON, or named as unstorable."""
    out = _Learned()
    for path, est in _estimators(obj):
        out.classes[path] = _class_name(est)
        for attr, value in _attributes(est):
            name = f"{path}.{attr}" if path else attr
            arr = _numeric(value)
            items = _numeric_list(value) if arr is None else None
            if arr is not None:
                out.params[name] = arr
            elif items is not None:
                out.params.update((f"{name}.{i}", item) for i, item in enumerate(items))
            else:
                try:
                    out.state[name] = _encode(value)
                except _Unstorable:
                    out.unstorable.append(f"{name} ({type(value).__name__})")
    return out


def _recordable(obj: Any) -> _Learned:
    """_capture(obj), refusing an estimator whose learned state mvcdb cannot store (or has none)."""
    learned = _capture(obj)
    if learned.unstorable:
        several = len(learned.unstorable) > 1
        raise MvcdbError(
            f"cannot record the {type(obj).__name__}: its learned attribute{'s' if several else ''}"
            f" {', '.join(learned.unstorable)} {'are' if several else 'is'} neither numbers nor JSON"
            " data, and mvcdb stores no pickles (without it the restored model would not work);"
            " record the arrays you need with params= instead"
        )
    if not learned.params and not learned.state:
        raise MvcdbError(f"the {type(obj).__name__} has no learned attributes (ending in '_'): is it fitted?")
    return learned


def params_from_object(obj: Any) -> dict[str, np.ndarray]:
    """{"coef_": ..., "step.mean_": ..., "coefs_.0": ...}: the numeric learned state of obj."""
    return _recordable(obj).params


def model_metadata(obj: Any) -> dict[str, Any]:
    """What record(model=obj) adds to the metadata: the framework, the class, and under "sklearn"
    the classes of the steps and the learned state that is not numbers (restore(into=) needs it)."""
    import sklearn

    from .training import training_metadata

    learned = _recordable(obj)
    return training_metadata(
        framework="sklearn",
        version=str(sklearn.__version__),
        model=obj,
        datasets=None,
        hyper=None,
        extra={META_KEY: {"classes": learned.classes, "state": learned.state}},
        metadata=None,
    )


def _owner(est: Any, name: str) -> tuple[Any, str, int | None]:
    """The (sub-)estimator, attribute and list index a name like "mlp.coefs_.1" refers to."""
    parts = name.split(".")
    index = int(parts.pop()) if len(parts) > 1 and parts[-1].isdigit() and _is_learned(parts[-2]) else None
    *path, attr = parts
    if not _is_learned(attr):
        raise MvcdbError(f"{name!r} is not a learned attribute (those end in '_')")
    return _step_at(est, ".".join(path), name), attr, index


def _check_classes(obj: Any, classes: Mapping[str, Any]) -> None:
    """Refuse an estimator (or step) of another class than the version's."""
    for path, recorded in classes.items():
        est = _step_at(obj, str(path), str(path))
        if str(recorded).rpartition(".")[2] != type(est).__qualname__.rpartition(".")[2]:
            where = f"its step {path!r} is" if path else "it is"
            raise MvcdbError(
                f"cannot load into the {type(obj).__name__}: {where} a {type(est).__name__} but the"
                f" version holds a {recorded}; restore into an estimator of that class"
            )


def _recorded(metadata: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(classes, state) that record() put into a version's metadata; empty for older versions."""
    info = (metadata or {}).get(META_KEY)
    if info is None:
        return {}, {}
    classes, state = (info.get("classes"), info.get("state")) if isinstance(info, Mapping) else (None, None)
    if not isinstance(classes, Mapping) or not isinstance(state, Mapping):
        raise MvcdbError(f"the version's metadata[{META_KEY!r}] is not what record() writes")
    return dict(classes), dict(state)


def _assignments(
    obj: Any, params: Mapping[str, np.ndarray], state: Mapping[str, Any], *, partial: bool
) -> list[tuple[Any, str, Any]]:
    """(estimator, attribute, value) to set, lists rebuilt in order; MvcdbError before any is set."""
    out: list[tuple[Any, str, Any]] = []
    lists: dict[tuple[int, str], tuple[Any, dict[int, Any]]] = {}
    for name, arr in params.items():
        est, attr, index = _owner(obj, name)
        value = arr[()] if arr.ndim == 0 else arr
        if index is None:
            out.append((est, attr, value))
        else:
            lists.setdefault((id(est), attr), (est, {}))[1][index] = value
    for (_, attr), (est, items) in lists.items():
        current = getattr(est, attr, None)
        if partial and isinstance(current, list) and max(items) < len(current):
            out.append((est, attr, [items.get(i, v) for i, v in enumerate(current)]))
        elif not partial and sorted(items) == list(range(len(items))):
            out.append((est, attr, [items[i] for i in range(len(items))]))
        else:
            raise MvcdbError(
                f"cannot load items {sorted(items)} of {attr!r} into the {type(est).__name__}:"
                f" {'it holds no such list items' if partial else 'they are not numbered 0..n-1'}"
            )
    for name, data in state.items():
        est, attr, _ = _owner(obj, name)
        out.append((est, attr, _decode(data)))
    return out


def load_into(
    obj: Any,
    params: Mapping[str, np.ndarray],
    *,
    partial: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Set the learned attributes back, after checking the class, every name, and shape/dtype where fitted.

    metadata is the version's: with what record(model=) put there, the estimator's class (and its
    steps') must be the recorded ones and the non-numeric state is restored too (all of it, unless
    partial). A fitted estimator must hold the same numeric learned attributes with the same shapes
    and dtypes; an unfitted one (a fresh estimator or pipeline with the same steps) takes them.
    """
    classes, state = _recorded(metadata)
    _check_classes(obj, classes)
    current = _capture(obj).params
    if current:
        expected: dict[str, Slot] = {
            name: (stored_dtype_name(arr.dtype), tuple(arr.shape)) for name, arr in current.items()
        }
        check_fits(expected, params, what=f"the fitted {type(obj).__name__}", partial=partial)
    for est, attr, value in _assignments(obj, params, {} if partial else state, partial=partial):
        setattr(est, attr, value)
