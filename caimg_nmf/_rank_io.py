"""Reading inputs and writing outputs of ``caimg-nmf rank`` (private; see :mod:`caimg_nmf.rank`)."""
from __future__ import annotations

import contextlib
import csv
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .io.inputs import check_input_file
from .io.npy import npy_header

__all__ = ["npy_header", "read_matrix", "read_matrix_csv", "movie_matrix", "save_selection", "OUTPUT_NAMES"]

OUTPUT_NAMES = ("rank_selection.h5", "rank_selection.png", "rank_selection.pdf")


def read_matrix_csv(path) -> np.ndarray:
    """A header-less numeric CSV as a float64 matrix (rows x columns). Every cell must be a
    finite number >= 0; the error names the row and column (1-based, as a spreadsheet shows)."""
    path = Path(path)
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for i, row in enumerate(csv.reader(fh), start=1):
                if not row or all(not c.strip() for c in row):
                    continue
                values = []
                for j, cell in enumerate(row, start=1):
                    where = f"{path.name}: row {i}, column {j}"
                    try:
                        v = float(cell)
                    except ValueError:
                        hint = " (the CSV must have no header line)" if i == 1 else ""
                        raise InputError(f"{where}: {cell.strip()!r} is not a number{hint}.") from None
                    if math.isnan(v) or math.isinf(v):
                        raise InputError(f"{where}: {cell.strip()!r} is not a finite number; NMF needs "
                                         "every entry measured (fill or drop missing values).") from None
                    if v < 0:
                        raise InputError(f"{where}: {v:g} is negative; NMF needs nonnegative data "
                                         "(shift or clip it first).") from None
                    values.append(v)
                if rows and len(values) != len(rows[0]):
                    raise InputError(f"{path.name}: row {i} has {len(values)} columns but row 1 has "
                                     f"{len(rows[0])}; every row needs the same number.") from None
                rows.append(values)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text CSV file.") from None
    if not rows:
        raise InputError(f"{path}: the CSV file is empty.") from None
    return np.array(rows, dtype=np.float64)


def read_matrix(path) -> np.ndarray:
    """A plain matrix from ``.csv``/``.txt`` (header-less numbers) or ``.npy`` (2-D), checked as
    the CSV reader checks it: numbers, all finite, none negative."""
    path = check_input_file(path, "matrix file")
    if path.suffix.lower() != ".npy":
        return read_matrix_csv(path)
    shape, dtype = npy_header(path)
    if len(shape) != 2:
        raise InputError(f"{path}: a matrix must be 2-D; got shape {shape}. A movie is 3-D (frames x height "
                         "x width): give it as a movie file or in a config file's input.path.") from None
    if 0 in shape:
        raise InputError(f"{path}: the matrix is empty (shape {shape}); there is nothing to factorize.") from None
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputError(f"{path}: holds {dtype} values; a matrix must hold real numbers "
                         "(integers or floating point).") from None
    try:
        X = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc}).") from None
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{path}: row {i + 1}, column {j + 1} is {X[i, j]}, not a finite number; NMF needs "
                         "every entry measured (fill or drop missing values).") from None
    if (X < 0).any():
        i, j = np.argwhere(X < 0)[0]
        raise InputError(f"{path}: row {i + 1}, column {j + 1} is {X[i, j]:g}, negative; NMF needs "
                         "nonnegative data (shift or clip it first).") from None
    return X


def movie_matrix(cfg, quiet=True):
    """Load and preprocess the configured movie as the pipeline does (every stage before
    ``factorize``: load, prepare, motion, preprocess); return X (pixels x frames)."""
    from .pipeline import STAGES, RunState
    from .progress import Reporter
    from .stages.preprocess import flatten

    names = [name for name, _ in STAGES]
    before_factorize = STAGES[:names.index("factorize")]
    state = RunState(cfg=cfg, report=Reporter(quiet=quiet))
    with tempfile.TemporaryDirectory(prefix=".caimg_nmf-") as scratch:
        state.scratch = Path(scratch)
        try:
            for _, stage in before_factorize:
                stage(state)
            return np.array(flatten(state.frames), dtype=np.float32), state.frames.shape
        finally:
            if state.movie is not None:
                state.movie.close()


def save_selection(sel, folder, *, overwrite=False, source="", dpi=150):
    """Write ``rank_selection.h5`` (datasets ``rank_selection/ranks``, ``.../vaf``, ...; attrs
    ``reason``, ``settings``), ``rank_selection.png`` and ``.pdf`` into ``folder``: all three or none.
    Returns the three paths."""
    from .io.atomic import check_writable_dir

    folder = Path(folder)
    created = not folder.exists()
    check_writable_dir(folder)
    try:
        return _write_selection(sel, folder, overwrite, source, dpi)
    except BaseException:
        if created:  # a failed rank leaves no output folder behind (an empty one it made)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _write_selection(sel, folder: Path, overwrite: bool, source, dpi) -> list:
    import h5py

    from .io.atomic import atomic_paths

    paths = [folder / n for n in OUTPUT_NAMES]
    if not overwrite:
        there = [p for p in paths if p.exists()]
        if there:
            raise InputError(f"{there[0]} already exists. Pass --overwrite to replace it, or choose "
                             "another --output folder.") from None
    with atomic_paths(paths) as tmps:  # the three files, or none of them
        with h5py.File(tmps[0], "w") as fh:
            for name, value in sel.extras().items():
                fh.create_dataset(name, data=value)
            fh.attrs.update(reason=sel.reason, methods=json.dumps(list(sel.methods)),
                            settings=json.dumps(sel.settings, default=str), source=str(source))
        fig = sel.plot()
        for tmp, fmt in zip(tmps[1:], ("png", "pdf")):
            fig.savefig(tmp, format=fmt, dpi=dpi)
    return paths
