"""Hostile and broken input: each a clear MvcdbError (CLI: one line, exit 1), nothing stored lost."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_error, run
from reliability_helpers import content, digest, flip_chunk_byte

import mvcdb


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed, self-contained file with a few versions spread over several pages."""
    path = tmp_path_factory.mktemp("good") / "good.db"
    rng = np.random.default_rng(0)
    with mvcdb.open(path) as db:
        v = db.record("net", {"w": rng.standard_normal(300_000)}, metrics={"loss": 1.0}, tags=["production"])
        db.record("net", {"w": rng.standard_normal(300_000)}, parent=v, trajectory={"loss": np.arange(10.0)})
    return path


def copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


# -- files that are not (whole) mvcdb databases ---------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0001, 0.02, 0.5, 0.999])
def test_truncated_file_is_refused_and_left_as_it_is(
    good_file: Path, tmp_path: Path, fraction: float
) -> None:
    path = tmp_path / "cut.db"
    data = good_file.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    before = digest(path)
    for readonly in (False, True):
        with pytest.raises(mvcdb.MvcdbError, match="truncated|not a SQLite|not an mvcdb"):
            mvcdb.open(path, readonly=readonly)
    for verb in (["verify"], ["rm", "production"]):
        assert_error(run(path, verb), 1)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.db"]


