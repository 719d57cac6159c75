"""Curate detected components: reject non-cells (with a reason each) and merge duplicates.

Checks, in this order, on the mask of each footprint (the pipeline's ROI rule, ``[rois]``: the
smoothed footprint >= ``threshold`` x peak, the connected region holding the peak, holes filled):

1. area: at least ``min_area`` and at most ``max_area`` discs of one cell diameter;
2. concentration: at least ``min_concentration`` of the footprint's energy (sum of squares) lies
   inside the mask — a soma's footprint is concentrated there; noise and neuropil pieces are not;
3. compactness: mask area / area of the disc (about the centroid) reaching its farthest pixel,
   at least ``min_compactness`` (dendrites and vessels are long and thin);
4. SNR: peak of the 3-frame mean of the trace above its median, in noise standard deviations
   (successive-difference MAD), at least ``min_snr``;
5. consistency: the movie averaged over the component's strongest frames (the top 5 % of its
   trace, slow drift removed) minus its average over its weakest half correlates with the footprint
   (over the footprint's bounding box and half a cell around it) at least ``min_consistency``: what lights up when the trace is high must
   look like the footprint. A blob fitted over parts of several cells, whose trace follows none of
   them, fails this (CaImAn calls the same check the space correlation, its "r value");
6. duplicates: when the smaller of two masks lies ``merge_overlap`` inside the other and their
   detrended traces correlate ``merge_corr`` or more, or their event images (the movie at each one's
   strongest frames) correlate ``merge_event_similarity`` or more (one soma whose events NMF split
   between components), the one with the lower SNR is merged into the other: footprints added with
   their trace amplitudes as weights and renormalised, traces combined by a least-squares fit of the
   merged footprint (:mod:`caimg_nmf.stages._duplicates`). Duplicates are joined transitively (B a
   duplicate of A and C of B make one cell), each group merged into its strongest member.

Nothing is deleted: rejected components move to ``rejected_*`` with a reason string. The kept
cells come out ordered by trace SNR, strongest first.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ._duplicates import event_frames, event_images, footprint_box, merge_duplicates, pixel_correlation
from ._local_fit import windows_to_dense
from .detect import Detection, diameter_spread
from .rois import masks_from_footprints

__all__ = ["curate", "trace_snr", "concentration", "event_consistency"]


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


def _window_masks_sparse(masks, centres, ri, shape):
    """(K, H*W) sparse matrix of window masks placed at their centres (pixels outside the frame dropped)."""
    from scipy import sparse
    H, W = shape
    k, y, x = np.nonzero(masks)
    y = y + centres[k, 0] - ri
    x = x + centres[k, 1] - ri
    ok = (y >= 0) & (y < H) & (x >= 0) & (x < W)
    return sparse.csr_matrix((np.ones(ok.sum(), np.float32), (k[ok], (y * W + x)[ok])),
                             shape=(masks.shape[0], H * W))


def _inside_frame(centres, ri, shape):
    """(K, w, w) bool: which pixels of each window (centred at ``centres``) lie inside the frame."""
    w = 2 * ri + 1
    off = np.arange(w) - ri
    ys = (centres[:, :1] + off[None]) if len(centres) else np.zeros((0, w), int)
    xs = (centres[:, 1:] + off[None]) if len(centres) else np.zeros((0, w), int)
    iny = (ys >= 0) & (ys < shape[0])
    inx = (xs >= 0) & (xs < shape[1])
    return iny[:, :, None] & inx[:, None, :]


def _mirror_outside(win, centres, ri, shape):
    """Windows whose out-of-frame part is the mirror image of their in-frame part (numpy 'symmetric',
    which is scipy.ndimage's 'reflect', the mode the dense footprints are smoothed with)."""
    inside = _inside_frame(centres, ri, shape)
    out = win
    for k in np.flatnonzero(~inside.all(axis=(1, 2))):
        if out is win:
            out = win.copy()
        rows, cols = np.flatnonzero(inside[k].any(axis=1)), np.flatnonzero(inside[k].any(axis=0))
        part = win[k][rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        w = win.shape[1]
        out[k] = np.pad(part, ((rows[0], w - 1 - rows[-1]), (cols[0], w - 1 - cols[-1])), mode="symmetric")
    return out


def concentration(footprints: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Fraction of each footprint's energy (sum of squares) inside its mask, (K,) float."""
    sq = np.square(footprints, dtype=np.float32)
    total = sq.reshape(len(sq), -1).sum(axis=1)
    inside = np.where(masks, sq, 0).reshape(len(sq), -1).sum(axis=1)
    return inside / np.maximum(total, 1e-30)


def event_consistency(movie, footprints, centres, ri, traces, *, pad, top=0.05) -> np.ndarray:
    """Correlation, over each footprint's box plus ``pad`` pixels, between the footprint and its event image.

    footprints : (K, w, w) windows (w = 2 ri + 1) centred at ``centres`` (K, 2), or (K, H, W) with
        ``centres=None``. The correlation is taken over the footprint's bounding box plus ``pad`` pixels
        (the same pixels in both cases).
    The event image is the movie averaged over the ``top`` fraction of frames where the trace (minus
    its moving average over ~10 % of the recording) is highest, minus the average over the frames
    where it is in its lower half; the movie is read once, in chunks of frames. Returns (K,) float;
    NaN where the trace or the footprint is constant.
    """
    out = np.full(len(traces), np.nan)
    found = [footprint_box(footprints[k], None if centres is None else centres[k], ri, np.shape(movie)[1:], pad)
             for k in range(len(traces))]
    ks = [k for k in range(len(traces)) if found[k] is not None]
    frames = event_frames(traces[ks], top) if ks else []
    for k, image in zip(ks, event_images(movie, frames, [found[k][0] for k in ks])):
        out[k] = pixel_correlation(image, found[k][1])
    return out


def curate(detection: Detection, movie, cfg, rois=None) -> Detection:
    """Return a new Detection with non-cells and duplicates moved to the rejected arrays.

    ``cfg`` is a CurateConfig; ``rois`` a RoisConfig giving the mask rule (default: its defaults),
    so that the checks see the masks the result will hold.

    ``movie`` is accepted for checks against the data and for shape validation; the detection
    and the config are not modified. A detection in windows (``find_cells(..., dense=False)``) is
    curated in its windows; the result then has dense footprints for the kept cells and float16
    ones for the rejected (they are only shown), which keeps the memory of big fields low.
    """
    from scipy import sparse

    det = detection
    windowed = det.windows is not None
    K = det.windows.shape[0] if windowed else det.footprints.shape[0]
    shape = tuple(det.correlation_image.shape) if windowed else tuple(det.footprints.shape[1:])
    if det.traces.shape[0] != K:
        raise InputError(f"detection has {K} footprints but {det.traces.shape[0]} traces.") from None
    if det.neuropil_traces is not None and len(det.neuropil_traces) != K:
        raise InputError(f"detection has {K} footprints but {len(det.neuropil_traces)} neuropil traces; "
                         "give one per footprint, or None.") from None
    if movie is not None and tuple(np.shape(movie)[1:]) != shape:
        raise InputError(f"movie frames are {np.shape(movie)[1:]} but footprints are "
                         f"{shape}; curate needs the movie the cells were found in.") from None
    d = float(det.cell_diameter) if det.cell_diameter else 10.0
    disc = np.pi * (d / 2) ** 2
    pad = int(np.ceil(d / 2))   # event images: the footprint's box and half a cell around it
    source = det.windows if windowed else det.footprints
    if rois is None:
        from ..config import RoisConfig
        rois = RoisConfig()
    # a window that sticks out of the frame is mirrored there, as the dense footprint's smoothing
    # is at the frame edge; the outside part is then cut from the mask: the checks see the result's masks
    mask_src = _mirror_outside(source, det.seeds, det.window_radius, shape) if windowed else source
    masks = masks_from_footprints(mask_src, rois.threshold, smooth=rois.smooth, fill_holes=rois.fill_holes).masks
    if windowed:
        masks &= _inside_frame(det.seeds, det.window_radius, shape)
    areas = masks.sum(axis=(1, 2))
    conc = concentration(source, masks) if K else np.zeros(0)
    snr = trace_snr(det.traces) if K else np.zeros(0)
    reasons = [None] * K
    for k in range(K):
        if areas[k] < cfg.min_area * disc:
            reasons[k] = f"area {areas[k]} px < min_area {cfg.min_area * disc:.0f} px"
        elif areas[k] > cfg.max_area * disc:
            reasons[k] = f"area {areas[k]} px > max_area {cfg.max_area * disc:.0f} px"
        elif conc[k] < cfg.min_concentration:
            reasons[k] = f"scattered: {conc[k]:.2f} of the footprint inside its mask < min_concentration " \
                         f"{cfg.min_concentration}"
        elif (c := _compactness(masks[k])) < cfg.min_compactness:
            reasons[k] = f"compactness {c:.2f} < min_compactness {cfg.min_compactness}"
        elif snr[k] < cfg.min_snr:
            reasons[k] = f"low SNR {snr[k]:.1f} < {cfg.min_snr}"
    # the event image reads frames of the movie: only for the components that passed so far
    check = [k for k in range(K) if reasons[k] is None]
    if movie is not None and cfg.min_consistency > -1 and check:
        centres = det.seeds[check] if windowed else None
        consistency = event_consistency(movie, source[check], centres, det.window_radius, det.traces[check],
                                        pad=pad)
        for k, c in zip(check, consistency):
            if not c >= cfg.min_consistency:
                reasons[k] = f"inconsistent: the movie at its strongest frames correlates {c:.2f} with the " \
                             f"footprint < min_consistency {cfg.min_consistency}"

    # duplicates among the survivors, strongest first
    alive = [k for k in np.argsort(-snr, kind="stable") if reasons[k] is None]
    pairs = []
    if len(alive) > 1:
        if windowed:
            flat = _window_masks_sparse(masks[alive], det.seeds[alive], det.window_radius, shape)
        else:
            flat = sparse.csr_matrix(masks[alive].reshape(len(alive), -1), dtype=np.float32)
        inter = (flat @ flat.T).toarray()
        a = areas[alive].astype(np.float32)
        frac = inter / np.maximum(np.minimum(a[:, None], a[None, :]), 1)
        ii, jj = np.nonzero(np.triu(frac >= cfg.merge_overlap, 1))   # row-major: the stronger first
        pairs = [(alive[i], alive[j]) for i, j in zip(ii, jj)]
    changed, merged_traces = merge_duplicates(movie, source, pairs, det.seeds, det.window_radius, shape,
                                              np.asarray(det.traces), reasons, cfg, windowed, pad, alive)
    traces = np.asarray(det.traces).copy() if merged_traces else np.asarray(det.traces)
    for k, tr in merged_traces.items():
        traces[k] = tr
    snr_final = trace_snr(traces) if K else np.zeros(0)

    # strongest first (trace SNR), as a user browses cells; ties keep the detection order
    keep = sorted((k for k in range(K) if reasons[k] is None), key=lambda k: -snr_final[k])
    rej = [k for k in range(K) if reasons[k] is not None]
    kept_src = source[keep]
    for i, k in enumerate(keep):
        if k in changed:
            kept_src[i] = changed[k]
    seeds = det.seeds if det.seeds is not None and len(det.seeds) == K else None
    # the rejected footprints: those of the detection (components spread over their window), then
    # these, written into one array (no concatenated copy: on big fields these are hundreds of MB)
    prev_rej = det.rejected_footprints
    n_prev = len(prev_rej)
    if windowed:
        ri = det.window_radius
        kept_fp = windows_to_dense(kept_src, seeds[keep], ri, shape)
        rej_fp = np.zeros((n_prev + len(rej),) + shape, np.float16)
        rej_fp[:n_prev] = prev_rej
        windows_to_dense(source[rej], seeds[rej], ri, shape, out=rej_fp[n_prev:])
    else:
        kept_fp = kept_src
        rej_fp = np.concatenate([prev_rej.astype(source.dtype, copy=False), source[rej]]) if n_prev else source[rej]
    # "merged into k" refers to indices of the input; say which output cell that is
    new_index = {k: i for i, k in enumerate(keep)}
    rej_reasons = []
    for k in rej:
        r = reasons[k]
        if r.startswith("merged into "):
            r = f"merged into {new_index[int(r.split()[-1])]}"
        rej_reasons.append(r)
    info = dict(det.info)
    # the size of the cells kept (their masks' equivalent diameters): the candidates' spread in
    # det.info also counts the non-cells, which on real recordings are most of them
    kept_diameters = 2 * np.sqrt(areas[keep] / np.pi)
    info["curate"] = {"n_in": int(K), "n_kept": len(keep), "n_rejected": len(rej),
                      "cell_diameter_median_px": float(np.median(kept_diameters)) if keep else 0.0,
                      "cell_diameter_spread_px": diameter_spread(kept_diameters)}
    return dataclasses.replace(
        det,
        footprints=kept_fp,
        windows=None,
        traces=traces[keep],
        neuropil_traces=None if det.neuropil_traces is None else det.neuropil_traces[keep],
        seeds=None if seeds is None else seeds[keep],
        rejected_footprints=rej_fp,
        rejected_traces=np.concatenate([det.rejected_traces, det.traces[rej]]),
        rejected_reasons=list(det.rejected_reasons) + rej_reasons,
        info=info,
    )
