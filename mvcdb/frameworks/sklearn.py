"""scikit-learn: a fitted estimator's learned attributes, in and out; pipelines by step name.

Imported only when an object is a scikit-learn estimator. What an estimator learned lives in its
public attributes ending in "_" (coef_, intercept_, classes_, n_features_in_...) and in private
ones (a single leading "_", set by fit: SVC's _dual_coef_, KMeans' _n_threads, OneHotEncoder's
_n_features_outs), which predict/transform need too. Numbers are recorded as tensors named "coef_"
(private numpy arrays and scalars: "_dual_coef_") or, inside a Pipeline / FeatureUnion /
ColumnTransformer, "step.coef_" (nested: "outer.inner.coef_"); a list of numeric arrays (MLP's
coefs_) as one tensor an item, "coefs_.0", "coefs_.1"... The rest that JSON can hold exactly
(string class labels, categories, feature names, numpy dtypes, Python scalars of private state so
a bool stays a bool, a LabelBinarizer/LabelEncoder, the estimator's own constructor parameter as
ColumnTransformer's _remainder holds it) goes into the version's metadata under "sklearn", with
the estimator's class (and its steps'), which restore(into=) checks. Private configuration set
outside fit() (set_output, metadata routing) is neither recorded nor touched.

Public state that only a pickle could hold (a fitted tree's tree_, nested estimators) makes
record() refuse the estimator: mvcdb stores no pickles, and an incomplete model would not predict.
Such private state is skipped and named in the metadata ("skipped"); restore(into=) then refuses,
unless it is known to serve training only (MLP's _optimizer, _random_state) or to be rebuilt from
what was stored (KNeighbors' KDTree/BallTree _tree, built again from _fit_X as fit() builds it).
restore(into=) sets the private state back and removes from the target any private fitted state
the recorded estimator did not have, so a fresh instance and one fitted on other data end up
alike: never the other fit's leftovers. Versions recorded before private state was (no "skipped"
key) restore as they always did: public state only, private attributes left alone.
Tensors are stored C-ordered; the names of arrays an estimator held Fortran-ordered
(PCA.components_) are listed in the metadata ("fortran") and restored in that order, since BLAS
sums in another order otherwise and results would differ in the last bit.
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

#: Private attributes that are configuration set outside fit() (set_output, metadata routing,
#: unpickling), not learned state: neither recorded nor touched by restore(into=).
_CONFIG = frozenset({"_metadata_request", "_sklearn_output_config", "_sklearn_version"})

#: Private state only a pickle could hold but that serves training only (partial_fit, warm
#: starts), never predict/transform: skipping it does not stop restore(into=).
_TRAINING_ONLY = frozenset({"_optimizer", "_random_state", "_loss_function_"})

#: Skipped private state that restore(into=) builds again from what was stored: (attribute, type).
_REBUILT = frozenset({("_tree", "KDTree"), ("_tree", "BallTree")})

#: Helper estimators a private attribute may hold (MLPClassifier's _label_binarizer), stored as
#: their constructor parameters and learned state; decoding maps these names to these classes only.
_HELPERS = ("LabelBinarizer", "LabelEncoder")


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


def _is_private(attr: str) -> bool:
    """A private attribute name (one leading '_', not a dunder, not configuration)."""
    return (
        attr.startswith("_") and not attr.startswith("__") and not attr.endswith("__") and attr not in _CONFIG
    )


def _params(est: Any) -> dict[str, Any]:
    """est's constructor parameters (get_params(deep=False)); {} for an object without them."""
    get = getattr(est, "get_params", None)
    try:
        found = get(deep=False) if callable(get) else {}
    except Exception:  # a third-party estimator breaking sklearn's contract: no parameters known
        return {}
    return dict(found) if isinstance(found, Mapping) else {}


def _attributes(est: Any, *, private: bool = True) -> Iterator[tuple[str, Any]]:
    """(attribute, value) of est's own learned attributes (and private fitted ones), sorted by name."""
    holders = _STEP_HOLDERS if _steps(est) else ()
    params = _params(est) if private else {}
    for attr, value in sorted(vars(est).items()):
        if _is_learned(attr) and attr not in holders:
            yield attr, value
        elif private and _is_private(attr) and attr not in params:
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


def _helper_classes() -> dict[str, type]:
    """The helper estimator classes _HELPERS names (sklearn is imported: an estimator is at hand)."""
    from sklearn import preprocessing

    return {name: getattr(preprocessing, name) for name in _HELPERS}


