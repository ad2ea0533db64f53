"""The benchmark harness computes what it prints: ratios, limits, medians, the JSON, the runner's
failure handling. Tiny sizes and fake clocks only; no timing is asserted."""

from __future__ import annotations

import json
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import bench_storage, bench_trajectory, bench_versions, common  # noqa: E402
from benchmarks.common import MB, row, row_problems  # noqa: E402


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def cheap_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """No gc.collect + malloc_trim before every tiny timed run (memory numbers are not checked)."""
    monkeypatch.setattr(common, "reset_peak", lambda: common._vm("VmRSS"))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake perf_counter for measure(): tests move clock[0] to say how long things took."""
    now = [0.0]
    monkeypatch.setattr(
        common, "time", types.SimpleNamespace(perf_counter=lambda: now[0], process_time=time.process_time)
    )
    return now


# -- rows ----------------------------------------------------------------------------------------


def test_ratio_is_our_throughput_over_the_limits() -> None:
    r = row("s", "1", 2.0, 100.0, "MB/s", "file", 1.0)
    assert r["throughput"] == 50.0
    limit_throughput = 100.0 / 1.0  # the same 100 MB in the limit's second
    assert r["ratio"] == pytest.approx(r["throughput"] / limit_throughput) == 0.5
    assert row_problems(r) == []
    no_limit = row("s", "1", 2.0, 100.0, "MB/s", "", None)
    assert no_limit["ratio"] is None and row_problems(no_limit) == []


def test_row_problems_catch_broken_rows() -> None:
    good = row("s", "1", 2.0, 100.0, "MB/s", "file", 1.0, target=">= 1 x file", met=False)
    assert row_problems(good) == []
    assert any("ratio" in p for p in row_problems({**good, "ratio": 2.0}))  # the wrong way round
    assert any("without its seconds" in p for p in row_problems({**good, "limit_seconds": None}))
    assert any("without a ratio" in p for p in row_problems({**good, "ratio": None}))
    no_limit = row("s", "1", 2.0, 1.0, "x/s", "", None, target="<= 1 s", met=True)
    assert any("without a raw limit" in p for p in row_problems(no_limit))
    assert any("met" in p for p in row_problems({**good, "met": "yes"}))
    assert any("met" in p for p in row_problems({k: v for k, v in good.items() if k != "met"}))
    assert any("'unit'" in p for p in row_problems({k: v for k, v in good.items() if k != "unit"}))
    assert row_problems({"scenario": "bench_x", "size": "", "error": "boom"}) == []


def test_measure_times_only_fn_and_takes_the_median(clock: list[float], cheap_reset: None) -> None:
    costs = iter([5.0, 1.0, 3.0])

    class Result:
        def __del__(self) -> None:
            clock[0] += 1000.0  # freeing the result is not timed

    def fn() -> Result:
        clock[0] += next(costs)
        return Result()

    def setup() -> None:
        clock[0] += 100.0

    t = common.measure(fn, 3, setup=setup, teardown=setup)
    assert t.runs == [5.0, 1.0, 3.0]
    assert t.seconds == 3.0


def test_measure_runs_at_least_once_and_stops_at_the_budget(clock: list[float], cheap_reset: None) -> None:

    def fn() -> None:
        clock[0] += 15.0

    assert common.measure(fn, 5, budget=0.0).runs == [15.0]
    assert common.measure(fn, 5, budget=20.0).runs == [15.0, 15.0]


# -- every scenario's rows, at tiny sizes ----------------------------------------------------------


def _check(rows: list[dict[str, Any]]) -> None:
    assert rows
    assert [p for r in rows for p in row_problems(r)] == []


def test_storage_rows_are_well_formed(tmp_path: Path, cheap_reset: None) -> None:
    params = common.model(MB, tensors=2)
    record_rows, file_seconds = bench_storage._record_rows(tmp_path, params, "1 MB", 1)
    db_path, child, storage = bench_storage._storage_rows(tmp_path, params, "1 MB", file_seconds)
    restore = bench_storage._restore_rows(db_path, params, child, "1 MB", 1)
    diff = bench_storage._diff_rows(db_path, params, child, "1 MB", 1)
    diff_path, diff_child = bench_storage._two_versions(tmp_path, params)
    alone = bench_storage._diff_rows(diff_path, params, diff_child, "1 MB", 1)
    _check(record_rows + storage + restore + diff + alone)
    assert all(r["limit_seconds"] == file_seconds for r in storage)
    assert [r["stored_bytes"] for r in storage][2] == 0  # the unchanged copy
    assert all(r["logical_bytes"] == common.nbytes(params) for r in storage)


def test_trajectory_rows_are_well_formed(tmp_path: Path, cheap_reset: None) -> None:
    rows = bench_trajectory._one_size(tmp_path, 3_000, 1)
    _check(rows)
    assert rows[1]["met"] is None  # the ingest target is for 1,000,000 points
    assert rows[1]["commit_seconds"] > 0


def test_versions_rows_are_well_formed(tmp_path: Path, cheap_reset: None) -> None:
    tree = bench_versions.build_versions_db(200, "tree", cache=tmp_path)
    chain = bench_versions.build_versions_db(200, "chain", cache=tmp_path)
    rows = bench_versions._small_versions(tmp_path, 10, 1)
    rows += bench_versions._listing(tree, 200, 1)
    rows += bench_versions._ancestors(chain, tree, 200, 1)
    _check(rows)


@pytest.mark.slow
def test_concurrency_row_is_well_formed(tmp_path: Path) -> None:
    _check([bench_versions._concurrency(tmp_path, 2, 1)])


# -- the runner ----------------------------------------------------------------------------------


def _fake_modules(monkeypatch: pytest.MonkeyPatch, **runs: Any) -> None:
    for name, fn in runs.items():
        module = types.ModuleType(f"benchmarks.{name}")
        module.run = fn  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"benchmarks.{name}", module)
    monkeypatch.setattr(runner, "discover", lambda: list(runs))


def _good(quick: bool) -> list[dict[str, Any]]:
    return [
        row("fast thing", "small", 0.5, 10.0, "x/s", "raw", 0.25, target=">= 0.5 x raw", met=True),
        row("other thing", "large", 0.5, 10.0, "x/s", "", None, spread=float("nan")),
    ]


def _broken(quick: bool) -> list[dict[str, Any]]:
    raise RuntimeError("boom")


def test_runner_reports_a_failing_module_and_writes_strict_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_modules(monkeypatch, bench_a=_good, bench_b=_broken, bench_c=_good)
    out = tmp_path / "new" / "dir" / "bench.json"
    assert runner.main(["--json", str(out)]) == 1  # a module failed
    printed = capsys.readouterr().out
    doc = _strict_json(out.read_text())
    rows = doc["rows"]
    assert [r["module"] for r in rows] == ["bench_a", "bench_a", "bench_b", "bench_c", "bench_c"]
    assert rows[2]["error"] == "RuntimeError: boom"
    assert rows[1]["spread"] is None  # NaN is not JSON
    for r in rows:
        assert r["scenario"] in printed
    assert "boom" in printed


def test_a_module_that_fails_midway_keeps_the_rows_it_gave(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def half(quick: bool) -> Iterator[dict[str, Any]]:
        yield from _good(quick)[:1]
        raise RuntimeError("second size ran out of disk")

    _fake_modules(monkeypatch, bench_a=half, bench_b=_good)
    out = tmp_path / "bench.json"
    assert runner.main(["--json", str(out)]) == 1
    rows = _strict_json(out.read_text())["rows"]
    assert [(r["module"], r["scenario"]) for r in rows] == [
        ("bench_a", "fast thing"),
        ("bench_a", "bench_a"),
        ("bench_b", "fast thing"),
        ("bench_b", "other thing"),
    ]
    assert rows[1]["error"] == "RuntimeError: second size ran out of disk"


def test_json_has_no_nan_or_infinity(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    runner.write_json(path, {"rows": [{"a": float("inf"), "b": [float("nan"), 1.5]}]})
    assert _strict_json(path.read_text()) == {"rows": [{"a": None, "b": [None, 1.5]}]}


def test_runner_exit_code_and_default_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_modules(monkeypatch, bench_a=_good)
    monkeypatch.setattr(runner, "RESULTS", tmp_path)
    assert runner.main(["--quick"]) == 0
    assert _strict_json((tmp_path / "latest-quick.json").read_text())["rows"]
    assert runner.main(["--only", "a"]) == 0  # a partial run keeps the whole run's file
    assert (tmp_path / "latest-only.json").exists() and not (tmp_path / "latest.json").exists()


def test_runner_flags_a_malformed_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def backwards(quick: bool) -> list[dict[str, Any]]:
        return [{**row("s", "1", 2.0, 1.0, "x/s", "raw", 1.0), "ratio": 2.0}]

    _fake_modules(monkeypatch, bench_a=backwards)
    assert runner.main(["--json", str(tmp_path / "b.json")]) == 1


def test_runner_stops_on_ctrl_c_and_keeps_the_rows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(quick: bool) -> list[dict[str, Any]]:
        raise KeyboardInterrupt

    def never(quick: bool) -> list[dict[str, Any]]:
        raise AssertionError("ran after Ctrl-C")

    _fake_modules(monkeypatch, bench_a=_good, bench_b=interrupted, bench_c=never)
    out = tmp_path / "b.json"
    assert runner.main(["--json", str(out)]) == 130
    rows = _strict_json(out.read_text())["rows"]
    assert [r["module"] for r in rows] == ["bench_a", "bench_a", "bench_b"]
    assert "interrupted" in rows[-1]["error"]


def test_runner_refuses_bad_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_modules(monkeypatch, bench_a=_never_run)
    with pytest.raises(SystemExit) as exc:
        runner.main(["--only", "nosuch"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        runner.main(["--json", str(tmp_path)])
    assert exc.value.code == 2


def _never_run(quick: bool) -> list[dict[str, Any]]:
    raise AssertionError("ran despite bad arguments")
