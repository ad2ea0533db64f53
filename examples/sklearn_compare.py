"""Compare versions of a scikit-learn pipeline, then restore the better one into a fresh pipeline.

Run it as `python examples/sklearn_compare.py [DB]` (needs `pip install "mvcdb[sklearn]"`; about
a second, synthetic data). It shows:

1. recording a fitted Pipeline(StandardScaler, Ridge) with `record(..., model=pipeline)`: its
   learned arrays are stored by step name ("scaler.mean_", "ridge.coef_", ...);
2. a second version with a stronger regularisation, recorded as a child of the first;
3. `db.diff(v1, v2)` (the same as `mvcdb diff v1 v2`): the hyper-parameter change in metadata,
   the metrics, which parameters changed (the scaler did not: same data, same bytes, stored once);
4. tagging the better one `production` and restoring it into an unfitted pipeline with
   `db.restore("production", into=pipeline)`: its predictions reproduce exactly.
"""

from __future__ import annotations

import shlex
import sys

import numpy as np

try:
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
except ImportError:
    sys.exit('examples/sklearn_compare.py needs scikit-learn: pip install "mvcdb[sklearn]"')

import mvcdb


def make_data(seed: int = 3, n: int = 600) -> dict[str, np.ndarray]:
    """y = a few informative features (on very different scales) + noise; 75/25 split."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)) * np.array([1, 10, 100, 1, 0.1, 5, 50, 2])
    y = x @ np.array([2.0, 0.3, 0.01, 0.0, 5.0, -0.4, 0.0, 1.0]) + rng.normal(0, 1.5, n)
    cut = int(0.75 * n)
    return {"x_train": x[:cut], "y_train": y[:cut], "x_val": x[cut:], "y_val": y[cut:]}


def make_pipeline(alpha: float = 1.0) -> Pipeline:
    return Pipeline([("scaler", StandardScaler()), ("ridge", Ridge(alpha=alpha))])


def fit_and_record(
    db: mvcdb.Database, data: dict[str, np.ndarray], alpha: float, parent: mvcdb.Version | None = None
) -> mvcdb.Version:
    pipeline = make_pipeline(alpha).fit(data["x_train"], data["y_train"])
    predicted = pipeline.predict(data["x_val"])
    return db.record(
        "house-prices",
        model=pipeline,
        metrics={
            "val_mse": mean_squared_error(data["y_val"], predicted),
            "val_r2": r2_score(data["y_val"], predicted),
        },
        metadata={
            "datasets": {"train": "synthetic-houses[:450]", "val": "synthetic-houses[450:]"},
            "hyper": {"alpha": alpha, "scaler": "standard"},
        },
        parent=parent,
        message=f"Ridge alpha={alpha}",
    )


def main(path: str | None = None) -> None:
    data = make_data()
    with mvcdb.open(path) as db:
        print(f"Model repository: {db.path}")
        v1 = fit_and_record(db, data, alpha=1.0)
        v2 = fit_and_record(db, data, alpha=300.0, parent=v1)
        print(f"v1 {v1.short_id}  alpha=1    val_mse={v1.metrics['val_mse']:.3f}")
        print(f"v2 {v2.short_id}  alpha=300  val_mse={v2.metrics['val_mse']:.3f}  (child of v1)")
        print(f"Stored parameters: {', '.join(t.name for t in db.tensors(v1))}")

        print(f"\n$ mvcdb diff {v1.short_id} {v2.short_id}")
        print(db.diff(v1, v2))

        best = min((v1, v2), key=lambda v: v.metrics["val_mse"])
        db.tag(best, "production")
        fresh = make_pipeline()  # unfitted: restore(into=) sets its learned attributes
        db.restore("production", into=fresh)
        refit = make_pipeline(best.metadata["hyper"]["alpha"]).fit(data["x_train"], data["y_train"])
        same = np.array_equal(fresh.predict(data["x_val"]), refit.predict(data["x_val"]))
        print(
            f"\nproduction = {best.short_id}; restored into a fresh pipeline, predictions identical = {same}"
        )
        assert same, "restored pipeline predicts differently"
        cli = "mvcdb" if path is None else f"mvcdb --db {shlex.quote(path)}"
        print(f"\nNext: `{cli} log`, `{cli} show production`")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
