"""PyTorch integration: modules and state_dicts in and out, every dtype bit for bit, clear refusals,
and the training helper (track / TorchRun)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import mvcdb
from mvcdb import dtypes

torch = pytest.importorskip("torch")
nn = torch.nn

from mvcdb.frameworks.torch_training import track  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental"),
    pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor.*deprecated"),
]

DTYPE_NAMES = [
    "float32", "float64", "float16", "bfloat16", "complex64", "complex128", "complex32",
    "int8", "uint8", "int16", "int32", "int64", "uint16", "uint32", "uint64", "bool",
    "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
    "float4_e2m1fn_x2",
]  # fmt: skip
ALL_DTYPES = [getattr(torch, n) for n in DTYPE_NAMES if isinstance(getattr(torch, n, None), torch.dtype)]


def random_tensor(dtype: Any, shape: tuple[int, ...] = (3, 4), seed: int = 0) -> Any:
    """Random bit patterns of any dtype (NaN payloads, -0.0, subnormals); bools stay 0/1."""
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (*shape[:-1], shape[-1] * itemsize), dtype=torch.uint8, generator=gen)
    return raw.view(dtype)


def bits(t: Any) -> bytes:
    return bytes(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def assert_same_state(a: Any, b: Any) -> None:
    sa = a.state_dict() if isinstance(a, nn.Module) else a
    sb = b.state_dict() if isinstance(b, nn.Module) else b
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert sa[name].shape == sb[name].shape, name
        assert bits(sa[name]) == bits(sb[name]), name


class Net(nn.Module):
    """Parameters, a BatchNorm (running stats, num_batches_tracked), a bf16 layer, a buffer."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.head = nn.Linear(hidden, 2).to(torch.bfloat16)
        self.register_buffer("mask", torch.tensor([True, False, True]))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)  # not in state_dict

    def forward(self, x: Any) -> Any:
        return self.head(torch.relu(self.bn(self.fc1(x))).to(torch.bfloat16))


def trained_net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    net = Net()
    net.train()
    for _ in range(3):  # moves the running stats and counts num_batches_tracked
        net(torch.randn(16, 4))
    return net


# -- round trips -------------------------------------------------------------------------------


def test_state_dict_of_every_dtype_round_trips_bit_identical(db: mvcdb.Database) -> None:
    state = {f"t.{str(d).removeprefix('torch.')}": random_tensor(d, seed=i) for i, d in enumerate(ALL_DTYPES)}
    state["scalar.bf16"] = random_tensor(torch.bfloat16, (1,), seed=99).reshape(())
    state["empty.f8"] = torch.empty((0, 3), dtype=ALL_DTYPES[-1])
    v = db.record("all-dtypes", model=state)
    stored = {t.name: t.dtype for t in db.tensors(v)}
    assert stored["t.bfloat16"] == "bfloat16"
    assert stored["t.float32"] == "<f4"
    assert stored["t.bool"] == "|b1"
    if hasattr(torch, "float8_e4m3fn"):
        assert stored["t.float8_e4m3fn"] == "float8_e4m3fn"
    target = {name: torch.empty_like(t) for name, t in state.items()}
    restored = db.restore(v, into=target)
    assert set(restored) == set(state)
    assert_same_state(state, target)


def test_module_with_buffers_round_trips_into_a_fresh_module(db: mvcdb.Database) -> None:
    net = trained_net()
    assert int(net.bn.num_batches_tracked) == 3
    v = mvcdb.record("net", model=net, metrics={"loss": 0.1}, db=db)
    names = {t.name for t in db.tensors(v)}
    assert {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "mask"} <= names
    assert "scratch" not in names  # non-persistent buffers are not part of the state
    fresh = Net()
    db.restore(v, into=fresh)
    assert_same_state(net, fresh)
    assert int(fresh.bn.num_batches_tracked) == 3
    x = torch.randn(5, 4)
    assert torch.equal(net.eval()(x), fresh.eval()(x))
    assert fresh.fc1.weight.requires_grad  # loading keeps parameters parameters


