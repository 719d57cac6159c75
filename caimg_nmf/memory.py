"""Memory: what is free on this machine, and what a run will need."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import MemoryBudgetError

__all__ = ["available_memory", "total_memory", "free_disk", "plan_memory", "format_bytes", "estimate_run_memory",
           "estimate_local_memory"]


def available_memory() -> int:
    """Bytes of memory available to new work (MemAvailable on Linux; a guess elsewhere)."""
    return _memory("MemAvailable", "SC_AVPHYS_PAGES")


def total_memory() -> int:
    """Bytes of physical memory of this machine (MemTotal on Linux; a guess elsewhere)."""
    return _memory("MemTotal", "SC_PHYS_PAGES")


def _memory(meminfo_field: str, sysconf_pages: str) -> int:
    """A line of /proc/meminfo in bytes, else ``sysconf_pages`` pages, else 8 GB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(meminfo_field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf(sysconf_pages) * os.sysconf("SC_PAGE_SIZE")
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


def free_disk(path) -> int:
    """Bytes free for temporary files in the folder ``path``."""
    return shutil.disk_usage(path).free


def plan_memory(need: int, streamed: int, scratch, free: int) -> bool:
    """Whether a run needing ``need`` bytes, with ``free`` bytes of memory available, must stream its
    ``streamed`` bytes of frames from a temporary file in ``scratch`` (the run's temporary folder,
    inside the output folder): True, or fits in memory: False. Raises MemoryBudgetError when it cannot run here at all: ``need`` is more
    than the machine's memory and free disk together (an estimate that large comes from values that
    size the run wrongly; streaming it would fill the disk, or be killed by the kernel much later),
    or the frames to stream do not fit on the disk."""
    if need <= 0.8 * free:
        return False
    scratch = Path(scratch)
    total, disk = total_memory(), free_disk(scratch)
    if need > total + disk:
        raise MemoryBudgetError(
            f"the run needs about {format_bytes(need)}, more than this machine has: {format_bytes(total)} of "
            f"memory and {format_bytes(disk)} free for temporary files in {scratch.parent}. Crop or bin the movie "
            "(preprocess.crop, spatial_bin, temporal_bin), analyse fewer frames (input.n_frames), or check "
            "the values that size the run (input.cell_diameter, nmf.rank).") from None
    if streamed > disk:
        raise MemoryBudgetError(
            f"the run needs about {format_bytes(need)} but {format_bytes(free)} of memory is free, and its "
            f"frames ({format_bytes(streamed)}) do not fit in the {format_bytes(disk)} free for temporary files "
            f"in {scratch.parent}. Free memory or disk space, or crop or bin the movie (preprocess.crop, "
            "spatial_bin, temporal_bin).") from None
    return True
