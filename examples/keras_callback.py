"""Record Keras training with a callback: a version per fit(), its loss curve, its weights.

Run it as `python examples/keras_callback.py [DB]` (needs `pip install "mvcdb[keras]"`; Keras 3
on the torch backend unless KERAS_BACKEND says otherwise; seconds on a CPU, synthetic data). It
shows:

1. `model.fit(..., callbacks=[MvcdbCallback(db, "waves", datasets=..., hyper=...)])`: every epoch's
   loss and val_loss logged, the weights (BatchNormalization's moving statistics included)
   committed by path when fit() ends, with the optimizer's settings in the metadata;
2. a second fit() with the same callback recorded as a child of the first;
3. the loss curve read back with `db.series(...)`;
4. the weights restored into a freshly built model (`db.restore(v, into=model)`), whose
   predictions match the trained model's exactly.
"""

from __future__ import annotations

import os
import shlex
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow needed

try:
    import keras  # noqa: E402
except ImportError:
    sys.exit(
        'examples/keras_callback.py needs Keras 3: pip install "mvcdb[keras]" (and torch for its backend)'
    )
import numpy as np  # noqa: E402

import mvcdb  # noqa: E402
from mvcdb.frameworks.keras_callback import MvcdbCallback  # noqa: E402


def make_data(seed: int = 5, n: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """y = sin(3·x0) + 0.5·x1² + noise: a small nonlinear regression."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2)).astype("float32")
    y = (np.sin(3 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + rng.normal(0, 0.05, n)).astype("float32")
    return x, y[:, None]


def make_model() -> keras.Model:
    """Named model and layers: weights are recorded by path ("waves/hidden/kernel"), stable across runs."""
    return keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.BatchNormalization(momentum=0.9, name="norm"),
            keras.layers.Dense(32, activation="relu", name="hidden2"),
            keras.layers.Dense(1, name="out"),
        ],
        name="waves",
    )


def main(path: str | None = None) -> None:
    keras.utils.set_random_seed(0)
    x, y = make_data()
    with mvcdb.open(path) as db:
        print(f"Model repository: {db.path}  (Keras {keras.__version__}, backend {keras.backend.backend()})")
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
        callback = MvcdbCallback(
            db,
            "waves",
            datasets={"train": "synthetic-waves[:80%]", "val": "synthetic-waves[80%:]"},
            hyper={"batch_size": 64},
            message="dense 32-32 with BatchNorm",
        )
        model.fit(x, y, epochs=8, batch_size=64, validation_split=0.2, verbose=0, callbacks=[callback])
        v1 = callback.version
        assert v1 is not None
        hyper = v1.metadata["hyper"]
        print(f"v1 {v1.short_id}  loss={v1.metrics['loss']:.4f} val_loss={v1.metrics['val_loss']:.4f}")
        print(
            f"   metadata: optimizer={hyper['optimizer']} learning_rate={hyper['learning_rate']:.3g}"
            f" epochs={hyper['epochs']} batch_size={hyper['batch_size']}"
        )

        model.optimizer.learning_rate = 0.002
        model.fit(x, y, epochs=4, batch_size=64, validation_split=0.2, verbose=0, callbacks=[callback])
        v2 = callback.version
        assert v2 is not None and v2.parent == v1.id
        print(f"v2 {v2.short_id}  continued at lr=0.002: val_loss={v2.metrics['val_loss']:.4f} (child of v1)")

        steps, val_loss = db.series(v1, "val_loss")
        curve = "  ".join(f"{v:.3f}" for v in val_loss)
        print(f"\nv1 val_loss by epoch {steps.min()}..{steps.max()}: {curve}")
        print(f"Weights recorded: {', '.join(t.name for t in db.tensors(v2))}")

        fresh = make_model()
        db.restore(v2, into=fresh)
        same = np.array_equal(
            keras.ops.convert_to_numpy(fresh(x, training=False)),
            keras.ops.convert_to_numpy(model(x, training=False)),
        )
        print(f"\nRestored v2 into a freshly built model: predictions identical = {same}")
        assert same, "restored model predicts differently"
        cli = "mvcdb" if path is None else f"mvcdb --db {shlex.quote(path)}"
        print(f"\nNext: `{cli} log --model waves`, `{cli} diff {v1.short_id} {v2.short_id}`")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
