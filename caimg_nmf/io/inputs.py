"""A file a command reads: there, and a regular file (not a folder, FIFO or device), or an error
saying which (a FIFO is never opened: reading one would block)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError

__all__ = ["check_input_file"]


def check_input_file(path, what: str, *, hint: str = "Check the path.", error=InputError) -> Path:
    """Return ``path`` as a Path if it names an existing regular file (links followed); else raise
    ``error`` "<what> not found: <path>. <hint>" or "<what> <path> is a folder / not a regular file"."""
    if path is None or str(path) == "" or not isinstance(path, (str, os.PathLike)):
        raise error(f"{what}: expected a path (str or Path), got {path!r}.") from None
    path = Path(path)
    if not path.exists():
        raise error(f"{what} not found: {path}.{' ' + hint if hint else ''}") from None
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a pipe, device or socket)"
        raise error(f"{what} {path} is {kind}; give the path of a file.") from None
    return path
