"""`with db.run(model) as run:` — log every iteration in memory, write once at commit.

`run.log(step, **values)` only appends to Python lists (about a microsecond for three scalars); the
trajectory is turned into arrays and stored by `run.commit(...)`, in the same atomic version write
as the parameters. An exception inside the block discards everything; leaving the block normally
without calling commit() commits what was logged (retraining is expensive: nothing is thrown away).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import MvcdbError
from .trajectory import Series, from_log, sparse_steps

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
        self._steps: list[int] = []
        self._series: dict[str, Series] = {}
        #: name -> its value list's append while every series is dense: log()'s fast path
        self._fast: dict[str, Callable[[Any], None]] | None = None
        self.version: Version | None = None
        self._closed = False

    def log(self, step: int, /, **values: Any) -> None:
        """Record the values of one iteration (scalars or arrays). Cheap: memory only."""
        fast = self._fast
        if fast is not None and values.keys() == fast.keys():  # same names as last call, all dense
            self._steps.append(step)
            for name, value in values.items():
                fast[name](value)
            return
        steps = self._steps
        row = len(steps)
        steps.append(step)
        series = self._series
        for name, value in values.items():
            s = series.get(name)
            if s is None:
                s = series[name] = Series()
                if row:
                    s.rows = []
            if s.rows is not None:
                s.rows.append(row)
            elif len(s.values) != row:
                s.rows = list(range(len(s.values)))
                s.rows.append(row)
            s.values.append(value)
        if len(values) != len(series):  # some known series were not logged at this row
            for s in series.values():
                if s.rows is None and len(s.values) != len(steps):
                    s.rows = list(range(len(s.values)))
        # every series logged at every row so far, in this call's order: next time, append directly
        dense = len(values) == len(series) and all(series[n].rows is None for n in values)
        self._fast = {n: series[n].values.append for n in values} if dense else None

    def __len__(self) -> int:
        return len(self._steps)

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
        for name in self._series:
            if name == "step":
                raise MvcdbError("'step' is reserved for the step axis; log it under another name")
        trajectory = from_log(self._steps, self._series) if self._steps else None
        own_steps = sparse_steps(trajectory["step"], self._series) if trajectory else {}
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
