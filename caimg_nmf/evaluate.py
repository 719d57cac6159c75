"""Score detected cells against ground truth.

Matching follows the Neurofinder / CaImAn benchmark convention: predicted and true masks
are paired one-to-one by the Hungarian algorithm on the cost ``1 - IoU``, and a pair
counts as a hit only if its IoU is at least ``iou_threshold`` (0.3 by default). Precision
= hits / predicted cells, recall = hits / true cells, F1 their harmonic mean.

Masks are stacks ``(K, H, W)`` (nonzero = inside); IoUs are computed with sparse matrix
products, so K ~ 1000 cells on 512 x 512 frames takes well under a second.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from ._evaluate_activity import active_cells, mask_traces, ring_masks
from .errors import InputError

__all__ = ["Score", "evaluate", "match_masks", "match_footprints", "iou_matrix",
           "cosine_matrix", "load_truth_masks", "active_cells", "mask_traces", "ring_masks"]

_BIG = 1e6  # cost of a forbidden pair in the assignment


def _stack(masks, name, dtype=bool):
    """(K, H, W) array from ``masks``; an empty input gives K = 0 (shape may be unknown)."""
    if sparse.issparse(masks):
        raise InputError(f"{name}: got a sparse matrix; give a dense (K, H, W) stack "
                         f"(e.g. W.T.toarray().reshape(K, H, W)).") from None
    a = np.asarray(masks)
    if a.size == 0 and a.ndim < 3:
        return np.zeros((0, 0, 0), dtype)
    if a.ndim != 3:
        raise InputError(f"{name}: expected a (K, H, W) stack (cells first), got an array "
                         f"of shape {a.shape}. Reshape it, e.g. W.T.reshape(K, H, W) for "
                         f"a pixels x K footprint matrix.") from None
    if dtype is bool:
        return a if a.dtype == bool else a != 0
    return a.astype(dtype, copy=False)


def _same_frame(a, b, what):
    if a.shape[0] and b.shape[0] and a.shape[1:] != b.shape[1:]:
        raise InputError(f"{what}: predicted frames are {a.shape[1:]} but true frames are "
                         f"{b.shape[1:]}. Both must be on the same (H, W) grid.") from None


def _flat(a, dtype=np.float32):
    """Sparse CSR (K, P) from a (K, H, W) stack (built from its nonzeros, no dense copy)."""
    flat = a.reshape(a.shape[0], -1)
    rows, cols = np.nonzero(flat)
    data = np.ones(rows.size, dtype) if a.dtype == bool else flat[rows, cols].astype(dtype)
    return sparse.csr_matrix((data, (rows, cols)), shape=flat.shape)


def iou_matrix(pred_masks, true_masks):
    """Intersection over union of every predicted / true mask pair.

    Parameters
    ----------
    pred_masks : array_like (Kp, H, W)
    true_masks : array_like (Kt, H, W)

    Returns
    -------
    iou : ndarray (Kp, Kt) float64
        ``intersection / union`` of pixel counts, computed in float64 (counts are exact), so it is
        the correctly rounded ratio: a pair with IoU exactly 3/10 gives the same float as ``0.3``
        and matches at ``iou_threshold=0.3``.
    """
    p, t = _stack(pred_masks, "pred_masks"), _stack(true_masks, "true_masks")
    _same_frame(p, t, "iou_matrix")
    if p.shape[0] == 0 or t.shape[0] == 0:
        return np.zeros((p.shape[0], t.shape[0]))
    # float64: pixel counts are exact and their ratio correctly rounded (float32 made 12/60 read as
    # 0.20000000298, which passes ">= 0.2" and "> 0.2" alike)
    A, B = _flat(p, np.float64), _flat(t, np.float64)
    inter = (A @ B.T).tocoo()
    area_p = np.asarray(A.sum(axis=1)).ravel()
    area_t = np.asarray(B.sum(axis=1)).ravel()
    iou = np.zeros((p.shape[0], t.shape[0]))
    union = area_p[inter.row] + area_t[inter.col] - inter.data
    iou[inter.row, inter.col] = inter.data / np.maximum(union, 1)
    return iou


def cosine_matrix(pred, true):
    """Cosine similarity of every predicted / true footprint pair.

    Parameters
    ----------
    pred : array_like (Kp, H, W)
    true : array_like (Kt, H, W)

    Returns
    -------
    cos : ndarray (Kp, Kt) float64
        0 for an all-zero footprint.
    """
    p, t = _stack(pred, "pred", np.float32), _stack(true, "true", np.float32)
    _same_frame(p, t, "cosine_matrix")
    if p.shape[0] == 0 or t.shape[0] == 0:
        return np.zeros((p.shape[0], t.shape[0]))
    A, B = _flat(p, np.float64), _flat(t, np.float64)
    dots = (A @ B.T).toarray()
    na = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).ravel())
    nb = np.sqrt(np.asarray(B.multiply(B).sum(axis=1)).ravel())
    denom = np.outer(na, nb)
    return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)


def _assign(similarity, threshold):
    """Hungarian one-to-one matching maximising similarity; pairs below threshold dropped."""
    if similarity.size == 0:
        return []
    ok = similarity >= threshold
    rows, cols = np.flatnonzero(ok.any(axis=1)), np.flatnonzero(ok.any(axis=0))
    if rows.size == 0:
        return []
    sub = similarity[np.ix_(rows, cols)]
    cost = np.where(sub >= threshold, 1.0 - sub, _BIG)
    r, c = linear_sum_assignment(cost)
    keep = cost[r, c] < _BIG
    return sorted((int(rows[i]), int(cols[j]), float(sub[i, j]))
                  for i, j in zip(r[keep], c[keep]))


def match_masks(pred_masks, true_masks, iou_threshold=0.3):
    """One-to-one matching of predicted to true masks (Hungarian on ``1 - IoU``).

    As in CaImAn's benchmark code, pairs with IoU below ``iou_threshold`` are forbidden
    before the assignment, then the assignment minimises the total ``1 - IoU``.

    Parameters
    ----------
    pred_masks : array_like (Kp, H, W)
    true_masks : array_like (Kt, H, W)
    iou_threshold : float

    Returns
    -------
    matches : list of (pred_idx, true_idx, iou)
        Sorted by ``pred_idx``.
    """
    return _assign(iou_matrix(pred_masks, true_masks), iou_threshold)


def match_footprints(pred, true, min_cosine=0.5):
    """One-to-one matching of footprints by cosine similarity (Hungarian).

    Parameters
    ----------
    pred : array_like (Kp, H, W)
    true : array_like (Kt, H, W)
    min_cosine : float
        Pairs below this similarity are never matched.

    Returns
    -------
    matches : list of (pred_idx, true_idx, cosine)
    """
    return _assign(cosine_matrix(pred, true), min_cosine)


def _pearson(a, b):
    """Row-wise Pearson correlation of two (N, T) arrays; 0 where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@dataclass
