"""scikit-learn private fitted state (SVC's _dual_coef_, OneHotEncoder's _n_features_outs...):
recorded, restored into fresh instances bit for bit, never leaving another fit's leftovers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import mvcdb

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from mvcdb.frameworks import model_metadata, params_from_object  # noqa: E402

METHODS = ("predict", "predict_proba", "decision_function", "transform")


def outputs(est: Any, x: Any) -> dict[str, np.ndarray]:
    """Everything est computes from x, dense."""
    out = {}
    for method in METHODS:
        if hasattr(est, method):
            got = getattr(est, method)(x)
            out[method] = got.toarray() if hasattr(got, "toarray") else np.asarray(got)
    assert out
    return out


def assert_same_outputs(got: Any, want: Any, x: Any) -> None:
    """Bit for bit: same dtype, same bytes (NaN where NaN)."""
    a, b = outputs(got, x), outputs(want, x)
    assert a.keys() == b.keys()
    for method in a:
        assert a[method].dtype == b[method].dtype, method
        if a[method].dtype == object:
            assert a[method].tolist() == b[method].tolist(), method
        else:
            assert a[method].tobytes() == b[method].tobytes(), method


rng = np.random.default_rng(7)
X = rng.normal(size=(120, 4)) * [1.0, 5.0, 0.2, 2.0]
Y = np.where(X[:, 0] + 0.3 * X[:, 1] > 0, "yes", "no")
Y3 = np.digitize(X[:, 0], [-0.5, 0.5])
X_NAN = np.where(rng.random(X.shape) < 0.15, np.nan, X)
WORDS = rng.choice(
    np.array(["red", "green", "blue", "teal"], dtype=object), size=(120, 2), p=[0.5, 0.3, 0.15, 0.05]
)
CODES = rng.choice([3, 7, 11, 19], size=(120, 2)).astype(np.int64)
TRAIN, TEST = slice(0, 90), slice(90, None)

#: (id, estimator, fit(est) -> est, held-out input)
CASES: list[tuple[str, Any, Callable[[Any], Any], Any]] = [
    ("logreg", LogisticRegression(), lambda e: e.fit(X[TRAIN], Y[TRAIN]), X[TEST]),
    ("ridge", Ridge(alpha=0.5), lambda e: e.fit(X[TRAIN], X[TRAIN, 0] * 2), X[TEST]),
    (
        "scaler+logreg",
        Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]),
        lambda e: e.fit(X[TRAIN], Y3[TRAIN]),
        X[TEST],
    ),
    ("pca", PCA(n_components=2), lambda e: e.fit(X[TRAIN]), X[TEST]),
    ("svc", SVC(), lambda e: e.fit(X[TRAIN], Y3[TRAIN]), X[TEST]),
    ("svc-proba", SVC(probability=True, random_state=0), lambda e: e.fit(X[TRAIN], Y[TRAIN]), X[TEST]),
    ("kmeans", KMeans(n_clusters=3, n_init=1, random_state=0), lambda e: e.fit(X[TRAIN]), X[TEST]),
    ("imputer", SimpleImputer(strategy="median"), lambda e: e.fit(X_NAN[TRAIN]), X_NAN[TEST]),
    ("onehot-str", OneHotEncoder(handle_unknown="ignore"), lambda e: e.fit(WORDS[TRAIN]), WORDS[TEST]),
    ("onehot-int", OneHotEncoder(drop="first"), lambda e: e.fit(CODES[TRAIN]), CODES[TEST]),
    (
        "onehot-infrequent",
        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=8),
        lambda e: e.fit(WORDS[TRAIN]),
        np.array([["red", "violet"], ["teal", "blue"]], dtype=object),
    ),
    (
        "mlp",
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0),
        lambda e: e.fit(X[TRAIN], Y[TRAIN]),
        X[TEST],
    ),
    ("ridge-classifier", RidgeClassifier(), lambda e: e.fit(X[TRAIN], Y3[TRAIN]), X[TEST]),
    ("knn", KNeighborsClassifier(n_neighbors=3), lambda e: e.fit(X[TRAIN], Y[TRAIN]), X[TEST]),
    (
        "knn-ball",
        KNeighborsRegressor(n_neighbors=4, algorithm="ball_tree", leaf_size=5),
        lambda e: e.fit(X[TRAIN], X[TRAIN, 1]),
        X[TEST],
    ),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("est", "fit", "held_out"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_restores_into_a_fresh_instance_bit_for_bit(
    db: mvcdb.Database, est: Any, fit: Callable[[Any], Any], held_out: Any
) -> None:
    fitted = fit(clone(est))
    v = db.record("m", model=fitted)
    fresh = clone(est)
    db.restore(v, into=fresh)
    assert_same_outputs(fresh, fitted, held_out)
    training_only = {"_optimizer", "_random_state"}  # skipped: partial_fit makes them again
    assert sorted(vars(fresh)) == sorted(set(vars(fitted)) - training_only)  # all back, nothing more


def test_private_state_is_named_like_the_public_and_typed_exactly(db: mvcdb.Database) -> None:
    svc = SVC(probability=True, random_state=0).fit(X[TRAIN], Y[TRAIN])
    pipe = Pipeline([("svc", svc)])
    v = db.record("svc", model=pipe)
    names = {t.name for t in db.tensors(v)}
    assert {"svc._dual_coef_", "svc._intercept_", "svc._n_support", "svc._probA", "svc._gamma"} <= names
    state = db.get(v).metadata["sklearn"]["state"]
    assert state["svc._sparse"] is False and state["svc._effective_probability"] is True
    assert db.get(v).metadata["sklearn"]["skipped"] == {}
    fresh = Pipeline([("svc", SVC(probability=True, random_state=0))])
    db.restore(v, into=fresh)
    restored = fresh.named_steps["svc"]
    assert restored._sparse is False and restored._n_support.dtype == svc._n_support.dtype

    imputer = SimpleImputer().fit(X_NAN.astype(np.float32))
    vi = db.record("imp", model=imputer)
    assert db.get(vi).metadata["sklearn"]["state"]["_fit_dtype"] == {"np_dtype": "<f4"}
    fresh_imputer = SimpleImputer()
    db.restore(vi, into=fresh_imputer)
    assert fresh_imputer._fit_dtype == np.dtype(np.float32)


def test_onehot_restored_into_one_fitted_on_other_data_is_right(db: mvcdb.Database) -> None:
    """The audit's silent case: the target's own private state described another fit."""
    enc = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=8).fit(WORDS[TRAIN])
    v = db.record("enc", model=enc)
    others = np.array([["p", "q"], ["p", "r"], ["s", "q"], ["t", "u"]] * 3, dtype=object)
    target = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=8).fit(others)
    assert not np.array_equal(target.transform(WORDS[TEST]).toarray().shape, enc.transform(WORDS[TEST]).shape)
    db.restore(v, into=target)
    assert_same_outputs(target, enc, WORDS[TEST])

    plain = OneHotEncoder().fit(WORDS[TRAIN])  # no infrequent categories: fewer private attributes
    vp = db.record("plain", model=plain)
    target = OneHotEncoder().fit(WORDS[TRAIN][:, ::-1])  # other column order: other private state
    target._infrequent_indices = [None, None]  # a leftover the recorded encoder does not have
    db.restore(vp, into=target)
    assert not hasattr(target, "_infrequent_indices")
    assert_same_outputs(target, plain, WORDS[TEST])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_classifier_fitted_on_other_labels_takes_the_recorded_ones(db: mvcdb.Database) -> None:
    """MLPClassifier's _label_binarizer maps outputs to labels: another fit's would mislabel."""
    mlp = MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0).fit(X[TRAIN], Y[TRAIN])
    v = db.record("mlp", model=mlp)
    other_labels = np.where(X[:, 0] > 0, "up", "down")
    target = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=1).fit(X, other_labels)
    db.restore(v, into=target)
    assert_same_outputs(target, mlp, X[TEST])
    assert set(target.predict(X)) <= {"yes", "no"}
    assert not hasattr(target, "_optimizer")  # the other fit's optimizer state is gone
    target.partial_fit(X[TRAIN], Y[TRAIN])  # and training goes on from the restored weights


def test_knn_restored_into_one_fitted_on_other_data_rebuilds_its_tree(db: mvcdb.Database) -> None:
    knn = KNeighborsClassifier(n_neighbors=3).fit(X[TRAIN], Y[TRAIN])
    v = db.record("knn", model=knn)
    assert db.get(v).metadata["sklearn"]["skipped"] == {"_tree": "KDTree"}
    assert {"_fit_X", "_y"} <= {t.name for t in db.tensors(v)}
    target = KNeighborsClassifier(n_neighbors=3).fit(X[TEST], Y[TEST])
    db.restore(v, into=target)
    assert_same_outputs(target, knn, X[TEST])
    assert np.array_equal(target.kneighbors(X[TEST])[1], knn.kneighbors(X[TEST])[1])


def test_state_only_a_pickle_could_hold_refuses_restore_clearly(db: mvcdb.Database) -> None:
    """HistGradientBoosting keeps its trees in private _predictors: recorded without them, it
    must not restore (into a fresh one it would not predict; into a fitted one, wrongly)."""
    hgb = HistGradientBoostingClassifier(max_iter=2, max_leaf_nodes=3, max_bins=8, early_stopping=False).fit(
        X[TRAIN], Y[TRAIN]
    )
    v = db.record("hgb", model=hgb)
    skipped = db.get(v).metadata["sklearn"]["skipped"]
    assert "_predictors" in skipped
    for target in (clone(hgb), clone(hgb).fit(X[TEST], Y[TEST])):
        before = dict(vars(target))
        with pytest.raises(mvcdb.MvcdbError, match=r"lacks its private fitted state .*_predictors \(list\)"):
            db.restore(v, into=target)
        assert vars(target).keys() == before.keys()  # nothing was set
        assert all(vars(target)[k] is before[k] for k in before)
    assert "_baseline_prediction" in db.restore(v)  # the arrays are still there


def test_versions_recorded_before_private_state_restore_as_before(db: mvcdb.Database) -> None:
    """Old versions hold public state only and no "skipped" key: private attributes untouched."""
    km = KMeans(n_clusters=3, n_init=1, random_state=0).fit(X[TRAIN])
    public = {
        "cluster_centers_": km.cluster_centers_,
        "labels_": km.labels_,
        "inertia_": np.float64(km.inertia_),
    }
    public |= {"n_features_in_": np.int64(4), "n_iter_": np.int64(km.n_iter_)}
    old_meta = {"sklearn": {"classes": {"": "sklearn.cluster._kmeans.KMeans"}, "state": {}}}
    v = db.record("km", params=public, metadata=old_meta)
    target = KMeans(n_clusters=3, n_init=1, random_state=1).fit(X[TRAIN][::-1])
    threads, fit_leftover = target._n_threads, target._tol
    db.restore(v, into=target)
    assert target._n_threads is threads and target._tol is fit_leftover  # left alone, as before
    assert np.array_equal(target.predict(X[TEST]), km.predict(X[TEST]))

    lr = LogisticRegression().fit(X[TRAIN], Y3[TRAIN])
    old = {
        "coef_": lr.coef_,
        "intercept_": lr.intercept_,
        "classes_": lr.classes_,
        "n_features_in_": np.int64(4),
    }
    old_meta = {
        "sklearn": {"classes": {"": "sklearn.linear_model._logistic.LogisticRegression"}, "state": {}}
    }
    vl = db.record("lr", params=old, metadata=old_meta)
    fresh = LogisticRegression()
    db.restore(vl, into=fresh)
    assert_same_outputs(fresh, lr, X[TEST])


def test_usual_estimators_gain_no_private_tensors(db: mvcdb.Database) -> None:
    """Private duplicates of public arrays would clutter `mvcdb diff`: the usual ones have none."""
    pipe = Pipeline([("scaler", StandardScaler()), ("pca", PCA(2)), ("ridge", Ridge())]).fit(X, X[:, 0])
    v = db.record("pipe", model=pipe)
    assert not [t.name for t in db.tensors(v) if "._" in t.name or t.name.startswith("_")]
    assert db.get(v).metadata["sklearn"]["state"]["pca._fit_svd_solver"] == "covariance_eigh"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("skipped", ["_tree"], "is not what record"),
        ("fortran", "coef_", "is not what record"),
        ("state", {"_label_encoder": {"estimator": "os.system", "params": {}, "state": {}}}, "unreadable"),
        ("state", {"_remainder": {"param": "no_such_parameter"}}, "unreadable"),
        ("skipped", {"no_such_step._tree": "KDTree"}, "has no step 'no_such_step'"),
    ],
)
def test_hostile_private_metadata_is_refused_before_anything_is_set(
    db: mvcdb.Database, key: str, value: Any, message: str
) -> None:
    lr = LogisticRegression().fit(X[TRAIN], Y[TRAIN])
    meta = model_metadata(lr)["sklearn"]
    meta[key] = value if not isinstance(value, dict) or key == "skipped" else {**meta[key], **value}
    v = db.record("lr", params=params_from_object(lr), metadata={"sklearn": meta})
    fresh = LogisticRegression()
    with pytest.raises(mvcdb.MvcdbError, match=message):
        db.restore(v, into=fresh)
    assert not hasattr(fresh, "coef_")
