"""Curate detected components: reject non-cells (with a reason each) and merge duplicates.

Checks, in this order, on the mask of each footprint (footprint >= ``threshold`` x peak, the
connected region holding the peak — the pipeline's ROI rule):

1. area: at least ``min_area`` and at most ``max_area`` discs of one cell diameter;
2. compactness: mask area / area of the disc (about the centroid) reaching its farthest pixel,
   at least ``min_compactness`` (dendrites and vessels are long and thin);
3. SNR: peak of the 3-frame mean of the trace above its median, in noise standard deviations
   (successive-difference MAD), at least ``min_snr``;
4. duplicates: when the smaller of two masks lies ``merge_overlap`` inside the other and their
   traces correlate ``merge_corr`` or more, the one with the lower SNR is merged into the other
   (its footprint is added to the other's, scaled by its trace amplitude, and renormalised).

Nothing is deleted: rejected components move to ``rejected_*`` with a reason string.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ._merge import detrend
from .detect import Detection
from .rois import masks_from_footprints

__all__ = ["curate", "trace_snr"]


def trace_snr(traces: np.ndarray) -> np.ndarray:
    """Peak of the 3-frame running mean above the median, over the successive-difference noise."""
    tr = np.asarray(traces, np.float32)
    if tr.shape[1] < 3:
        return np.zeros(tr.shape[0], np.float32)
    noise = np.median(np.abs(np.diff(tr, axis=1)), axis=1) / (0.6745 * np.sqrt(2)) + 1e-9
    sm = ndi.uniform_filter1d(tr, 3, axis=1)
    return ((sm.max(axis=1) - np.median(tr, axis=1)) / noise).astype(np.float32)


def _compactness(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0.0
    r2 = ((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2).max()
    return float(ys.size / (np.pi * (np.sqrt(r2) + 0.5) ** 2))


def curate(detection: Detection, movie, cfg) -> Detection:
    """Return a new Detection with non-cells and duplicates moved to the rejected arrays.

    ``movie`` is accepted for checks against the data and for shape validation; the detection
    and the config are not modified.
    """
    det = detection
    K = det.footprints.shape[0]
    if det.traces.shape[0] != K:
        raise InputError(f"detection has {K} footprints but {det.traces.shape[0]} traces.") from None
    if movie is not None and tuple(np.shape(movie)[1:]) != tuple(det.footprints.shape[1:]):
        raise InputError(f"movie frames are {np.shape(movie)[1:]} but footprints are "
                         f"{det.footprints.shape[1:]}; curate needs the movie the cells were found in.") from None
    d = float(det.cell_diameter) if det.cell_diameter else 10.0
    disc = np.pi * (d / 2) ** 2
    masks = masks_from_footprints(det.footprints, cfg.threshold).masks
    areas = masks.sum(axis=(1, 2))
    snr = trace_snr(det.traces) if K else np.zeros(0)
    reasons = [None] * K
    for k in range(K):
        if areas[k] < cfg.min_area * disc:
            reasons[k] = f"area {areas[k]} px < min_area {cfg.min_area * disc:.0f} px"
        elif areas[k] > cfg.max_area * disc:
            reasons[k] = f"area {areas[k]} px > max_area {cfg.max_area * disc:.0f} px"
        elif (c := _compactness(masks[k])) < cfg.min_compactness:
            reasons[k] = f"compactness {c:.2f} < min_compactness {cfg.min_compactness}"
        elif snr[k] < cfg.min_snr:
            reasons[k] = f"low SNR {snr[k]:.1f} < {cfg.min_snr}"

    footprints = det.footprints  # rows changed by a merge are replaced in `changed`, not in place
    changed = {}
    # duplicates among the survivors, strongest first
    alive = [k for k in np.argsort(-snr, kind="stable") if reasons[k] is None]
    if len(alive) > 1:
        from scipy import sparse
        flat = sparse.csr_matrix(masks[alive].reshape(len(alive), -1), dtype=np.float32)
        inter = (flat @ flat.T).toarray()
        a = areas[alive].astype(np.float32)
        frac = inter / np.maximum(np.minimum(a[:, None], a[None, :]), 1)
        # detrended: a shared slow drift (bleaching, resting level) must not make two cells one
        tr = detrend(det.traces[alive], window=max(3, det.traces.shape[1] // 20))
        for i in range(len(alive)):
            ki = alive[i]
            if reasons[ki] is not None:
                continue
            for j in range(i + 1, len(alive)):
                kj = alive[j]
                if reasons[kj] is None and frac[i, j] >= cfg.merge_overlap and tr[i] @ tr[j] >= cfg.merge_corr:
                    reasons[kj] = f"merged into {ki}"
                    wi, wj = np.ptp(det.traces[ki]), np.ptp(det.traces[kj])
                    merged = changed.get(ki, footprints[ki]) * wi + footprints[kj] * wj
                    changed[ki] = merged / max(merged.max(), 1e-12)

    keep = [k for k in range(K) if reasons[k] is None]
    rej = [k for k in range(K) if reasons[k] is not None]
    kept_fp = footprints[keep]
    for i, k in enumerate(keep):
        if k in changed:
            kept_fp[i] = changed[k]
    # "merged into k" refers to indices of the input; say which output cell that is
    new_index = {k: i for i, k in enumerate(keep)}
    rej_reasons = []
    for k in rej:
        r = reasons[k]
        if r.startswith("merged into "):
            r = f"merged into {new_index[int(r.split()[-1])]}"
        rej_reasons.append(r)
    info = dict(det.info)
    info["curate"] = {"n_in": int(K), "n_kept": len(keep), "n_rejected": len(rej)}
    return dataclasses.replace(
        det,
        footprints=kept_fp,
        traces=det.traces[keep],
        neuropil_traces=None if det.neuropil_traces is None else det.neuropil_traces[keep],
        seeds=det.seeds[keep] if det.seeds is not None and len(det.seeds) == K else None,
        rejected_footprints=np.concatenate([det.rejected_footprints, footprints[rej]]),
        rejected_traces=np.concatenate([det.rejected_traces, det.traces[rej]]),
        rejected_reasons=list(det.rejected_reasons) + rej_reasons,
        info=info,
    )
