"""Reading a ``.npy`` file's header without loading it: shape and dtype, Python objects refused, and
files shorter than the array their header declares (truncated copies) caught before numpy allocates."""
from __future__ import annotations

import tokenize
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["npy_header"]


def npy_header(path) -> tuple[tuple, np.dtype]:
    """Shape and dtype of a ``.npy`` file from its header alone (nothing is unpickled or loaded).

    Raises
    ------
    InputError
        The file is not a readable ``.npy``, holds Python objects, or is shorter than its header says.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(fh)
            offset = fh.tell()
    # a header cut inside its dict fails in Python's tokenizer, not with numpy's ValueError
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc}); the file is truncated or not "
                         "written by numpy.save.") from None
    if dtype.hasobject:
        raise InputError(f"{path}: holds Python objects (dtype {dtype}), which are never unpickled; an "
                         "array of data must hold numbers. Save it with np.save(path, X.astype(float)).") from None
    if any(n < 0 for n in shape):
        raise InputError(f"{path}: not a readable .npy array: its header declares a negative size "
                         f"({' x '.join(map(str, shape))}); the file is damaged or not written by "
                         "numpy.save. Save or copy it again.") from None
    need = offset + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if path.stat().st_size < need:
        raise InputError(f"{path}: truncated: its header declares {' x '.join(map(str, shape))} values of "
                         f"{dtype} ({need} bytes with the header) but the file has "
                         f"{path.stat().st_size} bytes. Save or copy it again.") from None
    return tuple(shape), dtype
