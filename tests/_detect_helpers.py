"""Small raw-fluorescence movies with planted cells, and a scorer, for the detection tests."""
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment


def make_movie(n_cells=20, shape=(64, 64), n_frames=300, diameter=8.0, frame_rate=10.0, noise=3.0,
               seed=0, min_dist=None, neuropil=20.0):
    """Raw-fluorescence movie: soft discs with AR(1) calcium traces + resting level, smooth neuropil
    with its own slow trace, a static background and Gaussian noise. Returns (movie, footprints, traces)."""
    rng = np.random.default_rng(seed)
    H, W = shape
    min_dist = diameter * 1.2 if min_dist is None else min_dist
    centres = []
    while len(centres) < n_cells:
        c = rng.uniform(diameter / 2 + 2, [H - diameter / 2 - 2, W - diameter / 2 - 2])
        if all(np.hypot(*(c - o)) >= min_dist for o in centres):
            centres.append(c)
    yy, xx = np.mgrid[:H, :W]
    fps = np.zeros((n_cells, H, W), np.float32)
    for k, (cy, cx) in enumerate(centres):
        r = np.hypot(yy - cy, xx - cx) / (diameter / 2)
        fps[k] = np.clip(1.2 - r ** 2 * 0.9, 0, 1)  # flat-topped blob, radius ~ d/2 at the 0.3 level
        fps[k] /= fps[k].max()
    g = np.exp(-1.0 / (0.8 * frame_rate))
    spikes = (rng.random((n_cells, n_frames)) < 0.03) * rng.uniform(0.5, 1.5, (n_cells, n_frames))
    calcium = np.zeros((n_cells, n_frames))
    for t in range(n_frames):
        calcium[:, t] = (g * calcium[:, t - 1] if t else 0) + spikes[:, t]
    traces = (20 + 60 * calcium).astype(np.float32)  # resting 20, transients ~60 per spike
    bg_img = 50 + 20 * np.sin(yy / 17.0) * np.cos(xx / 23.0)
    np_img = neuropil * (1 + 0.5 * np.cos(yy / 13.0 + xx / 19.0))
    np_trace = 1 + 0.5 * np.sin(np.arange(n_frames) / 15.0)
    movie = (bg_img[None] + np_img[None] * np_trace[:, None, None]
             + np.einsum("khw,kt->thw", fps, traces)
             + rng.normal(0, noise, (n_frames, H, W))).astype(np.float32)
    return movie, fps, traces


def masks_of(footprints, threshold=0.3):
    from caimg_nmf.stages.curate import footprint_masks
    return footprint_masks(np.asarray(footprints, np.float32), threshold)


def score(pred_fp, true_fp, pred_tr=None, true_tr=None, iou_threshold=0.3):
    """(precision, recall, f1, median trace correlation of matched pairs)."""
    P, Tm = masks_of(pred_fp), masks_of(true_fp)
    if len(P) == 0:
        return 0.0, 0.0, 0.0, 0.0
    a = P.reshape(len(P), -1).astype(np.float32)
    b = Tm.reshape(len(Tm), -1).astype(np.float32)
    inter = a @ b.T
    iou = inter / np.maximum(a.sum(1)[:, None] + b.sum(1)[None] - inter, 1)
    r, c = linear_sum_assignment(-iou)
    pairs = [(i, j) for i, j in zip(r, c) if iou[i, j] >= iou_threshold]
    p, rec = len(pairs) / len(P), len(pairs) / len(Tm)
    f1 = 2 * p * rec / max(p + rec, 1e-12)
    corr = 0.0
    if pred_tr is not None and pairs:
        corr = float(np.median([np.corrcoef(pred_tr[i], true_tr[j])[0, 1] for i, j in pairs]))
    return p, rec, f1, corr
