"""Fixtures for the CLI tests: a small deterministic database, and running `mvcdb` in-process.

The database (built once per module, copied per test) holds:
  linreg  v1 (root, trajectory of loss/m/b)  ->  v2 (child, trajectory with a sparse series)
                                             ->  v3 (branch, logs a 2x2 weight each step)
          v4 = merge of v2 and v3
  other   o1 (root: int, complex and float32 parameters)
  tags    production: v1 -> v2 -> v1 (a rollback), best -> v3
Ids depend on the clock, so tests read them from `Fixture`, never hard-code them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
from click.testing import CliRunner, Result

import mvcdb
from mvcdb.cli.app import cli


@dataclass(frozen=True)
class Fixture:
    """The path of a fixture database and the ids of its versions."""

    path: Path
    v1: str
    v2: str
    v3: str
    v4: str
    o1: str


#: The exact parameters recorded, so restore/show results can be checked against numpy.
V1_PARAMS = {"m": np.float64(2.5), "b": np.float64(-1.0)}
V2_PARAMS = {"m": np.float64(2.49), "b": np.float64(-0.99)}
V3_PARAMS = {"m": np.float64(2.4), "b": np.float64(-0.9), "w": np.arange(4, dtype=np.float32).reshape(2, 2)}
O1_PARAMS = {
    "layer.weight": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
    "layer.bias": np.array([1, -2, 3], dtype=np.int16),
    "phase": np.array([3 + 4j, 0 + 0j], dtype=np.complex128),
}
LOSS = np.array([4.0, 2.0, 1.0, 0.5, 0.25])


def build(path: Path) -> Fixture:
    """Record the fixture database at `path` (author 'tester') and return its ids."""
    with mock.patch.dict(os.environ, {"MVCDB_AUTHOR": "tester"}), mvcdb.open(path) as db:
        v1 = db.record(
            "linreg",
            V1_PARAMS,
            metrics={"val_mse": 0.3, "train_mse": 0.28},
            metadata={"train_set": "train.csv", "hyper": {"lr": 0.01}},
            trajectory={"loss": LOSS, "m": np.linspace(0, 2.5, 5), "b": np.linspace(0, -1, 5)},
            message="first fit",
            tags=["production"],
        )
        with db.run("linreg", parent=v1, metadata={"hyper": {"lr": 0.05}}, message="finer") as run:
            for step in range(4):
                if step % 2 == 0:  # grad is sparse: logged at steps 0 and 2 only
                    run.log(step, loss=1.0 / (step + 1), grad=float(step))
                else:
                    run.log(step, loss=1.0 / (step + 1))
            v2 = run.commit(params=V2_PARAMS, metrics={"val_mse": 0.2})
        weights = np.stack([np.full((2, 2), i, dtype=np.float64) for i in range(3)])
        v3 = db.record(
            "linreg",
            V3_PARAMS,
            metrics={"val_mse": 0.25},
            metadata={"train_set": "other.csv"},
            trajectory={"w": weights},
            parent=v1,
            message="branch with a weight matrix",
        )
        v4 = db.record("linreg", V2_PARAMS, parents=[v2, v3], metrics={"val_mse": 0.19}, message="merge")
        o1 = db.record("other", O1_PARAMS, metrics={"acc": float("nan")}, message="another model")
        db.tag(v2, "production")
        db.tag(v1, "production")  # the rollback
        db.tag(v3, "best")
    return Fixture(path=path, v1=v1.id, v2=v2.id, v3=v3.id, v4=v4.id, o1=o1.id)


def copy_fixture(template: Fixture, directory: Path) -> Fixture:
    """A private copy of a built fixture (the file is self-contained once closed)."""
    target = directory / "fixture.db"
    shutil.copyfile(template.path, target)
    return Fixture(target, template.v1, template.v2, template.v3, template.v4, template.o1)


def run(db: Path | None, args: Sequence[str], **env: str) -> Result:
    """Run `mvcdb [--db DB] ARGS...` in-process through click's CliRunner (stdout/stderr apart)."""
    argv = (["--db", str(db)] if db is not None else []) + list(args)
    return CliRunner().invoke(cli, argv, env={"MVCDB_AUTHOR": "tester", **env})


def assert_error(result: Result, exit_code: int, *needles: str) -> str:
    """The command failed with `exit_code` and exactly one stderr line `mvcdb: error: ...`."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mvcdb: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def ambiguous_prefix(path: Path) -> tuple[str, list[str]]:
    """Record tiny versions until two ids share a 4-hex prefix; return it and the two ids."""
    seen: dict[str, str] = {}
    with mvcdb.open(path) as db:
        for i in range(5000):
            v = db.record("amb", metrics={"i": float(i)})
            prefix = v.id[:4]
            if prefix in seen:
                return prefix, [seen[prefix], v.id]
            seen[prefix] = v.id
    raise AssertionError("no 4-hex collision in 5000 versions")
