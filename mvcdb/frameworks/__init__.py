"""Framework objects in and out: PyTorch, Keras 3 and scikit-learn models as named arrays.

`record(name, model=obj)` calls params_from_object(obj); `restore(ref, into=obj)` calls
load_into(obj, params). Which framework an object belongs to is read from the module names of its
classes, so a framework is imported only when the object is one of its own: `import mvcdb` never
imports torch, keras or sklearn.

Training-loop helpers: mvcdb.frameworks.torch_training (track / TorchRun) and
mvcdb.frameworks.keras_callback (MvcdbCallback).
"""

from __future__ import annotations

from collections.abc import Mapping

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


def params_from_object(obj: object) -> dict[str, np.ndarray]:
    """The named parameters of a framework object, as numpy arrays (bit-exact; views when possible).

    Raises:
        MvcdbError: obj is no supported framework object, or holds something mvcdb cannot store.
    """
    framework = framework_of(obj)
    if framework == "torch":
        from . import torch as torch_support

        return torch_support.params_from_object(obj)
    if framework == "keras":
        from . import keras as keras_support

        return keras_support.params_from_object(obj)
    if framework == "sklearn":
        from . import sklearn as sklearn_support

        return sklearn_support.params_from_object(obj)
    raise MvcdbError(f"model= takes {SUPPORTED}; got {type(obj).__name__} (pass a dict of arrays as params=)")


def load_into(obj: object, params: Mapping[str, np.ndarray], *, partial: bool = False) -> None:
    """Load restored parameters into a framework object, all or nothing.

    Names, shapes and dtypes are checked first; the first mismatch raises MvcdbError naming it,
    and nothing is loaded. partial=True (restore(..., names=[...], into=obj)) loads only the
    given names, leaving the object's other parameters as they are.
    """
    framework = framework_of(obj)
    if framework == "torch":
        from . import torch as torch_support

        torch_support.load_into(obj, params, partial=partial)
    elif framework == "keras":
        from . import keras as keras_support

        keras_support.load_into(obj, params, partial=partial)
    elif framework == "sklearn":
        from . import sklearn as sklearn_support

        sklearn_support.load_into(obj, params, partial=partial)
    else:
        raise MvcdbError(f"into= takes {SUPPORTED}; got {type(obj).__name__}")


__all__ = ["FRAMEWORKS", "framework_of", "load_into", "params_from_object"]
