"""Memory: what is free on this machine, and what a run will need."""
from __future__ import annotations

import os

import numpy as np

__all__ = ["available_memory", "format_bytes", "estimate_run_memory"]


def available_memory() -> int:
    """Bytes of memory available to new work (MemAvailable on Linux; a guess elsewhere)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def estimate_run_memory(frames_shape, rank: int) -> int:
    """Peak bytes of an in-memory whole-field run: the float32 frames, the factors and the
    products the solver keeps (X·Hᵀ, Wᵀ·X), plus ~64 MB of working space."""
    T, H, W = frames_shape
    P = H * W
    frames = T * P * 4
    factors = 2 * (P * rank + rank * T) * 8
    return int(frames + factors + 64 * 1024**2)
