"""Atomic file writing: write to a temporary file beside the target, then rename over it.

A crash, a full disk or Ctrl-C leaves either the previous file or the new one at the final path,
never a partial file. Before anything is written the target is checked (:func:`check_output_path`):
a symbolic link, a folder, a device or a FIFO at the target is refused rather than written through;
an existing file is replaced only when asked (``overwrite``), and never when it is one of the
command's own inputs (:func:`refuse_inputs`), whatever the path, link or hard link that names it.

Temporary files are named ``.<target name>.<pid>.<random>.tmp``, so a later run can tell a leftover
of a process that is gone (:func:`leftover_owner_gone`) from one that is still writing.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import stat
import tempfile
from pathlib import Path

from ..errors import OutputError

__all__ = ["atomic_path", "atomic_paths", "check_writable_dir", "check_output_path", "refuse_inputs", "protected_inputs",
           "check_name_length", "write_bytes_atomic", "free_bytes", "tmp_prefix", "leftover_owner_gone",
           "no_space_message", "is_no_space", "SCRATCH_PREFIX", "scratch_prefix", "remove_dead_leftovers"]

#: errno values that mean "the disk (or the user's quota) is full"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: the inputs of the command running in this context (see :func:`protected_inputs`)
_PROTECTED: contextvars.ContextVar[tuple] = contextvars.ContextVar("caimg_nmf_protected_inputs", default=())
#: os.write, looked up here so that tests can simulate a full disk without filling one
_write = os.write


def check_writable_dir(folder: Path, what: str = "output") -> None:
    """Create ``folder`` if needed and make sure we can write there, or raise OutputError."""
    folder = Path(folder)
    check_name_length(folder, what=f"{what} folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the {what} folder {folder}: {exc.strerror or exc}. "
                          "Choose another output path.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"the {what} folder {folder} is not writable. Choose another output path "
                          "(--output) or fix its permissions.") from None


def _limit(folder: Path, name: str, default: int) -> int:
    """``pathconf`` of the nearest existing folder at or above ``folder`` (the file system's limit)."""
    for parent in (folder, *folder.parents):
        try:
            return int(os.pathconf(parent, name))
        except (OSError, ValueError):
            continue
    return default


def check_name_length(path, *, reserve: int = 0, what: str = "output") -> None:
    """Refuse a path whose file name (or any folder name in it) or whole length is over the file
    system's limit (NAME_MAX, PATH_MAX), with the limit in the message.

    ``reserve`` bytes are kept free in the last name, for a suffix the writer adds (``.lock``)."""
    path = Path(os.path.abspath(path))
    name_max = _limit(path.parent, "PC_NAME_MAX", 255)
    path_max = _limit(path.parent, "PC_PATH_MAX", 4096)
    for part in path.parts[1:]:
        size = len(os.fsencode(part)) + (reserve if part == path.name else 0)
        if size > name_max:
            allowed = name_max - (reserve if part == path.name else 0)
            raise OutputError(f"cannot write the {what} {path}: the name {part[:40]}... is "
                              f"{len(os.fsencode(part))} bytes long, and this file system allows at most "
                              f"{allowed} bytes per name{' here' if reserve and part == path.name else ''} "
                              f"(NAME_MAX = {name_max}). Choose a shorter name.") from None
    if len(os.fsencode(str(path))) + reserve >= path_max:
        raise OutputError(f"cannot write the {what} {str(path)[:60]}...: the path is {len(os.fsencode(str(path)))} "
                          f"bytes long, and this system allows at most {path_max - 1 - reserve} "
                          f"(PATH_MAX = {path_max}). Choose a shorter path.") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def refuse_inputs(target, inputs, *, what: str = "output") -> None:
    """Raise OutputError when ``target`` is one of ``inputs`` (the same file, under any path, symbolic
    link or hard link: same device and inode). ``--overwrite`` never allows replacing an input.

    ``inputs``: paths, or ``(label, path)`` pairs ("movie", "config file") for the message. Inputs
    that do not exist (or are not files on disk) are ignored."""
    try:
        st = os.stat(target)
    except (OSError, ValueError):
        return
    for item in inputs:
        label, path = item if isinstance(item, tuple) else ("input", item)
        if path is None or str(path) == "":
            continue
        try:
            other = os.stat(path)
        except (OSError, ValueError, TypeError):
            continue
        if (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino):
            same = "" if os.path.abspath(path) == os.path.abspath(target) else f" ({path})"
            raise OutputError(f"the {what} {target} is the {label}{same} of this command: it would be "
                              "destroyed. --overwrite never replaces an input; choose another output "
                              "path.") from None


@contextlib.contextmanager
def protected_inputs(inputs):
    """Within this block, every file written through this module refuses to replace one of
    ``inputs`` (paths or ``(label, path)`` pairs): a command declares its inputs once."""
    token = _PROTECTED.set(_PROTECTED.get() + tuple(i for i in inputs if i is not None))
    try:
        yield
    finally:
        _PROTECTED.reset(token)


def check_output_path(target, *, overwrite: bool = False, inputs=(), what: str = "output",
                      reserve: int = 0) -> Path:
    """Check that ``target`` may be written; return it as an absolute path (links not resolved).

    Refused (OutputError): a name over the file system's limit; a symbolic link (never written
    through); a folder, FIFO, device or socket; an existing file unless ``overwrite``; one of
    ``inputs`` (see :func:`refuse_inputs`), even with ``overwrite``."""
    if "\0" in str(target):
        raise OutputError(f"the {what} path {str(target)!r} holds a NUL character, which no file name may "
                          "hold; choose another output path.") from None
    target = Path(os.path.abspath(target))
    check_name_length(target, reserve=reserve, what=what)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            blocker = next((p for p in reversed(target.parents) if os.path.lexists(p) and not p.is_dir()), None)
            raise OutputError(f"cannot create the output folder {target.parent}: {blocker or 'a part of it'} is "
                              "a file, not a folder. Choose another output path.") from None
        raise OutputError(f"cannot write the {what} {target}: {exc.strerror or exc}. Choose another "
                          "output path.") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"the {what} {target} is a symbolic link (to {os.readlink(target)}); caimg_nmf does "
                          "not write through links. Remove the link or choose another output path.") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"the {what} {target} is {_kind(st.st_mode)}, not a regular file; choose another "
                          "output path.") from None
    refuse_inputs(target, (*inputs, *_PROTECTED.get()), what=what)
    if not overwrite:
        raise OutputError(f"{target} already exists. Pass --overwrite (output.overwrite = true) to replace "
                          "it, or choose another output path.") from None
    return target


