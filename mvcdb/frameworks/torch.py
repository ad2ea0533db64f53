"""PyTorch: nn.Module and state_dict in and out, every dtype bit for bit (bfloat16, float8 too).

Imported only when an object is a torch object. A module is recorded as its state_dict (parameters
and persistent buffers such as BatchNorm's running stats and num_batches_tracked). Dtypes numpy
has are handed over as numpy views; bfloat16, the float8 variants, float4_e2m1fn_x2 and complex32
travel as their raw bits under an extension name (see mvcdb/dtypes.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..dtypes import EXTENSION_ITEMSIZE, bits_dtype, extension_name, from_bits
from ..errors import MvcdbError
from .checks import Slot, check_fits

#: torch dtypes with an exact numpy twin.
_NUMPY: dict[torch.dtype, np.dtype[Any]] = {
    torch.bool: np.dtype("|b1"),
    torch.uint8: np.dtype("|u1"),
    torch.int8: np.dtype("|i1"),
    torch.int16: np.dtype("<i2"),
    torch.int32: np.dtype("<i4"),
    torch.int64: np.dtype("<i8"),
    torch.float16: np.dtype("<f2"),
    torch.float32: np.dtype("<f4"),
    torch.float64: np.dtype("<f8"),
    torch.complex64: np.dtype("<c8"),
    torch.complex128: np.dtype("<c16"),
}
for _name, _np_name in (("uint16", "<u2"), ("uint32", "<u4"), ("uint64", "<u8")):  # torch >= 2.3
    if isinstance(getattr(torch, _name, None), torch.dtype):
        _NUMPY[getattr(torch, _name)] = np.dtype(_np_name)

#: torch dtypes numpy lacks, stored as raw bits (torch's sub-byte int1..int7 are not storage types).
TORCH_EXTENSIONS = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "complex32",
)
#: torch dtype -> its mvcdb extension name (only those this torch build has).
_EXTENSION: dict[torch.dtype, str] = {
    getattr(torch, name): name
    for name in TORCH_EXTENSIONS
    if isinstance(getattr(torch, name, None), torch.dtype)
}
_TORCH_OF_EXTENSION = {name: dtype for dtype, name in _EXTENSION.items()}

#: Integer types used to move raw bits between torch and numpy, by width.
_TORCH_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32}
_NUMPY_BITS: dict[int, np.dtype[Any]] = {1: np.dtype("|u1"), 2: np.dtype("<i2"), 4: np.dtype("<i4")}


def dtype_name(dtype: torch.dtype, name: str = "", what: str = "parameter") -> str:
    """The mvcdb dtype name of a torch dtype ('<f4', 'bfloat16', ...); MvcdbError if unsupported."""
    twin = _NUMPY.get(dtype)
    if twin is not None:
        return twin.str
    ext = _EXTENSION.get(dtype)
    if ext is not None:
        return ext
    where = f"{what} {name!r} has " if name else ""
    raise MvcdbError(f"{where}torch dtype {dtype}, which mvcdb cannot store (quantized or sub-byte)")


def to_numpy(name: str, tensor: Any, what: str = "parameter") -> np.ndarray:
    """A torch tensor as a numpy array with the same bits (a view of CPU memory when possible);
    what names the kind of value in errors ('parameter', 'series')."""
    if not isinstance(tensor, torch.Tensor):
        raise MvcdbError(f"{what} {name!r} is a {type(tensor).__name__}, not a torch tensor")
    if torch.nn.parameter.is_lazy(tensor):
        raise MvcdbError(f"{what} {name!r} {_LAZY}")
    if tensor.is_nested:
        raise MvcdbError(
            f"{what} {name!r} is a nested (ragged) tensor; record its components, or pad it"
            " (torch.nested.to_padded_tensor) first"
        )
    if tensor.layout != torch.strided:
        raise MvcdbError(f"{what} {name!r} is a {tensor.layout} tensor; densify it (to_dense()) first")
    if tensor.is_quantized:
        raise MvcdbError(f"{what} {name!r} is quantized ({tensor.dtype}); dequantize it first")
    if tensor.device.type == "meta":
        raise MvcdbError(f"{what} {name!r} is on the meta device: it holds no data")
    t = tensor.detach()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    t = t.cpu().contiguous()
    if t.dtype in _NUMPY:
        return t.numpy()
    ext = _EXTENSION.get(t.dtype)
    if ext is None:
        dtype_name(t.dtype, name, what)  # raises the clear error
    assert ext is not None
    raw = t.view(_TORCH_BITS[EXTENSION_ITEMSIZE[ext]]).numpy()
    return from_bits(raw.view(bits_dtype(ext)), ext)


def from_numpy(arr: np.ndarray) -> torch.Tensor:
    """A CPU tensor with the same bits as a restored array (sharing its memory when possible)."""
    ext = extension_name(arr.dtype)
    if ext is not None:
        torch_dtype = _TORCH_OF_EXTENSION.get(ext)
        if torch_dtype is None:
            raise MvcdbError(f"this torch {torch.__version__} has no {ext} dtype")
        raw = _contiguous(arr).view(_NUMPY_BITS[EXTENSION_ITEMSIZE[ext]])
        return _from_numpy_writable(raw).view(torch_dtype)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return _from_numpy_writable(_contiguous(arr))


def _contiguous(arr: np.ndarray) -> np.ndarray:
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # ascontiguousarray makes 0-d 1-d


def _from_numpy_writable(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


_LAZY = "is not initialized yet (a lazy module): run one forward pass first"


def _state(obj: Any) -> Mapping[str, Any]:
    """The state_dict of a module (parameters and persistent buffers), or obj if it is one."""
    if isinstance(obj, torch.nn.Module):
        state: Mapping[str, Any] = obj.state_dict()
        return state
    if isinstance(obj, Mapping):
        return obj
    raise MvcdbError(f"expected a torch nn.Module or state_dict, got {type(obj).__name__}")


def _describe(obj: Any) -> str:
    return f"the nn.Module {type(obj).__name__}" if isinstance(obj, torch.nn.Module) else "the state_dict"


def params_from_object(obj: Any) -> dict[str, np.ndarray]:
    """The state_dict of an nn.Module (or a state_dict itself) as {name: numpy array}, bit-exact."""
    out: dict[str, np.ndarray] = {}
    for name, value in _state(obj).items():
        if not isinstance(name, str):
            raise MvcdbError(f"state_dict keys must be strings, got {name!r}")
        if not isinstance(value, torch.Tensor):
            raise MvcdbError(
                f"state_dict entry {name!r} is a {type(value).__name__}, not a tensor;"
                " only tensors are recorded"
            )
        out[name] = to_numpy(name, value)
    return out


def load_into(obj: Any, params: Mapping[str, np.ndarray], *, partial: bool = False) -> None:
    """Copy restored parameters into a module or a state_dict's tensors, after checking them all.

    A module on the meta device (built without memory) is materialized: its meta tensors are
    replaced by the restored ones, on the CPU. A state_dict's meta tensors cannot be: MvcdbError.
    """
    state = _state(obj)
    module = isinstance(obj, torch.nn.Module)
    expected: dict[str, Slot] = {}
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and torch.nn.parameter.is_lazy(t):
            raise MvcdbError(f"cannot load into {_describe(obj)}: {name!r} {_LAZY}")
        if isinstance(t, torch.Tensor) and t.is_nested:
            raise MvcdbError(f"cannot load into {_describe(obj)}: {name!r} is a nested (ragged) tensor")
        if isinstance(t, torch.Tensor):
            expected[name] = (dtype_name(t.dtype, name), tuple(t.shape))
        elif module and not partial:  # load_state_dict would demand it; a version holds tensors only
            raise MvcdbError(
                f"cannot load into {_describe(obj)}: its state_dict entry {name!r} is a"
                f" {type(t).__name__}, not a tensor, and mvcdb versions hold tensors only"
            )
    check_fits(expected, params, what=_describe(obj), partial=partial)
    tied = _tied_groups(obj) if module else []
    _check_tied(tied, params, _describe(obj))
    on_meta = [name for name in params if state[name].is_meta]
    if on_meta and not module:
        raise MvcdbError(
            f"cannot load into the state_dict: {on_meta[0]!r} is on the meta device, which holds no"
            " data to copy into; restore into the nn.Module itself (it is then materialized on the"
            " CPU) or use the arrays restore() returns"
        )
    tensors = {name: from_numpy(arr) for name, arr in params.items()}
    if module:
        # load_state_dict runs the modules' own loading hooks; dtypes already match, so no casts.
        # Meta tensors hold no memory to copy into: assign=True makes the restored (CPU) tensors
        # the module's own (parameters stay nn.Parameters and keep their requires_grad), cloned
        # so that the module shares no memory with the arrays restore() returns.
        if on_meta:
            tensors = {name: t.clone() for name, t in tensors.items()}
        try:
            obj.load_state_dict(tensors, strict=not partial, assign=bool(on_meta))
        except RuntimeError as exc:  # the module's own loading hooks refused
            first = " ".join(str(exc).split())[:300]
            raise MvcdbError(f"cannot load into {_describe(obj)}: {first}") from None
        if on_meta:
            _retie(obj, tied)
        return
    with torch.no_grad():
        for name, tensor in tensors.items():
            state[name].copy_(tensor)


def _tied_groups(module: torch.nn.Module) -> list[list[str]]:
    """The names under which one tensor is registered several times (tied weights: an embedding
    shared with the output layer), one list per tensor."""
    names: dict[int, list[str]] = {}
    everything = itertools.chain(
        module.named_parameters(remove_duplicate=False), module.named_buffers(remove_duplicate=False)
    )
    for name, tensor in everything:
        names.setdefault(id(tensor), []).append(name)
    return [group for group in names.values() if len(group) > 1]


def _check_tied(groups: list[list[str]], params: Mapping[str, np.ndarray], what: str) -> None:
    """Refuse a version whose values differ for names that are one tensor in the model (tied):
    loading would keep one of them and silently drop the other."""
    for group in groups:
        present = [name for name in group if name in params]
        first = params[present[0]] if present else None
        for other in present[1:]:
            if not np.array_equal(_bits(first), _bits(params[other])):
                raise MvcdbError(
                    f"cannot load into {what}: {present[0]!r} and {other!r} are one tensor in the"
                    " model (tied) but differ in the version"
                )


def _bits(arr: Any) -> np.ndarray:
    """The bytes of an array (NaN payloads compared as bits, whatever the dtype)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def _retie(module: torch.nn.Module, groups: list[list[str]]) -> None:
    """Tie again what load_state_dict(assign=True) untied: it gives every name its own tensor, so
    a materialized module would train two copies. Each name of a group gets the group's loaded
    tensor (the first that is no longer on the meta device)."""
    for group in groups:
        tensors = {name: _registered(module, name) for name in group}
        source = next((t for t in tensors.values() if not t.is_meta), None)
        if source is None:
            continue
        for name, tensor in tensors.items():
            if tensor is not source:
                owner, _, attr = name.rpartition(".")
                setattr(module.get_submodule(owner), attr, source)


def _registered(module: torch.nn.Module, name: str) -> torch.Tensor:
    """The parameter or buffer registered under a dotted name."""
    try:
        return module.get_parameter(name)
    except AttributeError:
        return module.get_buffer(name)


def __getattr__(name: str) -> Any:
    if name in ("track", "TorchRun"):  # the training helper, importable from here too
        from . import torch_training

        return getattr(torch_training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