def _encode(value: Any, refs: Mapping[int, str] | None = None) -> Any:
    """value as JSON that _decode turns back into an equal value of the same type.

    Plain None/bool/str/int/finite float stay themselves; the rest is tagged: {"scalar", "dtype"}
    (numpy scalars), {"array", "dtype", "shape"}, {"list"}, {"tuple"}, {"dict"}, {"slice"},
    {"float": "nan"}, {"np_dtype": "<f8"} (a numpy dtype), {"param": name} (the very object that
    is the owner's constructor parameter name, looked up in refs by id: ColumnTransformer's
    _remainder), {"estimator", "params", "state"} (a LabelBinarizer or LabelEncoder). Anything
    else (an object: a fitted tree, an estimator) raises _Unstorable.
    """
    refs = refs or {}
    if isinstance(value, np.generic):
        return {"scalar": _encode_numpy(np.asarray(value))[0], "dtype": value.dtype.str}
    if isinstance(value, np.ndarray):
        return {"array": _encode_numpy(value), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.dtype):
        if value.fields is not None or value.subdtype is not None or value.metadata:
            raise _Unstorable
        return {"np_dtype": value.str}
    if value is None or type(value) in (bool, str, int):  # exactly: an IntEnum would come back an int
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if type(value) in (list, tuple):
        return {type(value).__name__: [_encode(v, refs) for v in value]}
    if type(value) is dict and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, refs) for k, v in value.items()}}
    if type(value) is slice:
        return {"slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    name = type(value).__name__
    if name in _HELPERS and type(value) is _helper_classes()[name]:
        params = _params(value)
        state = {k: _encode(v) for k, v in vars(value).items() if k not in params}
        return {"estimator": name, "params": _encode(params), "state": state}
    if id(value) in refs:
        return {"param": refs[id(value)]}
    raise _Unstorable


def _decode(data: Any, owner: Any = None) -> Any:
    """The value _encode(value) was made from; owner is the estimator whose parameters refs named."""
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
            return [_decode(v, owner) for v in data["list"]]
        if "tuple" in data:
            return tuple(_decode(v, owner) for v in data["tuple"])
        if "dict" in data:
            return {str(k): _decode(v, owner) for k, v in data["dict"].items()}
        if "slice" in data:
            return slice(*(_decode(v) for v in data["slice"]))
        if "float" in data:
            return float(data["float"])
        if "np_dtype" in data:
            return np.dtype(str(data["np_dtype"]))
        if "param" in data and str(data["param"]) in _params(owner):
            return _params(owner)[str(data["param"])]
        if "estimator" in data and isinstance(data["state"], dict):
            helper = _helper_classes()[str(data["estimator"])](**_decode(data["params"]))
            for attr, value in data["state"].items():
                if _is_learned(str(attr)) or _is_private(str(attr)):
                    setattr(helper, str(attr), _decode(value))
            return helper
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
    skipped: dict[str, str] = field(default_factory=dict)  # private name -> its type's name
    fortran: list[str] = field(default_factory=list)  # tensors held Fortran-ordered


def _capture(obj: Any, *, private: bool = True) -> _Learned:
    """Every learned attribute of obj and its steps (and private fitted ones), as tensors, JSON,
    or named as unstorable (public) / skipped (private). Private Python scalars stay JSON, so
    their exact type (a bool that sklearn tests with `is`) comes back."""
    out = _Learned()
    for path, est in _estimators(obj):
        out.classes[path] = _class_name(est)
        refs = {id(v): k for k, v in _params(est).items()} if private else {}
        for attr, value in _attributes(est, private=private):
            name = f"{path}.{attr}" if path else attr
            hidden = attr.startswith("_")
            numeric = not hidden or isinstance(value, (np.ndarray, np.generic, list))
            arr = _numeric(value) if numeric else None
            items = _numeric_list(value) if numeric and arr is None else None
            if arr is not None or items is not None:
                found = (
                    {name: arr} if arr is not None else {f"{name}.{i}": a for i, a in enumerate(items or ())}
                )
                out.params.update(found)
                out.fortran += [
                    n
                    for n, a in found.items()
                    if a.ndim > 1 and not a.flags.c_contiguous and a.flags.f_contiguous
                ]
            else:
                try:
                    out.state[name] = _encode(value, refs if hidden else None)
                except _Unstorable:
                    if hidden:
                        out.skipped[name] = type(value).__name__
                    else:
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
    the classes of the steps, the learned state that is not numbers (restore(into=) needs it) and
    the private state skipped as only a pickle could hold it ({name: type name})."""
    import sklearn

    from .training import training_metadata

    learned = _recordable(obj)
    return training_metadata(
        framework="sklearn",
        version=str(sklearn.__version__),
        model=obj,
        datasets=None,
        hyper=None,
        extra={
            META_KEY: {
                "classes": learned.classes,
                "state": learned.state,
                "skipped": learned.skipped,
                "fortran": learned.fortran,
            }
        },
        metadata=None,
    )


def _split(name: str) -> tuple[str, str, int | None]:
    """(step path, attribute, list index) of a name like "mlp.coefs_.1" or "svc._dual_coef_"."""
    parts = name.split(".")
    listed = len(parts) > 1 and parts[-1].isdigit() and (_is_learned(parts[-2]) or _is_private(parts[-2]))
    index = int(parts.pop()) if listed else None
    *path, attr = parts
    if not (_is_learned(attr) or _is_private(attr)):
        raise MvcdbError(f"{name!r} is not a learned attribute (those end in '_' or start with one '_')")
    return ".".join(path), attr, index


def _owner(est: Any, name: str) -> tuple[Any, str, int | None]:
    """The (sub-)estimator, attribute and list index a name like "mlp.coefs_.1" refers to."""
    path, attr, index = _split(name)
    return _step_at(est, path, name), attr, index


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


def _recorded(
    metadata: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(classes, state, skipped) that record() put into a version's metadata; empty for versions
    recorded without model=, and skipped None for those recorded before private state was."""
    info = (metadata or {}).get(META_KEY)
    if info is None:
        return {}, {}, None
    if not isinstance(info, Mapping):
        info = {}
    parts = [info.get("classes"), info.get("state"), info.get("skipped", {})]
    if not all(isinstance(m, Mapping) for m in parts):
        raise MvcdbError(f"the version's metadata[{META_KEY!r}] is not what record() writes")
    classes, state, skipped = (dict(m) for m in parts)
    return classes, state, (skipped if "skipped" in info else None)


def _fortran(metadata: Mapping[str, Any] | None) -> set[str]:
    """Names of the tensors the recorded estimator held Fortran-ordered (none in older versions)."""
    info = (metadata or {}).get(META_KEY)
    names = info.get("fortran", []) if isinstance(info, Mapping) else []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise MvcdbError(f"the version's metadata[{META_KEY!r}] is not what record() writes")
    return set(names)


def _check_skipped(obj: Any, skipped: Mapping[str, Any]) -> None:
    """Refuse to restore an estimator whose skipped private state it may need to predict."""
    needed = []
    for name, kind in skipped.items():
        attr = _split(str(name))[1]
        if attr not in _TRAINING_ONLY and (attr, str(kind)) not in _REBUILT:
            needed.append(f"{name} ({kind})")
    if needed:
        raise MvcdbError(
            f"cannot restore into the {type(obj).__name__}: the version lacks its private fitted"
            f" state {', '.join(needed)}, which only a pickle could hold (mvcdb stores no pickles)"
            f" and without which it would not predict like the recorded one; restore(ref) still"
            f" gives the arrays"
        )


def _rebuilt(est: Any, attr: str, kind: str, values: Mapping[str, Any]) -> Any:
    """The skipped private value est gets back, built from what is being restored (values)."""
    from sklearn.neighbors import BallTree, KDTree

    def get(name: str) -> Any:
        return values[name] if name in values else getattr(est, name)

    try:
        tree = {"KDTree": KDTree, "BallTree": BallTree}[kind]
        metric_params = get("effective_metric_params_") or {}
        return tree(get("_fit_X"), get("leaf_size"), metric=get("effective_metric_"), **metric_params)
    except Exception as exc:  # whatever sklearn raises on state it cannot build a tree from
        raise MvcdbError(f"cannot rebuild the {type(est).__name__}'s {attr} ({kind}): {exc}") from exc


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
        out.append((est, attr, _decode(data, est)))
    return out


def _private_fixes(
    obj: Any, assignments: list[tuple[Any, str, Any]], skipped: Mapping[str, Any]
) -> tuple[list[tuple[Any, str, Any]], list[tuple[Any, str]]]:
    """(rebuilt values to set, stale private attributes to delete) so that obj and its steps hold
    exactly the recorded private state: no leftovers of another fit."""
    values: dict[int, dict[str, Any]] = {}
    for est, attr, value in assignments:
        values.setdefault(id(est), {})[attr] = value
    rebuilt = []
    for name, kind in skipped.items():
        est, attr, _ = _owner(obj, str(name))
        if (attr, str(kind)) in _REBUILT:
            rebuilt.append((est, attr, _rebuilt(est, attr, str(kind), values.get(id(est), {}))))
            values.setdefault(id(est), {})[attr] = None
    stale = []
    for _, est in _estimators(obj):
        params, kept = _params(est), values.get(id(est), {})
        stale += [(est, a) for a in vars(est) if _is_private(a) and a not in params and a not in kept]
    return rebuilt, stale


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
    partial). For versions that recorded private state, a full restore also refuses one whose
    skipped private state the estimator may need, rebuilds what can be, and deletes the target's
    private fitted attributes the recorded estimator did not have (another fit's leftovers).
    A fitted estimator must hold the same public numeric learned attributes with the same shapes
    and dtypes; an unfitted one (a fresh estimator or pipeline with the same steps) takes them.
    """
    classes, state, skipped = _recorded(metadata)
    _check_classes(obj, classes)
    if skipped is not None and not partial:
        _check_skipped(obj, skipped)
    current = _capture(obj, private=False).params
    if current:
        expected: dict[str, Slot] = {
            name: (stored_dtype_name(arr.dtype), tuple(arr.shape)) for name, arr in current.items()
        }
        public = {name: arr for name, arr in params.items() if not _split(name)[1].startswith("_")}
        check_fits(expected, public, what=f"the fitted {type(obj).__name__}", partial=partial)
    fortran = _fortran(metadata)
    params = {name: np.asfortranarray(arr) if name in fortran else arr for name, arr in params.items()}
    assignments = _assignments(obj, params, {} if partial else state, partial=partial)
    rebuilt, stale = (
        _private_fixes(obj, assignments, skipped) if skipped is not None and not partial else ([], [])
    )
    for est, attr, value in assignments + rebuilt:
        setattr(est, attr, value)
    for est, attr in stale:
        delattr(est, attr)
