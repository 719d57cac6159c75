"""The NMF primer's calcium figure: five cells found in a synthetic movie by rank-5 NMF.

The movie (T, H, W) is reshaped to X (pixels x frames), each pixel's resting level (its median
over time) is subtracted and negatives clipped, X ~= W H is factorized with K = 5, and the W
columns are reshaped back to (H, W) footprints. Each footprint is shown beside its trace, the
recovered trace drawn over the true one.

    python examples/five_cells.py                # writes examples/figures/five_cells.png
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from caimg_nmf.evaluate import match_footprints
from caimg_nmf.nmf import nmf
from caimg_nmf.synthetic import scenario

FIGURES = Path(__file__).resolve().parent / "figures"


def main(out_dir=FIGURES, small=False):
    truth = scenario("five_cells", seed=0, n_frames=150 if small else 300)
    movie = truth.movie                                   # (T, H, W)
    T, Hh, Ww = movie.shape
    X = movie.reshape(T, Hh * Ww).T                       # pixels x frames
    X = np.maximum(X - np.median(X, axis=1, keepdims=True), 0)   # resting level -> 0
    fit = nmf(X, 5, replicates=2 if small else 5, random_state=0, normalize="footprints_max",
              order="energy")
    footprints = fit.W.T.reshape(5, Hh, Ww)               # reshape back: one image per cell
    pairs = match_footprints(footprints, truth.footprints, min_cosine=0.0)
    cosine = np.array([c for _, _, c in pairs])
    corr = np.array([np.corrcoef(fit.H[i], truth.traces[j])[0, 1] for i, j, _ in pairs])

    fig = Figure(figsize=(9, 7.5), layout="constrained")
    grid = fig.add_gridspec(5, 2, width_ratios=[1, 4.5])
    t = np.arange(T) / truth.frame_rate
    for row, (i, j, c) in enumerate(pairs):
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(footprints[i], cmap="gray_r", vmin=0, vmax=1)
        ax.contour(truth.footprints[j], levels=[0.3], colors="C3", linewidths=0.8)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(f"cell {row + 1}", fontsize=9)
        ax.set_title(f"cosine {c:.3f}", fontsize=8, pad=2)
        ax = fig.add_subplot(grid[row, 1])
        scale = np.dot(fit.H[i], truth.traces[j]) / np.dot(fit.H[i], fit.H[i])  # NMF scale is arbitrary
        ax.plot(t, truth.traces[j], color="0.75", lw=2.5, label="true")
        ax.plot(t, fit.H[i] * scale, color=f"C{row}", lw=0.9, label="recovered (scaled)")
        ax.set_yticks([])
        ax.set_xlim(t[0], t[-1])
        ax.text(0.995, 0.9, f"r = {corr[row]:.3f}", transform=ax.transAxes, ha="right", va="top", fontsize=8)
        if row == 0:
            ax.legend(fontsize=8, loc="upper left", ncol=2, frameon=False)
            ax.set_title("Traces H (rows): recovered over true", fontsize=10)
        if row < 4:
            ax.set_xticklabels([])
        else:
            ax.set_xlabel("time (s)")
    fig.suptitle("Five cells, rank-5 NMF: footprints W (columns reshaped; red: true outline) "
                 "beside their traces", fontsize=10)
    out = Path(out_dir) / "five_cells.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"five_cells: footprint cosine >= {cosine.min():.3f}, trace correlation >= {corr.min():.3f} -> {out}")
    return dict(cosine=cosine, corr=corr, figure=out)


if __name__ == "__main__":
    main(small="--small" in sys.argv)
