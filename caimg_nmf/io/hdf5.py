"""Safe walking of HDF5 files that may lie: links to files that are gone, virtual datasets whose
sources are missing, datasets declaring sizes no machine can hold.

h5py raises a bare ``KeyError`` on an external link to a missing file, reads a virtual dataset with
missing sources as fill values (zeros, silently), and allocates a declared shape before reading it
(``MemoryError``). These helpers look at links and declared sizes first, and raise
:class:`~caimg_nmf.errors.InputError` naming the file, the dataset or link and what is missing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["list_datasets", "check_links", "check_declared_size", "check_has_dataspace", "read_dataset"]


def _fail(msg):
    raise InputError(msg) from None


def _linked_file(path: Path, filename: str) -> Path:
    """Where HDF5 looks for a linked file: as written if absolute, else beside the linking file."""
    target = Path(filename)
    return target if target.is_absolute() else Path(path).resolve().parent / target


def _check_link(group, key: str, name: str, path) -> None:
    import h5py

    link = group.get(key, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        target = _linked_file(path, link.filename)
        if not target.is_file():
            _fail(f"{path}: {name} is an external link to {link.path!r} in {link.filename}, and that file "
                  f"is missing (looked for {target}). Put the linked file back beside {Path(path).name}, "
                  "or give the file that holds the data.")
    if link is None or isinstance(link, h5py.SoftLink) and link.path not in group:
        what = f"a soft link to {link.path!r}, which does not exist" if link is not None else "missing"
        _fail(f"{path}: {name} is {what}.")
    try:
        group[key]
    except (KeyError, OSError, RuntimeError) as exc:
        _fail(f"{path}: {name} cannot be opened ({type(exc).__name__}: {exc}); the link or object is broken.")


def _check_virtual(ds, name: str, path) -> None:
    if not getattr(ds, "is_virtual", False):
        return
    missing = []
    for source in ds.virtual_sources():
        if source.file_name == ".":
            continue  # a source in the same file
        target = _linked_file(path, source.file_name)
        if not target.is_file() and not Path(source.file_name).is_file():
            missing.append(source.file_name)
    if missing:
        _fail(f"{path}: {name} is a virtual dataset whose source file{'s are' if len(missing) > 1 else ' is'} "
              f"missing: {', '.join(sorted(set(missing)))}. HDF5 would read fill values (zeros) in their "
              "place; put the source files back, or give the file that holds the data.")


def check_links(fh, path, names) -> None:
    """Check every link on the way to each of ``names`` (e.g. ``"/mov"``, ``"nmf/loss"``): external
    links must reach an existing file, soft links an existing object, virtual datasets their sources."""
    import h5py

    for full in names:
        group, walked = fh, ""
        parts = [p for p in str(full).split("/") if p]
        for i, key in enumerate(parts):
            walked += "/" + key
            if key not in group and group.get(key, getlink=True) is None:
                return  # absent: the caller says what is missing, with the file's contents
            _check_link(group, key, walked, path)
            obj = group[key]
            if isinstance(obj, h5py.Dataset):
                _check_virtual(obj, walked, path)
                break
            group = obj


def list_datasets(fh, path) -> list[tuple[str, tuple]]:
    """``[(name, shape), ...]`` of every dataset in the file, following links only after checking them."""
    import h5py

    found = []

    def walk(group, prefix):
        for key in group:
            name = f"{prefix}/{key}"
            _check_link(group, key, name, path)
            obj = group[key]
            if isinstance(obj, h5py.Dataset):
                _check_virtual(obj, name, path)
                found.append((name, () if obj.shape is None else obj.shape))
            elif isinstance(obj, h5py.Group):
                walk(obj, name)

    walk(fh, "")
    return found


def check_has_dataspace(ds, name: str, path) -> None:
    """Refuse a dataset with a null dataspace (``h5py.Empty``: a dtype and no shape, no values)."""
    if ds.shape is None:
        _fail(f"{path}: {name} holds no values: it has no dataspace (an HDF5 null/empty dataset, "
              f"h5py.Empty of {ds.dtype}); the file is not what it claims to be.")


def check_declared_size(ds, name: str, path, *, limit: int | None = None) -> None:
    """Refuse to read a dataset whose declared size exceeds ``limit`` bytes (default: half the memory
    available now), before h5py allocates it."""
    from ..memory import available_memory, format_bytes

    limit = available_memory() // 2 if limit is None else limit
    nbytes = int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize if ds.shape else ds.dtype.itemsize
    if nbytes > limit:
        dims = " x ".join(str(n) for n in ds.shape)
        _fail(f"{path}: {name} declares {dims} values of {ds.dtype} ({format_bytes(nbytes)}), more than the "
              f"{format_bytes(limit)} this machine can hold for it now; the file is damaged or not what it "
              "claims to be.")


def read_dataset(ds, name: str, path):
    """A dataset's values after :func:`check_declared_size`; strings are decoded to a list of str."""
    import h5py

    check_has_dataspace(ds, name, path)
    check_declared_size(ds, name, path)
    try:
        if h5py.check_string_dtype(ds.dtype) is not None:
            return [s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]]
        return ds[()]
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        _fail(f"{path}: {name} cannot be read ({type(exc).__name__}: {exc}); the file may be truncated or corrupt.")