class Score:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    n_pred, n_true, n_matched : int
    precision, recall, f1 : float
        0 when undefined (no predicted / true cells).
    mean_iou : float
        Mean IoU over matched pairs (0 if none).
    trace_corr : float or None
        Mean Pearson correlation of matched traces, over the pairs whose true trace varies (a
        silent true cell has nothing to correlate); 0 when nothing matched; None if traces were not
        given or every matched true cell is silent.
    n_trace_pairs : int or None
        How many matched pairs ``trace_corr`` averages over (None if traces were not given).
    footprint_cosine : float or None
        Mean cosine similarity of matched footprints (None if footprints not given).
    matches : list of (pred_idx, true_idx, iou)
    recall_active : float or None
        Recall over the true cells flagged in ``active`` (None if not given).
    n_active : int or None
    iou_threshold : float
    """

    n_pred: int
    n_true: int
    n_matched: int
    precision: float
    recall: float
    f1: float
    mean_iou: float
    trace_corr: float | None = None
    n_trace_pairs: int | None = None
    footprint_cosine: float | None = None
    matches: list = field(default_factory=list)
    recall_active: float | None = None
    n_active: int | None = None
    iou_threshold: float = 0.3

    def as_dict(self):
        """Plain-Python dict (JSON-serialisable; matches as lists)."""
        d = asdict(self)
        d["matches"] = [[int(p), int(t), float(v)] for p, t, v in self.matches]
        return d

    def __str__(self):
        s = (f"matched {self.n_matched} of {self.n_true} true cells with {self.n_pred} "
             f"predicted (IoU >= {self.iou_threshold:g}): precision {self.precision:.3f}, "
             f"recall {self.recall:.3f}, F1 {self.f1:.3f}, mean IoU {self.mean_iou:.3f}")
        if self.trace_corr is not None:
            s += f", trace r {self.trace_corr:.3f}"
            if self.n_trace_pairs is not None and self.n_trace_pairs < self.n_matched:
                s += f" (over the {self.n_trace_pairs} hits whose true trace varies)"
        if self.footprint_cosine is not None:
            s += f", footprint cos {self.footprint_cosine:.3f}"
        if self.recall_active is not None:
            s += f", recall on {self.n_active} active {self.recall_active:.3f}"
        return s


def _check_traces(tr, k, name):
    a = np.asarray(tr, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != k:
        raise InputError(f"evaluate: {name} has shape {a.shape}; expected (K, T) with "
                         f"K = {k} rows, one per mask.") from None
    return a


def evaluate(pred_masks, true_masks, *, pred_traces=None, true_traces=None,
             pred_footprints=None, true_footprints=None, iou_threshold=0.3, active=None):
    """Score predicted cells against ground truth.

    Parameters
    ----------
    pred_masks : array_like (Kp, H, W)
    true_masks : array_like (Kt, H, W)
    pred_traces, true_traces : array_like (Kp, T), (Kt, T), optional
        If both are given, ``trace_corr`` is the mean Pearson r over matched pairs (those whose true
        trace is not constant).
    pred_footprints, true_footprints : array_like (Kp, H, W), (Kt, H, W), optional
        If both are given, ``footprint_cosine`` is the mean cosine over matched pairs.
    iou_threshold : float
    active : array_like (Kt,) bool, optional
        True cells visibly active in this recording (see :func:`active_cells`); gives
        ``recall_active``.

    Returns
    -------
    Score
    """
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float, np.number)) \
            or not 0 < iou_threshold <= 1:  # NaN fails too; above 1 no pair can match
        raise InputError(f"evaluate: iou_threshold = {iou_threshold!r}: give a number in (0, 1], e.g. 0.3 "
                         "(as --iou).") from None
    p, t = _stack(pred_masks, "pred_masks"), _stack(true_masks, "true_masks")
    _same_frame(p, t, "evaluate")
    kp, kt = p.shape[0], t.shape[0]
    matches = _assign(iou_matrix(p, t), iou_threshold) if kp and kt else []
    n = len(matches)
    prec = n / kp if kp else 0.0
    rec = n / kt if kt else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    pi = np.array([m[0] for m in matches], int)
    ti = np.array([m[1] for m in matches], int)
    score = Score(kp, kt, n, prec, rec, f1,
                  float(np.mean([m[2] for m in matches])) if n else 0.0,
                  matches=matches, iou_threshold=float(iou_threshold))
    if pred_traces is not None and true_traces is not None:
        a = _check_traces(pred_traces, kp, "pred_traces")
        b = _check_traces(true_traces, kt, "true_traces")
        if a.shape[1] != b.shape[1]:
            raise InputError(f"evaluate: pred_traces have {a.shape[1]} frames but "
                             f"true_traces have {b.shape[1]}; they must match.") from None
        # a silent true cell (constant trace) has nothing to correlate: left out, not counted as r = 0
        varying = np.ptp(b[ti], axis=1) > 0 if n else np.zeros(0, bool)
        score.trace_corr = (float(_pearson(a[pi][varying], b[ti][varying]).mean()) if varying.any()
                            else None if n else 0.0)
        score.n_trace_pairs = int(varying.sum())
    if pred_footprints is not None and true_footprints is not None:
        fa = _stack(pred_footprints, "pred_footprints", np.float64)
        fb = _stack(true_footprints, "true_footprints", np.float64)
        if fa.shape[0] != kp or fb.shape[0] != kt:
            raise InputError("evaluate: pred_footprints / true_footprints must have as many "
                             "cells as pred_masks / true_masks.") from None
        if n:
            fa, fb = fa[pi].reshape(n, -1), fb[ti].reshape(n, -1)
            den = np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1)
            cos = np.divide((fa * fb).sum(axis=1), den, out=np.zeros(n), where=den > 0)
            score.footprint_cosine = float(cos.mean())
        else:
            score.footprint_cosine = 0.0
    if active is not None:
        act = np.asarray(active, bool).ravel()
        if act.shape[0] != kt:
            raise InputError(f"evaluate: active has {act.shape[0]} entries but there are "
                             f"{kt} true cells.") from None
        score.n_active = int(act.sum())
        score.recall_active = float(act[ti].sum() / act.sum()) if act.any() else 0.0
    return score


def _rasterize_regions(regions, shape, path):
    if isinstance(regions, dict) and "regions" in regions:
        regions = regions["regions"]
    if not isinstance(regions, list):
        raise InputError(f"load_truth_masks: '{path}' is not a Neurofinder regions file "
                         f"(expected a JSON list of {{'id', 'coordinates'}}).") from None
    if shape is None:
        raise InputError(f"load_truth_masks: '{path}' is a Neurofinder regions.json; pass "
                         f"shape=(H, W) of the movie frames to rasterize it.") from None
    H, W = int(shape[0]), int(shape[1])
    if not regions:
        raise InputError(f"load_truth_masks: '{path}' holds no regions (an empty list): there is nothing to "
                         "score against. Give the regions file with the true cells.") from None
    masks = np.zeros((len(regions), H, W), bool)
    for k, reg in enumerate(regions):
        try:
            rc = np.asarray(reg["coordinates"], dtype=float).reshape(-1, 2)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"load_truth_masks: region {k} in '{path}' has no valid "
                             f"'coordinates' list of [row, col] pairs.") from None
        rid = reg.get("id", k) if isinstance(reg, dict) else k
        if not len(rc):
            raise InputError(f"load_truth_masks: region {rid!r} in '{path}' has no pixels (its coordinates "
                             "list is empty): no result could ever match it. Remove it or give its "
                             "[row, col] pairs.") from None
        rc = np.rint(rc).astype(int)
        bad = (rc[:, 0] < 0) | (rc[:, 0] >= H) | (rc[:, 1] < 0) | (rc[:, 1] >= W)
        if bad.any():
            raise InputError(f"load_truth_masks: region {rid!r} in '{path}' has coordinates "
                             f"outside a {H}x{W} frame (e.g. {rc[bad][0].tolist()}). Check "
                             f"shape=(H, W) and that coordinates are [row, col].") from None
        masks[k, rc[:, 0], rc[:, 1]] = True
    return masks


def load_truth_masks(path, shape=None):
    """Load ground-truth cells from a file.

    Parameters
    ----------
    path : str or Path
        * ``.json``: Neurofinder ``regions.json`` (list of ``{"id", "coordinates":
          [[row, col], ...]}``); needs ``shape``.
        * ``.npy`` / ``.tif`` / ``.tiff``: mask stack (K, H, W), nonzero = inside.
        * ``.h5`` / ``.hdf5``: synthetic truth from ``SyntheticMovie.save_truth``; masks are
          ``footprints >= 0.3 * max`` (peak's connected region, holes filled).
    shape : tuple (H, W), optional
        Frame shape; required for JSON, checked against the others.

    Returns
    -------
    masks : ndarray (K, H, W) bool
    footprints : ndarray (K, H, W) float32 or None
    traces : ndarray (K, T) float32 or None
    """
    from .io.inputs import check_input_file

    p = check_input_file(path, "load_truth_masks: truth file")
    ext = p.suffix.lower()
    footprints = traces = None
    if ext == ".json":
        try:
            regions = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"load_truth_masks: '{p}' is not valid JSON ({exc}).") from None
        except RecursionError:
            raise InputError(f"load_truth_masks: '{p}' is not valid JSON for a regions file: its lists are "
                             "nested deeper than Python reads (a regions.json nests three deep).") from None
        return _rasterize_regions(regions, shape, p), None, None
    if ext == ".npy":
        from .io.npy import npy_header

        npy_header(p)  # objects, truncation and declared sizes beyond the file, before numpy allocates
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"load_truth_masks: cannot read '{p}' as .npy ({exc}).") from None
    elif ext in (".tif", ".tiff"):
        import tifffile
        try:
            arr = tifffile.imread(p)
        except Exception as exc:  # tifffile raises several types for corrupt files
            raise InputError(f"load_truth_masks: cannot read '{p}' as TIFF ({exc}).") from None
    elif ext in (".h5", ".hdf5"):
        from .synthetic import footprints_to_masks, load_truth
        truth = load_truth(p)
        footprints, traces = truth.footprints, truth.traces
        arr = footprints_to_masks(footprints, 0.3)
    else:
        raise InputError(f"load_truth_masks: unknown format '{ext}' for '{p}'. Use a "
                         f"Neurofinder .json, a (K, H, W) mask stack .npy/.tif, or a "
                         f"synthetic truth .h5.") from None
    if arr.ndim != 3:
        raise InputError(f"load_truth_masks: '{p}' holds an array of shape {arr.shape}; "
                         f"expected a (K, H, W) stack of masks, cells first.") from None
    if shape is not None and tuple(arr.shape[1:]) != tuple(int(s) for s in shape):
        raise InputError(f"load_truth_masks: masks in '{p}' are {arr.shape[1:]} but "
                         f"shape={tuple(shape)} was given.") from None
    numeric = arr.dtype == bool or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if footprints is None and arr.dtype != bool and arr.size and (
            not numeric or not np.isin(np.unique(arr[:8]), (0, 1)).all()):
        raise InputError(f"load_truth_masks: '{p}' holds {arr.dtype} values other than 0 and 1 (e.g. "
                         f"{np.unique(arr[:8])[:3].tolist()}): expected a (K, H, W) stack of masks, 1 inside "
                         f"each cell, not a movie or footprints. Threshold it first, e.g. (fp >= 0.3 * "
                         f"fp.max(axis=(1, 2), keepdims=True)).") from None
    masks = arr != 0
    if not len(masks):  # recall over no true cells is undefined: a truth file says where cells are
        raise InputError(f"load_truth_masks: '{p}' holds no cells (0 masks): there is nothing to score "
                         "against. Give the file with the true cells.") from None
    empty = np.flatnonzero(~masks.any(axis=(1, 2))) if footprints is None else ()
    if len(empty):
        raise InputError(f"load_truth_masks: mask {int(empty[0])} in '{p}' has no pixels ({len(empty)} of "
                         f"{len(masks)} masks are empty): no result could ever match it. Drop the empty "
                         "masks from the stack.") from None
    return masks, footprints, traces
