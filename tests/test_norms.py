"""mvcdb.norms: parameter norms read in batches, one damaged tensor not hiding the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import flip_chunk_byte

import mvcdb
from mvcdb.models import TensorInfo
from mvcdb.norms import batches, param_norms


def _info(name: str, nbytes: int) -> TensorInfo:
    return TensorInfo(name=name, dtype="<u1", shape=(nbytes,), nbytes=nbytes, digest="")


def test_batches_keep_order_and_cut_before_the_limit_is_passed() -> None:
    tensors = [_info(n, size) for n, size in [("a", 4), ("b", 4), ("c", 9), ("d", 1), ("e", 2)]]
    got = [[t.name for t in batch] for batch in batches(tensors, 8)]
    assert got == [["a", "b"], ["c"], ["d", "e"]]  # a tensor over the limit goes alone
    assert list(batches([], 8)) == []


def test_a_damaged_tensor_is_named_and_the_others_in_its_batch_keep_their_norms(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    params = {name: rng.standard_normal(40_000).astype(np.float32) for name in ("a", "bad", "c")}
    with mvcdb.open(tmp_path / "n.db") as db:
        v = db.record("m", params)
    flip_chunk_byte(
        tmp_path / "n.db",
        "SELECT tc.cid FROM tensor_chunks tc JOIN versions v ON v.vid = tc.vid WHERE tc.name = 'bad'",
    )
    with mvcdb.open(tmp_path / "n.db", readonly=True) as db:
        seen: list[tuple[int, str]] = []
        norms, damaged = param_norms(
            db, v.id, db.tensors(v.id), progress=lambda done, n: seen.append((done, n))
        )
    assert seen == [(0, "a")]  # one batch
    assert set(norms) == {"a", "c"} and list(damaged) == ["bad"]
    assert "param 'bad'" in damaged["bad"]
    for name in ("a", "c"):
        assert norms[name] == pytest.approx(float(np.linalg.norm(params[name].astype(np.float64))), rel=1e-12)
