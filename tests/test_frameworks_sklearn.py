"""scikit-learn integration: learned array attributes in and out, pipelines by step name."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import mvcdb

pytest.importorskip("sklearn")

from sklearn.base import BaseEstimator  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import FeatureUnion, Pipeline  # noqa: E402
from sklearn.preprocessing import LabelEncoder, MinMaxScaler, OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

from mvcdb.frameworks import model_metadata  # noqa: E402


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)) * [1, 10, 0.1, 3]
    y = x @ [1.0, -0.2, 4.0, 0.5] + rng.normal(0, 0.1, 80)
    return x, y


def pipeline(alpha: float = 1.0) -> Pipeline:
    return Pipeline([("scaler", StandardScaler()), ("ridge", Ridge(alpha=alpha))])


def test_linear_regression_round_trips_into_an_unfitted_estimator(
    db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    fitted = LinearRegression().fit(x, y)
    v = db.record("lr", model=fitted)
    assert {t.name for t in db.tensors(v)} >= {"coef_", "intercept_", "n_features_in_"}
    params = db.restore(v)
    assert np.array_equal(params["coef_"], fitted.coef_)
    fresh = LinearRegression()
    db.restore(v, into=fresh)
    assert np.array_equal(fresh.predict(x), fitted.predict(x))
    assert fresh.intercept_ == fitted.intercept_ and isinstance(fresh.intercept_, np.floating)


def test_pipeline_is_recorded_by_step_name(db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    fitted = pipeline().fit(x, y)
    v = db.record("pipe", model=fitted, metrics={"r2": fitted.score(x, y)})
    names = {t.name for t in db.tensors(v)}
    assert {"scaler.mean_", "scaler.scale_", "scaler.var_", "ridge.coef_", "ridge.intercept_"} <= names
    assert not any(n.startswith("solver") or n.endswith("solver_") for n in names)  # strings are skipped
    fresh = pipeline()
    db.restore(v, into=fresh)
    assert np.array_equal(fresh.predict(x), fitted.predict(x))

    refit = pipeline(alpha=50).fit(x, y)
    v2 = db.record("pipe", model=refit, parent=v)
    digests = {t.name: t.digest for t in db.tensors(v)}
    same = [t.name for t in db.tensors(v2) if digests[t.name] == t.digest]
    assert "scaler.mean_" in same and "ridge.coef_" not in same  # the scaler did not change


def test_nested_composites_and_other_estimators(
    db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    union = FeatureUnion([("pca", PCA(n_components=2)), ("scale", StandardScaler())])
    nested = Pipeline([("features", union), ("lr", LinearRegression())]).fit(x, y)
    v = db.record("nested", model=nested)
    names = {t.name for t in db.tensors(v)}
    assert {"features.pca.components_", "features.scale.mean_", "lr.coef_"} <= names
    fresh = Pipeline(
        [("features", FeatureUnion([("pca", PCA(n_components=2)), ("scale", StandardScaler())])),
         ("lr", LinearRegression())]
    )  # fmt: skip
    db.restore(v, into=fresh)
    pca, fresh_pca = nested[0].transformer_list[0][1], fresh[0].transformer_list[0][1]
    assert np.array_equal(fresh_pca.components_, pca.components_)  # bit-identical parameters...
    assert pca.components_.flags.f_contiguous and fresh_pca.components_.flags.f_contiguous
    # ...in the memory order they had, so BLAS sums in the same order: the same bits out
    assert fresh.predict(x).tobytes() == nested.predict(x).tobytes()

    km = KMeans(n_clusters=3, n_init=2, random_state=0).fit(x)
    vk = db.record("km", model=km)
    # KMeans also keeps private fitted state (_n_threads): it is restored over the target's own
    fresh_km = KMeans(n_clusters=3, n_init=1, random_state=1).fit(x[::-1])
    assert not np.array_equal(fresh_km.cluster_centers_, km.cluster_centers_)
    db.restore(vk, into=fresh_km)
    assert np.array_equal(fresh_km.predict(x), km.predict(x))

    clf = LogisticRegression().fit(x, y > 0)
    vc = db.record("clf", model=clf)
    assert db.restore(vc)["classes_"].dtype == np.bool_
    fresh_clf = LogisticRegression()
    db.restore(vc, into=fresh_clf)
    assert np.array_equal(fresh_clf.predict_proba(x), clf.predict_proba(x))


def test_mismatches_are_refused_before_anything_is_set(
    db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    v = db.record("pipe", model=pipeline().fit(x, y))

    other_steps = Pipeline([("scale", StandardScaler()), ("ridge", Ridge())])
    with pytest.raises(mvcdb.MvcdbError, match=r"load 'scaler' into the Pipeline: it has no step 'scaler'"):
        db.restore(v, into=other_steps)
    assert not hasattr(other_steps.named_steps["ridge"], "coef_")  # nothing was set

    narrower = pipeline().fit(x[:, :3], y)
    coef_before = narrower.named_steps["ridge"].coef_.copy()
    with pytest.raises(mvcdb.MvcdbError, match=r"'scaler\.mean_' has shape \(3,\) in the model but \(4,\)"):
        db.restore(v, into=narrower)
    assert np.array_equal(narrower.named_steps["ridge"].coef_, coef_before)

    with pytest.raises(mvcdb.MvcdbError, match=r"no learned attributes \(ending in '_'\): is it fitted"):
        db.record("unfitted", model=Ridge())


# -- what record(model=) puts into metadata: the classes and the learned state that is not numbers


def labelled(data: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x, y = data
    return x, np.where(y > 1, "high", np.where(y < -1, "low", "mid"))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # few iterations suffice
def test_lists_of_arrays_are_recorded_by_index_and_rebuilt(
    db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, labels = labelled(data)
    mlp = MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=50, random_state=0).fit(x, labels)
    v = db.record("mlp", model=mlp)
    params = db.restore(v)
    for i in range(3):
        assert np.array_equal(params[f"coefs_.{i}"], mlp.coefs_[i])
        assert np.array_equal(params[f"intercepts_.{i}"], mlp.intercepts_[i])
    assert "coefs_.3" not in params
    # MLPClassifier keeps private fitted state (_label_binarizer): restored over the target's own
    other = MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=5, random_state=1).fit(x, labels)
    assert not np.array_equal(other.predict_proba(x), mlp.predict_proba(x))
    db.restore(v, into=other)
    assert isinstance(other.coefs_, list) and len(other.coefs_) == 3
    assert np.array_equal(other.predict_proba(x), mlp.predict_proba(x))
    assert np.array_equal(other.predict(x), mlp.predict(x))
    assert other.loss_curve_ == mlp.loss_curve_ and other.out_activation_ == "softmax"

    third = MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=5, random_state=2).fit(x, labels)
    kept = third.coefs_[0]
    db.restore(v, ["coefs_.1"], into=third)  # just that item
    assert third.coefs_[0] is kept and np.array_equal(third.coefs_[1], mlp.coefs_[1])

    y = data[1]
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=30, random_state=0).fit(x, y)
    vr = db.record("mlp-reg", model=reg)
    fresh = MLPRegressor(hidden_layer_sizes=(4,))  # unfitted: out_activation_ comes from metadata
    db.restore(vr, into=fresh)
    assert np.array_equal(fresh.predict(x), reg.predict(x))


def test_string_labels_and_categories_restore_into_fresh_estimators(
    db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, labels = labelled(data)
    clf = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(x, labels)
    v = db.record("clf", model=clf)
    meta = db.get(v).metadata
    assert meta["model_class"] == "sklearn.pipeline.Pipeline"
    assert meta["sklearn"]["classes"]["clf"].endswith(".LogisticRegression")
    assert "clf.classes_" in meta["sklearn"]["state"] and "clf.classes_" not in db.restore(v)
    fresh = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())])
    db.restore(v, into=fresh)
    assert np.array_equal(fresh.predict(x), clf.predict(x))
    restored = fresh.named_steps["clf"].classes_
    assert restored.dtype == clf.named_steps["clf"].classes_.dtype and list(restored) == [
        "high",
        "low",
        "mid",
    ]

    words = np.array([["red", "s"], ["blue", "m"], ["red", "l"], ["green", "m"]], dtype=object)
    enc = OneHotEncoder(handle_unknown="ignore").fit(words)
    ve = db.record("enc", model=enc)
    # OneHotEncoder keeps private fitted state derived from its categories (_n_features_outs):
    # restored over that of one fitted on other data
    others = np.array([["p", "q"], ["r", "t"], ["u", "w"]], dtype=object)
    fresh_enc = OneHotEncoder(handle_unknown="ignore").fit(others)
    db.restore(ve, into=fresh_enc)
    assert [list(c) for c in fresh_enc.categories_] == [["blue", "green", "red"], ["l", "m", "s"]]
    assert [c.dtype for c in fresh_enc.categories_] == [np.dtype(object)] * 2

    codes = LabelEncoder().fit(labels)
    vl = db.record("codes", model=codes)
    assert db.restore(vl) == {}  # all its state is string labels, in the metadata
    fresh_codes = LabelEncoder()
    db.restore(vl, into=fresh_codes)
    assert np.array_equal(fresh_codes.transform(labels), codes.transform(labels))
    assert np.array_equal(fresh_enc.transform(words).toarray(), enc.transform(words).toarray())


class Remembers(BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """An estimator whose learned state is every kind of JSON-able value record() keeps."""

    def fit(self, x: np.ndarray, y: Any = None) -> Remembers:
        self.values_ = [
            float("nan"), -float("inf"), 0.1, 2**70, "a", None, True, np.float32(1.5), np.str_("z"),
            np.array([["a", "bc"], ["d", "e"]]), np.array([None, "x", 3], dtype=object),
            np.array([1.0, np.nan], dtype=np.float16), (1, slice(0, 3, None)), {"k": np.int64(-4)}, [],
        ]  # fmt: skip
        self.weights_ = [np.ones(2), np.zeros((1, 3), dtype=np.int8)]
        return self


def test_json_state_round_trips_with_its_types(db: mvcdb.Database) -> None:
    est = Remembers().fit(np.zeros((2, 2)))
    v = db.record("remembers", model=est)
    assert set(db.restore(v)) == {"weights_.0", "weights_.1"}
    fresh = Remembers()
    db.restore(v, into=fresh)
    got, want = fresh.values_, est.values_
    for a, b in zip(got, want, strict=True):
        assert type(a) is type(b), (a, b)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert [str(i) for i in a.ravel()] == [str(i) for i in b.ravel()]
        elif b == b:  # not NaN
            assert a == b
    assert np.isnan(got[0]) and got[1] == -float("inf")
    assert [w.dtype for w in fresh.weights_] == [np.float64, np.int8]


def test_state_only_a_pickle_could_hold_is_refused_at_record(
    db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, labels = labelled(data)
    with pytest.raises(
        mvcdb.MvcdbError, match=r"DecisionTreeClassifier: .*attribute tree_ \(Tree\).*no pickles"
    ):
        db.record("tree", model=DecisionTreeClassifier().fit(x, labels))
    pipe = Pipeline([("scaler", StandardScaler()), ("forest", RandomForestClassifier(n_estimators=2))])
    with pytest.raises(
        mvcdb.MvcdbError, match=r"forest\.estimator_ \(DecisionTreeClassifier\), forest\.estimators_"
    ):
        db.record("forest", model=pipe.fit(x, labels))
    with pytest.raises(mvcdb.MvcdbError, match="no pickles"):
        model_metadata(DecisionTreeClassifier().fit(x, labels))
    assert db.versions() == []


def test_restore_into_an_estimator_of_another_class_is_refused(
    db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, labels = labelled(data)
    v = db.record("clf", model=LogisticRegression().fit(x, labels))
    scaler = StandardScaler()
    with pytest.raises(
        mvcdb.MvcdbError, match=r"it is a StandardScaler but the version holds a .*LogisticRegression"
    ):
        db.restore(v, into=scaler)
    with pytest.raises(mvcdb.MvcdbError, match="StandardScaler but"):
        db.restore(v, ["coef_"], into=scaler)
    assert vars(scaler) == vars(StandardScaler())  # nothing was set

    vp = db.record("pipe", model=pipeline().fit(*data))
    other = Pipeline([("scaler", MinMaxScaler()), ("ridge", Ridge())])
    with pytest.raises(mvcdb.MvcdbError, match=r"its step 'scaler' is a MinMaxScaler but the version holds"):
        db.restore(vp, into=other)
    assert not hasattr(other.named_steps["ridge"], "coef_")


def test_a_run_committing_an_estimator_keeps_its_state_too(
    db: mvcdb.Database, data: tuple[np.ndarray, np.ndarray]
) -> None:
    """run.commit(model=est) stores what record(model=est) stores (string labels in metadata),
    next to the run's own metadata."""
    x, labels = labelled(data)
    clf = LogisticRegression().fit(x, labels)
    with db.run("clf", metadata={"datasets": {"train": "toy"}}) as run:
        run.log(0, acc=float(np.mean(clf.predict(x) == labels)))
        v = run.commit(model=clf)
    meta = db.get(v).metadata
    assert meta["datasets"] == {"train": "toy"} and meta["model_class"].endswith(".LogisticRegression")
    fresh = LogisticRegression()
    db.restore(v, into=fresh)
    assert np.array_equal(fresh.predict(x), clf.predict(x))
