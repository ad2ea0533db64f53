"""Framework objects in and out: PyTorch, Keras 3 and scikit-learn models as named arrays.

`record(name, model=obj)` calls params_from_object(obj) (and model_metadata(obj) for what the
version's metadata must also hold); `restore(ref, into=obj)` calls load_into(obj, params,
metadata=the version's metadata). Which framework an object belongs to is read from the module
names of its classes, so a framework is imported only when the object is one of its own:
`import mvcdb` never imports torch, keras or sklearn.

Training-loop helpers: mvcdb.frameworks.torch_training (track / TorchRun) and
mvcdb.frameworks.keras_callback (MvcdbCallback).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import MvcdbError

#: Checked in this order along the class hierarchy; a Keras model on the torch backend is also
#: a torch.nn.Module, and its Keras classes come first in its MRO.
FRAMEWORKS = ("keras", "torch", "sklearn")

SUPPORTED = "a PyTorch nn.Module or state_dict, a Keras 3 model, or a fitted scikit-learn estimator"


def framework_of(obj: object) -> str | None:
    """'keras', 'torch' or 'sklearn' if obj (or, for a state_dict, its values) is theirs; else None."""
    for cls in type(obj).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in FRAMEWORKS:
            return root
    if isinstance(obj, Mapping) and any(type(v).__module__.startswith("torch") for v in obj.values()):
        return "torch"  # a state_dict: name -> tensor
    return None


def _support(obj: object, usage: str) -> tuple[str, ModuleType]:
    """obj's framework and mvcdb's module for it (imported now); usage starts the error."""
    framework = framework_of(obj)
    if framework is None:
        hint = " (pass a dict of arrays as params=)" if usage.startswith("model=") else ""
        raise MvcdbError(f"{usage} {SUPPORTED}; got {type(obj).__name__}{hint}")
    return framework, importlib.import_module(f"{__name__}.{framework}")


def params_from_object(obj: object) -> dict[str, np.ndarray]:
    """The named parameters of a framework object, as numpy arrays (bit-exact; views when possible).

    Raises:
        MvcdbError: obj is no supported framework object, or holds something mvcdb cannot store.
    """
    _, support = _support(obj, "model= takes")
    params: dict[str, np.ndarray] = support.params_from_object(obj)
    return params


def model_metadata(obj: object) -> dict[str, Any]:
    """What record(model=obj) adds to the version's metadata so restore(into=) can check and
    rebuild obj: for scikit-learn the classes and the learned state that is not numbers; else {}."""
    framework, support = _support(obj, "model= takes")
    meta: dict[str, Any] = support.model_metadata(obj) if framework == "sklearn" else {}
    return meta


def metadata_for(obj: object, metadata: Any) -> Any:
    """The metadata record(model=obj, metadata=...) stores: the caller's, plus what
    model_metadata(obj) finds, which restore(into=) relies on and so wins over the caller's keys
    of the same name. Anything but a mapping is passed on as given (record refuses it)."""
    found = model_metadata(obj)
    if not found or not (metadata is None or isinstance(metadata, Mapping)):
        return metadata
    return {**found, **(metadata or {}), **{k: v for k, v in found.items() if k in _RESTORE_KEYS}}


#: Keys of model_metadata that restore(into=) reads back (the rest is information for people).
_RESTORE_KEYS = frozenset({"sklearn"})


def load_into(
    obj: object,
    params: Mapping[str, np.ndarray],
    *,
    partial: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Load restored parameters into a framework object, all or nothing.

    Names, shapes and dtypes are checked first; the first mismatch raises MvcdbError naming it,
    and nothing is loaded. partial=True (restore(..., names=[...], into=obj)) loads only the
    given names, leaving the object's other parameters as they are. metadata is the version's
    (scikit-learn reads the recorded class and non-numeric state from it).
    """
    framework, support = _support(obj, "into= takes")
    recorded = {"metadata": metadata} if framework == "sklearn" else {}  # only it records metadata
    support.load_into(obj, params, partial=partial, **recorded)


__all__ = ["FRAMEWORKS", "framework_of", "load_into", "metadata_for", "model_metadata", "params_from_object"]
