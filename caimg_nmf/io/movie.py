"""Movie readers: TIFF (single files, ImageJ hyperstacks, BigTIFF, lists/globs), HDF5, .npy, arrays.

:func:`load_movie` returns a lazy :class:`Movie`: it knows its shape (T, H, W) and dtype and
reads only the frames asked for (``movie[a:b]``), memory-mapping where the format allows
(.npy, uncompressed TIFF) and reading page by page or chunk by chunk otherwise. Files are
opened read-only and never modified.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from ..errors import CaimgError, InputError

__all__ = ["Movie", "load_movie", "TIFF_SUFFIXES", "HDF5_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".mat")
AXES = ("TYX", "YXT")


def _fail(msg):
    raise InputError(msg) from None


class Movie:
    """A lazily read movie of shape (T, H, W), frames first.

    Index it with a frame slice (``movie[10:20]`` → ndarray (10, H, W) in the stored dtype)
    or an integer (one frame, (H, W)). ``len(movie)`` is the number of frames.

    Attributes
    ----------
    shape : tuple (T, H, W)
    dtype : numpy dtype of the stored data
    source : str, where the frames come from (file path and dataset)
    paths : list of Path, the files read
    """

    def __init__(self, reader, shape, dtype, source, paths):
        self._reader = reader  # callable (start, stop) -> ndarray (stop-start, H, W)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.source = source
        self.paths = [Path(p) for p in paths]
        self._closers = []

    # -- access --------------------------------------------------------------------------
    def __len__(self):
        return self.shape[0]

    @property
    def n_frames(self):
        return self.shape[0]

    @property
    def frame_shape(self):
        return self.shape[1:]

    @property
    def nbytes(self):
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def ndim(self):
        return 3

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            t = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= t < self.shape[0]:
                raise IndexError(f"frame {key} out of range for a movie of {self.shape[0]} frames")
            return self.read(t, t + 1)[0]
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(self.shape[0])
            return self.read(start, max(start, stop))
        if isinstance(key, tuple) and key and isinstance(key[0], slice):
            return self[key[0]][(slice(None),) + key[1:]]
        raise TypeError("index a Movie with a frame slice movie[a:b] or a frame number")

    def read(self, start=0, stop=None) -> np.ndarray:
        """Frames ``start`` to ``stop`` (exclusive) as an array (n, H, W) in the stored dtype."""
        stop = self.shape[0] if stop is None else min(stop, self.shape[0])
        if start >= stop:
            return np.empty((0,) + self.shape[1:], self.dtype)
        try:
            return np.asarray(self._reader(start, stop))
        except CaimgError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            _fail(f"{self.source}: could not read frames {start}..{stop - 1}: {exc}. The file may be "
                  "truncated or corrupt.")

    def iter_chunks(self, chunk_frames: int):
        """Yield ``(start, frames)`` blocks of at most ``chunk_frames`` frames, in order."""
        for start in range(0, self.shape[0], max(1, int(chunk_frames))):
            yield start, self.read(start, start + chunk_frames)

    def subset(self, first_frame=0, n_frames=0) -> "Movie":
        """A lazy view of ``n_frames`` frames from ``first_frame`` (0 = to the end)."""
        T = self.shape[0]
        if first_frame >= T:
            _fail(f"{self.source}: input.first_frame = {first_frame} but the movie has only {T} frames.")
        stop = T if n_frames == 0 else min(T, first_frame + n_frames)
        if first_frame == 0 and stop == T:
            return self
        parent = self
        view = Movie(lambda a, b: parent.read(first_frame + a, first_frame + b),
                     (stop - first_frame,) + self.shape[1:], self.dtype,
                     f"{self.source} [frames {first_frame}..{stop - 1}]", self.paths)
        view._closers = self._closers
        return view

    def to_array(self) -> np.ndarray:
        """All frames in memory (T, H, W)."""
        return self.read(0, self.shape[0])

    def close(self):
        for close in self._closers:
            close()
        self._closers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        T, H, W = self.shape
        return f"Movie({T} frames x {H} x {W}, {self.dtype}, from {self.source})"


# ------------------------------------------------------------------------------------------
def load_movie(path, *, dataset: str = "", axes: str = "TYX", check_axes: bool = True) -> Movie:
    """Open a movie lazily.

    Parameters
    ----------
    path : str, Path, list of paths, or ndarray
        A TIFF file (multi-page, ImageJ hyperstack, BigTIFF); a folder or glob pattern of TIFF files,
        or a list of files, concatenated in time in sorted order; an HDF5 file; a ``.npy`` file; or an
        array already in memory.
    dataset : str
        HDF5 dataset name. Empty: the file's only 3-D dataset.
    axes : {"TYX", "YXT"}
        How the stored array is ordered: frames first (TIFF's order), or height x width x frames.
    check_axes : bool
        Refuse an axis order that looks wrong (frames far longer than wide while the other order
        would give ordinary frames). Set False if such frames are real.

    Returns
    -------
    Movie
        Lazy movie of shape (T, H, W).

    Examples
    --------
    >>> import numpy as np, caimg_nmf
    >>> movie = caimg_nmf.load_movie(np.zeros((40, 32, 48), np.float32))
    >>> movie.shape
    (40, 32, 48)
    """
    if axes not in AXES:
        _fail(f"axes = {axes!r} is not supported; use one of {', '.join(AXES)}.")
    if isinstance(path, np.ndarray):
        movie = _from_array(path, axes, "array in memory")
    else:
        paths = _expand_paths(path)
        first = paths[0]
        suffix = first.suffix.lower()
        if len(paths) > 1:
            movie = _open_tiff_list(paths, axes)
        elif suffix in TIFF_SUFFIXES:
            movie = _open_tiff(first, axes)
        elif suffix in HDF5_SUFFIXES:
            movie = _open_hdf5(first, dataset, axes)
        elif suffix == ".npy":
            movie = _open_npy(first, axes)
        else:
            movie = _open_by_content(first, dataset, axes)
    if check_axes:
        _check_axes(movie, axes)
    return movie


def _expand_paths(path) -> list[Path]:
    if isinstance(path, (list, tuple)):
        if not path:
            _fail("the list of input files is empty.")
        paths = [Path(p) for p in path]
    else:
        text = str(path)
        if text == "":
            _fail("no input movie given: set input.path in the config or pass --input PATH.")
        p = Path(text).expanduser()
        if p.is_dir():
            paths = sorted(q for q in p.iterdir() if q.suffix.lower() in TIFF_SUFFIXES)
            if not paths:
                _fail(f"folder {p} holds no TIFF files (*.tif, *.tiff). Point input.path at a movie file.")
        elif any(ch in text for ch in "*?["):
            paths = [Path(q) for q in sorted(glob.glob(os.path.expanduser(text)))]
            if not paths:
                _fail(f"no files match the pattern {text!r}.")
        else:
            paths = [p]
    for p in paths:
        if not p.exists():
            _fail(f"input movie not found: {p}. Check the path (relative paths in a config file are "
                  "relative to the config file's folder).")
        if not p.is_file():
            _fail(f"input {p} is not a file.")
    return paths


def _from_array(arr, axes, source) -> Movie:
    arr = np.asarray(arr) if not isinstance(arr, np.memmap) else arr
    _check_ndim(arr.shape, source, "")
    _check_dtype(arr.dtype, source)
    if axes == "YXT":
        shape = (arr.shape[2], arr.shape[0], arr.shape[1])
        return Movie(lambda a, b: np.moveaxis(arr[:, :, a:b], 2, 0), shape, arr.dtype, source, [])
    return Movie(lambda a, b: arr[a:b], arr.shape, arr.dtype, source, [])


def _check_ndim(shape, source, what):
    if len(shape) == 2:
        _fail(f"{source}{what} is a single 2-D image of {shape[0]} x {shape[1]} pixels; a movie needs "
              "several frames (a 3-D stack: frames x height x width).")
    if len(shape) != 3:
        _fail(f"{source}{what} has {len(shape)} dimensions {tuple(shape)}; a movie must be 3-D "
              "(frames x height x width). Select one channel/plane first.")
    if min(shape) < 1:
        _fail(f"{source}{what} is empty (shape {tuple(shape)}).")


def _check_dtype(dtype, source):
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)) or dtype == bool:
        _fail(f"{source} holds {dtype} data; a movie must hold integer or floating-point intensities.")


def _check_axes(movie: Movie, axes: str):
    T, H, W = movie.shape
    other = "YXT" if axes == "TYX" else "TYX"
    # Frames 8x longer than wide while the other order gives near-square frames: almost surely the
    # wrong axis order (e.g. a height x width x frames array read as frames first).
    alt = (T, H) if axes == "TYX" else (W, T)  # the frame the other order would give
    aspect = max(H, W) / max(1, min(H, W))
    alt_aspect = max(alt) / max(1, min(alt))
    if aspect >= 8 and alt_aspect <= 2:
        _fail(f"{movie.source}: read with axes {axes!r} the movie has {T} frames of {H} x {W} pixels, "
              f"which looks like the wrong axis order. If the data is stored as "
              f"{'height x width x frames' if other == 'YXT' else 'frames x height x width'}, set "
              f"input.axes = '{other}'. If these frames are real, set input.check_axes = false.")


def _open_npy(path, axes) -> Movie:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        _fail(f"{path}: not a readable .npy array ({exc}). Object arrays are never unpickled.")
    except OSError as exc:
        _fail(f"{path}: cannot read as .npy: {exc}")
    movie = _from_array(arr, axes, str(path))
    movie.paths = [Path(path)]
    return movie


def _open_by_content(path, dataset, axes) -> Movie:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _open_tiff(path, axes)
    if head == b"\x89HDF\r\n\x1a\n":
        return _open_hdf5(path, dataset, axes)
    if head[:6] == b"\x93NUMPY":
        return _open_npy(path, axes)
    _fail(f"{path}: not a TIFF, HDF5 or .npy file (unrecognised contents). Supported movies: "
          ".tif/.tiff, .h5/.hdf5, .npy.")


def _open_hdf5(path, dataset, axes) -> Movie:
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        _fail(f"{path}: not a readable HDF5 file ({exc}).")
    if dataset:
        if dataset not in fh or not isinstance(fh[dataset], h5py.Dataset):
            names = _hdf5_datasets(fh)
            fh.close()
            _fail(f"{path}: no dataset {dataset!r}. Datasets in the file: "
                  f"{', '.join(f'{n} {s}' for n, s in names) or 'none'}. Set input.dataset to one of them.")
        name = dataset
    else:
        candidates = [(n, s) for n, s in _hdf5_datasets(fh) if len(s) == 3]
        if len(candidates) != 1:
            names = _hdf5_datasets(fh)
            fh.close()
            what = "no 3-D dataset" if not candidates else f"{len(candidates)} 3-D datasets"
            _fail(f"{path}: holds {what}, so the movie is ambiguous. Datasets: "
                  f"{', '.join(f'{n} {s}' for n, s in names) or 'none'}. Set input.dataset (--set input.dataset=NAME).")
        name = candidates[0][0]
    ds = fh[name]
    source = f"{path}:{name}"
    _check_ndim(ds.shape, source, "")
    _check_dtype(ds.dtype, source)
    if axes == "YXT":
        shape = (ds.shape[2], ds.shape[0], ds.shape[1])
        reader = lambda a, b: np.moveaxis(ds[:, :, a:b], 2, 0)  # noqa: E731
    else:
        shape = ds.shape
        reader = lambda a, b: ds[a:b]  # noqa: E731
    movie = Movie(reader, shape, ds.dtype, source, [path])
    movie._closers.append(fh.close)
    return movie


def _hdf5_datasets(fh):
    import h5py

    found = []
    fh.visititems(lambda n, obj: found.append(("/" + n, obj.shape)) if isinstance(obj, h5py.Dataset) else None)
    return found


def _tiff_series(path):
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises several types for non-TIFF or broken files
        _fail(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc}).")
    series = tif.series[0]
    # Drop singleton axes of ImageJ hyperstacks (e.g. TZCYX with Z = C = 1).
    keep = [i for i, (ax, n) in enumerate(zip(series.axes, series.shape)) if n > 1 or ax in "YX"]
    shape = tuple(series.shape[i] for i in keep)
    axes = "".join(series.axes[i] for i in keep)
    if len(shape) > 3:
        tif.close()
        _fail(f"{path}: TIFF holds a {len(shape)}-D stack with axes {axes} and shape {shape}; caimg_nmf "
              "reads one channel and one plane over time. Split channels/planes first (e.g. in Fiji).")
    return tif, series, shape


def _open_tiff(path, axes) -> Movie:
    import tifffile

    tif, series, shape = _tiff_series(path)
    _check_ndim(shape, str(path), "")
    _check_dtype(series.dtype, str(path))
    memmapped = None
    try:  # uncompressed, contiguous data: memory-map it
        memmapped = tifffile.memmap(path, mode="r").reshape(shape)
    except Exception:  # compressed or non-contiguous: read page by page
        memmapped = None
    if memmapped is not None:
        tif.close()
        movie = _from_array(memmapped, axes, str(path))
        movie.paths = [Path(path)]
        return movie
    pages_per_frame = len(series.pages) // shape[0] if axes == "TYX" else 0
    if axes == "TYX" and pages_per_frame == 1:
        def reader(a, b):
            return tif.asarray(series=0, key=range(a, b)).reshape((b - a,) + shape[1:])
    else:  # YXT in a TIFF, or pages not one per frame: read the whole series once, then slice
        cache = {}

        def reader(a, b):
            if "data" not in cache:
                cache["data"] = series.asarray().reshape(shape)
            data = cache["data"]
            return np.moveaxis(data[:, :, a:b], 2, 0) if axes == "YXT" else data[a:b]
    full = (shape[2], shape[0], shape[1]) if axes == "YXT" else shape
    movie = Movie(reader, full, series.dtype, str(path), [path])
    movie._closers.append(tif.close)
    return movie


def _open_tiff_list(paths, axes) -> Movie:
    if axes != "TYX":
        _fail("a list of TIFF files is concatenated in time and must be frames first: use input.axes = 'TYX'.")
    movies = []
    for p in paths:
        if p.suffix.lower() not in TIFF_SUFFIXES:
            _fail(f"{p}: only TIFF files can be concatenated as a list; got a {p.suffix} file.")
        movies.append(_open_tiff(p, "TYX"))
    frame_shapes = {m.shape[1:] for m in movies}
    if len(frame_shapes) > 1:
        detail = ", ".join(f"{m.paths[0].name}: {m.shape[1]}x{m.shape[2]}" for m in movies)
        _fail(f"TIFF files to concatenate have different frame sizes ({detail}).")
    dtypes = {m.dtype for m in movies}
    dtype = np.result_type(*dtypes)
    offsets = np.cumsum([0] + [m.shape[0] for m in movies])

    def reader(a, b):
        parts = []
        for i, m in enumerate(movies):
            lo, hi = max(a, offsets[i]), min(b, offsets[i + 1])
            if lo < hi:
                parts.append(m.read(lo - offsets[i], hi - offsets[i]).astype(dtype, copy=False))
        return np.concatenate(parts, axis=0)

    movie = Movie(reader, (int(offsets[-1]),) + movies[0].shape[1:], dtype,
                  f"{len(paths)} TIFF files ({paths[0].name} ... {paths[-1].name})", paths)
    movie._closers.extend(m.close for m in movies)
    return movie
