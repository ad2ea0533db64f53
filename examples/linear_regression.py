"""The worked example: version a linear regression y = m·x + b fitted by gradient descent.

Run it as `python examples/linear_regression.py [DB]` or `mvcdb demo` (the same file, shipped in
the package as mvcdb.demo). It walks through the whole story mvcdb exists for:

1. fit m and b on a synthetic training set, keeping m, b and the loss at every iteration;
2. record that as version 1, with its training set, validation set and metrics;
3. train again with another learning rate, recorded as a child of version 1;
4. compare the two versions by their metadata and metrics;
5. tag the better one `production`, then roll back by moving the tag;
6. restore the production parameters bit-for-bit and check its predictions.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

import numpy as np

import mvcdb

TRUE_M, TRUE_B = 2.5, -1.0


def make_data(seed: int = 7, n: int = 1000) -> dict[str, np.ndarray]:
    """A synthetic data set y = 2.5·x − 1 + noise, split 80/20 into training and validation."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, n)
    y = TRUE_M * x + TRUE_B + rng.normal(0, 0.5, n)
    cut = int(0.8 * n)
    return {"x_train": x[:cut], "y_train": y[:cut], "x_val": x[cut:], "y_val": y[cut:]}


def mse(m: float, b: float, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((m * x + b - y) ** 2))


def train(
    db: mvcdb.Database,
    data: dict[str, np.ndarray],
    *,
    lr: float,
    iterations: int,
    parent: mvcdb.Version | None = None,
    start: tuple[float, float] = (0.0, 0.0),
) -> mvcdb.Version:
    """Gradient descent on the mean squared error, logging m, b and the loss at every iteration."""
    x, y = data["x_train"], data["y_train"]
    m, b = start
    metadata: dict[str, Any] = {
        "train_set": {"name": "synthetic-linear", "seed": 7, "rows": len(x)},
        "val_set": {"name": "synthetic-linear", "seed": 7, "rows": len(data["x_val"])},
        "hyper": {"lr": lr, "iterations": iterations, "optimizer": "gradient-descent"},
    }
    with db.run("linreg", parent=parent, metadata=metadata) as run:
        for step in range(iterations):
            error = m * x + b - y
            run.log(step, loss=float(np.mean(error**2)), m=m, b=b)
            m -= lr * 2 * float(np.mean(error * x))
            b -= lr * 2 * float(np.mean(error))
        return run.commit(
            params={"m": np.float64(m), "b": np.float64(b)},
            metrics={
                "train_mse": mse(m, b, x, y),
                "val_mse": mse(m, b, data["x_val"], data["y_val"]),
            },
            message=f"gradient descent, lr={lr}, {iterations} iterations",
        )


def main(path: str | None = None) -> None:
    """Run the walk-through against `path` (default: $MVCDB_PATH or ./mvcdb.db)."""
    data = make_data()
    with mvcdb.open(path) as db:
        print(f"Model repository: {db.path}")

        v1 = train(db, data, lr=0.01, iterations=200)
        print(f"v1 {v1.short_id}  lr=0.01  val_mse={v1.metrics['val_mse']:.4f}")

        v2 = train(db, data, lr=0.05, iterations=200, parent=v1)
        print(f"v2 {v2.short_id}  lr=0.05  val_mse={v2.metrics['val_mse']:.4f}  (child of v1)")

        print("\nCompare them (metadata, metrics, parameters, trajectories):")
        print("  " + str(db.diff(v1, v2)).replace("\n", "\n  "))

        best, other = (v2, v1) if v2.metrics["val_mse"] <= v1.metrics["val_mse"] else (v1, v2)
        db.tag(best, "production")
        print(f"\nTagged the better version {best.short_id} as production.")

        db.tag(other, "production")
        db.tag(best, "production")
        history = db.tag_history("production")
        print(f"Rolled production to {other.short_id} and back; its last moves (of {len(history)} kept):")
        for move in history[-3:]:
            src = move.from_id[:12] if move.from_id else "(new)"
            dst = move.to_id[:12] if move.to_id else "(deleted)"
            print(f"  {move.at:%H:%M:%S}  {src} -> {dst}  by {move.author}")

        params = db.restore("production")
        trajectory = db.trajectory("production")
        m, b = float(params["m"]), float(params["b"])
        x_val, y_val = data["x_val"], data["y_val"]
        assert mse(m, b, x_val, y_val) == best.metrics["val_mse"], "restored parameters differ"
        print(f"\nRestored production: m={m:.4f} b={b:.4f} (true 2.5, -1.0)")
        print(
            f"Its trajectory: {len(trajectory['step'])} iterations, loss "
            f"{trajectory['loss'][0]:.3f} -> {trajectory['loss'][-1]:.4f}"
        )
        print(f"Predictions on the validation set reproduce val_mse={best.metrics['val_mse']:.5f} exactly.")
        cli = "mvcdb" if path is None else f"mvcdb --db {shlex.quote(path)}"
        print(f"\nNext: `{cli} log --graph`, `{cli} show production`, `{cli} tui` (database: {db.path})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
