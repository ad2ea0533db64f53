"""Keras 3 integration on the torch backend: weights by path in and out, bit for bit, and the
MvcdbCallback. Importing Keras costs seconds, so these are slow tests (CI runs them)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import pytest

import mvcdb
from mvcdb import dtypes

if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
    pytest.skip("keras and torch are not installed", allow_module_level=True)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]


class _LazyKeras:
    """keras, imported on first use: collecting this file in the quick loop must not import it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # pytest's collection probes (__test__...): no import
            raise AttributeError(name)
        os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow
        import keras as module

        if module.backend.backend() != "torch":
            pytest.skip("Keras was already loaded with another backend")
        return getattr(module, name)


keras = _LazyKeras()


def make_model(name: str = "mlp", hidden: int = 8, head_dtype: str = "bfloat16") -> Any:
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.BatchNormalization(name="norm"),
            keras.layers.Dense(1, name="out", dtype=head_dtype),
        ],
        name=name,
    )
    return model


def data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5], dtype="float32"))[:, None]


def weight_bits(model: Any) -> dict[str, bytes]:
    from mvcdb.frameworks.keras import params_from_object

    return {k: v.tobytes() for k, v in params_from_object(model).items()}


def test_model_weights_round_trip_by_path_bit_identical(db: mvcdb.Database) -> None:
    keras.utils.set_random_seed(1)
    model = make_model()
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    model.fit(x, y, epochs=2, verbose=0)  # moves BatchNorm's moving statistics
    v = db.record("mlp", model=model)
    info = {t.name: t.dtype for t in db.tensors(v)}
    assert info["mlp/hidden/kernel"] == "<f4"
    assert info["mlp/out/kernel"] == "bfloat16"
    assert "mlp/norm/moving_mean" in info and "mlp/norm/moving_variance" in info
    fresh = make_model()
    assert weight_bits(fresh) != weight_bits(model)
    db.restore(v, into=fresh)
    assert weight_bits(fresh) == weight_bits(model)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(fresh(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
    )
    restored = db.restore(v)
    assert dtypes.name_of(restored["mlp/out/kernel"].dtype) == "bfloat16"


def test_mismatched_models_are_refused_with_the_first_mismatch(db: mvcdb.Database) -> None:
    v = db.record("mlp", model=make_model())
    wide = make_model(hidden=5)
    before = weight_bits(wide)
    with pytest.raises(
        mvcdb.MvcdbError, match=r"'mlp/hidden/kernel' has shape \(3, 5\) in the model but \(3, 8\)"
    ):
        db.restore(v, into=wide)
    assert weight_bits(wide) == before
    with pytest.raises(mvcdb.MvcdbError, match=r"'mlp/out/kernel' is float32 in the model but bfloat16"):
        db.restore(v, into=make_model(head_dtype="float32"))
    with pytest.raises(mvcdb.MvcdbError, match=r"the version has no 'other/hidden/kernel'.*explicit names"):
        db.restore(v, into=make_model(name="other"))
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(mvcdb.MvcdbError, match="not built yet"):
        db.record("x", model=unbuilt)


def test_callback_records_each_fit_with_trajectory_and_metadata(db: mvcdb.Database) -> None:
    keras.utils.set_random_seed(2)
    base = db.record("mlp", model=make_model(), message="initial weights")
    model = make_model()
    db.restore(base, into=model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    from mvcdb.frameworks.keras import MvcdbCallback

    cb = MvcdbCallback(
        db, "mlp", parent=base, datasets={"train": "lin-64"}, hyper={"batch_size": 16}, metadata={"run": 1}
    )
    x, y = data()
    model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[cb])
    v1 = cb.version
    assert v1 is not None and v1.parent == base.id
    steps, val_loss = db.series(v1, "val_loss")
    assert list(steps) == [0, 1, 2] and len(val_loss) == 3
    assert set(db.trajectory(v1)) >= {"step", "loss", "mae", "val_loss", "val_mae"}
    assert v1.metrics["val_loss"] == val_loss[-1]
    meta = v1.metadata
    assert meta["datasets"] == {"train": "lin-64"} and meta["run"] == 1
    assert meta["hyper"]["optimizer"] == "adam" and meta["hyper"]["batch_size"] == 16
    assert meta["hyper"]["learning_rate"] == pytest.approx(0.01) and meta["hyper"]["epochs"] == 3
    assert meta["framework"]["name"] == "keras" and meta["framework"]["backend"] == "torch"
    assert weight_bits(model) == {
        k: v.tobytes() for k, v in db.restore(v1).items()
    }  # the committed weights are the trained ones

    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])  # continues: a child
    v2 = cb.version
    assert v2 is not None and v2.parent == v1.id
    assert list(db.series(v2, "loss")[0]) == [0, 1]

    per_batch = MvcdbCallback(db, "mlp-batches", every="batch")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[per_batch])
    assert per_batch.version is not None
    assert list(db.series(per_batch.version, "loss")[0]) == list(range(8))  # 4 batches x 2 epochs
    with pytest.raises(mvcdb.MvcdbError, match="every="):
        MvcdbCallback(db, "x", every="hour")


def test_callback_every_batch_logs_validation_metrics_at_each_epochs_last_batch(db: mvcdb.Database) -> None:
    from mvcdb.frameworks.keras import MvcdbCallback

    keras.utils.set_random_seed(3)
    model = make_model()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = data()
    cb = MvcdbCallback(db, "mlp", every="batch")
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0, callbacks=[cb])
    v = cb.version
    assert v is not None
    batches = len(x) * 3 // 4 // 16  # per epoch
    steps, val_loss = db.series(v, "val_loss")
    assert list(steps) == [batches - 1, 2 * batches - 1]  # in the row of each epoch's last batch
    assert list(val_loss) == pytest.approx(history.history["val_loss"])
    assert list(db.series(v, "val_mae")[0]) == list(steps)
    traj = db.trajectory(v)
    assert list(traj["step"]) == list(range(2 * batches))  # one row a batch, none added
    assert v.metrics["val_loss"] == val_loss[-1]


def test_failed_fit_records_nothing(db: mvcdb.Database) -> None:
    from mvcdb.frameworks.keras import MvcdbCallback

    class Boom(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            raise RuntimeError("diverged")

    model = make_model()
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    cb = MvcdbCallback(db, "mlp")
    with pytest.raises(RuntimeError, match="diverged"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[cb, Boom()])
    assert cb.version is None and db.versions() == []
