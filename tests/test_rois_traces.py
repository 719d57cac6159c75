import numpy as np

from caimg_nmf.config import Config
from caimg_nmf.stages.rois import contours_of, masks_from_footprints
from caimg_nmf.stages.traces import compute_dff, running_percentile


def blob(shape, centre, sigma):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma ** 2))


def test_masks_keep_region_holding_peak():
    fp = blob((30, 40), (10, 10), 2.0) + 0.8 * blob((30, 40), (20, 32), 2.0)  # two separate blobs
    rois = masks_from_footprints(fp[None], threshold=0.3)
    mask = rois.masks[0]
    assert mask[10, 10] and not mask[20, 32]
    # area of a gaussian above 0.3 of peak: pi * r^2 with r = sigma*sqrt(2 ln(1/0.3))
    r2 = 2.0 ** 2 * 2 * np.log(1 / 0.3)
    assert abs(rois.areas[0] - np.pi * r2) < 6
    np.testing.assert_allclose(rois.centroids[0], (10, 10), atol=0.1)
    assert len(contours_of(mask)) == 1


def test_empty_and_zero_footprints():
    rois = masks_from_footprints(np.zeros((0, 5, 5)))
    assert rois.masks.shape == (0, 5, 5)
    rois = masks_from_footprints(np.zeros((1, 5, 5)))
    assert not rois.masks.any()


def test_dff_known_transient_on_drifting_baseline():
    T, fr = 3000, 10.0
    t = np.arange(T)
    resting = 100.0
    drift = 20 * t / T                      # slow bleaching-like drift in the trace
    trace = drift.copy()
    trace[1500:1510] += 50                  # one transient of 50 on F ≈ 110
    dff = compute_dff(trace[None], np.array([resting]), fr, Config().traces)[0]
    assert abs(dff[1505] - 50 / (resting + drift[1505])) < 0.03
    assert np.abs(dff[:1400]).max() < 0.02   # flat where nothing happens, despite the drift


def test_running_percentile_of_a_ramp_is_exact():
    """On x(t) = 3 t the p-th percentile of the centred window of w frames is 3 (t - w//2 + p/100 (w-1))
    (np.percentile's linear interpolation); it is linear in t, so the grid-and-interpolate
    evaluation must be exact where the window is whole. A wrong percentile or window shifts it."""
    T = 600
    t = np.arange(T, dtype=float)
    for window, p in ((101, 10), (61, 25), (201, 8)):
        half = window // 2
        step = window // 20
        inner = slice(half + step, T - half - step)      # whole windows at both grid nodes around t
        got = running_percentile(3 * t[None], window, p)[0]
        want = 3 * (t - half + p / 100 * (window - 1))
        np.testing.assert_allclose(got[inner], want[inner], rtol=0, atol=1e-9)


def test_running_percentile_matches_exact_filter():
    """Against scipy's exact running percentile on a random walk: between the grid nodes (every
    window/20 frames, where it is exact) the result is a linear interpolation, so it must stay within
    the range the exact filter spans over one grid step either side, wherever the window is whole."""
    from scipy import ndimage
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(4, 800)), axis=1)
    for window, p in ((101, 10), (151, 8)):
        half, step = window // 2, window // 20
        exact = ndimage.percentile_filter(x, p, size=(1, window), mode="nearest")
        lo = ndimage.minimum_filter1d(exact, 2 * step + 1, axis=1)
        hi = ndimage.maximum_filter1d(exact, 2 * step + 1, axis=1)
        got = running_percentile(x, window, p)
        inner = slice(half + step, x.shape[1] - half - step)
        assert (got[:, inner] >= lo[:, inner] - 1e-9).all() and (got[:, inner] <= hi[:, inner] + 1e-9).all()
        nodes = np.arange(0, x.shape[1], step)
        nodes = nodes[(nodes >= half) & (nodes < x.shape[1] - half)]
        np.testing.assert_allclose(got[:, nodes], exact[:, nodes], atol=1e-9)   # exact at the nodes


def ring(shape, centre, radius, width=1.0):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.exp(-((np.hypot(yy - centre[0], xx - centre[1]) - radius) / width) ** 2)


def test_fill_holes_gives_whole_soma_for_ring_footprint():
    # GCaMP soma: bright cytoplasm ring around a dark nucleus; the planted soma is the disc of radius 4
    fp = ring((30, 30), (15, 15), 4.0)[None]
    plain = masks_from_footprints(fp, 0.3).masks[0]
    filled = masks_from_footprints(fp, 0.3, fill_holes=True).masks[0]
    assert not plain[15, 15] and filled[15, 15]
    yy, xx = np.mgrid[:30, :30]
    soma = np.hypot(yy - 15, xx - 15) <= 5
    iou = lambda a, b: (a & b).sum() / (a | b).sum()
    assert iou(filled, soma) > 0.9 and iou(plain, soma) < 0.75


def test_smoothing_keeps_a_noisy_footprint_whole():
    rng = np.random.default_rng(0)
    clean = blob((30, 30), (15, 15), 2.5)
    noisy = np.clip(clean + rng.normal(0, 0.25, clean.shape) * clean, 0, None)   # speckled footprint
    noisy[15, 16] = 3.0                                                           # one hot pixel
    truth = clean >= 0.3
    raw = masks_from_footprints(noisy[None], 0.3).masks[0]
    smooth = masks_from_footprints(noisy[None], 0.3, smooth=0.7).masks[0]
    iou = lambda a, b: (a & b).sum() / (a | b).sum()
    assert iou(raw, truth) < 0.3          # the hot pixel sets the peak: few pixels pass 0.3 x peak
    assert iou(smooth, truth) > 0.6
