"""Provenance: what went into a result (input identity, versions, time)."""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
from pathlib import Path

import numpy as np

from .._version import __version__

__all__ = ["file_digest", "movie_digest", "data_elsewhere", "input_identity", "provenance_attrs"]

_FULL_HASH_LIMIT = 2 * 1024**3   # hash every byte of files up to 2 GiB
_SAMPLES = 64                     # beyond that, 64 evenly spaced 1 MiB blocks + size
_BLOCK = 1024**2


def file_digest(path) -> str:
    """BLAKE2b digest of a file's content ("sampled:" prefix for files > 2 GiB, where 64 spaced
    1 MiB blocks and the size are hashed, so that huge movies are identified in seconds)."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: fh.read(8 * _BLOCK), b""):
                h.update(block)
            return h.hexdigest()
        h.update(str(size).encode())
        for offset in np.linspace(0, size - _BLOCK, _SAMPLES).astype(np.int64):
            fh.seek(int(offset))
            h.update(fh.read(_BLOCK))
    return "sampled:" + h.hexdigest()


def array_digest(arr) -> str:
    h = hashlib.blake2b(digest_size=16)
    arr = np.ascontiguousarray(arr)
    h.update(str((arr.shape, arr.dtype.str)).encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def movie_digest(movie) -> str:
    """BLAKE2b digest of a movie's frames as read (shape and dtype included), streamed in blocks of
    about 8 MiB so that the movie is never loaded whole. Beyond 2 GiB of frames, 64 evenly spaced
    blocks are hashed ("sampled:" prefix), as :func:`file_digest` does for large files."""
    T = movie.shape[0]
    frame_bytes = max(1, movie.nbytes // max(T, 1))
    block = max(1, (8 * _BLOCK) // frame_bytes)
    h = hashlib.blake2b(digest_size=16)
    h.update(str((tuple(movie.shape), np.dtype(movie.dtype).str)).encode())
    if movie.nbytes <= _FULL_HASH_LIMIT:
        starts, prefix = range(0, T, block), ""
    else:
        starts, prefix = np.unique(np.linspace(0, max(T - block, 0), _SAMPLES).astype(np.int64)), "sampled:"
    for start in starts:
        h.update(memoryview(np.ascontiguousarray(movie.read(int(start), int(start) + block))).cast("B"))
    return prefix + h.hexdigest()


def data_elsewhere(path, dataset: str = "") -> str:
    """Why the frames a reader takes from ``path`` (``dataset``: its HDF5 dataset) are not all stored
    in ``path`` itself, or "". A digest of ``path`` alone would not see the other files change.

    HDF5: an ExternalLink (on the dataset or on a group above it) puts the bytes in another file, a
    virtual dataset maps them from source datasets (other files, possibly missing), external storage
    keeps them in raw files. TIFF: an OME-TIFF series can span several files."""
    if dataset:
        return _hdf5_elsewhere(path, dataset)
    return _tiff_elsewhere(path)


def _hdf5_elsewhere(path, dataset: str) -> str:
    import h5py

    if not h5py.is_hdf5(path):
        return ""
    with h5py.File(path, "r") as fh:
        ds = fh[dataset]
        if os.path.realpath(ds.file.filename) != os.path.realpath(path):
            return f"an HDF5 external link into {ds.file.filename}"
        if ds.is_virtual:
            return "an HDF5 virtual dataset"
        if ds.external:
            return "HDF5 external storage"
    return ""


def _tiff_elsewhere(path) -> str:
    with open(path, "rb") as fh:
        if fh.read(4) not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return ""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.is_ome:
                return ""
            files = {os.path.realpath(page.parent.filehandle.path) for page in tif.series[0].pages
                     if page is not None}
    except Exception:  # noqa: BLE001 - the reader reports a damaged file; nothing more to see here
        return ""
    others = sorted(files - {os.path.realpath(path)})
    return f"an OME-TIFF series also stored in {', '.join(others)}" if others else ""


def _content_digest(movie, paths, dataset) -> str:
    """The digest of the movie's files; for a movie whose frames live (partly) in other files than
    the one named, that of the named file and of the frames as read (what the analysis sees,
    wherever it comes from)."""
    digests = [file_digest(p) for p in paths]
    digest = digests[0] if len(digests) == 1 else hashlib.blake2b(
        "".join(digests).encode(), digest_size=16).hexdigest()
    if len(paths) == 1 and data_elsewhere(paths[0], dataset):
        frames = movie_digest(movie)
        digest = "read:" + hashlib.blake2b(f"{digest};{frames}".encode(), digest_size=16).hexdigest()
    return digest


def input_identity(movie) -> dict:
    """Identity of a movie's source: paths, sizes, shape, dtype and a content digest.

    ``input_hash`` digests the movie's files ("sampled:" prefix for files over 2 GiB); for a movie
    stored (partly) outside the named file (HDF5 external link, virtual dataset or external storage;
    a multi-file OME-TIFF), it digests the named file and the frames as read ("read:" prefix), so
    that a change in the linked data changes it too."""
    source = movie.source
    if movie.paths:
        dataset = source.rsplit(":", 1)[1] if (":/" in source and len(movie.paths) == 1) else ""
        digest = _content_digest(movie, movie.paths, dataset)
        size = sum(os.path.getsize(p) for p in movie.paths)
        paths = [str(Path(p).resolve()) for p in movie.paths]
    else:
        digest = array_digest(movie.to_array())
        size = movie.nbytes
        paths = []
        dataset = ""
    return {"input_path": paths[0] if len(paths) == 1 else ";".join(paths), "input_dataset": dataset,
            "input_source": movie.source, "input_shape": list(movie.shape),
            "input_dtype": str(movie.dtype), "input_bytes": int(size), "input_hash": digest}


def provenance_attrs() -> dict:
    return {"caimg_nmf_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python_version": platform.python_version(), "numpy_version": np.__version__,
            "host": platform.node()}
