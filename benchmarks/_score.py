"""Throwaway scorer for the benchmarks (until caimg_nmf.evaluate lands): ROI rule + Hungarian IoU matching."""
import json
import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment


def footprint_masks(footprints, threshold=0.3):
    """Pipeline ROI rule: footprint >= threshold x peak, connected region holding the peak."""
    masks = np.zeros(footprints.shape, bool)
    for k, f in enumerate(footprints):
        pk = f.max()
        if pk <= 0:
            continue
        lab, _ = ndi.label(f >= threshold * pk)
        masks[k] = lab == lab.flat[np.argmax(f)]
    return masks


def load_regions(path, shape):
    regions = json.load(open(path))
    out = np.zeros((len(regions),) + tuple(shape), bool)
    for i, r in enumerate(regions):
        c = np.asarray(r["coordinates"], int)
        ok = (c[:, 0] >= 0) & (c[:, 0] < shape[0]) & (c[:, 1] >= 0) & (c[:, 1] < shape[1])
        out[i, c[ok, 0], c[ok, 1]] = True
    return out


def match(pred, true, iou_threshold=0.3):
    """Hungarian on 1 - IoU; returns list of (pred_index, true_index) pairs with IoU >= threshold."""
    if len(pred) == 0 or len(true) == 0:
        return []
    P = pred.reshape(len(pred), -1).astype(np.float32)
    Tm = true.reshape(len(true), -1).astype(np.float32)
    inter = P @ Tm.T
    union = P.sum(1)[:, None] + Tm.sum(1)[None, :] - inter
    iou = inter / np.maximum(union, 1)
    r, c = linear_sum_assignment(1 - iou)
    return [(i, j) for i, j in zip(r, c) if iou[i, j] >= iou_threshold]


def score(pred, true, active=None, iou_threshold=0.3):
    pairs = match(pred, true, iou_threshold)
    n = len(pairs)
    p = n / max(len(pred), 1)
    r = n / max(len(true), 1)
    f1 = 2 * p * r / max(p + r, 1e-12)
    out = {"precision": p, "recall": r, "f1": f1, "n_pred": len(pred), "n_true": len(true), "n_matched": n,
           "pairs": pairs}
    if active is not None:
        matched_true = {j for _, j in pairs}
        act = np.flatnonzero(active)
        out["recall_active"] = sum(j in matched_true for j in act) / max(len(act), 1)
        out["n_active"] = len(act)
    return out


def active_cells(movie, masks, pnr_threshold=4.0):
    """Annotated cells that visibly fire: (mask mean - 0.7 x surrounding ring) trace, 3-frame mean,
    peak above median >= pnr_threshold x noise (successive-difference MAD)."""
    allc = ndi.binary_dilation(masks.any(0), iterations=2)
    out = np.zeros(len(masks), bool)
    for i, m in enumerate(masks):
        ring = ndi.binary_dilation(m, iterations=8) & ~allc
        x = movie[:, m].mean(1) - 0.7 * movie[:, ring].mean(1)
        x = x - np.median(x)
        s = np.median(np.abs(np.diff(x))) / 0.6745 / np.sqrt(2)
        out[i] = ndi.uniform_filter1d(x, 3).max() / s >= pnr_threshold
    return out
