"""Event images, and the duplicate check of :func:`caimg_nmf.stages.curate.curate`.

A component's *event image* is the movie averaged over the frames where its trace is highest, minus
the movie averaged over the frames where it is in its lower half: what lights up when the trace does.
Curation uses it twice: a cell's event image must look like its footprint (consistency), and two
overlapping components whose event images look alike are one cell, even when their traces do not
correlate — NMF sometimes splits one soma's events between two or three components, each with a
different part of the soma as footprint (seen on the Neurofinder recording: event images correlating
0.79–0.94, while distinct overlapping cells of the dense synthetic scenario stay at or below 0.56).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._local_fit import shift_window
from ._merge import detrend

__all__ = ["event_frames", "event_images", "footprint_box", "merge_duplicates", "pixel_correlation"]


def event_frames(traces, top=0.05):
    """For each trace (K, T): the sorted indices of its ``top`` fraction of frames with the highest
    value after removing a moving average over ~10 % of the recording (slow drift), and of the lower
    half of its frames."""
    tr = np.asarray(traces, np.float32)
    T = tr.shape[1]
    hp = tr - ndi.uniform_filter1d(tr, max(3, T // 10), axis=1, mode="nearest") if T >= 30 else tr
    n_top = min(T, max(5, int(round(top * T))))
    out = []
    for row in hp:
        order = np.argsort(row, kind="stable")
        out.append((np.sort(order[-n_top:]), np.sort(order[:T // 2])))
    return out


#: bytes of movie frames read at a time by :func:`event_images`
EVENT_CHUNK_BYTES = 256 * 1024**2


def event_images(movie, frame_sets, boxes, chunk_bytes=None):
    """For each component: the mean of the movie over its ``frames[0]`` minus its mean over
    ``frames[1]``, on its pixels ``box`` (a pair of slices); (list of 2-D float64 arrays).

    The movie is read once, front to back, in chunks of consecutive frames (``EVENT_CHUNK_BYTES``),
    however many components there are: on a disk-backed movie larger than memory, reading each
    component's frames on its own would re-read the file for every component."""
    T, H, W = np.shape(movie)
    weights = np.zeros((len(frame_sets), T), np.float64)
    for k, (high, low) in enumerate(frame_sets):
        weights[k, high] += 1.0 / max(len(high), 1)
        weights[k, low] -= 1.0 / max(len(low), 1)
    out = [np.zeros((b[0].stop - b[0].start, b[1].stop - b[1].start)) for b in boxes]
    chunk = max(1, int((chunk_bytes or EVENT_CHUNK_BYTES) // (4 * H * W)))
    for t0 in range(0, T, chunk):
        block = np.asarray(movie[t0:t0 + chunk], np.float32)
        for k, box in enumerate(boxes):
            nz = np.flatnonzero(weights[k, t0:t0 + chunk])
            if nz.size:
                out[k] += np.tensordot(weights[k, t0 + nz], block[nz, box[0], box[1]], axes=1)
    return out


def pixel_correlation(a, b) -> float:
    """Pearson correlation of two images over their pixels; NaN when either is constant."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else float("nan")


def footprint_box(f, centre, ri, shape, pad):
    """``(box, footprint on box)``: the bounding box, in frame coordinates, of the footprint's nonzero
    pixels plus ``pad``, clipped to the frame. ``f`` is a dense (H, W) footprint (``centre`` None) or a
    (2 ri + 1)^2 window centred at ``centre``; both give the same box, so curation does not depend on
    how the detection stored its footprints. None for an all-zero footprint."""
    H, W = shape
    ys, xs = np.nonzero(f)
    if ys.size == 0:
        return None
    if centre is not None:
        ys, xs = ys + int(centre[0]) - ri, xs + int(centre[1]) - ri
    y0, y1 = max(0, ys.min() - pad), min(H, ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(W, xs.max() + pad + 1)
    box = (slice(y0, y1), slice(x0, x1))
    if centre is None:
        return box, f[box]
    fw = np.zeros((y1 - y0, x1 - x0), f.dtype)
    wy0, wx0 = int(centre[0]) - ri, int(centre[1]) - ri
    r0, r1 = max(y0, wy0), min(y1, wy0 + f.shape[0])
    c0, c1 = max(x0, wx0), min(x1, wx0 + f.shape[1])
    fw[r0 - y0:r1 - y0, c0 - x0:c1 - x0] = f[r0 - wy0:r1 - wy0, c0 - wx0:c1 - wx0]
    return box, fw


def _union(a, b):
    return tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b))


def merge_duplicates(movie, source, pairs, seeds, ri, shape, traces, reasons, cfg, windowed, pad, order):
    """Merge overlapping components that are one cell; the weaker into the stronger.

    pairs : (ki, kj) of components whose masks overlap at least ``cfg.merge_overlap`` (of the smaller).
    order : the components, strongest first.
    A pair is one cell when its detrended traces correlate at least ``cfg.merge_corr`` or its event
    images at least ``cfg.merge_event_similarity``; every pair is judged on the components as detected.
    Pairs are joined transitively (B a duplicate of A and C of B: one cell of three), and each group
    is merged into its strongest member, the others added in order of strength. A merged footprint is
    the footprints weighted by their trace amplitudes (renormalised to a peak of 1); the merged trace
    is the least-squares fit of that footprint to the light both explained,
    ``(c_i <f_i, f> + c_j <f_j, f>) / <f, f>``. Event images are compared on the union of the two
    footprints' boxes (:func:`footprint_box`, plus ``pad`` pixels). ``reasons`` gets "merged into k"
    for each merged component. Returns ({k: footprint}, {k: trace}) of the cells that absorbed others.
    """
    footprints, merged_traces = {}, {}
    pairs = [(int(i), int(j)) for i, j in pairs]
    if not pairs:
        return footprints, merged_traces
    involved = sorted({k for p in pairs for k in p})
    row = {k: r for r, k in enumerate(involved)}
    # detrended: a shared slow drift (bleaching, resting level) must not make two cells one
    z = detrend(traces[involved], window=max(3, traces.shape[1] // 20))
    frames = dict(zip(involved, event_frames(traces[involved]))) if movie is not None else {}
    rank = {int(k): r for r, k in enumerate(order)}
    parent = {k: k for k in involved}

    def root(k):
        while parent[k] != k:
            k = parent[k]
        return k

    candidates = [(ki, kj) for ki, kj in pairs if reasons[ki] is None and reasons[kj] is None]
    same = {p: float(z[row[p[0]]] @ z[row[p[1]]]) >= cfg.merge_corr for p in candidates}
    if frames and cfg.merge_event_similarity <= 1:
        # the event images of the pairs the traces leave open, in one pass over the movie: each
        # component's image over the union of its pairs' boxes, cropped to each pair's
        boxes = {}
        for p in candidates:
            if not same[p]:
                for k in p:
                    if k not in boxes:
                        found = footprint_box(source[k], seeds[k] if windowed else None, ri, shape, pad)
                        boxes[k] = None if found is None else found[0]
        open_pairs = [p for p in candidates if not same[p] and boxes[p[0]] is not None and boxes[p[1]] is not None]
        reach = {}
        for p in open_pairs:
            u = _union(boxes[p[0]], boxes[p[1]])
            for k in p:
                reach[k] = _union(reach[k], u) if k in reach else u
        ks = sorted(reach)
        images = dict(zip(ks, event_images(movie, [frames[k] for k in ks], [reach[k] for k in ks])))

        def crop(k, box):
            r = reach[k]
            return images[k][box[0].start - r[0].start:box[0].stop - r[0].start,
                             box[1].start - r[1].start:box[1].stop - r[1].start]

        for ki, kj in open_pairs:
            box = _union(boxes[ki], boxes[kj])
            same[ki, kj] = pixel_correlation(crop(ki, box), crop(kj, box)) >= cfg.merge_event_similarity
    for ki, kj in candidates:
        if same[ki, kj]:
            a, b = sorted((root(ki), root(kj)), key=rank.__getitem__)
            parent[b] = a     # the group's root is its strongest member
    groups = {}
    for k in sorted(involved, key=rank.__getitem__):
        groups.setdefault(root(k), []).append(k)
    for ki, members in groups.items():
        for kj in members[1:]:
            reasons[kj] = f"merged into {ki}"
            fi, ci = footprints.get(ki, source[ki]), merged_traces.get(ki, traces[ki])
            fj, cj = source[kj], traces[kj]
            if windowed:   # kj's window placed in ki's (the part outside it is lost)
                fj = shift_window(fj, *(int(v) for v in seeds[ki] - seeds[kj]))
            merged = np.ptp(ci) * fi + np.ptp(cj) * fj
            f = merged / max(float(merged.max()), 1e-12)
            ff = float(np.vdot(f, f)) or 1.0
            footprints[ki] = f.astype(source.dtype, copy=False)
            merged_traces[ki] = ((ci * float(np.vdot(fi, f)) + cj * float(np.vdot(fj, f))) / ff).astype(traces.dtype)
    return footprints, merged_traces
