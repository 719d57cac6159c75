"""Movie readers: TIFF (single files, ImageJ hyperstacks, BigTIFF, lists/globs), HDF5, .npy, arrays.

:func:`load_movie` returns a lazy :class:`Movie`: it knows its shape (T, H, W) and dtype and
reads only the frames asked for (``movie[a:b]``), memory-mapping where the format allows
(.npy, uncompressed TIFF) and reading page by page or chunk by chunk otherwise. Files are
opened read-only and never modified.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
from pathlib import Path

import numpy as np

from ..errors import CaimgError, InputError

__all__ = ["Movie", "load_movie", "TIFF_SUFFIXES", "HDF5_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".mat")
AXES = ("TYX", "YXT")
MIN_FRAME_SIDE = 2            # frames of fewer pixels each way are not images
AXES_SAMPLE_BYTES = 32 << 20  # the axis-order check reads about this much of the movie at most
FRAME_RATE_KEYS = ("frame_rate", "fs", "fps", "frame_rate_hz", "imaging_rate")  # HDF5 attributes
PIXEL_SIZE_KEYS = ("pixel_size_um", "um_per_pixel", "element_size_um")  # HDF5 attributes, µm per pixel
#: micrometres per unit of a length unit as ImageJ and OME write it (ImageJ writes "micron", "\\u00B5m" too)
LENGTH_UNITS_UM = {"nm": 1e-3, "nanometer": 1e-3, "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0,
                   "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0, "mm": 1e3,
                   "millimeter": 1e3, "cm": 1e4, "m": 1e6, "meter": 1e6}


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
    frame_rate : float or None, frames per second as the file states it (ImageJ, ScanImage or OME
        metadata of a TIFF; a ``frame_rate``/``fs``/``fps`` attribute in HDF5); None when it says none
    pixel_size_um : float or None, micrometres per pixel (along x) as the file states it (ImageJ
        resolution and unit, OME PhysicalSizeX; a ``pixel_size_um``/``element_size_um`` attribute in
        HDF5); None when it says none
    """

    def __init__(self, reader, shape, dtype, source, paths, frame_rate=None, pixel_size_um=None):
        self._reader = reader  # callable (start, stop) -> ndarray (stop-start, H, W)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.source = source
        self.paths = [Path(p) for p in paths]
        self.frame_rate = frame_rate
        self.pixel_size_um = pixel_size_um
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
                     f"{self.source} [frames {first_frame}..{stop - 1}]", self.paths, self.frame_rate,
                     self.pixel_size_um)
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
        A TIFF file (multi-page, ImageJ hyperstack, BigTIFF); a folder or glob pattern of TIFF files
        (multi-frame stacks, single frames, or both), concatenated in time in natural name order
        (``frame2`` before ``frame10``), or a list of files, concatenated in the order given; an HDF5
        file; a ``.npy`` file; or an array already in memory. An existing path is always read as that
        path, even when its name holds ``[``, ``*`` or ``?``; only a path that does not exist is a pattern.
    dataset : str
        HDF5 dataset name. Empty: the file's only 3-D dataset.
    axes : {"TYX", "YXT"}
        How the stored array is ordered: frames first (TIFF's order), or height x width x frames.
    check_axes : bool
        Refuse an axis order that the data contradict: frames far longer than wide while the other
        order would give ordinary frames, or a sample of the movie whose static structure lies along
        the other candidate time axis (see :func:`_axes_evidence`). Set False if the layout is right.

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
        paths, is_list = _expand_paths(path)
        first = paths[0]
        suffix = first.suffix.lower()
        if dataset and (is_list or _magic(first) != _HDF5_MAGIC):  # else it would be ignored silently
            _fail(f"input.dataset = {dataset!r} names a dataset of an HDF5 file, but {first} is not one; remove "
                  "input.dataset (it applies to .h5 movies only).")
        if is_list:
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


def _expand_paths(path) -> tuple[list[Path], bool]:
    """The files to read, and whether they are a list to concatenate (a folder, a pattern, a list)."""
    if isinstance(path, (list, tuple)):
        if not path:
            _fail("the list of input files is empty.")
        paths, is_list = [Path(p) for p in path], len(path) > 1
    else:
        text = str(path)
        if text == "":
            _fail("no input movie given: set input.path in the config or pass --input PATH.")
        p = Path(text).expanduser()
        if p.is_dir():
            paths = sorted((q for q in p.iterdir() if q.suffix.lower() in TIFF_SUFFIXES), key=natural_key)
            if not paths:
                _fail(f"folder {p} holds no TIFF files (*.tif, *.tiff). Point input.path at a movie file.")
            is_list = True
        elif not p.exists() and any(ch in text for ch in "*?["):  # an existing name is a name, not a pattern
            paths = sorted((Path(q) for q in glob.glob(os.path.expanduser(text))), key=natural_key)
            if not paths:
                _fail(f"no files match the pattern {text!r}.")
            is_list = len(paths) > 1
        else:
            paths, is_list = [p], False
    for p in paths:
        if not p.exists():
            _fail(f"input movie not found: {p}. Check the path (relative paths in a config file are "
                  "relative to the config file's folder).")
        if not p.is_file():
            what = "a folder" if p.is_dir() else "not a regular file (a pipe, device or socket)"
            _fail(f"input {p} is {what}; give a movie file (or a folder of TIFF files).")
        if p.stat().st_size == 0:
            _fail(f"input {p} is empty (0 bytes): the copy or acquisition that wrote it did not finish.")
    return paths, is_list


def natural_key(path) -> tuple:
    """Sort key of a path in natural order: runs of digits compare as numbers, so that
    ``frame2.tif`` comes before ``frame10.tif`` (what microscopes writing one file per frame expect)."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(t), t) if t.isdigit() else (1, 0, t.lower()) for t in parts if t)


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
    if min(shape[1:]) < MIN_FRAME_SIDE:
        _fail(f"{source}{what} has shape {tuple(shape)}: {shape[0]} frames of {shape[1]} x {shape[2]} "
              f"pixel{'s' if shape[1] * shape[2] > 1 else ''}, which are not images (cells need frames at least "
              f"{MIN_FRAME_SIDE} pixels each way). If the data is stored in another order, set input.axes; "
              "if it is a trace or a table, it is not a movie.")


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
        _wrong_axes(movie, axes, f"the movie has {T} frames of {H} x {W} pixels")
    evidence = _axes_evidence(movie, axes)
    if evidence is not None and evidence["score"] >= AXES_EVIDENCE_SCORE \
            and evidence["other"][0] >= AXES_MIN_STILL:
        _wrong_axes(movie, axes, (
            "the still image of the recording lies along the other axis: averaging over the frames as "
            f"read keeps {evidence['said'][0]:.0%} of the movie's variance ({evidence['said'][1]:.0%} of its "
            f"row-to-row detail), averaging over the axis the other order calls time keeps "
            f"{evidence['other'][0]:.0%} ({evidence['other'][1]:.0%}); the true time axis keeps the most, "
            "as cells and background stay in place"))


#: Refuse when the other candidate time axis keeps, on (geometric) average over the two measures,
#: at least this many times more than the stated one, and its still image is a real part of the
#: variance beyond what noise keeps. Measured on 100 frames: true order <= 0.75 on the two Neurofinder
#: recordings and <= 0.45 on synthetic movies; swapped order 1.3 to 14 (kept fraction >= 0.24) on
#: the recordings, 2.3 to 6 (>= 0.39) on synthetic ones; white noise kept fraction <= 0.08 (4 x 4 frames).
AXES_EVIDENCE_SCORE = 1.5
AXES_MIN_STILL = 0.15


def _wrong_axes(movie, axes, why):
    other = "YXT" if axes == "TYX" else "TYX"
    stored = "height x width x frames" if other == "YXT" else "frames x height x width"
    _fail(f"{movie.source}: read with axes {axes!r}, {why}; this looks like the wrong axis order. If the "
          f"data is stored as {stored}, set input.axes = '{other}'. If the order is right, set "
          "input.check_axes = false.")


def _axes_evidence(movie: Movie, axes: str):
    """Which stored axis holds time, judged from a bounded sample of the movie.

    Both candidate orders agree that the stored middle axis is spatial; they disagree on whether the
    first or the last stored axis is time. Cells, vessels and background stay in place over time, so
    the average over the true time axis keeps the recording's still image, while the average over a
    spatial axis blurs it away. This is measured twice: on the sample itself (the fraction of its
    variance that the average keeps) and on its differences along the middle axis (row-to-row
    detail, which ignores smooth shading such as vignetting, and frame-wide brightness changes).

    Returns
    -------
    dict or None
        ``said`` and ``other``: the two fractions kept by averaging over the time axis that ``axes``
        says and over the one the other order says, beyond the 1/n that white noise keeps; ``score``: the geometric mean of the two ratios
        other / said (about 1 when the sample cannot tell). None when the sample is too small or
        constant to tell.
    """
    T, H, W = movie.shape
    frame_bytes = H * W * movie.dtype.itemsize
    n = int(min(T, 256, max(3, AXES_SAMPLE_BYTES // max(1, frame_bytes))))
    if min(n, H, W) < 3:
        return None
    block = movie.read(0, n)
    if axes == "YXT":
        block = np.moveaxis(block, 0, 2)  # back to the stored order: (H, W, n)
    # at most 256 along each stored extent, centred: bounds the work, keeps the structure
    index = tuple(slice(max(0, (s - 256) // 2), max(0, (s - 256) // 2) + 256) for s in block.shape)
    block = np.asarray(block[index], dtype=np.float32)
    kept = []
    for data in (block, np.diff(block, axis=1)):
        total = float(data.var(dtype=np.float64))
        if not np.isfinite(total) or total <= 0:
            return None
        # white noise alone keeps 1/n of the variance when averaged over n values: count only the excess
        kept.append([max(0.0, float(data.mean(axis=k, dtype=np.float64).var()) / total - 1 / data.shape[k])
                     / (1 - 1 / data.shape[k]) for k in (0, 2)])
    first, last = (tuple(k[i] for k in kept) for i in (0, 1))
    said, other = (first, last) if axes == "TYX" else (last, first)
    floor = 0.02  # fractions this small are all "nothing kept": their ratios mean nothing
    score = float(np.sqrt((other[0] + floor) / (said[0] + floor) * (other[1] + floor) / (said[1] + floor)))
    return {"said": said, "other": other, "score": score}


def _open_npy(path, axes) -> Movie:
    from .npy import npy_header

    npy_header(path)  # objects, and files shorter than their header declares, named as such
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        _fail(f"{path}: not a readable .npy array ({exc}). Object arrays are never unpickled.")
    except OSError as exc:
        _fail(f"{path}: cannot read as .npy: {exc}")
    movie = _from_array(arr, axes, str(path))
    movie.paths = [Path(path)]
    return movie


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _magic(path) -> bytes:
    """The first 8 bytes of a file (its format's signature)."""
    with open(path, "rb") as fh:
        return fh.read(8)


def _open_by_content(path, dataset, axes) -> Movie:
    head = _magic(path)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _open_tiff(path, axes)
    if head == _HDF5_MAGIC:
        return _open_hdf5(path, dataset, axes)
    if head[:6] == b"\x93NUMPY":
        return _open_npy(path, axes)
    _fail(f"{path}: not a TIFF, HDF5 or .npy file (unrecognised contents). Supported movies: "
          ".tif/.tiff, .h5/.hdf5, .npy.")


def _open_hdf5(path, dataset, axes) -> Movie:
    import h5py

    from .hdf5 import check_has_dataspace, check_links, list_datasets

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        _fail(f"{path}: not a readable HDF5 file ({exc}).")
    try:
        if dataset:
            check_links(fh, path, [dataset])
            if dataset not in fh or not isinstance(fh[dataset], h5py.Dataset):
                names = list_datasets(fh, path)
                _fail(f"{path}: no dataset {dataset!r}. Datasets in the file: "
                      f"{', '.join(f'{n} {s}' for n, s in names) or 'none'}. Set input.dataset to one of them.")
            name = dataset
        else:
            names = list_datasets(fh, path)
            candidates = [(n, s) for n, s in names if len(s) == 3]
            if len(candidates) != 1:
                what = "no 3-D dataset" if not candidates else f"{len(candidates)} 3-D datasets"
                _fail(f"{path}: holds {what}, so the movie is ambiguous. Datasets: "
                      f"{', '.join(f'{n} {s}' for n, s in names) or 'none'}. Set input.dataset (--set input.dataset=NAME).")
            name = candidates[0][0]
        ds = fh[name]
        source = f"{path}:{name}"
        check_links(fh, path, [name])
        check_has_dataspace(ds, name, path)
        _check_ndim(ds.shape, source, "")
        _check_dtype(ds.dtype, source)
        rate = _hdf5_frame_rate(fh, ds)
        pixel_size = _hdf5_pixel_size(fh, ds)
    except CaimgError:
        fh.close()
        raise
    if axes == "YXT":
        shape = (ds.shape[2], ds.shape[0], ds.shape[1])
        reader = lambda a, b: np.moveaxis(ds[:, :, a:b], 2, 0)  # noqa: E731
    else:
        shape = ds.shape
        reader = lambda a, b: ds[a:b]  # noqa: E731
    movie = Movie(reader, shape, ds.dtype, source, [path], rate, pixel_size)
    movie._closers.append(fh.close)
    return movie


def _hdf5_frame_rate(fh, ds):
    """Frames per second from an attribute of the dataset, else of the file's root, or None."""
    for holder in (ds, fh):
        for key in FRAME_RATE_KEYS:
            if key in holder.attrs and _positive(holder.attrs[key]):
                return float(np.asarray(holder.attrs[key]).ravel()[0])
    return None


def _hdf5_pixel_size(fh, ds):
    """µm per pixel from an attribute of the dataset, else of the file's root, or None.
    ``element_size_um`` (Fiji's and ilastik's HDF5 convention) has one value per axis: x is the last."""
    for holder in (ds, fh):
        for key in PIXEL_SIZE_KEYS:
            if key in holder.attrs:
                values = np.asarray(holder.attrs[key]).ravel()
                if values.size and _positive(values[-1:]):
                    return float(values[-1])
    return None


def _tiff_series(path):
    """Open a TIFF; return (TiffFile, its first series, the movie's shape, the frame rate it states)."""
    import tifffile

    try:
        with _quiet_tifffile():  # its warnings about a broken file would precede our own diagnosis
            tif = tifffile.TiffFile(path)
            series = tif.series[0]
            raw_shape, raw_axes = tuple(series.shape), series.axes
    except Exception as exc:  # tifffile raises several types (IndexError too) for broken files
        _fail(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc}). The file is corrupt or "
              "not a TIFF; check that it opens in Fiji/ImageJ.")
    try:
        _check_tiff_extent(path, series)
        samples = dict(zip(raw_axes, raw_shape)).get("S", 1)
        if samples in (3, 4) and len(raw_shape) == 3:
            _fail(f"{path}: a single colour ({'RGB' if samples == 3 else 'RGBA'}) picture of "
                  f"{raw_shape[raw_axes.index('Y')]} x {raw_shape[raw_axes.index('X')]} pixels "
                  f"({samples} samples per pixel), not a movie. A movie is a stack of grey-level frames; "
                  "save the recording itself (one channel over time).")
        if len(raw_shape) <= 3:
            shape, axes = raw_shape, raw_axes  # frames x height x width as stored, singletons kept
        else:  # drop singleton axes of ImageJ hyperstacks (e.g. TZCYX with Z = C = 1)
            keep = [i for i, (ax, n) in enumerate(zip(raw_axes, raw_shape)) if n > 1 or ax in "YX"]
            shape = tuple(raw_shape[i] for i in keep)
            axes = "".join(raw_axes[i] for i in keep)
        if len(shape) > 3:
            _fail(f"{path}: TIFF holds a {len(shape)}-D stack with axes {axes} and shape {shape}; caimg_nmf "
                  "reads one channel and one plane over time. Split channels/planes first (e.g. in Fiji).")
        rate = _tiff_frame_rate(tif)
    except CaimgError:
        tif.close()
        raise
    return tif, series, shape, rate


@contextlib.contextmanager
def _quiet_tifffile():
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _check_tiff_extent(path, series):
    """Refuse a TIFF whose image data, as its header declares it, lies beyond the end of the file
    (a truncated copy, or a header claiming an absurd size), before anything is read or allocated."""
    size = os.path.getsize(path)
    declared = int(np.prod(series.shape, dtype=np.float64)) * np.dtype(series.dtype).itemsize
    ends = [series.dataoffset + declared] if series.dataoffset is not None else []  # contiguous data
    try:
        pages = [pg for pg in (series.pages[0], series.pages[-1]) if hasattr(pg, "dataoffsets")]
    except (IndexError, KeyError, ValueError, OSError):  # pages the header promises are not in the file
        pages = None
    for page in pages or ():
        ends += [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
        if getattr(page, "compression", 1) == 1:  # uncompressed: the page's pixels must fit in the file
            ends.append(min(page.dataoffsets or (0,)) + page.nbytes)
    if pages is not None and (not ends or max(ends) <= size):
        return
    from ..memory import format_bytes

    where = (f"whose data would end at byte {max(ends)}" if ends and max(ends) > size
             else "in pages that are missing from it")
    _fail(f"{path}: the file is damaged or truncated: its header declares {' x '.join(map(str, series.shape))} "
          f"pixels of {series.dtype} ({format_bytes(declared)}), {where}, but the file has only {size} bytes. "
          "Copy the file again from the microscope or re-export it.")


def _tiff_frame_rate(tif):
    """Frames per second stated in a TIFF's metadata (ImageJ finterval/fps, ScanImage
    scanFrameRate, OME TimeIncrement), or None."""
    ij = tif.imagej_metadata or {}
    if _positive(ij.get("finterval")):
        return 1.0 / float(ij["finterval"])
    if _positive(ij.get("fps")):
        return float(ij["fps"])
    page = tif.pages[0]
    texts = [str(getattr(page, "description", "") or ""), str(getattr(page, "software", "") or "")]
    si = getattr(tif, "scanimage_metadata", None) or {}
    texts.append(repr(si))
    for text in texts:
        m = re.search(r"(?:scanimage\.)?SI\.hRoiManager\.scanFrameRate'?\s*[=:]\s*([0-9.eE+-]+)", text)
        if m and _positive(m.group(1)):
            return float(m.group(1))
    attrs = _ome_pixels_attrs(tif)
    scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0, "h": 3600.0}
    unit = scale.get(attrs.get("TimeIncrementUnit", "s"))
    if unit and _positive(attrs.get("TimeIncrement")):
        return 1.0 / (float(attrs["TimeIncrement"]) * unit)
    return None


def _ome_pixels_attrs(tif) -> dict:
    """The attributes of an OME-TIFF's ``Pixels`` element ({} for other TIFFs)."""
    ome = tif.ome_metadata if tif.is_ome else None
    m = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", ome) if ome else None
    return dict(re.findall(r'(\w+)="([^"]*)"', m.group(0))) if m else {}


def _tiff_pixel_size(tif):
    """µm per pixel along x stated in a TIFF's metadata, or None: ImageJ's XResolution (pixels per
    unit) with its ``unit`` (micron, µm, nm, mm...), or OME's PhysicalSizeX (µm unless
    PhysicalSizeXUnit says otherwise). A resolution without a length unit (TIFF's default 72 pixels
    per inch, or ImageJ's "pixel") says nothing about the sample. ScanImage headers state no pixel
    size (it follows from the objective's calibration and the zoom), so none is read from them."""
    attrs = _ome_pixels_attrs(tif)
    scale = LENGTH_UNITS_UM.get(attrs.get("PhysicalSizeXUnit", "µm").strip().lower())
    if scale and _positive(attrs.get("PhysicalSizeX")):
        return float(attrs["PhysicalSizeX"]) * scale
    ij = tif.imagej_metadata or {}
    scale = LENGTH_UNITS_UM.get(str(ij.get("unit", "")).strip().lower())
    if scale:
        try:
            num, den = tif.pages[0].tags["XResolution"].value
            per_unit = float(num) / float(den)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
        if _positive(per_unit):
            return scale / per_unit
    return None


def _positive(value) -> bool:
    """Whether ``value`` reads as a finite number > 0 (a usable rate or interval from metadata)."""
    if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == bool:
        return False  # frame_rate = True is no rate
    try:
        v = float(np.asarray(value).ravel()[0]) if not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return False
    return bool(np.isfinite(v) and v > 0)


def _open_tiff(path, axes, *, single_frame=False) -> Movie:
    """One TIFF as a movie. ``single_frame``: a 2-D image is one frame (a file of a folder or list)."""
    import tifffile

    tif, series, shape, rate = _tiff_series(path)
    pixel_size = _tiff_pixel_size(tif)
    if single_frame and len(shape) == 2:
        shape = (1,) + tuple(shape)
    try:
        _check_ndim(shape, str(path), "")
        _check_dtype(series.dtype, str(path))
    except CaimgError:
        tif.close()
        raise
    memmapped = None
    try:  # uncompressed, contiguous data: memory-map it
        memmapped = tifffile.memmap(path, mode="r").reshape(shape)
    except Exception:  # compressed or non-contiguous: read page by page
        memmapped = None
    if memmapped is not None:
        tif.close()
        movie = _from_array(memmapped, axes, str(path))
        movie.paths, movie.frame_rate, movie.pixel_size_um = [Path(path)], rate, pixel_size
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
    movie = Movie(reader, full, series.dtype, str(path), [path], rate, pixel_size)
    movie._closers.append(tif.close)
    return movie


def _open_tiff_list(paths, axes) -> Movie:
    if axes != "TYX":
        _fail("a list of TIFF files is concatenated in time and must be frames first: use input.axes = 'TYX'.")
    movies = []
    try:
        for p in paths:
            if p.suffix.lower() not in TIFF_SUFFIXES:
                _fail(f"{p}: only TIFF files can be concatenated as a list; got a {p.suffix} file.")
            movies.append(_open_tiff(p, "TYX", single_frame=True))
    except CaimgError:
        for m in movies:
            m.close()
        raise
    frame_shapes = {m.shape[1:] for m in movies}
    if len(frame_shapes) > 1:
        detail = ", ".join(f"{m.paths[0].name}: {m.shape[1]}x{m.shape[2]}" for m in movies)
        for m in movies:
            m.close()
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

    source = str(paths[0]) if len(paths) == 1 else f"{len(paths)} TIFF files ({paths[0].name} ... {paths[-1].name})"
    movie = Movie(reader, (int(offsets[-1]),) + movies[0].shape[1:], dtype, source, paths, movies[0].frame_rate,
                  movies[0].pixel_size_um)
    movie._closers.extend(m.close for m in movies)
    return movie
