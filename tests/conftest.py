import os
from pathlib import Path

import pytest


os.environ.setdefault("MPLBACKEND", "Agg")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def five_cells():
    """The shipped sample movie and its ground truth."""
    from caimg_nmf.synthetic import load_truth, sample_data_path

    return sample_data_path("five_cells.tif"), load_truth(sample_data_path("five_cells_truth.h5"))


def match_report(footprints, traces, truth):
    """(cosines, correlations) of the one-to-one best matches of found cells to planted ones."""
    import numpy as np

    from caimg_nmf.evaluate import match_footprints

    pairs = match_footprints(footprints, truth.footprints, min_cosine=0.0)
    cos = np.array([c for _, _, c in pairs])
    corr = np.array([np.corrcoef(traces[i], truth.traces[j])[0, 1] for i, j, _ in pairs])
    return cos, corr


@pytest.fixture(scope="session")
def easy_movie():
    """20 separated cells on 64 x 64, 300 frames at 10 Hz, with neuropil and read noise."""
    from caimg_nmf.synthetic import make_movie

    return make_movie(n_cells=20, shape=(64, 64), n_frames=300, cell_diameter=8.0, min_separation=9.6,
                      neuropil=0.2, noise=0.1, seed=0)
