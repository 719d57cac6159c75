"""normalize_factors / order_components, and the estimator round trip."""
import dataclasses

import numpy as np
import pytest

from caimg_nmf.errors import InputError
from caimg_nmf.nmf import NMF, NMFResult, nmf, normalize_factors, order_components
from _nmf_helpers import match_score, planted

pytestmark = pytest.mark.filterwarnings("ignore::caimg_nmf.nmf.ConvergenceWarning")


def _factors(seed=0):
    rng = np.random.default_rng(seed)
    W = rng.random((30, 5)) * np.array([1, 10, 0.1, 5, 2])
    H = rng.random((5, 40)) * np.array([[3], [0.2], [7], [1], [4]])
    return W, H


@pytest.mark.parametrize("mode", ["footprints_max", "H_max", "unit_norm"])
def test_normalize_keeps_product(mode):
    W, H = _factors()
    W0, H0 = W.copy(), H.copy()
    Wn, Hn = normalize_factors(W, H, mode)
    np.testing.assert_allclose(Wn @ Hn, W @ H, rtol=1e-12)
    np.testing.assert_array_equal(W, W0)           # inputs untouched
    np.testing.assert_array_equal(H, H0)
    if mode == "footprints_max":
        np.testing.assert_allclose(Wn.max(axis=0), 1.0)
    elif mode == "H_max":
        np.testing.assert_allclose(Hn.max(axis=1), 1.0)
    else:
        np.testing.assert_allclose(np.linalg.norm(Wn, axis=0), 1.0)


def test_normalize_zero_component_left_alone():
    W, H = _factors()
    W[:, 2] = 0
    Wn, Hn = normalize_factors(W, H, "footprints_max")
    assert np.all(np.isfinite(Wn)) and np.all(np.isfinite(Hn))
    np.testing.assert_allclose(Wn @ Hn, W @ H)


def test_order_energy_descending():
    W, H = _factors()
    Wo, Ho, perm = order_components(W, H, "energy")
    e = np.linalg.norm(Wo, axis=0) ** 2 * np.linalg.norm(Ho, axis=1) ** 2
    assert np.all(np.diff(e) <= 0)
    np.testing.assert_array_equal(Wo, W[:, perm])
    np.testing.assert_allclose(Wo @ Ho, W @ H)
    assert sorted(perm) == list(range(5))


def test_bad_modes():
    W, H = _factors()
    with pytest.raises(InputError, match="normalize"):
        normalize_factors(W, H, "max")
    with pytest.raises(InputError, match="order"):
        order_components(W, H, "size")


def _energy(W, H):
    return np.linalg.norm(W, axis=0) ** 2 * np.linalg.norm(H, axis=1) ** 2


def test_nmf_applies_normalize_and_order():
    """Started from factors in ascending energy order (NNDSVDa alone starts in descending order,
    so a start from it cannot tell whether the result was sorted), order="energy" must reorder."""
    X, _, _ = planted(noise=0.05)
    start = nmf(X, 4, random_state=0, max_iter=50, tol=0.0)
    up = np.argsort(_energy(start.W, start.H))                      # ascending
    W0, H0 = start.W[:, up], start.H[up]
    raw = nmf(X, 4, W0=W0, H0=H0, max_iter=50, tol=0.0)
    e_raw = _energy(raw.W, raw.H)
    assert np.all(np.diff(e_raw) > 0)                                # the fit keeps the start's order
    res = nmf(X, 4, W0=W0, H0=H0, max_iter=50, tol=0.0, normalize="footprints_max", order="energy")
    np.testing.assert_allclose(res.W.max(axis=0), 1.0)
    e = _energy(res.W, res.H)
    assert np.all(np.diff(e) <= 1e-12 * e[0])
    np.testing.assert_allclose(e, e_raw[::-1], rtol=1e-10)          # the same components, reversed
    np.testing.assert_allclose(res.W @ res.H, raw.W @ raw.H, rtol=1e-10, atol=1e-12)
    assert res.rel_error == raw.rel_error


def test_factorize_stage_orders_by_energy():
    """The whole-field stage (the pipeline's "whole" method) returns components largest first,
    even from a random start, whose order is arbitrary."""
    from caimg_nmf.config import Config
    from caimg_nmf.stages.factorize import factorize_whole

    X, _, _ = planted(P=64, noise=0.05)
    cfg = dataclasses.replace(Config().nmf, rank=4, init="random", replicates=1, seed=3, max_iter=60, tol=0.0)
    frames = X.T.reshape(-1, 8, 8).astype(np.float32)
    unordered = nmf(X.astype(np.float32), 4, init="random", random_state=3, max_iter=60, tol=0.0,
                    normalize="footprints_max")
    assert np.any(np.diff(_energy(unordered.W, unordered.H)) > 0)    # the start is not in order
    res = factorize_whole(frames, cfg)
    e = _energy(res.W, res.H)
    assert np.all(np.diff(e) <= 1e-6 * e[0])
    np.testing.assert_allclose(np.sort(e), np.sort(_energy(unordered.W, unordered.H)), rtol=1e-4)


