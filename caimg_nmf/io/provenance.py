"""Provenance: what went into a result (input identity, versions, time)."""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
from pathlib import Path

import numpy as np

from .._version import __version__

__all__ = ["file_digest", "input_identity", "provenance_attrs"]

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


def input_identity(movie) -> dict:
    """Identity of a movie's source: paths, sizes, shape, dtype and a content digest."""
    if movie.paths:
        digests = [file_digest(p) for p in movie.paths]
        digest = digests[0] if len(digests) == 1 else hashlib.blake2b(
            "".join(digests).encode(), digest_size=16).hexdigest()
        size = sum(os.path.getsize(p) for p in movie.paths)
        paths = [str(Path(p).resolve()) for p in movie.paths]
    else:
        digest = array_digest(movie.to_array())
        size = movie.nbytes
        paths = []
    source = movie.source
    dataset = source.rsplit(":", 1)[1] if (":/" in source and len(paths) == 1) else ""
    return {"input_path": paths[0] if len(paths) == 1 else ";".join(paths), "input_dataset": dataset,
            "input_source": movie.source, "input_shape": list(movie.shape),
            "input_dtype": str(movie.dtype), "input_bytes": int(size), "input_hash": digest}


def provenance_attrs() -> dict:
    return {"caimg_nmf_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python_version": platform.python_version(), "numpy_version": np.__version__,
            "host": platform.node()}
