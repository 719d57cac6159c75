"""``caimg-nmf evaluate``: score a result file against ground truth (private; used by :mod:`caimg_nmf.cli`).

Cells are matched one-to-one by mask IoU (:func:`caimg_nmf.evaluate.evaluate`). A synthetic truth
``.h5`` also gives the trace correlation and footprint cosine of the hits, and a footprint-cosine
matching count (``--min-cosine``). When the truth traces and the result have different numbers of
frames (temporal binning, frame selection) the trace correlation is skipped with a warning on stderr:
the mask scores stay valid, so the command does not fail.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import InputError

__all__ = ["add_evaluate_parser", "cmd_evaluate"]


def _fraction(text, name, low_open):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {name} value: {text!r} (give a number)") from None
    if not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"{name} {value:g} is out of range; give a value in "
                                         f"{'(0, 1]' if low_open else '[0, 1]'}")
    return value


def add_evaluate_parser(sub) -> None:
    from .cli import _number_text  # the run command's: a number, kept as typed for messages

    p = sub.add_parser("evaluate", help="score a result against ground-truth cells (precision, recall, F1)",
                       epilog="Prints a table (with --quiet: one line). Exit codes: 0 scored, 2 a missing or "
                       "unreadable file or a truth on another frame grid. Truth traces with another number "
                       "of frames than the result: trace correlation skipped with a warning.")
    p.add_argument("result", help="result HDF5 file")
    p.add_argument("--truth", required=True, metavar="FILE",
                   help="Neurofinder regions.json, a (K, H, W) mask stack .npy/.tif, or a synthetic truth .h5 "
                        "(which also gives trace correlation and footprint cosine)")
    p.add_argument("--iou", type=lambda t: _fraction(t, "--iou", True), default=0.3, metavar="F",
                   help="IoU a matched pair needs to count as a hit (default 0.3)")
    p.add_argument("--min-cosine", type=lambda t: _fraction(t, "--min-cosine", False), default=0.5,
                   metavar="C", help="with a synthetic truth: also count footprints matched one-to-one with "
                   "cosine >= C (default 0.5)")
    p.add_argument("--movie", metavar="PATH", help="the analysed movie (same frames as the result): also "
                   "report recall on the true cells visibly active in it")
    p.add_argument("--frame-rate", type=_number_text, metavar="HZ", help="frame rate for the activity "
                   "baseline window with --movie (default: the result's)")
    p.add_argument("--json", metavar="OUT.json", help="also write the scores as JSON (a new file; see --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="let --json replace an existing file (never the "
                   "result, the truth or the movie)")
    p.set_defaults(func=cmd_evaluate)


def _shape_text(shape):
    return " x ".join(str(int(s)) for s in shape)


def _load_truth(truth_path: Path, result):
    from .evaluate import load_truth_masks

    H, W = result.frame_shape
    is_json = truth_path.suffix.lower() == ".json"
    try:
        masks, footprints, traces = load_truth_masks(truth_path, shape=(H, W) if is_json else None)
    except InputError as exc:
        if is_json and "outside a" in str(exc):
            raise InputError(f"{exc} The result {result.path} has frames {_shape_text((H, W))}; were the "
                             "regions drawn on the uncropped or unbinned movie?") from None
        raise
    if masks.shape[0] and tuple(masks.shape[1:]) != (H, W):
        raise InputError(f"truth masks in {truth_path} are {_shape_text(masks.shape[1:])} pixels but the result "
                         f"{result.path} has frames of {_shape_text((H, W))}. The truth must be on the analysed "
                         "frame grid (after crop and spatial binning).") from None
    return masks, footprints, traces


def _activity(args, result, true_masks):
    from .evaluate import active_cells
    from .io import load_movie

    movie = load_movie(args.movie)
    if tuple(movie.shape[1:]) != tuple(result.frame_shape):
        raise InputError(f"--movie {args.movie} has frames of {_shape_text(movie.shape[1:])} but the result "
                         f"{result.path} has {_shape_text(result.frame_shape)}; give the movie the result was "
                         "analysed on (after crop and binning).") from None
    if movie.shape[0] != result.n_frames:
        raise InputError(f"--movie {args.movie} has {movie.shape[0]} frames but the result {result.path} has "
                         f"{result.n_frames}; give the movie the result was analysed on (after frame selection "
                         "and temporal binning).") from None
    return active_cells(movie, true_masks, frame_rate=args.frame_rate or result.frame_rate)


def _by_origin(score, result) -> dict | None:
    """Hits among the cells of each origin (``/cells/origin``: activity, mean image), or None."""
    origin = result.get("cells/origin")
    if origin is None or len(origin) != score.n_pred:
        return None
    origin = [str(o) for o in origin]
    hit = {int(p) for p, _, _ in score.matches}
    return {kind: {"cells": origin.count(kind), "hits": sum(1 for k, o in enumerate(origin) if o == kind and k in hit)}
            for kind in dict.fromkeys(origin)}


def _table(score, result_path, truth_path, cosine, by_origin=None):
    def ratio(a, b):
        return f"({a}/{b})"

    rows = [("detected cells", f"{score.n_pred}"), ("true cells", f"{score.n_true}"),
            ("hits", f"{score.n_matched}"),
            ("precision", f"{score.precision:.3f} {ratio(score.n_matched, score.n_pred)}"),
            ("recall", f"{score.recall:.3f} {ratio(score.n_matched, score.n_true)}"),
            ("F1", f"{score.f1:.3f}"),
            ("mean IoU of hits", f"{score.mean_iou:.3f}" if score.n_matched else "n/a (no hits)")]
    if score.n_trace_pairs is not None:
        if not score.n_matched:
            value = "n/a (no hits)"
        elif score.trace_corr is None:
            value = "n/a (every hit's true trace is constant: silent cells)"
        else:
            value = f"{score.trace_corr:.3f}" + ("" if score.n_trace_pairs == score.n_matched else
                                                 f" (over the {score.n_trace_pairs} hits whose true trace varies)")
        rows.append(("trace correlation", value))
    if score.footprint_cosine is not None:
        rows.append(("footprint cosine", f"{score.footprint_cosine:.3f}" if score.n_matched else "n/a (no hits)"))
    if cosine is not None:
        rows.append((f"cosine >= {cosine['min_cosine']:g} pairs", f"{cosine['n_matched']} of {score.n_true}"))
    for kind, n in (by_origin or {}).items():
        rows.append((f"hits among {kind} cells", f"{n['hits']} of {n['cells']}"))
    if score.recall_active is not None:
        rows.append(("recall (active)", f"{score.recall_active:.3f} ({score.n_active} of {score.n_true} true "
                                        "cells active in the movie)"))
    width = max(len(name) for name, _ in rows)
    head = f"{result_path} vs {truth_path} (hit: IoU >= {score.iou_threshold:g})"
    return "\n".join([head, *(f"  {name:<{width}}  {value}" for name, value in rows)])


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate, match_footprints
    from .io.atomic import atomic_path, check_output_path
    from .io.result import Result

    from .cli import _not_empty

    inputs = [("result", args.result), ("truth", args.truth), ("movie", args.movie)]
    for flag in ("json", "movie"):
        if getattr(args, flag) is not None:
            _not_empty(getattr(args, flag), f"--{flag}")
    if args.frame_rate is not None:  # the bounds of input.frame_rate, as run's --frame-rate
        from .config import check_key

        args.frame_rate = check_key("input.frame_rate", float(args.frame_rate),
                                    label=f"--frame-rate {args.frame_rate}")
    if args.json:  # refused before the work, not after
        check_output_path(args.json, overwrite=args.overwrite, inputs=inputs, what="--json file")
    result = Result.load(args.result)
    truth_path = Path(args.truth)
    true_masks, true_fp, true_traces = _load_truth(truth_path, result)
    if true_traces is not None and true_traces.shape[1] != result.n_frames:
        print(f"caimg-nmf: warning: the truth traces in {truth_path} have {true_traces.shape[1]} frames but the "
              f"result {args.result} has {result.n_frames}; trace correlation skipped (mask scores are "
              "unaffected).", file=sys.stderr)
        true_traces = None
    active = _activity(args, result, true_masks) if args.movie else None
    has_fp = true_fp is not None
    score = evaluate(result.roi_masks, true_masks,
                     pred_traces=result.traces if true_traces is not None else None, true_traces=true_traces,
                     pred_footprints=result.footprints if has_fp else None, true_footprints=true_fp,
                     iou_threshold=args.iou, active=active)
    cosine = None
    if has_fp:
        pairs = match_footprints(result.footprints, true_fp, min_cosine=args.min_cosine)
        cosine = {"min_cosine": args.min_cosine, "n_matched": len(pairs),
                  "matches": [[int(p), int(t), float(c)] for p, t, c in pairs]}
    by_origin = _by_origin(score, result)
    if args.json:
        doc = {**score.as_dict(), "result": str(Path(args.result).resolve()),
               "truth": str(truth_path.resolve()), "cosine": cosine, "by_origin": by_origin}
        with atomic_path(Path(args.json), overwrite=args.overwrite, inputs=inputs) as tmp:
            tmp.write_text(json.dumps(doc, indent=2) + "\n")
    print(str(score) if args.quiet else _table(score, args.result, args.truth, cosine, by_origin))
    if args.json and not args.quiet:
        print(f"scores: {args.json}")
    return 0
