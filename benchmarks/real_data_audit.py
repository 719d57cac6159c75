"""What the annotations of the real recording allow: how many annotated cells fire in these frames,
the F1 an activity-based detector could reach at best, and a picture of the unmatched detections.

1. Each annotated cell's peak z-score (caimg_nmf.evaluate.active_cells: mask mean minus 0.7 x the
   surrounding ring, running-percentile baseline, 3-frame mean, robust noise). A detector that found
   exactly the annotated cells with peak z >= z0 and nothing else would score F1 = 2 n / (n + N).
2. The pipeline (defaults, frame rate 7 Hz, diameter estimated) is run and scored; matched cells are
   counted per z band, and the unmatched detections with the highest trace SNR are drawn (mean image,
   max projection, footprint; annotations in green, the detection in red) to
   ``real_data_audit.png`` (or the path given), for a person to judge whether they are cells.

Run:  python benchmarks/real_data_audit.py [OUT.png]
Data: /work/shared/data/neurofinder_top or $CAIMG_NEUROFINDER (skipped with a message if absent).
"""
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import caimg_nmf  # noqa: E402
from caimg_nmf import evaluate as ev  # noqa: E402
from caimg_nmf.stages.curate import trace_snr  # noqa: E402

DATA = Path(os.environ.get("CAIMG_NEUROFINDER", "/work/shared/data/neurofinder_top"))
BANDS = ((0, 4), (4, 6), (6, 8), (8, 12), (12, np.inf))


def iou_matrix(pred, true):
    a = pred.reshape(len(pred), -1).astype(np.float32)
    b = true.reshape(len(true), -1).astype(np.float32)
    inter = a @ b.T
    return inter / np.maximum(a.sum(1)[:, None] + b.sum(1)[None] - inter, 1)


def draw(path, movie, result, truth, cells):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import measure

    mean, peak = movie.mean(axis=0), movie.max(axis=0)
    rows = max(1, int(np.ceil(len(cells) / 4)))
    fig, axs = plt.subplots(rows, 12, figsize=(24, 2.1 * rows), squeeze=False)
    for ax in axs.ravel():
        ax.set_axis_off()
    for i, k in enumerate(cells):
        cy, cx = np.argwhere(result.roi_masks[k]).mean(axis=0).astype(int)
        box = (slice(max(0, cy - 15), cy + 16), slice(max(0, cx - 15), cx + 16))
        for j, img in enumerate((mean, peak, result.footprints[k])):
            ax = axs[i // 4, (i % 4) * 3 + j]
            ax.imshow(img[box], cmap="gray")
            for t in np.flatnonzero(truth[:, box[0], box[1]].any(axis=(1, 2))):
                for c in measure.find_contours(truth[t][box].astype(float), 0.5):
                    ax.plot(c[:, 1], c[:, 0], color="lime", lw=0.8)
            for c in measure.find_contours(result.roi_masks[k][box].astype(float), 0.5):
                ax.plot(c[:, 1], c[:, 0], color="red", lw=0.8)
        axs[i // 4, (i % 4) * 3].set_title(f"cell {k} at x={cx}, y={cy}", fontsize=8)
    fig.suptitle("unmatched detections, highest trace SNR first: mean image | max projection | footprint")
    fig.tight_layout()
    fig.savefig(path, dpi=60)


def main():
    if not (DATA / "movie.tif").exists():
        print(f"real data not found at {DATA}: skipped")
        return
    import tifffile
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("real_data_audit.png")
    movie = tifffile.imread(DATA / "movie.tif").astype(np.float32)
    truth = ev.load_truth_masks(DATA / "regions.json", shape=movie.shape[1:])[0]
    _, stats = ev.active_cells(movie, truth, frame_rate=7.0, return_stats=True)
    z = stats["peak_z"]
    N = len(truth)
    print(f"{N} annotated cells; peak z of their traces in these {movie.shape[0]} frames:")
    for z0 in (4, 6, 8):
        n = int((z >= z0).sum())
        print(f"  z >= {z0}: {n} cells; finding exactly these and nothing else: F1 {2 * n / (n + N):.3f}")
    result = caimg_nmf.run(movie=movie, frame_rate=7.0, save=False, quiet=True)
    s = ev.evaluate(result.roi_masks, truth)
    print(f"pipeline: {result.n_cells} cells, P {s.precision:.3f} R {s.recall:.3f} F1 {s.f1:.3f}")
    iou = iou_matrix(result.roi_masks, truth)
    matched_true = iou.max(axis=0) >= 0.3 if result.n_cells else np.zeros(N, bool)
    for lo, hi in BANDS:
        band = (z >= lo) & (z < hi)
        print(f"  annotated cells with {lo} <= z < {hi}: {int(band.sum())}, matched (IoU >= 0.3 with some "
              f"detection) {int((band & matched_true).sum())}")
    unmatched = np.flatnonzero(iou.max(axis=1) < 0.3) if result.n_cells else np.zeros(0, int)
    unmatched = unmatched[np.argsort(-trace_snr(result.traces[unmatched]), kind="stable")][:20]
    draw(out, movie, result, truth, unmatched)
    print(f"the {len(unmatched)} strongest unmatched detections drawn to {out}")


if __name__ == "__main__":
    main()
