"""Keras 3: a model's (or layer's) weights by their paths, in and out, on any backend.

Imported only when an object is a Keras object. Every weight in `model.weights` is recorded under
its `path` (e.g. "mlp/hidden/kernel"), trainable or not (BatchNormalization's moving statistics
included; optimizer state is not part of the model). Keras auto-numbers unnamed layers per process
(dense, dense_1, ...), so name the model and its layers for paths that match across processes.
On the torch backend the variables are torch tensors and go through mvcdb.frameworks.torch, bit
for bit; on other backends through keras.ops.convert_to_numpy.

The training callback is MvcdbCallback (mvcdb.frameworks.keras_callback), re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..dtypes import EXTENSION_ITEMSIZE
from ..errors import MvcdbError
from .checks import Slot, check_fits

NAMING_HINT = (
    "; Keras weights are matched by path (model/layer/weight): give the model and its layers"
    " explicit names so paths agree across processes"
)


def __getattr__(name: str) -> Any:
    if name == "MvcdbCallback":  # lazily: the callback module subclasses keras.callbacks.Callback
        from .keras_callback import MvcdbCallback

        return MvcdbCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _weights(obj: Any) -> list[Any]:
    weights = getattr(obj, "weights", None)
    if weights is None:
        raise MvcdbError(f"expected a Keras model or layer, got {type(obj).__name__}")
    if not weights and not getattr(obj, "built", True):
        raise MvcdbError(
            f"the Keras {type(obj).__name__} is not built yet: it has no weights"
            " (build it, or call it once on data, first)"
        )
    return list(weights)


def dtype_name(keras_dtype: str) -> str:
    """The mvcdb dtype name of a Keras dtype string ('float32' -> '<f4', 'bfloat16' stays)."""
    if keras_dtype in EXTENSION_ITEMSIZE:
        return keras_dtype
    try:
        return np.dtype(keras_dtype).str
    except TypeError:
        raise MvcdbError(f"Keras dtype {keras_dtype!r} cannot be stored by mvcdb") from None


def _value_to_numpy(path: str, variable: Any) -> np.ndarray:
    value = variable.value
    if type(value).__module__.startswith("torch"):
        from .torch import to_numpy

        return to_numpy(path, value)
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


def params_from_object(obj: Any) -> dict[str, np.ndarray]:
    """{weight path: numpy array} of a Keras model or layer, exact to the bit."""
    out: dict[str, np.ndarray] = {}
    for w in _weights(obj):
        path = str(w.path)
        if path in out:
            raise MvcdbError(f"two Keras weights share the path {path!r}; give the layers distinct names")
        out[path] = _value_to_numpy(path, w)
    return out


def load_into(obj: Any, params: Mapping[str, np.ndarray], *, partial: bool = False) -> None:
    """Assign restored weights to a Keras model or layer by path, after checking them all."""
    weights = {str(w.path): w for w in _weights(obj)}
    expected: dict[str, Slot] = {
        path: (dtype_name(str(w.dtype)), tuple(int(d) for d in w.shape)) for path, w in weights.items()
    }
    check_fits(
        expected,
        params,
        what=f"the Keras {type(obj).__name__} {getattr(obj, 'name', '')!r}",
        partial=partial,
        hint=NAMING_HINT,
    )
    for path, arr in params.items():
        w = weights[path]
        if type(w.value).__module__.startswith("torch"):
            from .torch import from_numpy

            w.assign(from_numpy(arr))  # same dtype: keras copies the tensor as is, no cast
        else:
            w.assign(arr)
