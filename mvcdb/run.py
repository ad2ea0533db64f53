"""`with db.run(model) as run:` — log every iteration in memory, write once at commit.

`run.log(step, **values)` only extends a list by the pair step, the call's keyword dict (about a
microsecond); the first call's row, then every 512 rows, become columns (trajectory.LogBuffer: that
is where steps and series names are checked, once per block and once per name), and
`run.commit(...)` stores the arrays in the same atomic version write as the parameters. Several
threads may log into one run without a lock on that path: one list.extend by a tuple is atomic, so
a step never parts from its values, and the list is never replaced while the run is open (blocks
are cut off its front under a lock), so no row lands in a list already converted; a commit holds
them back.
An exception inside the block discards everything; leaving
the block normally without calling commit() commits what was logged (retraining is expensive:
nothing is thrown away).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MvcdbError
from .frameworks import framework_of
from .recording import check_message
from .refs import ref_list, tag_list
from .trajectory import BLOCK_ROWS, LogBuffer

if TYPE_CHECKING:
    from .database import Database, ParentRef
    from .models import Version


#: The rows of log() calls as one flat list: step, keyword dict, step, keyword dict, ... (each call
#: extends it by its pair at once; a flat list is split into steps and dicts by two C-level slices,
#: where a list of pairs took a Python loop: ~25 us a block of 512 rows)
Rows = list[Any]


class _Ended(list[Any]):
    """The row list of a committed or discarded run: its extend raises, so a late log() is refused
    without a check in every call (a plain list's extend stays the fast one)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def extend(self, row: Iterable[Any], /) -> None:
        raise MvcdbError(self.message)


class _Waiting(list[Any]):
    """The row list while a commit runs: a row waits for the commit to end, then goes to the
    run's list as it is then (or raises: the run has ended with that commit)."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def extend(self, row: Iterable[Any], /) -> None:
        with self.run._lock:
            self.run._rows.extend(row)


def _mutable(value: Any) -> bool:
    """Whether a logged value is a buffer that can change in place (an array or a torch tensor;
    a dict of tensors is no such buffer: a series cannot hold it, commit() refuses it)."""
    return isinstance(value, np.ndarray) or (
        type(value) is not float and not isinstance(value, Mapping) and framework_of(value) == "torch"
    )


def _freeze(values: dict[str, Any]) -> None:
    """Copy the arrays and tensors of one log() call, in place in its dict: they are kept until
    commit, and a buffer updated in place meanwhile (an optimizer step on a parameter,
    `w -= lr * grad`) must not change what was logged. A torch tensor is detached and cloned on
    its own device (no host sync; its autograd graph is freed)."""
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
        self._parents = ref_list(parents, "parents") if parents is not None else None
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.message = message
        self.tags = tuple(tag_list(tags))
        #: held while blocks are cut off _rows, names are first seen, or the run commits or ends
        #: (log() itself takes it only then: several threads may log at once)
        self._lock = threading.Lock()
        #: rows logged since the last block went to _log, flat (see Rows); the same list object
        #: until the run ends
        self._rows: Rows = []
        #: list items (two a row) buffered before the next conversion: one row at first, so the
        #: names of the first call are checked by that very call (what a loop logs at every
        #: step), then BLOCK_ROWS rows
        self._block = 2
        self._log = LogBuffer()
        self.version: Version | None = None
        #: why the run has ended (committed or discarded), None while it is open
        self._ended: str | None = None
        #: what a later block's conversion (or commit's) refused and left out, raised by commit()
        self._refused: list[MvcdbError] = []
        #: whether log() copies the arrays and tensors it is given: from the first call that logs
        #: one (see _unseen)
        self._copies = False
        #: the names logged so far, while _copies is off (then empty: every call takes _unseen): a
        #: call that logs only these skips the look at its values (one C-level set check), so a
        #: run of plain numbers looks at each name once and an array logged under a new name is
        #: copied from its very first row
        self._names: frozenset[str] = frozenset()

    def log(self, step: int, /, **values: Any) -> None:
        """Record the values of one iteration (scalars or arrays). Cheap: memory only.

        MvcdbError after commit(). A step that is no int64 integer, a series name record()
        would refuse, or a value a series cannot hold (text, a ragged shape) in the very first
        call raises from that call (before the loop runs for hours); later, it never interrupts
        training: that row or series is left out, everything else is kept, and commit() raises
        the error once (commit again to store the rest). Safe to call from several threads.
        """
        if not self._names.issuperset(values):  # a name not logged before, or a run of arrays
            self._unseen(values)
        rows = self._rows
        # the call's own fresh dict, kept as it is until its block is full; one extend by a
        # tuple, atomic (no Python code runs in it): raises once the run has ended (_Ended)
        rows.extend((step, values))
        if rows is not self._rows:  # committed or discarded by another thread meanwhile
            self._late(rows, values)
        elif len(rows) >= self._block:
            self._flush()

    def _unseen(self, values: dict[str, Any]) -> None:
        """A call that logs a name for the first time, or any call once the run copies: if it
        logs an array or tensor, copying starts with this very call (see _freeze); otherwise its
        names are noted. (A name first logged as a number, later as a 0-d array or tensor, is not
        looked at again: an array of any other shape there makes the series ragged, refused at
        commit.)"""
        if self._copies:
            _freeze(values)
            return
        with self._lock:
            if any(map(_mutable, values.values())):
                self._copies = True
                self._names = frozenset()  # from now on every call comes here, to be copied
                _freeze(values)
            else:
                self._names = self._names.union(values)

    def _late(self, rows: Rows, values: dict[str, Any]) -> None:
        """A log() that appended to a row list another thread's commit (or discard) had already
        taken over: once that is over, a row it did not store is taken out again, and the call
        raises if the run has ended, or requeues the row if the commit failed (run still open)."""
        with self._lock:
            for i in range(1, len(rows), 2):
                if rows[i] is values:
                    step = rows[i - 1]
                    del rows[i - 1 : i + 1]
                    if self._ended is not None:
                        raise MvcdbError(self._ended)
                    self._rows.extend((step, values))
                    return

    def _flush(self) -> None:
        with self._lock:
            self._flush_locked(self._rows)

    def _flush_locked(self, pending: Rows) -> None:
        """Hand the buffered rows to the columnar buffer (one array per scalar series); the
        caller holds _lock. The rows are cut off the front of the list, which stays the same
        object: a row another thread appends meanwhile lands behind them, for the next block.

        A step, series name or (first call only: later ones wait for commit) series value that
        LogBuffer refuses (it keeps everything else): MvcdbError from the first call's block; from
        a later block it waits in _refused for commit()."""
        count = len(pending)  # even: a row is added as one pair
        if not count:
            return  # another thread's flush took them
        steps = pending[0:count:2]
        rows = pending[1:count:2]
        del pending[:count]
        first, self._block = self._block == 2, 2 * BLOCK_ROWS
        # Every row logged while nothing is copied had its names checked against _names, which
        # only grows: if the first row holds all of them, a row holding the first row's names
        # holds exactly those (LogBuffer then skips counting every row's names, ~5 % of a block)
        no_extra = not self._copies and len(self._names) == len(rows[0])
        try:
            self._log.add_block(steps, rows, no_extra_names=no_extra)
            if first and rows:
                self._log.arrays()  # a series that cannot be stored raises now, and is left out
        except MvcdbError as exc:
            if first:
                raise
            self._refused.append(exc)

    def __len__(self) -> int:
        with self._lock:
            return self._log.nrows + len(self._rows) // 2

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
        scikit-learn estimator) instead of params=. A step, series name or series that cannot be
        stored (text, ragged shapes) is left out and named in MvcdbError, once: commit again to
        store the rest. A log() from another thread meanwhile waits, then raises.
        """
        with self._lock:
            if self._ended is not None:
                raise MvcdbError(self._ended)
            # log() calls from here on wait for the commit (_Waiting); one that appended to the
            # list before this switch, but after the flush below, finds that out itself (_late)
            pending, self._rows = self._rows, _Waiting(self)
            try:
                return self._commit(pending, params, model, metrics, metadata, message, tags)
            finally:
                if self._ended is None:  # the commit failed: the run goes on with its rows
                    self._rows = pending

    def _commit(
        self,
        pending: Rows,
        params: Mapping[str, Any] | None,
        model: Any,
        metrics: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        message: str | None,
        tags: Iterable[str],
    ) -> Version:
        if model is not None:
            if params is not None:
                raise MvcdbError("pass either params= or model=<framework object>, not both")
            from .frameworks import params_from_object

            params = params_from_object(model)
        tag_names = tag_list(tags)
        self._flush_locked(pending)
        trajectory: dict[str, np.ndarray] | None = None
        own_steps: dict[str, np.ndarray] = {}
        try:
            if self._log.nrows:
                trajectory, own_steps = self._log.arrays()
        except MvcdbError as exc:  # the series it names are left out of the buffer
            self._refused.append(exc)
        if self._refused:  # said once: the next commit stores what was kept
            refused, self._refused = self._refused, []
            raise MvcdbError(
                "; ".join(map(str, refused))
                + " (the rest of the run is kept: commit again to store it without that)"
            )
        merged_meta: Any = {**self.metadata, **(metadata or {})}
        if model is not None:  # what restore(into=) needs to rebuild it (scikit-learn's state)
            from .frameworks import metadata_for

            merged_meta = metadata_for(model, merged_meta)
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
        """No more logging or committing: log() and commit() raise MvcdbError(why) from now on
        (the caller holds _lock)."""
        self._ended = why
        self._rows = _Ended(why)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:  # discard: nothing half-written reaches the file
            with self._lock:
                self._end("this run was discarded (an exception left its with block)")
            return
        if self._ended is None:
            self.commit()