def _short(name: str, limit: int = 180) -> str:
    """``name`` cut to ``limit`` bytes, so that a temporary name made from it stays within NAME_MAX."""
    raw = os.fsencode(name)
    return name if len(raw) <= limit else os.fsdecode(raw[:limit])


def tmp_prefix(name: str) -> str:
    """Prefix of this process's temporary files for a target called ``name``."""
    return f".{_short(name)}.{os.getpid()}."


_LEFTOVER = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}\.tmp(?:\.\w{1,8})?$")


def leftover_owner_gone(filename: str, target_name: str | None = None) -> bool:
    """Whether ``filename`` is a temporary file of :func:`atomic_path` (for a target called
    ``target_name``, when given) whose writing process is gone. Names without a pid (older
    versions) count as gone only when ``target_name`` is given (the caller holds its lock)."""
    from .lock import pid_alive

    m = _LEFTOVER.match(filename)
    if m is None:
        return False
    if target_name is not None and m.group("name") != _short(target_name):
        return False
    pid = m.group("pid")
    if pid is None:
        return target_name is not None
    return int(pid) != os.getpid() and not pid_alive(int(pid))


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def no_space_message(target: Path, need: int | None = None, what: str | None = None) -> str:
    """"no space left on <folder>: <what> needs about N MB (M MB free). ..." for a write of ``target``."""
    folder = Path(target).parent
    what = what or Path(target).name
    free = free_bytes(folder) if need else None
    needs = f": {what} needs about {_megabytes(need)}" if need else f" while writing {what}"
    if free is not None:
        needs += f" ({_megabytes(free)} free{', beside the file it replaces' if Path(target).exists() else ''})"
    return (f"no space left on {folder}{needs}. The previous file (if any) is unchanged and nothing was left "
            "behind; free some space or choose another output folder.")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e6:.2f} MB"


@contextlib.contextmanager
def atomic_path(target, *, overwrite: bool = True, inputs=(), suffix: str = ""):
    """Yield a temporary path to write; on success it is renamed to ``target``.

    ``suffix`` is added to the temporary name, for writers that pick their format from it.

    ``target`` is checked first (:func:`check_output_path`: no links, no special files, no inputs;
    an existing file only with ``overwrite``). On any exception the temporary file is removed and
    ``target`` is left as it was; a full disk becomes an OutputError saying so.
    """
    target = check_output_path(target, overwrite=overwrite, inputs=inputs)
    check_writable_dir(target.parent)
    _remove_dead_tmps(target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(target.name), suffix=".tmp" + suffix,
                                    dir=target.parent)
        tmp = Path(tmp)
        # mkstemp makes the file private (0600); results are for the lab to read: use the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as fh:  # make the bytes durable before the rename
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if is_no_space(exc) and not isinstance(exc, OutputError):
            raise OutputError(no_space_message(target)) from None
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"could not write {target}: {exc.strerror or exc}. The previous file "
                              "(if any) is unchanged.") from None
        raise


