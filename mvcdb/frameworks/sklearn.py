"""scikit-learn: a fitted estimator's learned array attributes, in and out; pipelines by step name.

Imported only when an object is a scikit-learn estimator. What an estimator learned lives in its
public attributes ending in "_" (coef_, intercept_, mean_, scale_, n_features_in_...); the numeric
ones (arrays and scalars) are recorded, named "coef_" or, inside a Pipeline / FeatureUnion /
ColumnTransformer, "step.coef_" (nested: "outer.inner.coef_"). Non-numeric learned state (string
class labels, fitted trees, feature names) is not recorded: estimators whose state is arrays
(linear models, scalers, PCA, naive Bayes...) restore into a fresh, unfitted estimator. Those that
also keep private fitted state (KMeans' _n_threads) restore into an already fitted instance.
Restored arrays are C-ordered: where an estimator held a Fortran-ordered array (PCA.components_)
results can differ in the last bit, as BLAS then sums in another order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import MvcdbError
from ..tensors import check_dtype
from .checks import Slot, check_fits, stored_dtype_name


def _steps(est: Any) -> list[tuple[str, Any]]:
    """The named sub-estimators of a composite (Pipeline, FeatureUnion, fitted ColumnTransformer)."""
    for attr in ("steps", "transformer_list", "transformers_"):
        items = getattr(est, attr, None)
        if isinstance(items, list) and all(isinstance(i, tuple) and len(i) >= 2 for i in items):
            return [(str(i[0]), i[1]) for i in items if not isinstance(i[1], str) and i[1] is not None]
    return []


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


def _learned(est: Any, prefix: str = "") -> Iterator[tuple[str, Any, str, np.ndarray]]:
    """(full name, owning estimator, attribute, value) of every numeric learned attribute."""
    for attr, value in sorted(vars(est).items()):
        if attr.endswith("_") and not attr.startswith("_") and not attr.endswith("__"):
            arr = _numeric(value)
            if arr is not None:
                yield prefix + attr, est, attr, arr
    for step, sub in _steps(est):
        yield from _learned(sub, f"{prefix}{step}.")


def params_from_object(obj: Any) -> dict[str, np.ndarray]:
    """{"coef_": ..., "step.mean_": ...}: the numeric learned attributes of a fitted estimator."""
    out = {name: arr for name, _, _, arr in _learned(obj)}
    if not out:
        raise MvcdbError(f"the {type(obj).__name__} has no learned array attributes: is it fitted?")
    return out


def _owner(est: Any, name: str) -> tuple[Any, str]:
    """The (sub-)estimator and attribute a parameter name like "scaler.mean_" refers to."""
    *path, attr = name.split(".")
    for step in path:
        found = dict(_steps(est)).get(step)
        if found is None:
            raise MvcdbError(f"cannot load {name!r} into the {type(est).__name__}: it has no step {step!r}")
        est = found
    if not attr.endswith("_") or attr.startswith("_"):
        raise MvcdbError(f"{name!r} is not a learned attribute (those end in '_')")
    return est, attr


def load_into(obj: Any, params: Mapping[str, np.ndarray], *, partial: bool = False) -> None:
    """Set the learned attributes back, after checking every name, and shape/dtype where fitted.

    A fitted estimator must hold the same learned attributes with the same shapes and dtypes; an
    unfitted one (a fresh estimator or pipeline with the same steps) takes them as they are.
    """
    current = {name: arr for name, _, _, arr in _learned(obj)}
    targets = {name: _owner(obj, name) for name in params}  # unknown steps fail here, before any set
    if current:
        expected: dict[str, Slot] = {
            name: (stored_dtype_name(arr.dtype), tuple(arr.shape)) for name, arr in current.items()
        }
        check_fits(expected, params, what=f"the fitted {type(obj).__name__}", partial=partial)
    for name, arr in params.items():
        est, attr = targets[name]
        setattr(est, attr, arr[()] if arr.ndim == 0 else arr)