def test_truncated_file_cannot_poison_a_merge(good_file: Path, tmp_path: Path) -> None:
    local = copy(good_file, tmp_path / "local.db")
    cut = tmp_path / "cut.db"
    cut.write_bytes(good_file.read_bytes()[: good_file.stat().st_size // 2])
    with mvcdb.open(local) as db:
        before = content(db)
        with pytest.raises(mvcdb.MvcdbError, match="truncated"):
            db.merge(cut)
        assert content(db) == before


@pytest.mark.parametrize("kind", ["text", "random", "foreign", "newer", "directory"])
def test_cli_refuses_bad_files_in_one_line(tmp_path: Path, good_file: Path, kind: str) -> None:
    path = tmp_path / "x.db"
    if kind == "text":
        path.write_text("name,score\nada,1\n" * 50)
    elif kind == "random":
        path.write_bytes(os.urandom(70_000))
    elif kind == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
        conn.execute("INSERT INTO orders (item) VALUES ('tea')")
        conn.commit()
        conn.close()
    elif kind == "newer":
        copy(good_file, path)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 1000")
        conn.close()
    else:
        path.mkdir()
    before = digest(path) if path.is_file() else None
    for verb in (["stats"], ["gc"], ["rm", "production", "--force"]):
        assert_error(run(path, verb), 2 if kind == "directory" else 1)  # a directory is bad usage
    assert (digest(path) if path.is_file() else None) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]


def test_newer_schema_names_the_upgrade(tmp_path: Path, good_file: Path) -> None:
    path = copy(good_file, tmp_path / "new.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 1000")
    conn.close()
    assert_error(run(path, ["stats"]), 1, "schema version 1000", "upgrade")


# -- damaged content ------------------------------------------------------------------------------


def test_damaged_chunk_detected_on_restore_and_by_verify(tmp_path: Path, good_file: Path) -> None:
    path = copy(good_file, tmp_path / "bad.db")
    with mvcdb.open(path) as db:
        first = db.versions(order_by="created_at")[0].id
    flip_chunk_byte(
        path,
        "SELECT tc.cid FROM tensor_chunks tc JOIN versions v ON v.vid = tc.vid WHERE v.id = ? LIMIT 1",
        first,
    )
    with mvcdb.open(path) as db:
        with pytest.raises(mvcdb.IntegrityError, match="does not match its hash|corrupt"):
            db.restore(first)
        report = db.verify()
        assert not report.ok and [p.kind for p in report.problems] == ["chunk-corrupt"]
        assert first[:12] in report.problems[0].subject
        assert db.restore("net@latest")["w"].shape == (300_000,)  # the rest still reads
    assert_error(run(path, ["restore", first, "-o", str(tmp_path / "out.npz")]), 1, "hash")
    assert not (tmp_path / "out.npz").exists()


def test_forged_sizes_in_rows_do_not_exhaust_memory(tmp_path: Path, good_file: Path) -> None:
    path = copy(good_file, tmp_path / "forged.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA ignore_check_constraints = ON")  # a forger is not bound by our CHECKs
    conn.execute("UPDATE tensors SET nbytes = 4611686018427387904, shape = '[576460752303423488]'")
    conn.commit()
    conn.close()
    with mvcdb.open(path, readonly=True) as db:
        with pytest.raises(mvcdb.MvcdbError):
            db.restore("production")
        assert not db.verify().ok


# -- odd refs, metrics and metadata ---------------------------------------------------------------

ODD_REFS = [
    "",
    " ",
    "\x00",
    "a\nb",
    "'; DROP TABLE versions; --",
    "../../etc/passwd",
    "%",
    "_",
    "*",
    "ünïcødé",
    "~",
    "^",
    "@",
    "@latest",
    "net@",
    "net@first",
    "x" * 10_000,
    "production~99999999999999999999",
    "0000",
    "g" * 64,
]


def test_odd_refs_are_clear_errors(tmp_path: Path, good_file: Path) -> None:
    path = copy(good_file, tmp_path / "refs.db")
    with mvcdb.open(path) as db:
        before = content(db)
        for ref in ODD_REFS:
            with pytest.raises(mvcdb.RefError):
                db.get(ref)
            with pytest.raises(mvcdb.RefError):
                db.rm(ref)
            with pytest.raises(mvcdb.RefError):
                db.export([ref], tmp_path / "never.db")
        assert content(db) == before
    assert not (tmp_path / "never.db").exists()
    for ref in ("'; DROP TABLE versions; --", "../../etc/passwd", "net@first", "x" * 10_000, ""):
        assert_error(run(path, ["rm", ref]), 1)


def test_metrics_nan_is_null_in_sql_inf_kept_text_refused(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        v = db.record(
            "m", metrics={"nan": float("nan"), "f32nan": np.float32("nan"), "inf": math.inf, "x": 1}
        )
        rows = dict(db.conn.execute("SELECT name, value FROM metrics"))
        assert rows["nan"] is None and rows["f32nan"] is None and rows["inf"] == math.inf and rows["x"] == 1.0
        got = db.get(v.id).metrics
        assert math.isnan(got["nan"]) and got["inf"] == math.inf
        for bad in ("0.5", None, True, 1j, [1.0], {"a": 1}):
            with pytest.raises(mvcdb.MvcdbError, match="real number"):
                db.record("m", metrics={"bad": bad})
        assert [x.id for x in db.versions()] == [v.id]
        assert db.verify().ok


class Unserializable:
    pass


@pytest.mark.parametrize(
    "metadata",
    [{"o": Unserializable()}, {"b": b"bytes"}, {"nan": float("nan")}, {"inf": [math.inf]}, {1j: 1}],
    ids=["object", "bytes", "nan", "inf", "complex-key"],
)
def test_metadata_that_is_not_json_writes_nothing(tmp_path: Path, metadata: dict) -> None:  # type: ignore[type-arg]
    with mvcdb.open(tmp_path / "meta.db") as db:
        with pytest.raises(mvcdb.MvcdbError, match="JSON"):
            db.record("m", {"w": np.arange(100_000.0)}, metadata=metadata)
        assert db.conn.execute("SELECT count(*) FROM versions").fetchone()[0] == 0
        assert db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0


def test_self_referencing_metadata_is_refused(tmp_path: Path) -> None:
    loop: dict[str, object] = {}
    loop["me"] = loop
    with mvcdb.open(tmp_path / "loop.db") as db, pytest.raises(mvcdb.MvcdbError):
        db.record("m", metadata=loop)


# -- read-only use --------------------------------------------------------------------------------


def test_readonly_open_browses_and_refuses_every_write(tmp_path: Path, good_file: Path) -> None:
    path = copy(good_file, tmp_path / "ro.db")
    before = digest(path)
    with mvcdb.open(path, readonly=True) as db:
        latest = db.get("net@latest")
        assert db.restore(latest.id)["w"].shape == (300_000,)
        assert list(db.trajectory(latest.id)["loss"]) == list(np.arange(10.0))
        assert db.tags() == {"production": latest.parents[0]}
        assert db.versions(model="net")[0].id == latest.id
        assert db.diff("production", latest.id) is not None
        assert db.stats().versions == 2 and db.verify().ok
        writes = [
            lambda: db.record("net", {"w": np.ones(2)}),
            lambda: db.tag(latest.id, "x"),
            lambda: db.untag("production"),
            lambda: db.rm(latest.id),
            lambda: db.gc(),
            lambda: db.merge(good_file),
            lambda: db.run("net"),
        ]
        for write in writes:
            with pytest.raises(mvcdb.ReadOnlyError, match="read-only"):
                write()
    assert digest(path) == before


NOBODY = 65534

BROWSE = """
import json, sys
import numpy as np
import mvcdb
out = {}
db = mvcdb.open(sys.argv[1])
out["readonly"] = db.readonly
v = db.get("net@latest")
out["restored"] = db.restore(v.id)["w"].shape[0]
out["versions"] = len(db.versions())
out["verify"] = db.verify().ok
try:
    db.record("net", {"w": np.ones(2)})
except mvcdb.ReadOnlyError as exc:
    out["write"] = str(exc)
db.close()
print(json.dumps(out))
"""


@pytest.fixture(params=["readonly-dir", "writable-dir"])
def locked_dir(good_file: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory (0555, or 0777 so -wal/-shm could be created) holding a 0444 copy of the file."""
    directory = Path(tempfile.mkdtemp(prefix="mvcdb-ro-"))
    directory.chmod(0o755)
    copy(good_file, directory / "ro.db")
    (directory / "ro.db").chmod(0o444)
    directory.chmod(0o555 if request.param == "readonly-dir" else 0o777)
    try:
        yield directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def as_unprivileged(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run args as a user whom file permissions bind (root ignores them): nobody when root."""

    def drop() -> None:
        if os.geteuid() == 0:
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    here = [
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        str(Path(mvcdb.__file__).parents[1]),
    ]
    env = {
        **os.environ,
        "HOME": tempfile.gettempdir(),
        "MVCDB_AUTHOR": "nobody",
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(here)),
    }
    return subprocess.run(args, capture_output=True, text=True, timeout=120, preexec_fn=drop, env=env)


def unprivileged_python() -> str | None:
    """An interpreter the unprivileged user can run with mvcdb importable (the venv's may sit
    under root's home), or None."""
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if not candidate:
            continue
        try:
            probe = as_unprivileged([candidate, "-c", "import mvcdb.cli, numpy, msgpack, zstandard, rich"])
        except OSError:
            continue
        if probe.returncode == 0:
            return candidate
    return None


def test_file_without_write_permission_opens_for_browsing(locked_dir: Path) -> None:
    path = locked_dir / "ro.db"
    python = unprivileged_python()
    if python is None:
        pytest.skip("no Python interpreter with mvcdb is runnable by an unprivileged user here")
    before = digest(path)
    result = as_unprivileged([python, "-c", BROWSE, str(path)])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["readonly"] is True and out["restored"] == 300_000 and out["versions"] == 2 and out["verify"]
    assert "read-only" in out["write"]
    cli = [python, "-m", "mvcdb", "--db", str(path)]
    stats = as_unprivileged([*cli, "stats", "--json"])
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["versions"] == 2
    rm = as_unprivileged([*cli, "rm", "production"])
    assert rm.returncode == 1 and rm.stderr.count("\n") == 1 and "read-only" in rm.stderr, rm.stderr
    assert digest(path) == before
    assert {p.name for p in locked_dir.iterdir()} <= {"ro.db", "ro.db-wal", "ro.db-shm"}
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


@pytest.mark.slow
def test_writable_file_in_a_readonly_directory_opens_for_browsing(good_file: Path) -> None:
    """A file we may write in a directory we may not: SQLite cannot create its -wal/-shm there, so
    writes are ReadOnlyError saying so (not "not a readable SQLite database"), reads work."""
    python = unprivileged_python()
    if python is None:
        pytest.skip("no Python interpreter with mvcdb is runnable by an unprivileged user here")
    outside = Path(tempfile.mkdtemp(prefix="mvcdb-src-"))
    directory = Path(tempfile.mkdtemp(prefix="mvcdb-rodir-"))
    try:
        outside.chmod(0o755)
        np.savez(outside / "p.npz", w=np.ones(3))
        other = copy(good_file, outside / "other.db")
        path = copy(good_file, directory / "rw.db")
        for f in (outside / "p.npz", other, path):
            f.chmod(0o666)
        directory.chmod(0o555)
        before = digest(path)
        cli = [python, "-m", "mvcdb", "--db", str(path)]
        writes = [
            ["tag", "production", "t2"],
            ["rm", "net@latest"],
            ["gc"],
            ["merge", str(other)],
            ["record", "net", "-p", str(outside / "p.npz")],
        ]
        for verb in writes:
            result = as_unprivileged([*cli, *verb])
            assert result.returncode == 1 and result.stderr.count("\n") == 1, (verb, result.stderr)
            assert "directory" in result.stderr and "-wal/-shm" in result.stderr, (verb, result.stderr)
        init = as_unprivileged([*cli, "init"])
        assert init.returncode == 0 and "already an mvcdb database (2 versions)" in init.stdout, init.stderr
        log = as_unprivileged([*cli, "log", "--json"])
        assert log.returncode == 0 and len(json.loads(log.stdout)) == 2, log.stderr
        api = as_unprivileged([python, "-c", BROWSE, str(path)])
        assert api.returncode == 0, api.stderr
        out = json.loads(api.stdout)
        assert out["readonly"] is True and out["restored"] == 300_000 and "not writable" in out["write"]
        assert digest(path) == before
        assert {p.name for p in directory.iterdir()} == {"rw.db"}
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)
        shutil.rmtree(outside)
