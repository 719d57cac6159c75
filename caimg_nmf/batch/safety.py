"""Where a batch writes: never through a link, never onto one of its inputs.

A batch writes, per recording, ``result.h5``, ``run.log``, ``run.json`` and a lock file in a folder of
its own (figures in ``figures/``), and, for the whole batch, a lock, ``summary.csv``, ``index.html``
and thumbnails. Before any of them is written:

* a symbolic link, or anything that is not a regular file (a folder, a FIFO, a device), at one of
  those paths is refused, and so is a link or a non-folder where a folder goes: the batch would
  otherwise write (or truncate, or clean) whatever the link points to;
* a file there that *is* an input of the batch (same device and inode: a hard link, a bind mount)
  is refused: replacing it would destroy the movie;
* a ``result.h5`` that is not a caimg_nmf result (a movie saved under that name, say) is refused:
  the batch replaces only its own kind of file.

A refused recording fails with the reason and nothing is written for it; a refused batch-wide path
stops the batch (exit 2) before anything runs. Files the batch writes in place (its logs) are
created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` after removing the previous regular file, so even a
link planted after these checks is never followed.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import OutputError
from ..io.movie import TIFF_SUFFIXES
from .plan import LOCK_NAME, LOG_NAME, RESULT_NAME, STATUS_NAME
from .report import THUMB_DIR

__all__ = ["input_ids", "recording_problem", "check_batch_paths", "create_fresh"]

#: Per recording: the files it writes (in its folder) and the folders it writes into.
RECORDING_FILES = (RESULT_NAME, LOG_NAME, STATUS_NAME, LOCK_NAME)
RECORDING_DIRS = ("figures",)
#: Files rewritten in place (lock files: truncated, then written) rather than replaced.
IN_PLACE = (LOCK_NAME,)


def input_ids(paths) -> dict:
    """``{(st_dev, st_ino): path}`` of every input file (for a folder of TIFFs: the folder and its
    TIFFs), following links: what an output must never be."""
    ids = {}
    for p in map(Path, paths):
        members = [p]
        if p.is_dir():
            members += [q for q in p.iterdir() if q.suffix.lower() in TIFF_SUFFIXES]
        for q in members:
            try:
                st = os.stat(q)
            except OSError:
                continue
            ids[(st.st_dev, st.st_ino)] = str(q)
    return ids


def _path_problem(path: Path, folder: bool, inputs: dict, in_place: bool = False) -> str:
    """Why the batch must not write at ``path`` (a file, or a folder when ``folder``; a file it
    rewrites in place when ``in_place``), or ""."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"{path}: cannot be checked ({exc.strerror or exc})"
    if stat.S_ISLNK(st.st_mode):
        return (f"{path} is a symbolic link (to {os.readlink(path)}); refusing to write through it. "
                "Remove the link (the batch makes this " + ("folder" if folder else "file") + " itself).")
    same = inputs.get((st.st_dev, st.st_ino))
    if same is not None:
        return (f"{path} is the same file as the input {same} (a hard link or mount); refusing to replace "
                "an input. Remove it, or choose another batch.output_dir.")
    if folder and not stat.S_ISDIR(st.st_mode):
        return f"{path} exists and is not a folder; refusing to replace it. Move it away."
    if not folder and not stat.S_ISREG(st.st_mode):
        return f"{path} exists and is not a regular file; refusing to replace it. Move it away."
    if in_place and st.st_nlink > 1:  # truncating it would change the file's other names too
        return (f"{path} has {st.st_nlink - 1} other name(s) (hard links); the batch rewrites it in place, "
                "which would change that file too. Remove it (it is only a lock file).")
    return ""


def recording_problem(job, inputs: dict | None = None) -> str:
    """Why ``job``'s outputs cannot be written safely (the first problem found), or "".

    ``inputs``: :func:`input_ids` of every input of the batch (default: the job's own input)."""
    inputs = input_ids([job.input]) if inputs is None else inputs
    folder = Path(job.out_dir)
    thumbs = folder.parent / THUMB_DIR / folder.name   # its thumbnails on the batch's page
    problem = _path_problem(folder, True, inputs) or _path_problem(thumbs, True, inputs)
    if problem or not folder.is_dir():
        return problem
    for name in RECORDING_DIRS:
        problem = _path_problem(folder / name, True, inputs)
        if problem:
            return problem
    for name in RECORDING_FILES:
        problem = _path_problem(folder / name, False, inputs, in_place=name in IN_PLACE)
        if problem:
            return problem
    return _foreign_result(folder / RESULT_NAME)


def _foreign_result(path: Path) -> str:
    """Why the file at ``path`` must not be replaced by a result: it is not one (a movie saved under
    that name, say), or ""; a batch replaces only results (of caimg_nmf, schema_version set)."""
    import h5py

    if not path.is_file():
        return ""
    try:
        with h5py.File(path, "r") as fh:
            if "schema_version" in fh.attrs:
                return ""
        why = "an HDF5 file without the schema_version attribute of a result"
    except OSError:
        why = "not an HDF5 file" if not h5py.is_hdf5(path) else "an unreadable HDF5 file"
    return (f"{path} exists and is not a caimg_nmf result ({why}); refusing to replace it. Move it "
            "away, or choose another batch.output_dir.")


def check_batch_paths(out_dir: Path, files, folders=(), in_place=()) -> None:
    """Raise OutputError when a batch-wide output (summary.csv, index.html, the thumbnails folder;
    ``in_place``: the batch lock) in ``out_dir`` is a link or not what the batch would write there."""
    for name in (*files, *in_place):
        problem = _path_problem(Path(out_dir) / name, False, {}, in_place=name in in_place)
        if problem:
            raise OutputError(f"batch output: {problem}") from None
    for name in folders:
        problem = _path_problem(Path(out_dir) / name, True, {})
        if problem:
            raise OutputError(f"batch output: {problem}") from None


def create_fresh(path, encoding: str = "utf-8"):
    """A new text file at ``path``, open for writing; a previous regular file there is removed first
    (never truncated: a hard link to it keeps its content). Anything else there, or a link planted
    between the removal and the creation, is refused with OutputError, never followed."""
    path = Path(path)
    problem = _path_problem(path, False, {})
    if problem:
        raise OutputError(problem) from None
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot create {path}: {exc.strerror or exc} (something was created there while "
                          "the batch was writing; is another program using this folder?)") from None
    return os.fdopen(fd, "w", encoding=encoding)
