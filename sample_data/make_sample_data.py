"""Regenerate the shipped sample data (deterministic, seed 0).

Usage (from the repository root)::

    python sample_data/make_sample_data.py

Writes the same files to ``sample_data/`` (human-facing copy) and ``caimg_nmf/data/``
(the copy installed with the package, found by ``caimg_nmf.synthetic.sample_data_path``).
See ``sample_data/README.md`` for what each file holds.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from caimg_nmf.synthetic import make_factories, scenario  # noqa: E402

GAIN, OFFSET = 1000.0, 100.0  # movie units -> camera-like counts


def main():
    out = ROOT / "sample_data"
    pkg = ROOT / "caimg_nmf" / "data"
    pkg.mkdir(exist_ok=True)

    s = scenario("five_cells", seed=0).to_units(GAIN, OFFSET)
    s.save_movie(out / "five_cells.tif", dtype=np.uint16)
    s.save_truth(out / "five_cells_truth.h5")

    # the primer's own three profiles (their factorization is not unique: examples/lake_factories.py)
    X, W, H = make_factories(1000, profiles="primer", discharge_prob=0.3, noise=0.0, seed=0)
    np.savetxt(out / "lake_factories.csv", X, delimiter=",", fmt="%.6g")
    np.savez_compressed(out / "lake_factories_truth.npz", W_true=W, H_true=H)

    for name in ("five_cells.tif", "five_cells_truth.h5", "lake_factories.csv",
                 "lake_factories_truth.npz"):
        shutil.copyfile(out / name, pkg / name)
        print(f"wrote {out / name} ({(out / name).stat().st_size / 1e6:.2f} MB) and copy in {pkg}")


if __name__ == "__main__":
    main()
