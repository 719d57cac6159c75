"""Merge components of :func:`caimg_nmf.stages.detect.find_cells` that are pieces of one cell:
masks that touch (or overlap) and detrended traces that correlate highly. Independent neighbours
fire at different times, so their traces do not correlate even when their footprints touch."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from ._local_fit import overlap_slices, squared_radius
from .rois import masks_from_footprints

__all__ = ["merge_groups", "merged_windows", "rim_fraction"]


def detrend(traces, window):
    """Traces minus a running median (slow drifts, bleaching, resting level), z-scored."""
    tr = np.asarray(traces, np.float32)
    if tr.shape[1] > 3:
        tr = tr - ndi.median_filter(tr, size=(1, max(3, min(int(window) | 1, tr.shape[1] - 1 | 1))),
                                    mode="nearest")
    tr = tr - tr.mean(axis=1, keepdims=True)
    return tr / (np.linalg.norm(tr, axis=1, keepdims=True) + 1e-12)


def _touch(mi, mj, dy, dx):
    """Whether mask mj (window shifted by dy, dx from mi's) touches or overlaps mask mi."""
    both = overlap_slices(mi.shape[0], dy, dx)
    if both is None:
        return False
    di = ndi.binary_dilation(mi, structure=np.ones((3, 3), bool))
    return bool((di[both[0]] & mj[both[1]]).any())


def merge_groups(win, centres, traces, *, threshold, min_corr, window):
    """Groups (lists of indices, each of two or more) of touching components whose detrended traces
    correlate at least ``min_corr``, joined transitively."""
    K = len(centres)
    if K < 2:
        return []
    masks = masks_from_footprints(win, threshold).masks
    z = detrend(traces, window)
    parent = list(range(K))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in cKDTree(centres).query_pairs(win.shape[1] - 1):
        if float(z[i] @ z[j]) < min_corr:
            continue
        dy, dx = int(centres[j, 0] - centres[i, 0]), int(centres[j, 1] - centres[i, 1])
        if _touch(masks[i], masks[j], dy, dx):
            parent[find(i)] = find(j)
    groups = {}
    for k in range(K):
        groups.setdefault(find(k), []).append(k)
    return [g for g in groups.values() if len(g) > 1]


def merged_windows(win, centres, traces, groups, ri, shape):
    """Merge each group into one component: footprints summed with weights = trace amplitudes,
    centred on the weighted centroid. Returns (centres, windows) of all components after merging."""
    w = 2 * ri + 1
    H, W = shape
    drop = set()
    new_c, new_w = [], []
    amp = np.ptp(traces, axis=1) + 1e-12
    disc = squared_radius(ri) <= ri * ri
    for g in groups:
        g = np.asarray(g)
        drop.update(g.tolist())
        lo = centres[g].min(axis=0) - ri
        hi = centres[g].max(axis=0) + ri + 1
        canvas = np.zeros(tuple(hi - lo), np.float32)
        for k in g:
            oy, ox = centres[k] - ri - lo
            canvas[oy:oy + w, ox:ox + w] += win[k] * amp[k]
        gy, gx = np.nonzero(canvas > 0.3 * canvas.max())
        wts = canvas[gy, gx]
        cy = int(round(np.average(gy, weights=wts))) + lo[0]
        cx = int(round(np.average(gx, weights=wts))) + lo[1]
        cy, cx = min(max(cy, 0), H - 1), min(max(cx, 0), W - 1)
        pad = np.pad(canvas, w)
        oy, ox = cy - ri - lo[0] + w, cx - ri - lo[1] + w
        out = pad[oy:oy + w, ox:ox + w] * disc
        new_c.append((cy, cx))
        new_w.append(out / max(out.max(), 1e-12))
    keep = [k for k in range(len(centres)) if k not in drop]
    centres = np.concatenate([centres[keep], np.asarray(new_c, int).reshape(-1, 2)])
    wins = np.concatenate([win[keep], np.asarray(new_w, np.float32).reshape(-1, w, w)])
    return centres, wins


def rim_fraction(win, ri, threshold=0.3):
    """Fraction of each window's outer ring (the last 1.5 px inside radius ri) covered by the
    component's mask: near 0 for a cell inside its window, large for a spread-out background piece."""
    r = np.sqrt(squared_radius(ri))
    rim = (r <= ri) & (r > ri - 1.5)
    if not len(win):
        return np.zeros(0)
    masks = masks_from_footprints(win, threshold).masks
    return masks[:, rim].sum(axis=1) / rim.sum()