def test_a_meta_device_module_is_materialized_by_restore(db: mvcdb.Database) -> None:
    net = trained_net()
    v = db.record("net", model=net)
    with torch.device("meta"):
        fresh = Net()
    fresh.fc1.bias.requires_grad_(False)  # a frozen parameter stays frozen
    restored = db.restore(v, into=fresh)
    assert not any(t.is_meta for t in fresh.state_dict().values())
    assert_same_state(net, fresh)
    assert {t.device.type for t in fresh.state_dict().values()} == {"cpu"}
    assert fresh.head.weight.dtype == torch.bfloat16
    params = dict(fresh.named_parameters())
    assert all(isinstance(p, nn.Parameter) for p in params.values())
    assert {n for n, p in params.items() if not p.requires_grad} == {"fc1.bias"}
    x = torch.randn(5, 4)
    assert torch.equal(net.eval()(x), fresh.eval()(x))
    restored["fc1.weight"][...] = 0  # the module owns its memory: restore()'s arrays are separate
    assert torch.equal(fresh.fc1.weight, net.fc1.weight)

    with torch.device("meta"):
        partly = Net()
    db.restore(v, ["fc1.weight"], into=partly)
    assert not partly.fc1.weight.is_meta and partly.fc1.bias.is_meta


def test_a_state_dict_of_meta_tensors_is_refused_before_anything_is_copied(db: mvcdb.Database) -> None:
    v = db.record("lin", model=nn.Linear(3, 2))
    target = {"weight": torch.zeros(2, 3), "bias": torch.empty(2, device="meta")}
    with pytest.raises(mvcdb.MvcdbError, match=r"'bias' is on the meta device.*restore into the nn\.Module"):
        db.restore(v, into=target)
    assert torch.equal(target["weight"], torch.zeros(2, 3))  # nothing was copied


def test_params_dict_of_tensors_needs_no_conversion(db: mvcdb.Database) -> None:
    w = torch.randn(3, 4, requires_grad=True)
    z = torch.tensor([1 + 2j, 3 - 4j]).conj()  # lazily conjugated
    v = db.record(
        "mixed",
        params={
            "w": w,
            "wt": w.t(),  # not contiguous
            "z": z,
            "neg": torch.tensor([1.5, -2.0]).neg(),
            "nested": {"h": torch.ones(2, dtype=torch.bfloat16)},
            "np": np.arange(3),
        },
    )
    out = db.restore(v)
    np.testing.assert_array_equal(out["w"], w.detach().numpy())
    np.testing.assert_array_equal(out["wt"], w.detach().numpy().T)
    np.testing.assert_array_equal(out["z"], np.array([1 - 2j, 3 + 4j]))
    np.testing.assert_array_equal(out["neg"], [-1.5, 2.0])
    assert dtypes.name_of(out["nested.h"].dtype) == "bfloat16"


def test_bfloat16_without_ml_dtypes_still_restores_into_torch(
    db: mvcdb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dtypes, "ml_dtype", lambda _name: None)
    net = trained_net(1)
    v = db.record("net", model=net)
    plain = db.restore(v)
    assert plain["head.weight"].dtype.metadata == {dtypes.TAG: "bfloat16"}  # raw bits, tagged
    fresh = Net()
    db.restore(v, into=fresh)
    assert_same_state(net, fresh)


def test_frozen_layers_of_a_fine_tune_are_stored_once(db: mvcdb.Database) -> None:
    base = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 4))
    v1 = db.record("ft", model=base)
    with torch.no_grad():
        base[2].weight.add_(0.01)
    v2 = db.record("ft", model=base, parent=v1)
    d1 = {t.name: t.digest for t in db.tensors(v1)}
    d2 = {t.name: t.digest for t in db.tensors(v2)}
    assert d1["0.weight"] == d2["0.weight"] and d1["0.bias"] == d2["0.bias"]
    assert d1["2.weight"] != d2["2.weight"]
    shared = db.conn.execute(
        "SELECT count(DISTINCT cid) FROM tensor_chunks WHERE name = '0.weight'"
    ).fetchone()[0]
    assert shared == 1


# -- refusals ----------------------------------------------------------------------------------


def test_restore_into_a_mismatched_module_names_the_first_mismatch_and_loads_nothing(
    db: mvcdb.Database,
) -> None:
    v = db.record("net", model=trained_net())

    narrow = Net(hidden=6)
    before = {k: t.clone() for k, t in narrow.state_dict().items()}
    with pytest.raises(mvcdb.MvcdbError, match=r"'fc1\.weight' has shape \(6, 4\) in the model but \(8, 4\)"):
        db.restore(v, into=narrow)
    assert_same_state(before, narrow)  # nothing partially loaded

    half = Net().half()
    with pytest.raises(mvcdb.MvcdbError, match=r"'fc1\.weight' is float16 in the model but float32 in"):
        db.restore(v, into=half)

    other = nn.Sequential(nn.Linear(4, 8))
    with pytest.raises(mvcdb.MvcdbError, match=r"the version has no '0\.weight'.*model has 2 parameters"):
        db.restore(v, into=other)

    class Bigger(Net):
        def __init__(self) -> None:
            super().__init__()
            del self.mask

    with pytest.raises(mvcdb.MvcdbError, match=r"it has no 'mask', which the version has"):
        db.restore(v, into=Bigger())


