"""Output locks: one writer per output folder.

A lock is a file holding ``pid host time`` and held with ``fcntl.flock`` while the writer runs.
The kernel drops the flock when the process dies, so on the same host a lock left behind by a dead
process (killed, crashed) is recognised and taken over with a warning; the pid and host in the
file say who holds a live one. A lock written by another host cannot be checked from here: it is
refused, and the message says which file to delete if no run is in progress there.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from ..errors import CaimgError

__all__ = ["OutputLock", "LockedError", "pid_alive"]


class LockedError(CaimgError):
    """Another run is writing this output."""


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
        parts = path.read_text().split()
        return int(parts[0]), parts[1], " ".join(parts[2:])
    except (OSError, ValueError, IndexError):
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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
            pid, other, since = _read(self.path)
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
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {host} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
            self._fd = fd
            return self
        raise LockedError(f"could not lock {self.path}: it keeps changing; is another run starting?") from None

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