def _remove_dead_tmps(target: Path) -> None:
    """Remove the temporary files of earlier writers of ``target`` that were killed (their pid, in
    the name, is gone): a killed export, evaluate --json or figures leaves no hidden file for good.
    Names without a pid are left alone (they may be a user's)."""
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    from ..progress import Reporter

    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if m is None or m.group("pid") is None or not entry.is_file(follow_symlinks=False):
            continue
        if leftover_owner_gone(entry.name, target.name):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                Reporter().warn(f"removed {entry.path}, left by a killed caimg_nmf process")


@contextlib.contextmanager
def atomic_paths(targets, *, overwrite: bool = True, inputs=()):
    """:func:`atomic_path` for several files that belong together (a CSV export, rank's .h5/.png/.pdf):
    yield their temporary paths; every target is checked before anything is written, and they are
    renamed into place only when all were written. On any error none is (temporary files removed)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(t, overwrite=overwrite, inputs=inputs)) for t in targets]


def free_bytes(folder: Path) -> int | None:
    """Bytes an unprivileged process may still write in ``folder``'s file system (None: unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def write_bytes_atomic(target, data, *, overwrite: bool = True, inputs=(), what: str | None = None) -> Path:
    """Write ``data`` (bytes) to ``target`` atomically with plain ``os.write``.

    The free space of the folder is checked first, and a full disk during the write is a clean
    OutputError ("no space left on <folder>: <name> needs about N MB"), never a partial file."""
    target = check_output_path(target, overwrite=overwrite, inputs=inputs)
    check_writable_dir(target.parent)
    view = memoryview(data).cast("B")
    size = len(view)
    free = free_bytes(target.parent)
    if free is not None and free < size + (64 << 10):  # + room for the folder entry and metadata
        raise OutputError(no_space_message(target, size, what)) from None
    with atomic_path(target, overwrite=True, inputs=inputs) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0))
        try:
            while view:
                view = view[_write(fd, view[:1 << 24]):]
        except OSError as exc:  # atomic_path removes the temporary file
            if is_no_space(exc):
                raise OutputError(no_space_message(target, size, what)) from None
            raise
        finally:
            os.close(fd)
    return target


#: name start of a run's scratch folder (disk-backed arrays of out-of-core runs) in its output folder
SCRATCH_PREFIX = ".caimg_nmf-"
_SCRATCH = re.compile(r"^\.caimg_nmf-(?:(?P<name>.+)\.(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}$")


def scratch_prefix(target_name: str) -> str:
    """Prefix of this process's scratch folder for the result ``target_name``."""
    return f"{SCRATCH_PREFIX}{_short(target_name, 100)}.{os.getpid()}."


def remove_dead_leftovers(target) -> list[str]:
    """Remove what runs writing ``target`` left behind when they were killed: its temporary files
    (``.<name>.<pid>.<random>.tmp``) and scratch folders (``.caimg_nmf-<name>.<pid>.<random>``) whose
    process is gone, and the same in its ``figures/`` folder. Call only while holding ``target``'s
    lock, so that no live run of the same result can own them. Scratch folders of older versions
    (no name, no pid) are removed only when no other lock file is in the folder (no other run).
    Returns the names removed."""
    import shutil

    target = Path(target)
    folder = target.parent
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    others_locked = any(e.name.endswith(".lock") and e.name != target.name + ".lock" for e in entries)
    figures = folder / "figures"
    with contextlib.suppress(OSError):
        if figures.is_dir() and not figures.is_symlink():
            entries += [e for e in os.scandir(figures) if leftover_owner_gone(e.name)]
    for entry in entries:
        name = entry.name
        try:
            if entry.is_file(follow_symlinks=False) and leftover_owner_gone(name, None if Path(entry.path).parent
                                                                            == figures else target.name):
                os.unlink(entry.path)
            elif entry.is_dir(follow_symlinks=False) and _scratch_owner_gone(name, target.name, others_locked):
                shutil.rmtree(entry.path)
            else:
                continue
        except OSError:
            continue
        removed.append(os.path.relpath(entry.path, folder))
    return removed


def _scratch_owner_gone(dirname: str, target_name: str, others_locked: bool) -> bool:
    from .lock import pid_alive

    m = _SCRATCH.match(dirname)
    if m is None:
        return False
    if m.group("pid") is None:
        return not others_locked
    return m.group("name") == _short(target_name, 100) and int(m.group("pid")) != os.getpid() \
        and not pid_alive(int(m.group("pid")))
