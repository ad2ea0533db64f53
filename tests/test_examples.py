"""Every worked example in examples/ runs, end to end, in a subprocess against a temporary file.

The framework examples are skipped only when their framework is not installed (CI installs them);
they import torch or Keras, which costs seconds, so they are slow tests.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mvcdb

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, tmp_path: Path) -> tuple[str, Path]:
    db_path = tmp_path / "example.db"
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(db_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout, db_path


def root_and_child(versions: list[mvcdb.Version]) -> tuple[mvcdb.Version, mvcdb.Version]:
    """The two versions of an example's model: the root and its child (never by timestamps)."""
    (root,) = [v for v in versions if not v.parents]
    (child,) = [v for v in versions if v.parents]
    return root, child


def needs(*modules: str) -> pytest.MarkDecorator:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


def test_every_example_is_tested() -> None:
    tested = {"linear_regression.py", "pytorch_finetune.py", "keras_callback.py", "sklearn_compare.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_linear_regression_walk_through(tmp_path: Path) -> None:
    out, db_path = run_example("linear_regression.py", tmp_path)
    assert "Tagged the better version" in out and "reproduce val_mse" in out
    with mvcdb.open(db_path, readonly=True) as db:
        versions = db.versions("linreg")
        assert len(versions) == 2
        assert "production" in db.tags()


@needs("sklearn")
def test_sklearn_compare(tmp_path: Path) -> None:
    out, db_path = run_example("sklearn_compare.py", tmp_path)
    assert "predictions identical = True" in out
    assert "hyper.alpha" in out  # the diff shows the hyper-parameter change
    with mvcdb.open(db_path, readonly=True) as db:
        v1, v2 = root_and_child(db.versions("house-prices"))
        assert v2.parent == v1.id
        assert "ridge.coef_" in {t.name for t in db.tensors(v1)}


@pytest.mark.slow
@needs("torch")
def test_pytorch_finetune(tmp_path: Path) -> None:
    out, db_path = run_example("pytorch_finetune.py", tmp_path)
    assert "predictions identical = True" in out
    assert "Restoring into a narrower model is refused" in out
    with mvcdb.open(db_path, readonly=True) as db:
        v1, v2 = root_and_child(db.versions("mlp"))
        assert v2.parent == v1.id
        assert v2.metadata["frozen"] and v2.metadata["hyper"]["freeze_features"] is True
        d1 = {t.name: t.digest for t in db.tensors(v1)}
        frozen = [t for t in db.tensors(v2) if t.name.startswith("0.")]
        assert frozen and all(d1[t.name] == t.digest for t in frozen)  # frozen layers stored once
        assert len(db.trajectory(v2)["step"]) == 5


@pytest.mark.slow
@needs("torch", "keras")
def test_keras_callback(tmp_path: Path) -> None:
    out, db_path = run_example("keras_callback.py", tmp_path)
    assert "predictions identical = True" in out
    with mvcdb.open(db_path, readonly=True) as db:
        v1, v2 = root_and_child(db.versions("waves"))
        assert v2.parent == v1.id
        assert v1.metadata["framework"]["backend"] == "torch"
        assert len(db.series(v1, "val_loss")[1]) == 8
