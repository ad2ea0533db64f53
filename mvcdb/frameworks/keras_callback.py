"""A Keras 3 callback that records a fit() as a version: trajectory each epoch, weights at the end.

    cb = MvcdbCallback(db, "mlp", parent=base, datasets={"train": "waves-2k"}, hyper={"batch": 32})
    model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[cb])
    cb.version                      # weights by path, loss/val_loss per epoch, metadata filled in

Each epoch's logs (loss, val_loss, metrics) are logged into a db.run(); when training ends the
model's weights are committed with the last epoch's logs as metrics. Metadata gets the datasets
and hyper-parameters given, the optimizer's config, epochs and steps, the Keras version and
backend. A second fit() with the same callback records a child of the first version. If fit()
raises, nothing is recorded. every="batch" logs each batch (at a global step) instead of epochs;
what only an epoch's end reports (val_loss, val_* metrics) joins the row of its last batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import keras

from ..errors import MvcdbError
from .training import jsonable, scalar, training_metadata

if TYPE_CHECKING:
    from ..database import Database, ParentRef
    from ..models import Version
    from ..run import Run


def _scalars(logs: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in (logs or {}).items():
        number = scalar(value)
        if number is not None:
            out[name] = number
    return out


class MvcdbCallback(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """Record each fit() into `db` as a new version of `model_name` (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        model_name: str,
        *,
        parent: ParentRef | None = None,
        parents: Iterable[ParentRef] | None = None,
        datasets: Mapping[str, Any] | None = None,
        hyper: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message: str = "",
        tags: Iterable[str] = (),
        every: str = "epoch",
    ) -> None:
        super().__init__()
        if every not in ("epoch", "batch"):
            raise MvcdbError(f"every= must be 'epoch' or 'batch', got {every!r}")
        self.db = db
        self.model_name = model_name
        self.parent = parent
        self.parents = list(parents) if parents is not None else None
        self.datasets = dict(datasets or {})
        self.hyper = dict(hyper or {})
        self.extra_metadata = dict(metadata or {})
        self.message = message
        self.tags = tuple(tags)
        self.every = every
        #: The version the last completed fit() recorded.
        self.version: Version | None = None
        self._run: Run | None = None
        self._step = 0
        self._last: dict[str, float] = {}
        #: every="batch": the last batch's (step, values), logged once the next batch or the
        #: epoch's end comes (so validation metrics land in the same row).
        self._batch: tuple[int, dict[str, float]] | None = None

    def _discovered(self) -> dict[str, Any]:
        model = self.model
        hyper: dict[str, Any] = {}
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            config = jsonable(optimizer.get_config())
            hyper["optimizer"] = config.pop("name", type(optimizer).__name__)
            hyper.update({k: v for k, v in config.items() if v is not None})
        loss = getattr(model, "loss", None)
        if isinstance(loss, str):
            hyper["loss"] = loss
        params = self.params or {}
        for key, name in (("epochs", "epochs"), ("steps", "steps_per_epoch")):
            if params.get(key) is not None:
                hyper[name] = params[key]
        return {
            "framework": {
                "name": "keras",
                "version": str(keras.__version__),
                "backend": str(keras.backend.backend()),
            },
            "parameters": {
                "total": sum(_size(w) for w in model.weights),
                "trainable": sum(_size(w) for w in model.trainable_weights),
            },
            "hyper": hyper,
        }

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        """Open the run; a second fit() continues from the version the first one recorded."""
        meta = training_metadata(
            framework="keras",
            version=str(keras.__version__),
            model=self.model,
            datasets=self.datasets,
            hyper=self.hyper,
            extra=self._discovered(),
            metadata=self.extra_metadata,
        )
        parent: ParentRef | None
        parents: list[ParentRef] | None
        if self.version is not None:
            parent, parents = self.version, None
        else:
            parent, parents = self.parent, self.parents
        self._run = self.db.run(
            self.model_name,
            parent=parent,
            parents=parents,
            metadata=meta,
            message=self.message,
            tags=self.tags,
        )
        self._step = 0
        self._last = {}
        self._batch = None

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._run is not None and self.every == "batch":
            self._log_batch()
            self._batch = (self._step, _scalars(logs))
        self._step += 1

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Log the epoch (every="epoch"), or add what batches did not report to the last batch."""
        values = _scalars(logs)
        self._last.update(values)
        if self._run is None:
            return
        if self.every == "epoch":
            self._run.log(epoch, **values)
            return
        step, logged = self._batch or (max(self._step - 1, 0), {})
        self._batch = (step, {**values, **logged})  # the batch's own values win (loss, accuracy)
        self._log_batch()

    def _log_batch(self) -> None:
        """Log the pending batch row, if any (every="batch")."""
        if self._batch is not None and self._run is not None:
            (step, values), self._batch = self._batch, None
            self._run.log(step, **values)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        """Commit the weights, the trajectory and the last epoch's logs as metrics."""
        if self._run is None:
            return
        self._log_batch()
        run, self._run = self._run, None
        self.version = run.commit(model=self.model, metrics={**self._last, **_scalars(logs)})


def _size(weight: Any) -> int:
    n = 1
    for d in weight.shape:
        n *= int(d)
    return n
