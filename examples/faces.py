"""Parts-based NMF of face images (Lee & Seung 1999): rank 8, originals beside reconstructions.

Each image is one column of X (pixels x images). Because W and H are nonnegative, the faces are
built by adding parts, never cancelling them, so the columns of W come out as localized pieces
(eyes, brows, nose, cheeks, chin) rather than the global, signed "eigenfaces" of the SVD.

Data: the 100 face images (25 x 25) of scikit-image's ``lfw_subset()`` (shipped with scikit-image,
no download), or the Frey faces (20 x 28) if you have ``frey_rawface.mat``:

    python examples/faces.py                                   # writes examples/figures/faces.png
    python examples/faces.py --frey path/to/frey_rawface.mat   # writes examples/figures/faces_frey.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from caimg_nmf.errors import InputError
from caimg_nmf.nmf import nmf

FIGURES = Path(__file__).resolve().parent / "figures"
RANK = 8


def lfw_faces():
    """(n_images, 25, 25) in [0, 1]: the first 100 images of skimage.data.lfw_subset() are faces."""
    from skimage.data import lfw_subset

    return lfw_subset()[:100]


def frey_faces(path):
    """(1965, 28, 20) in [0, 1] from frey_rawface.mat (key "ff": 560 x 1965 uint8, one image per column)."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--frey {path}: file not found. Give the path of frey_rawface.mat "
                         "(this example never downloads it).") from None
    ff = loadmat(path).get("ff")
    if ff is None or ff.shape[0] != 560:
        raise InputError(f"{path}: expected a variable 'ff' of shape (560, N) (20 x 28 images).") from None
    return ff.T.reshape(-1, 28, 20).astype(np.float64) / 255.0


def main(out_dir=FIGURES, small=False, frey=None):
    images = frey_faces(frey) if frey else lfw_faces()
    n, h, w = images.shape
    X = images.reshape(n, h * w).T                                   # pixels x images
    fit = nmf(X, RANK, replicates=2 if small else 5, random_state=0, max_iter=300 if small else 1000,
              tol=1e-5, normalize="footprints_max")                  # each part has max 1
    s = np.linalg.svd(X, compute_uv=False)
    svd_error = float(np.sqrt(np.sum(s[RANK:] ** 2) / np.sum(s ** 2)))  # best possible rank-8 error
    parts = fit.W.T.reshape(RANK, h, w)
    near_zero = float(np.mean(fit.W < 0.1))                          # fraction of a part that is ~off
    recon = (fit.W @ fit.H).T.reshape(n, h, w)

    fig = Figure(figsize=(9, 4.4), layout="constrained")
    axes = fig.subplots(3, RANK)
    shown = np.linspace(0, n - 1, RANK).astype(int)
    for c in range(RANK):
        for r, (img, cmap) in enumerate(((images[shown[c]], "gray"), (recon[shown[c]], "gray"),
                                         (parts[c], "gray_r"))):
            ax = axes[r, c]
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
    for r, label in enumerate(("original", "rank-8 NMF", "parts W")):
        axes[r, 0].set_ylabel(label, fontsize=9)
    name = "Frey faces" if frey else "LFW faces (skimage.data.lfw_subset)"
    fig.suptitle(f"{name}: {n} images of {h} x {w}; NMF error {fit.rel_error:.3f} vs SVD {svd_error:.3f}; "
                 f"{near_zero:.0%} of part pixels < 0.1 of the part's max", fontsize=9)
    out = Path(out_dir) / ("faces_frey.png" if frey else "faces.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"faces: relative error {fit.rel_error:.4f} (truncated SVD, rank {RANK}: {svd_error:.4f}), "
          f"{near_zero:.0%} of part pixels near zero -> {out}")
    return dict(rel_error=fit.rel_error, svd_error=svd_error, near_zero=near_zero, W=fit.W, H=fit.H,
                figure=out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frey", metavar="frey_rawface.mat", help="use the Frey faces from this file")
    parser.add_argument("--small", action="store_true", help="fewer replicates and iterations")
    args = parser.parse_args()
    main(small=args.small, frey=args.frey)
