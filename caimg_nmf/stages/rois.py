"""ROIs: a binary mask, centroid, area and contour per footprint."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Rois", "masks_from_footprints", "contours_of"]


@dataclass
class Rois:
    """masks (K, H, W) bool; centroids (K, 2) (row, col); areas (K,) pixels."""

    masks: np.ndarray
    centroids: np.ndarray
    areas: np.ndarray


def masks_from_footprints(footprints, threshold=0.3, *, smooth=0.0, fill_holes=False) -> Rois:
    """Mask each footprint at ``threshold`` x its peak, keeping the connected region holding the peak.

    Parameters
    ----------
    footprints : ndarray (K, H, W)
    threshold : float in (0, 1]
    smooth : float
        Gaussian sigma in pixels applied to each footprint before thresholding (0: none). Footprints
        fitted to noisy movies are speckled; without smoothing their peak is often one bright pixel
        and the mask only a few pixels of the cell.
    fill_holes : bool
        Fill holes enclosed by a mask. GCaMP somata look like rings around a dark nucleus; the
        nucleus belongs to the cell.

    Returns
    -------
    Rois

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:15, :15]
    >>> ring = np.exp(-((np.hypot(yy - 7, xx - 7) - 3) ** 2))[None]   # a soma with a dark nucleus
    >>> int(masks_from_footprints(ring, 0.3).areas[0]), int(masks_from_footprints(ring, 0.3, fill_holes=True).areas[0])
    (40, 49)
    """
    footprints = np.asarray(footprints)
    K = footprints.shape[0]
    masks = np.zeros(footprints.shape, bool)
    centroids = np.full((K, 2), np.nan)
    for k in range(K):
        fp = footprints[k]
        if smooth > 0:
            fp = ndimage.gaussian_filter(fp.astype(np.float32, copy=False), smooth)
        peak = float(fp.max())
        if peak <= 0:
            continue
        # Work in the bounding box of the above-threshold pixels: cheap for small cells in big frames.
        above = fp >= threshold * peak
        rows, cols = np.nonzero(above.any(axis=1))[0], np.nonzero(above.any(axis=0))[0]
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        labels, _ = ndimage.label(above[box])
        pr, pc = np.unravel_index(int(np.argmax(fp)), fp.shape)
        region = labels == labels[pr - rows[0], pc - cols[0]]
        if fill_holes:
            region = ndimage.binary_fill_holes(region)
        masks[k][box] = region
        rr, cc = np.nonzero(region)
        weights = fp[box][region]
        centroids[k] = (np.average(rr, weights=weights) + rows[0], np.average(cc, weights=weights) + cols[0])
    return Rois(masks=masks, centroids=centroids, areas=masks.sum(axis=(1, 2)))


def contours_of(mask) -> list:
    """Contours of a binary mask as a list of (n, 2) arrays of (row, col) points."""
    from skimage import measure

    padded = np.pad(np.asarray(mask, float), 1)
    return [c - 1 for c in measure.find_contours(padded, 0.5)]
