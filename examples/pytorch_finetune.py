"""Fine-tune a small PyTorch MLP from a recorded parent, its feature layers frozen.

Run it as `python examples/pytorch_finetune.py [DB]` (needs `pip install "mvcdb[torch]"`; a few
seconds on a CPU, synthetic data). It shows:

1. training a base MLP on task A with `track(...)`: loss and accuracy logged every epoch, the
   state_dict (BatchNorm running statistics included) committed as version v1, metadata filled in
   (datasets, optimizer settings, parameter counts);
2. starting a new model from v1 with `db.restore(v1, into=model)`, freezing the feature layers
   and fine-tuning only the head on task B, recorded as v2, a child of v1;
3. the frozen layers stored once: v1 and v2 share their tensors' digests, and `db.stats()`
   (also `mvcdb stats`) shows logical bytes well above the distinct bytes stored;
4. restoring v2 into a fresh model reproduces its predictions exactly;
5. restoring into a model of another shape is refused, naming the first mismatch.
"""

from __future__ import annotations

import shlex
import sys

import numpy as np

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit('examples/pytorch_finetune.py needs PyTorch: pip install "mvcdb[torch]"')

import mvcdb
from mvcdb.frameworks.torch_training import track

FEATURES, HIDDEN, CLASSES, BATCH = 16, 128, 2, 200


def make_task(seed: int, shift: float, n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic classification: the class is the sign of a projection of the features; `shift`
    moves the projection away from task A's, so task B is related but different."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    w = np.random.default_rng(10).normal(size=FEATURES) + shift * np.random.default_rng(11).normal(
        size=FEATURES
    )
    y = (x @ w.astype(np.float32) + 0.3 * np.tanh(3 * x[:, 0]) > 0).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def make_model(hidden: int = HIDDEN) -> nn.Sequential:
    """features (two hidden layers with BatchNorm) then a linear head."""
    return nn.Sequential(
        nn.Sequential(
            nn.Linear(FEATURES, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        ),
        nn.Linear(hidden, CLASSES),
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def fit(
    db: mvcdb.Database,
    model: nn.Sequential,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    dataset: str,
    epochs: int,
    lr: float,
    parent: mvcdb.Version | None = None,
    freeze_features: bool = False,
) -> mvcdb.Version:
    """Train (all of it, or only the head) and record the result as a version of "mlp"."""
    features = model[0]
    if freeze_features:
        for p in features.parameters():
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    x, y = data
    n_train = int(0.8 * len(x))
    x_train, y_train, x_val, y_val = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    loss_fn = nn.CrossEntropyLoss()
    with track(
        db,
        "mlp",
        model,
        parent=parent,
        optimizer=optimizer,
        datasets={"train": f"{dataset}[:{n_train}]", "val": f"{dataset}[{n_train}:]"},
        hyper={"epochs": epochs, "batch_size": BATCH, "freeze_features": freeze_features},
        message=("fine-tune the head" if freeze_features else "train from scratch") + f" on {dataset}",
    ) as run:
        for epoch in range(epochs):
            model.train()
            if freeze_features:
                features.eval()  # frozen BatchNorm must not update its running statistics
            order = torch.randperm(n_train)
            total = 0.0
            for i in range(0, n_train, BATCH):
                batch = order[i : i + BATCH]
                optimizer.zero_grad()
                loss = loss_fn(model(x_train[batch]), y_train[batch])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            run.log(epoch, loss=total / n_train, val_acc=accuracy(model, x_val, y_val))
    assert run.version is not None
    return run.version


def main(path: str | None = None) -> None:
    torch.manual_seed(0)
    task_a = make_task(seed=1, shift=0.0)
    task_b = make_task(seed=2, shift=0.7)
    with mvcdb.open(path) as db:
        print(f"Model repository: {db.path}")

        base = make_model()
        v1 = fit(db, base, task_a, dataset="task-A", epochs=5, lr=3e-3)
        print(f"v1 {v1.short_id}  base on task A: val_acc={v1.metrics['val_acc']:.3f}")
        print(f"   metadata: optimizer={v1.metadata['hyper']['optimizer']} lr={v1.metadata['hyper']['lr']}")

        tuned = make_model()
        db.restore(v1, into=tuned)  # start from the parent's weights, bit for bit
        before = accuracy(tuned, task_b[0][1600:], task_b[1][1600:])
        v2 = fit(db, tuned, task_b, dataset="task-B", epochs=5, lr=1e-2, parent=v1, freeze_features=True)
        print(
            f"v2 {v2.short_id}  head fine-tuned on task B (child of v1):"
            f" val_acc {before:.3f} -> {v2.metrics['val_acc']:.3f}"
        )
        print(
            f"   frozen: {len(v2.metadata['frozen'])} parameters,"
            f" trainable {v2.metadata['parameters']['trainable']} of {v2.metadata['parameters']['total']}"
        )

        digests_1 = {t.name: t.digest for t in db.tensors(v1)}
        shared = [t for t in db.tensors(v2) if digests_1.get(t.name) == t.digest]
        total_bytes = sum(t.nbytes for t in db.tensors(v2))
        print(
            f"\nv2 shares {len(shared)} of {len(digests_1)} tensors with v1"
            f" ({sum(t.nbytes for t in shared)} of {total_bytes} bytes): stored once."
        )
        try:
            print(db.stats())
        except ImportError:  # an mvcdb without the stats feature
            pass

        check = make_model()
        db.restore(v2, into=check)
        x_b = task_b[0]
        same = torch.equal(tuned.eval()(x_b), check.eval()(x_b))
        print(f"\nRestored v2 into a fresh model: predictions identical = {same}")
        assert same, "restored model predicts differently"

        try:
            db.restore(v2, into=make_model(hidden=64))
        except mvcdb.MvcdbError as exc:
            print(f"Restoring into a narrower model is refused:\n  {exc}")
        cli = "mvcdb" if path is None else f"mvcdb --db {shlex.quote(path)}"
        print(f"\nNext: `{cli} log`, `{cli} diff {v1.short_id} {v2.short_id}`, `{cli} stats`")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
