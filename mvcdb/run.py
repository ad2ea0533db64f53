"""`with db.run(model) as run:` — log every iteration in memory, write once at commit.

`run.log(step, **values)` only appends the step and the call's keyword dict to two lists (well under
a microsecond); the first call's row, then every 512 rows, become columns (trajectory.LogBuffer:
that is where steps and series names are checked, once per block and once per name), and
`run.commit(...)` stores the arrays in the same atomic version write as the parameters. An exception
inside the block discards everything; leaving the block normally without calling commit() commits
what was logged (retraining is expensive: nothing is thrown away).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MvcdbError
from .frameworks import framework_of
from .recording import check_message
from .refs import tag_list
from .trajectory import BLOCK_ROWS, LogBuffer

if TYPE_CHECKING:
    from .database import Database, ParentRef
    from .models import Version


class _Ended(list[int]):
    """The step list of a committed or discarded run: its append (the first thing log() does)
    raises, so a late log() is refused without a check in every call (a plain list's append
    stays the specialised fast one)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def append(self, step: int, /) -> None:
        raise MvcdbError(self.message)


def _mutable(value: Any) -> bool:
    """Whether a logged value is a buffer that can change in place (an array or a torch tensor)."""
    return isinstance(value, np.ndarray) or (type(value) is not float and framework_of(value) == "torch")


def _freeze(values: dict[str, Any]) -> None:
    """Copy the arrays and tensors of one log() call, in place in its dict: they are kept until
    their block converts (up to BLOCK_ROWS calls later), and a buffer updated in place meanwhile
    (an optimizer step on a parameter, `w -= lr * grad`) must not change what was logged. A torch
    tensor is detached and cloned on its own device (no host sync; its autograd graph is freed)."""
    for name, value in values.items():
        if _mutable(value):
            values[name] = value.copy() if isinstance(value, np.ndarray) else value.detach().clone()


class Run:
    """A training run in progress; becomes a Version on commit()."""

    def __init__(
        self,
        db: Database,
        model: str,
        *,
        parent: ParentRef | None = None,
        parents: Iterable[ParentRef] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message: str = "",
        tags: Iterable[str] = (),
    ) -> None:
        check_message(message)  # message and tags: checked now, not at commit after hours of training
        self._db = db
        self.model = model
        self._parent = parent
        self._parents = list(parents) if parents is not None else None
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.message = message
        self.tags = tuple(tag_list(tags))
        #: rows logged since the last block went to _log: each step, and each call's values dict
        self._steps: list[int] = []
        self._rows: list[dict[str, Any]] = []
        #: rows buffered before the next conversion: 1 at first, so the names of the first call
        #: are checked by that very call (what a loop logs at every step), then BLOCK_ROWS
        self._block = 1
        self._log = LogBuffer()
        self.version: Version | None = None
        #: why the run has ended (committed or discarded), None while it is open
        self._ended: str | None = None
        #: the first error a later block's conversion met, raised by commit()
        self._refused: MvcdbError | None = None
        #: whether log() copies the arrays and tensors it is given (once the run has logged one;
        #: a run of plain numbers never pays for the check)
        self._copies = False

    def log(self, step: int, /, **values: Any) -> None:
        """Record the values of one iteration (scalars or arrays). Cheap: memory only.

        MvcdbError after commit(). A step that is no int64 integer, or a series name record()
        would refuse, in the very first call raises from that call (before the loop runs for
        hours); later, it never interrupts training: that row or series is left out, everything
        else is kept, and commit() raises the error once (commit again to store the rest).
        """
        self._steps.append(step)  # raises once the run has ended (_Ended)
        if self._copies:  # this run logs arrays or tensors: copy them now (see _freeze)
            _freeze(values)
        rows = self._rows
        rows.append(values)  # the call's own fresh dict: kept as it is until its block is full
        if len(rows) >= self._block:
            self._flush()

    def _flush(self) -> None:
        """Hand the buffered rows to the columnar buffer (one array per scalar series).

        A step or series name LogBuffer refuses (it keeps everything else): MvcdbError from the
        first call's block; from a later block it waits in _refused for commit()."""
        steps, rows = self._steps, self._rows
        self._steps, self._rows = [], []
        first, self._block = self._block == 1, BLOCK_ROWS
        if first and rows and not self._copies and any(map(_mutable, rows[0].values())):
            self._copies = True  # the first call logged an array: every call copies its arrays
            _freeze(rows[0])
        try:
            self._log.add_block(steps, rows)
        except MvcdbError as exc:
            if first:
                raise
            self._refused = self._refused or exc
        finally:
            if not self._copies and self._log.holds_arrays():
                # A series of arrays began after the first call: copy from now on. Its rows in
                # this block were kept as logged until now (a buffer changed in place meanwhile
                # shows its state at this moment): log a copy to be exact from its first row.
                self._copies = True

    def __len__(self) -> int:
        return self._log.nrows + len(self._rows)

    def commit(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        model: Any = None,
        metrics: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message: str | None = None,
        tags: Iterable[str] = (),
    ) -> Version:
        """Store the logged trajectory with the final params/metrics as one new version.

        model= takes a framework object (PyTorch module or state_dict, Keras model, fitted
        scikit-learn estimator) instead of params=.
        """
        if self._ended is not None:
            raise MvcdbError(self._ended)
        if model is not None:
            if params is not None:
                raise MvcdbError("pass either params= or model=<framework object>, not both")
            from .frameworks import params_from_object

            params = params_from_object(model)
        tag_names = tag_list(tags)
        self._flush()
        if self._refused is not None:  # said once: the next commit stores what was kept
            refused, self._refused = self._refused, None
            raise MvcdbError(
                f"{refused} (the rest of the run is kept: commit again to store it without that)"
            )
        trajectory, own_steps = self._log.arrays() if self._log.nrows else (None, {})
        merged_meta = {**self.metadata, **(metadata or {})}
        self.version = self._db._record(
            self.model,
            params,
            metrics=metrics,
            metadata=merged_meta,
            trajectory=trajectory,
            trajectory_steps=own_steps,
            parent=self._parent,
            parents=self._parents,
            message=self.message if message is None else message,
            tags=(*self.tags, *tag_names),
        )
        self._end("this run was already committed")
        return self.version

    def _end(self, why: str) -> None:
        """No more logging or committing: log() and commit() raise MvcdbError(why) from now on."""
        self._ended = why
        self._steps, self._rows = _Ended(why), []

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:  # discard: nothing half-written reaches the file
            self._end("this run was discarded (an exception left its with block)")
            return
        if self._ended is None:
            self.commit()
