"""Worker processes that end with the process that started them."""
from __future__ import annotations

import os
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies (``PR_SET_PDEATHSIG``).

    Call it first thing in a worker process. Without it a worker whose parent was killed (``kill -9``,
    the out-of-memory killer) runs on until its current task ends, holding the terminal, the
    recording's lock and its memory. ``parent_pid``: the pid of the process that started this one;
    if it has died already (before this call), ``sig`` is sent at once. The signal's handler decides
    how the worker stops (the batch workers remove their temporary files first).

    Returns
    -------
    bool
        Whether the request was made (False on other systems, where an orphaned worker ends when it
        next talks to its parent).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before the request
        os.kill(os.getpid(), sig)
    return True
