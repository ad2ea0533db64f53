"""L2 norms of a version's parameters: what `mvcdb show` and the TUI's detail pane print.

Tensors are restored in batches of up to BATCH_BYTES: one restore() call per tensor costs its own
set-up (~20 ms), 100 s of a busy core for a version of 5,000 small tensors. Parameters a lazy
clone has not fetched yet are left out (reading them would download the models just to browse).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .errors import IntegrityError

if TYPE_CHECKING:
    from .database import Database
    from .models import TensorInfo

#: How many bytes of tensors one restore() call reads.
BATCH_BYTES = 64 << 20

#: Elements per block when accumulating a norm (a float32 tensor never needs a whole float64 copy).
_BLOCK = 1 << 20


def l2_norm(arr: np.ndarray) -> float:
    """The L2 norm of any numeric array, accumulated in float64 (complex: of the magnitudes;
    bool: the square root of the count of True), block by block."""
    flat = arr.reshape(-1)
    total = 0.0
    for start in range(0, flat.size, _BLOCK):
        block = flat[start : start + _BLOCK]
        wide = np.abs(block.astype(np.complex128)) if block.dtype.kind == "c" else block.astype(np.float64)
        total += float(np.dot(wide, wide))
    return math.sqrt(total)


def batches(tensors: Sequence[TensorInfo], max_bytes: int = BATCH_BYTES) -> Iterator[list[TensorInfo]]:
    """Consecutive groups of tensors of at most max_bytes each (a bigger tensor alone)."""
    batch: list[TensorInfo] = []
    size = 0
    for t in tensors:
        if batch and size + t.nbytes > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(t)
        size += t.nbytes
    if batch:
        yield batch


def param_norms(
    db: Database,
    version_id: str,
    tensors: Sequence[TensorInfo],
    *,
    cancelled: Callable[[], bool] | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """(name -> norm, name -> why it is damaged) for `tensors` of the version; a tensor a lazy
    clone has not fetched gets neither. A damaged tensor does not hide the others' norms.

    cancelled() is asked before each batch (stop early); progress(bytes done, name) is told as
    each batch starts.
    """
    from .remote.chunks import unfetched_params

    remote_only = unfetched_params(db.conn, version_id)
    norms: dict[str, float] = {}
    damaged: dict[str, str] = {}
    done = 0
    for batch in batches([t for t in tensors if t.name not in remote_only]):
        if cancelled is not None and cancelled():
            break
        if progress is not None:
            progress(done, batch[0].name)
        try:
            arrays = db.restore(version_id, [t.name for t in batch])
        except IntegrityError:  # one by one, to name the damaged ones and still show the rest
            arrays = {}
            for t in batch:
                try:
                    arrays[t.name] = db.restore(version_id, [t.name])[t.name]
                except IntegrityError as exc:
                    damaged[t.name] = f"param {t.name!r}: {exc}"
        for name, arr in arrays.items():
            norms[name] = l2_norm(arr)
        done += sum(t.nbytes for t in batch)
    return norms, damaged