def test_restore_names_into_loads_just_those(db: mvcdb.Database) -> None:
    net = trained_net()
    v = db.record("net", model=net)
    fresh = Net()
    head_before = bits(fresh.head.weight)
    db.restore(v, ["fc1.weight", "fc1.bias"], into=fresh)
    assert bits(fresh.fc1.weight) == bits(net.fc1.weight)
    assert bits(fresh.head.weight) == head_before
    with pytest.raises(mvcdb.MvcdbError, match="shape"):
        db.restore(v, ["fc1.weight"], into=Net(hidden=5))


def test_unstorable_tensors_are_refused_clearly(db: mvcdb.Database) -> None:
    with pytest.raises(mvcdb.MvcdbError, match="meta device"):
        db.record("bad", model=nn.Linear(2, 2, device="meta"))
    with pytest.raises(mvcdb.MvcdbError, match="sparse.*to_dense"):
        db.record("bad", params={"s": torch.eye(3).to_sparse()})
    q = torch.quantize_per_tensor(torch.randn(3), 0.1, 0, torch.qint8)
    with pytest.raises(mvcdb.MvcdbError, match="quantized"):
        db.record("bad", params={"q": q})
    with pytest.raises(mvcdb.MvcdbError, match="'step' is a int, not a tensor"):
        db.record("bad", model={"w": torch.zeros(2), "step": 3})
    assert db.versions() == []


# -- the training helper -----------------------------------------------------------------------


def test_track_logs_each_epoch_and_commits_with_metadata(db: mvcdb.Database) -> None:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    v0 = db.record("reg", model=base)
    base[0].weight.requires_grad_(False)
    opt = torch.optim.SGD([p for p in base.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    with track(
        db,
        "reg",
        base,
        parent=v0,
        optimizer=opt,
        datasets={"train": "randn-64"},
        hyper={"epochs": 4},
        metadata={"note": "test"},
        message="fine-tune",
    ) as run:
        for epoch in range(4):
            opt.zero_grad()
            loss = nn.functional.mse_loss(base(x), y)
            loss.backward()
            opt.step()
            run.log(epoch, loss=loss, head=base[2].weight)  # a 0-d tensor and a weight snapshot
    v = run.version
    assert v is not None and v.parent == v0.id and v.message == "fine-tune"
    meta = v.metadata
    assert meta["datasets"] == {"train": "randn-64"}
    assert meta["hyper"]["epochs"] == 4 and meta["hyper"]["optimizer"] == "SGD"
    assert meta["hyper"]["lr"] == 0.05 and meta["hyper"]["momentum"] == 0.9
    assert meta["frozen"] == ["0.weight"]
    assert meta["parameters"] == {"total": 3 * 8 + 8 + 8 + 1, "trainable": 8 + 8 + 1}
    assert meta["framework"]["name"] == "torch" and meta["note"] == "test"
    assert meta["model_class"] == "torch.nn.modules.container.Sequential"
    steps, losses = db.series(v, "loss")
    assert list(steps) == [0, 1, 2, 3] and losses.dtype == np.float64
    assert v.metrics["loss"] == losses[-1]
    _, heads = db.series(v, "head")
    assert heads.shape == (4, 1, 8)
    assert not np.array_equal(heads[0], heads[-1])  # snapshots, not views of the live weight
    fresh = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    db.restore(v, into=fresh)
    assert_same_state(base, fresh)


def test_track_discards_the_run_when_training_fails(db: mvcdb.Database) -> None:
    net = nn.Linear(2, 1)
    with pytest.raises(RuntimeError, match="diverged"):
        with track(db, "boom", net) as run:
            run.log(0, loss=1.0)
            raise RuntimeError("diverged")
    assert db.versions() == []
    with track(db, "ok", net) as run:
        run.log(0, loss=torch.tensor(2.0))
        v = run.commit(metrics={"val": 1.0})
    assert v.metrics == {"loss": 2.0, "val": 1.0}
    assert len(db.versions()) == 1
