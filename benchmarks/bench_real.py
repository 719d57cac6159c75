"""Benchmark of the detection stages (find_cells + curate + infer_spikes).

1. Real recording (/work/shared/data/neurofinder_top or $CAIMG_NEUROFINDER): plain per-pixel
   baseline-free input (the stage models background itself), footprints -> masks with the pipeline's
   ROI rule ([rois]), Hungarian matching on 1 - IoU (IoU >= 0.3)
   against regions.json; precision / recall / F1, recall on visibly active annotated cells.
2. Synthetic scenarios (caimg_nmf.synthetic) without motion (the stage runs after motion correction).
3. Timing on a 600 x 512 x 512 movie: the real movie stacked with its vertically flipped copy.

Run:  python benchmarks/bench_real.py [--skip-large]
"""
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from caimg_nmf.config import Config  # noqa: E402
from caimg_nmf.stages.curate import curate  # noqa: E402
from caimg_nmf.stages.detect import find_cells  # noqa: E402
from caimg_nmf.stages.rois import masks_from_footprints  # noqa: E402
from caimg_nmf.stages.spikes import infer_spikes  # noqa: E402


def footprint_masks(f):
    """The pipeline's ROI rule ([rois]: smoothed footprint >= threshold x peak, holes filled)."""
    rois = Config().rois
    return masks_from_footprints(f, rois.threshold, smooth=rois.smooth, fill_holes=rois.fill_holes).masks

DATA = Path(os.environ.get("CAIMG_NEUROFINDER", "/work/shared/data/neurofinder_top"))


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def run(movie, cfg, diameter, fr):
    t0 = time.perf_counter()
    det = find_cells(movie, cfg.detect, cell_diameter=diameter, frame_rate=fr)
    t1 = time.perf_counter()
    cur = curate(det, movie, cfg.curate, cfg.rois)
    t2 = time.perf_counter()
    infer_spikes(cur.traces, cfg.spikes, fr)
    t3 = time.perf_counter()
    return det, cur, {"find_cells": t1 - t0, "curate": t2 - t1, "spikes": t3 - t2, "total": t3 - t0}


def fmt(s):
    return " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items())


def main():
    from caimg_nmf import evaluate as ev
    cfg = Config()
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"python {platform.python_version()}")
    if (DATA / "movie.tif").exists():
        import tifffile
        movie = tifffile.imread(DATA / "movie.tif").astype(np.float32)
        truth = ev.load_truth_masks(DATA / "regions.json", shape=movie.shape[1:])[0]
        active = ev.active_cells(movie, truth, frame_rate=7.0)
        for diam in (9.0, None):
            det, cur, t = run(movie, cfg, diam, 7.0)
            for name, d in (("uncurated", det), ("curated", cur)):
                s = ev.evaluate(footprint_masks(d.footprints), truth, active=active)
                print(f"real d={diam} ({d.cell_diameter:.0f}) {name}: K={d.n_cells} P={s.precision:.3f} "
                      f"R={s.recall:.3f} F1={s.f1:.3f} recall_active={getattr(s, 'recall_active', float('nan')):.3f} "
                      f"(active {int(np.sum(active))}/{len(truth)})")
            print(f"  time {fmt(t)} s; detect steps {fmt(det.info['timings_s'])}; peak RSS {peak_gb():.2f} GB")
        if "--skip-large" not in sys.argv:
            big = np.concatenate([movie, movie[:, ::-1]], axis=1)
            del movie
            det, cur, t = run(big, cfg, 9.0, 7.0)
            print(f"large {big.shape}: K={cur.n_cells} time {fmt(t)} s; peak RSS {peak_gb():.2f} GB")
            del big
    else:
        print(f"real data not found at {DATA}: skipped")

    from caimg_nmf.synthetic import scenario
    for name in ("realistic", "dense"):
        sm = scenario(name, motion=0.0)
        det, cur, t = run(sm.movie, cfg, None, sm.params.get("frame_rate", 10.0) if hasattr(sm, "params") else 10.0)
        truth = footprint_masks(sm.footprints)
        for lab, d in (("uncurated", det), ("curated", cur)):
            s = ev.evaluate(footprint_masks(d.footprints), truth, pred_traces=d.traces, true_traces=sm.traces)
            r_text = "n/a" if s.trace_corr is None else f"{s.trace_corr:.3f}"
            print(f"synthetic {name} {lab}: K={d.n_cells}/{len(truth)} P={s.precision:.3f} R={s.recall:.3f} "
                  f"F1={s.f1:.3f} trace_corr={r_text} d_est={d.cell_diameter:.0f} time {t['total']:.1f} s")


if __name__ == "__main__":
    main()