def test_result_repr_and_fields():
    X, _, _ = planted()
    res = nmf(X, 3, max_iter=20, tol=0.0, replicates=2, random_state=1)
    assert isinstance(res, NMFResult)
    text = repr(res)
    for piece in ("W: 60x3", "H: 3x80", "rel_error=", "best of 2 replicates", "hals"):
        assert piece in text
    assert res.elapsed > 0 and res.loss_history.shape == (res.n_iter,)


def test_estimator_round_trip():
    X, W, H = planted()
    model = NMF(4, random_state=0, tol=1e-9, max_iter=1000)
    Wf = model.fit_transform(X)
    assert Wf.shape == (60, 4) and model.components_.shape == (4, 80)
    assert model.n_iter_ >= 1
    assert model.reconstruction_err_ == pytest.approx(np.linalg.norm(X - Wf @ model.components_),
                                                      rel=1e-4, abs=1e-8)
    assert match_score(W, Wf) > 0.99
    Wt = model.transform(X)                     # W from fixed components_
    np.testing.assert_allclose(Wt @ model.components_, X, atol=1e-5 * X.max())
    np.testing.assert_allclose(model.inverse_transform(Wt), Wt @ model.components_)
    new = X[:10] * 2
    np.testing.assert_allclose(model.transform(new), 2 * Wt[:10], rtol=1e-5, atol=1e-8)
    assert model.fit(X) is model
    assert "n_components=4" in repr(model)
    with pytest.raises(InputError, match="features"):
        model.transform(X[:, :5])
    with pytest.raises(TypeError, match="alpha"):    # parameters are the signature's (sklearn rule)
        NMF(3, alpha=1.0)
    with pytest.raises(InputError, match="not fitted"):
        NMF(3).transform(X)


def test_estimator_in_sklearn_pipeline():
    """Pipeline.transform / inverse_transform, clone and the HTML repr need a real sklearn estimator."""
    pipeline_mod = pytest.importorskip("sklearn.pipeline")
    from sklearn.base import clone
    X, _, _ = planted()
    pipe = pipeline_mod.Pipeline([("nmf", NMF(4, random_state=0, tol=1e-9, max_iter=1000))])
    W = pipe.fit_transform(X)
    np.testing.assert_allclose(pipe.transform(X) @ pipe["nmf"].components_, X, atol=1e-5 * X.max())
    np.testing.assert_allclose(pipe.inverse_transform(W), W @ pipe["nmf"].components_)
    assert "NMF" in pipe._repr_html_()
    copy = clone(pipe["nmf"])
    assert copy.get_params() == pipe["nmf"].get_params() and not hasattr(copy, "components_")
    assert list(pipe.get_feature_names_out()) == ["nmf0", "nmf1", "nmf2", "nmf3"]


def test_estimator_passes_sklearn_check_estimator():
    """Every scikit-learn estimator check passes (none needs to be marked expected-to-fail)."""
    pytest.importorskip("sklearn")
    from sklearn.utils.estimator_checks import check_estimator
    results = check_estimator(NMF(), on_fail=None)
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    assert failed == {}
    assert sum(r["status"] == "passed" for r in results) >= 40


def test_estimator_negative_x_refused_with_sklearn_message():
    pytest.importorskip("sklearn")
    X, _, _ = planted()
    with pytest.raises(InputError, match="Negative values in data passed to NMF.*subtract the minimum"):
        NMF(3).fit(X - X.mean())


def test_estimator_without_sklearn(tmp_path):
    """The core imports and the estimator works (params, repr, fit) with sklearn not importable."""
    import subprocess
    import sys
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import numpy as np\n"
        "from caimg_nmf.nmf import NMF\n"
        "m = NMF(3, max_iter=50)\n"
        "assert repr(m) == 'NMF(n_components=3, max_iter=50)', repr(m)\n"
        "assert m.set_params(tol=1e-3) is m and m.get_params()['tol'] == 1e-3\n"
        "W = m.fit_transform(np.random.default_rng(0).random((20, 10)))\n"
        "assert W.shape == (20, 3) and m.transform(np.ones((2, 10))).shape == (2, 3)\n"
        "try:\n"
        "    m.set_params(alpha=1)\n"
        "except ValueError as e:\n"
        "    assert 'no parameter' in str(e)\n"
        "else:\n"
        "    raise AssertionError('set_params accepted alpha')\n"
        "assert 'sklearn' not in [b.__module__.split('.')[0] for b in NMF.__mro__]\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
