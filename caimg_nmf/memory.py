"""Memory: what is free on this machine, and what a run will need."""
from __future__ import annotations

import os

__all__ = ["available_memory", "format_bytes", "estimate_run_memory", "estimate_local_memory"]


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


def estimate_local_memory(frames_shape, cell_diameter=None, frame_rate=10.0, summary_rate=4.0, *,
                          n_jobs=1, tile_size=96, max_binned_frames=5000) -> int:
    """Peak bytes of a run with factorize.method = "local" (footprints kept in windows until curation):
    the float32 frames; the time-binned movie (at most ``max_binned_frames``, detect.time_bin) and one
    working copy of it (summary images, residual);
    the dense float32 footprints and 1-byte masks of the kept cells, float16 footprints of the
    rejected ones (K ~ 0.2 pixels / diameter^2 of each, as measured on a dense cortical field, cells
    found from activity and somata from the mean image together: 196 on 256 x 512 at d = 9.2; the
    detection's background components, about a quarter of them, held twice while curating), and the
    float32 background tents; ~64 MB of working space; and for each of the ``n_jobs`` tile workers
    its binned tile with the per-cell copies the fit reads (~1.6 x the tile) and a chunk of full-rate
    frames (at most ``TRACE_CHUNK_BYTES`` with its copies). Measured on 600 x 512 x 512 (d = 9, two
    workers): machine memory in use 2.1 GB more during the run (0.3 GB uint16 input loaded before), this
    estimate 3.0 GB."""
    from .stages._local_fit import TRACE_CHUNK_BYTES
    from .stages.detect import time_bin
    T, H, W = frames_shape
    P = H * W
    d = float(cell_diameter) if cell_diameter else 8.0
    b = time_bin(T, frame_rate, summary_rate, max_binned_frames)
    binned = (T // b) * P * 4
    K = 0.2 * P / (d * d)
    B = (H / (3 * d) + 2) * (W / (3 * d) + 2)
    tile = (min(H, tile_size) + 2 * (d + 1)) * (min(W, tile_size) + 2 * (d + 1))
    worker = (T // b) * tile * 4 * 2.6 + min(T * tile * 4 * 1.6, TRACE_CHUNK_BYTES)
    return int(T * P * 4 + 2 * binned + (K * (4 + 1 + 2 + 0.25 * 2) + B * 4) * P + 64 * 1024**2 + max(1, n_jobs) * worker)
