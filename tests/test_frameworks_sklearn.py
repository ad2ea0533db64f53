"""scikit-learn integration: learned array attributes in and out, pipelines by step name."""

from __future__ import annotations

import numpy as np
import pytest

import mvcdb

pytest.importorskip("sklearn")

from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge  # noqa: E402
from sklearn.pipeline import FeatureUnion, Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


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
    assert pca.components_.flags.f_contiguous and fresh_pca.components_.flags.c_contiguous
    # ...but restored arrays are C-ordered: BLAS may sum in another order, so allow last-bit noise
    np.testing.assert_allclose(fresh.predict(x), nested.predict(x), rtol=1e-12, atol=1e-12)

    km = KMeans(n_clusters=3, n_init=2, random_state=0).fit(x)
    vk = db.record("km", model=km)
    # KMeans also keeps private fitted state (_n_threads): restore into a fitted instance
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
    with pytest.raises(mvcdb.MvcdbError, match=r"'scaler\.mean_' into the Pipeline: it has no step 'scaler'"):
        db.restore(v, into=other_steps)
    assert not hasattr(other_steps.named_steps["ridge"], "coef_")  # nothing was set

    narrower = pipeline().fit(x[:, :3], y)
    coef_before = narrower.named_steps["ridge"].coef_.copy()
    with pytest.raises(mvcdb.MvcdbError, match=r"'scaler\.mean_' has shape \(3,\) in the model but \(4,\)"):
        db.restore(v, into=narrower)
    assert np.array_equal(narrower.named_steps["ridge"].coef_, coef_before)

    with pytest.raises(mvcdb.MvcdbError, match="no learned array attributes: is it fitted"):
        db.record("unfitted", model=Ridge())
