"""Batch runs: many recordings, one batch file, resumable, in parallel.

::

    from caimg_nmf.batch import run_batch
    summary = run_batch("configs/batch_example.toml", workers=2)
    summary.records        # one dict per recording: input, status, reason, n_cells, ...
    summary.failed         # the failed ones

The CLI: ``caimg-nmf batch BATCH.toml [--workers N] [--quiet] [--force]``. See
``configs/batch_example.toml`` for the file format.
"""
from .config import BatchSection, BatchSpec, batch_from_dict, load_batch
from ..io.lock import LockedError, OutputLock
from .plan import Job, plan_batch
from .runner import BatchSummary, run_batch
from .worker import run_job

__all__ = ["run_batch", "load_batch", "batch_from_dict", "plan_batch", "run_job", "BatchSpec",
           "BatchSection", "BatchSummary", "Job", "OutputLock", "LockedError"]
