"""`with db.run(model) as run:` — log every iteration in memory, write once at commit.

`run.log(step, **values)` only appends the step and the call's keyword dict to two lists (well under
a microsecond); every few thousand rows they become columns (trajectory.LogBuffer), and
`run.commit(...)` stores the arrays in the same atomic version write as the parameters. An exception
inside the block discards everything; leaving the block normally without calling commit() commits
what was logged (retraining is expensive: nothing is thrown away).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import MvcdbError
from .trajectory import BLOCK_ROWS, STEP, LogBuffer

if TYPE_CHECKING:
    from .database import Database, ParentRef
    from .models import Version


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
        self._db = db
        self.model = model
        self._parent = parent
        self._parents = list(parents) if parents is not None else None
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.message = message
        self.tags = tuple(tags)
        #: rows logged since the last block went to _log: each step, and each call's values dict
        self._steps: list[int] = []
        self._rows: list[dict[str, Any]] = []
        self._log = LogBuffer()
        self.version: Version | None = None
        self._closed = False

    def log(self, step: int, /, **values: Any) -> None:
        """Record the values of one iteration (scalars or arrays). Cheap: memory only."""
        self._steps.append(step)
        rows = self._rows
        rows.append(values)  # the call's own fresh dict: kept as it is until its block is full
        if len(rows) >= BLOCK_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Hand the buffered rows to the columnar buffer (one array per scalar series)."""
        steps, rows = self._steps, self._rows
        self._steps, self._rows = [], []
        self._log.add_block(steps, rows)

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
        if self._closed:
            raise MvcdbError("this run was already committed")
        if model is not None:
            if params is not None:
                raise MvcdbError("pass either params= or model=<framework object>, not both")
            from .frameworks import params_from_object

            params = params_from_object(model)
        self._flush()
        if STEP in self._log.series:
            raise MvcdbError("'step' is reserved for the step axis; log it under another name")
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
            tags=(*self.tags, *tags),
        )
        self._closed = True
        return self.version

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._closed = True  # discard: nothing half-written reaches the file
            return
        if not self._closed:
            self.commit()
