import numpy as np
import pytest

from caimg_nmf.config import Config
from caimg_nmf.errors import InputError
from caimg_nmf.stages.spikes import infer_spikes, oasis_ar1


def _planted(seed=0, K=6, T=600, fr=10.0, tau=1.0, noise=4.0):
    rng = np.random.default_rng(seed)
    g = np.exp(-1 / (tau * fr))
    s = np.zeros((K, T))
    for k in range(K):
        idx = rng.choice(np.arange(5, T - 5, 4), 20, replace=False)  # at least 4 frames apart
        s[k, idx] = rng.uniform(1.0, 2.0, 20)
    c = np.zeros_like(s)
    for t in range(T):
        c[:, t] = (g * c[:, t - 1] if t else 0) + s[:, t]
    y = 100 + 50 * c + rng.normal(0, noise, c.shape)
    return y.astype(np.float32), s, 100 + 50 * c


def _pr(true_s, est_s, tol=1):
    tp_r = tp_p = n_true = n_est = 0
    for ts, es in zip(true_s, est_s):
        tt, ee = np.flatnonzero(ts), np.flatnonzero(es)
        n_true += tt.size
        n_est += ee.size
        if ee.size and tt.size:
            tp_r += sum(np.abs(ee - t).min() <= tol for t in tt)
            tp_p += sum(np.abs(tt - e).min() <= tol for e in ee)
    return tp_p / max(n_est, 1), tp_r / max(n_true, 1)


@pytest.mark.parametrize("decay", [0.0, 1.0])
def test_recovers_planted_spikes(decay):
    y, s, clean = _planted()
    cfg = Config().replace({"spikes.decay_time_s": decay}).spikes
    spikes, denoised = infer_spikes(y, cfg, frame_rate=10.0)
    assert spikes.shape == y.shape and denoised.shape == y.shape
    assert (spikes >= 0).all()
    precision, recall = _pr(s, spikes)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)
    corr = np.mean([np.corrcoef(d, c)[0, 1] for d, c in zip(denoised, clean)])
    assert corr >= 0.95


def test_flat_noise_gives_almost_no_spikes():
    rng = np.random.default_rng(1)
    y = (100 + rng.normal(0, 4, (3, 600))).astype(np.float32)
    spikes, _ = infer_spikes(y, Config().spikes, frame_rate=10.0)
    assert (spikes > 0).sum() <= 0.02 * y.size


def test_oasis_exact_on_noise_free_trace():
    g = 0.9
    s = np.zeros(50)
    s[[5, 20, 21, 40]] = [1.0, 2.0, 0.5, 1.0]
    c = np.zeros(50)
    for t in range(50):
        c[t] = (g * c[t - 1] if t else 0) + s[t]
    c_hat, s_hat = oasis_ar1(c, g)
    np.testing.assert_allclose(c_hat, c, atol=1e-9)
    np.testing.assert_allclose(s_hat, s, atol=1e-9)


def test_bad_input_is_reported():
    with pytest.raises(InputError):
        infer_spikes(np.zeros(10), Config().spikes, frame_rate=10.0)
    with pytest.raises(InputError):
        infer_spikes(np.zeros((2, 10)), Config().spikes, frame_rate=0)
