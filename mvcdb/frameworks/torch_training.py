"""A PyTorch training loop's run: log every epoch or step, commit the module as a version at the end.

    with track(db, "mlp", model, parent=base, optimizer=opt,
               datasets={"train": "moons-2k"}, hyper={"epochs": 5}) as run:
        for epoch in range(5):
            loss = train_one_epoch(...)
            run.log(epoch, loss=loss, val_acc=acc)      # tensors fine: .item() / bit-exact arrays
    run.version                                         # committed: state_dict, trajectory, metadata

Metadata is filled in for you (see training.training_metadata): the datasets and hyper-parameters
given, the optimizer's settings (first param group), the module's class, its parameter counts and
the names of frozen parameters (requires_grad=False), which is what a fine-tune needs to say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .torch import to_numpy
from .training import jsonable, scalar, training_metadata

if TYPE_CHECKING:
    from ..database import Database, ParentRef
    from ..models import Version
    from ..run import Run


def _discovered(module: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """What the module and optimizer say about the run: settings, sizes, frozen parameters."""
    params = dict(module.named_parameters())
    frozen = sorted(name for name, p in params.items() if not p.requires_grad)
    extra: dict[str, Any] = {
        "parameters": {
            "total": sum(p.numel() for p in params.values()),
            "trainable": sum(p.numel() for p in params.values() if p.requires_grad),
        },
    }
    if frozen:
        extra["frozen"] = frozen
    if optimizer is not None:
        group = (
            {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
            if optimizer.param_groups
            else {}
        )
        extra["hyper"] = {"optimizer": type(optimizer).__name__, **jsonable(group)}
    return extra


class TorchRun:
    """A db.run() bound to a module: log(step, **values) each epoch/step, commit() at the end."""

    def __init__(
        self,
        db: Database,
        model_name: str,
        module: torch.nn.Module,
        *,
        parent: ParentRef | None = None,
        parents: Iterable[ParentRef] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        datasets: Mapping[str, Any] | None = None,
        hyper: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message: str = "",
        tags: Iterable[str] = (),
    ) -> None:
        self.module = module
        meta = training_metadata(
            framework="torch",
            version=str(torch.__version__),
            model=module,
            datasets=datasets,
            hyper=hyper,
            extra=_discovered(module, optimizer),
            metadata=metadata,
        )
        self.run: Run = db.run(
            model_name, parent=parent, parents=parents, metadata=meta, message=message, tags=tags
        )
        #: The last logged value of every scalar series: the default metrics at commit.
        self.last: dict[str, float] = {}

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata the version will carry."""
        return self.run.metadata

    @property
    def version(self) -> Version | None:
        """The committed version (None until commit)."""
        return self.run.version

    def log(self, step: int, /, **values: Any) -> None:
        """Log one epoch or step: scalars (floats, 0-d tensors) and arrays (tensors, numpy)."""
        row: dict[str, Any] = {}
        for name, value in values.items():
            number = scalar(value)
            if number is not None:
                row[name] = self.last[name] = number
            elif isinstance(value, torch.Tensor):
                row[name] = to_numpy(name, value).copy()  # a snapshot: the live tensor keeps training
            else:
                row[name] = np.array(value)
        self.run.log(step, **row)

    def commit(
        self,
        *,
        metrics: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message: str | None = None,
        tags: Iterable[str] = (),
    ) -> Version:
        """Record the module's state_dict with the trajectory; metrics default to the last logged values."""
        return self.run.commit(
            model=self.module,
            metrics={**self.last, **(metrics or {})},
            metadata=metadata,
            message=message,
            tags=tags,
        )

    def __enter__(self) -> TorchRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or self.run.version is not None:
            self.run.__exit__(exc_type, exc, tb)  # an exception discards the run, as db.run does
            return
        self.commit()


def track(
    db: Database,
    model_name: str,
    module: torch.nn.Module,
    *,
    parent: ParentRef | None = None,
    parents: Iterable[ParentRef] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    datasets: Mapping[str, Any] | None = None,
    hyper: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    message: str = "",
    tags: Iterable[str] = (),
) -> TorchRun:
    """Start tracking a PyTorch training run of `module` as a new version of `model_name`.

    Args:
        db: the open Database.
        model_name: the model's name in the database.
        module: the nn.Module being trained; its state_dict is recorded at commit.
        parent / parents: the version(s) this run starts from (e.g. the pre-trained base).
        optimizer: its class and first param group's settings (lr, weight_decay...) go into hyper.
        datasets: e.g. {"train": "moons-2k", "val": "moons-val"}.
        hyper: hyper-parameters (epochs, batch size...), merged over the optimizer's.
        metadata: anything else; wins over what the helper fills in.
        message / tags: as for record().
    """
    return TorchRun(
        db,
        model_name,
        module,
        parent=parent,
        parents=parents,
        optimizer=optimizer,
        datasets=datasets,
        hyper=hyper,
        metadata=metadata,
        message=message,
        tags=tags,
    )
