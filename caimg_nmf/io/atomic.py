"""Atomic file writing: write to a temporary file beside the target, then rename over it.

A crash, a full disk or Ctrl-C leaves either the previous file or the new one at the final path,
never a partial file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import OutputError

__all__ = ["atomic_path", "check_writable_dir"]


def check_writable_dir(folder: Path, what: str = "output") -> None:
    """Create ``folder`` if needed and make sure we can write there, or raise OutputError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the {what} folder {folder}: {exc.strerror or exc}. "
                          "Choose another output path.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"the {what} folder {folder} is not writable. Choose another output path "
                          "(--output) or fix its permissions.") from None


@contextlib.contextmanager
def atomic_path(target, *, overwrite: bool = True, keep_suffix: bool = False):
    """Yield a temporary path to write; on success it is renamed to ``target``.

    On any exception the temporary file is removed and ``target`` is left as it was.
    ``keep_suffix``: the temporary name ends with ``target``'s suffix (``….tmp.nwb``), for
    writers that pick or check the format by it.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise OutputError(f"{target} already exists. Pass --overwrite (output.overwrite = true) to "
                          "replace it, or choose another --output.") from None
    check_writable_dir(target.parent)
    suffix = ".tmp" + (target.suffix if keep_suffix else "")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp makes the file private (0600); results are for the lab to read: use the usual mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # make the bytes durable before the rename
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"could not write {target}: {exc.strerror or exc}. The previous file "
                              "(if any) is unchanged.") from None
        raise
