"""Output locks: one writer per output folder.

A lock is a file holding ``pid host time`` and held with ``fcntl.flock`` while the writer runs.
The kernel drops the flock when the process dies, so on the same host a lock left behind by a dead
process (killed, crashed) is recognised and taken over with a warning; the pid and host in the
file say who holds a live one. A lock written by another host cannot be checked from here: it is
refused, and the message says which file to delete if no run is in progress there.

The lock file is opened with ``O_NOFOLLOW`` and taken over only when it is a regular file with a
single link that holds a lock line (or nothing): a symbolic link, hard link, special file or a
user's file planted at the lock's name is refused, never truncated.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from ..errors import CaimgError, OutputError

__all__ = ["OutputLock", "LockedError", "LockFileError", "pid_alive"]


class LockedError(CaimgError):
    """Another run is writing this output."""


class LockFileError(LockedError, OutputError):
    """Something that is not our lock file (a link, a user's file, a FIFO) sits at the lock's path."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read(path: Path) -> tuple[int, str, str]:
    try:
        with open(path, "rb") as fh:  # a lock line is short; a user's big file is not read whole
            return _parse(fh.read(256))
    except OSError:
        return 0, "", ""


def _parse(line: bytes) -> tuple[int, str, str]:
    """(pid, host, since) of a lock line ``pid host time``, or (0, "", "")."""
    try:
        parts = line.decode(errors="replace").split()
        return int(parts[0]), parts[1], " ".join(parts[2:])
    except (ValueError, IndexError):
        return 0, "", ""


class OutputLock:
    """``with OutputLock(folder / ".lock", what="batch output"):`` – raises LockedError if held.

    ``warn`` receives a message when a stale lock is taken over."""

    def __init__(self, path, *, what: str = "output", warn=None):
        self.path = Path(path)
        self.what = what
        self.warn = warn
        self._fd = None

    def acquire(self) -> "OutputLock":
        import fcntl

        host = socket.gethostname()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid, other, since = _read(self.path)
                raise LockedError(
                    f"{self.path.parent} is being written by another run (pid {pid or '?'} on host "
                    f"{other or '?'}, since {since or '?'}; lock file {self.path}). Wait for it to finish, "
                    "or choose another output folder.") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed it between our open and flock: try again
                os.close(fd)
                continue
            pid, other, since = _parse(os.pread(fd, 256, 0))
            if not pid and os.fstat(fd).st_size:
                os.close(fd)
                raise LockFileError(f"{self.path} exists and is not a caimg_nmf lock file; it is left as it is. "
                                    "Move it away, or choose another output path.") from None
            if pid and other and other != host:
                os.close(fd)
                raise LockedError(
                    f"{self.path.parent} is locked by pid {pid} on host {other} (since {since}); it cannot be "
                    f"checked from {host}. If no run is in progress there, delete {self.path}.") from None
            if pid:  # we hold the flock, so whoever wrote this does not
                if self.warn:
                    state = "no longer running" if not pid_alive(pid) else "not holding it (pid reused)"
                    self.warn(f"taking over a stale lock on {self.path.parent} left by pid {pid} on {other or host} "
                              f"({state})")
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {host} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
            except OSError as exc:  # e.g. a full disk
                os.close(fd)
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise LockFileError(f"cannot write the lock file {self.path}: {exc.strerror or exc}. Free some "
                                    "space or choose another output folder.") from None
            self._fd = fd
            return self
        raise LockedError(f"could not lock {self.path}: it keeps changing; is another run starting?") from None

    def _open(self) -> int:
        """Open (creating it if absent) the lock file, refusing anything but a plain file of ours."""
        import stat

        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if os.path.islink(self.path):
                raise LockFileError(f"the lock file {self.path} is a symbolic link (to {os.readlink(self.path)}); "
                                    "caimg_nmf does not write through links. Remove the link (no run is using "
                                    "it) and run again.") from None
            raise LockFileError(f"cannot create the lock file {self.path}: {exc.strerror or exc}. Choose "
                                "another output path.") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = "has other hard links" if stat.S_ISREG(st.st_mode) else "is not a regular file"
            raise LockFileError(f"the lock file {self.path} {what}; it is left as it is. Remove it (no run is "
                                "using it) and run again.") from None
        return fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
