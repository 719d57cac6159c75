"""Split components of :func:`caimg_nmf.stages.detect.find_cells` whose footprint covers separate
blobs: two cells that fired together during the fit, or a cell and a piece of a neighbour. Each
cell-sized blob becomes a component of its own, centred on its peak; the last fit of find_cells then
gives each its own trace (a split in curation could only share the one trace between the parts)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._local_fit import shift_window, squared_radius

__all__ = ["split_blobs"]


def _blobs(window, threshold, smooth, min_area):
    """Labels of the separate regions of the smoothed ``window`` above ``threshold`` x its peak that
    have at least ``min_area`` pixels, and the smoothed window. (labels, n): n < 2 means no split."""
    sm = ndi.gaussian_filter(window, smooth) if smooth > 0 else window
    peak = float(sm.max())
    if peak <= 0:
        return None, 0, sm
    labels, n = ndi.label(sm >= threshold * peak)
    if n < 2:
        return None, 0, sm
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    big = np.flatnonzero(areas >= min_area)
    big = big[big > 0]
    if len(big) < 2:
        return None, 0, sm
    markers = np.zeros(labels.shape, np.int32)
    for i, lab in enumerate(big, 1):
        markers[labels == lab] = i
    return markers, len(big), sm


def split_blobs(win, centres, ri, min_area, *, threshold=0.3, smooth=0.7):
    """Split every window whose footprint has two or more separate cell-sized regions.

    win : (K, w, w) footprints in windows (w = 2 ri + 1) centred at ``centres`` (K, 2).
    min_area : pixels a region needs to count as a cell (smaller ones stay with their component).
    A region is where the footprint, smoothed by ``smooth`` px, is at least ``threshold`` x its peak
    (the ROI rule); every pixel of the footprint goes to the region it is nearest along the footprint
    (watershed; smaller regions and specks included), and each part is re-centred on its own peak,
    scaled to a peak of 1. The parts may outnumber ``detect.max_cells``.
    Returns (centres, windows, n_split): the unsplit components in order, then the parts; n_split
    counts the components that were split.
    """
    from skimage.segmentation import watershed

    disc = squared_radius(ri) <= ri * ri
    keep, new_c, new_w = [], [], []
    for k in range(len(win)):
        markers, n, sm = _blobs(win[k], threshold, smooth, min_area)
        if n < 2:
            keep.append(k)
            continue
        parts = watershed(-sm, markers)   # every pixel, specks apart from the blobs too
        for i in range(1, n + 1):
            part = np.where(parts == i, win[k], 0).astype(win.dtype)
            py, px = np.unravel_index(int(np.argmax(np.where(parts == i, sm, -np.inf))), sm.shape)
            dy, dx = int(py) - ri, int(px) - ri
            out = shift_window(part, dy, dx) * disc
            if out.max() <= 0:
                continue
            new_c.append((int(centres[k, 0]) + dy, int(centres[k, 1]) + dx))
            new_w.append(out / out.max())
    w = win.shape[1]
    centres = np.concatenate([np.asarray(centres)[keep], np.asarray(new_c, int).reshape(-1, 2)])
    windows = np.concatenate([win[keep], np.asarray(new_w, win.dtype).reshape(-1, w, w)])
    return centres, windows, len(win) - len(keep)
