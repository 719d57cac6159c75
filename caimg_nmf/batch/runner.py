"""Running a batch: plan, lock, execute (serial, worker processes or dask), summarise.

Executors
---------
``processes`` (default)
    ``batch.workers`` spawned worker processes on this machine, memory-aware: each recording's peak
    memory is estimated from its movie's shape (header only) and a recording is started only when
    it fits beside the running ones in the batch's memory (``batch.memory_gb``, default the memory
    free at the start) and in the memory free right now. One that fits only alone runs alone; one
    that cannot fit at all fails with the reason. A worker killed while running (out-of-memory
    killer, ``kill -9``) fails only its own recording: the others running beside it are retried,
    alone; a recording that kills its worker when alone is reported as failed.
``dask``
    dask.distributed (``pip install caimg_nmf[dask]``): ``batch.scheduler = "tcp://host:port"``, or a
    ``LocalCluster`` with ``batch.workers`` worker processes when empty. Same outputs and skip rules;
    memory is left to dask's workers (their memory limits), and each worker needs caimg_nmf and the
    same paths (a shared file system) as this machine.
``serial``
    One recording after the other in this process (debugging).
"""
from __future__ import annotations

import collections
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..memory import available_memory, format_bytes
from ..progress import Reporter
from .config import BatchSpec, load_batch
from ..io.lock import OutputLock
from .plan import Job, plan_batch
from .worker import Interrupted, clean_leftovers, run_job

__all__ = ["run_batch", "BatchSummary", "can_start", "memory_need", "BATCH_LOCK"]

BATCH_LOCK = ".batch.lock"


@dataclass
class BatchSummary:
    """What a batch did: one record per recording (see :func:`caimg_nmf.batch.worker.run_job`)."""

    output_dir: Path
    records: list = field(default_factory=list)
    summary_csv: Path | None = None
    index_html: Path | None = None
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r["status"] == status)

    @property
    def failed(self) -> list:
        return [r for r in self.records if r["status"] == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def __repr__(self):
        return (f"BatchSummary({len(self.records)} recordings: {self.count('ok')} ok, {self.count('skipped')} "
                f"skipped, {self.count('failed')} failed; {self.output_dir})")


# ------------------------------------------------------------------------------------------
# Memory
# ------------------------------------------------------------------------------------------

def memory_need(job: Job, capacity: int) -> int:
    """Bytes to reserve for ``job``: its in-memory estimate, or, for a movie the pipeline will stream
    from disk (estimate above 80 % of the memory), the streaming run's footprint."""
    if job.error:
        return 0
    return job.need if job.need <= 0.8 * capacity else min(job.need, job.streamed_need)


def can_start(need: int, running_needs, capacity: int, free_now: int) -> bool:
    """Whether a job needing ``need`` bytes may start now. With nothing running it always may (the
    caller has already failed jobs larger than ``capacity``); otherwise it must fit beside the
    running jobs' reservations in ``capacity`` and in the memory free right now."""
    running_needs = list(running_needs)
    if not running_needs:
        return True
    return sum(running_needs) + need <= capacity and need <= free_now


# ------------------------------------------------------------------------------------------
# Progress
# ------------------------------------------------------------------------------------------

class _Progress:
    """A bar per batch on a terminal (tqdm); a line per recording otherwise; nothing when quiet."""

    def __init__(self, report: Reporter, total: int):
        self.report, self.total, self.n = report, total, 0
        self.bar = None
        if not report.quiet and report.bars and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="batch", unit="rec", file=report.stream, dynamic_ncols=True)

    def done(self, r: dict) -> None:
        self.n += 1
        if r["status"] == "ok":
            text = f"ok, {r['n_cells']} cells, {r['run_time_s']} s"
        elif r["status"] == "skipped":
            text = f"skipped: {r['reason']}"
        else:
            text = f"FAILED: {r['reason']}"
        line = f"[{self.n}/{self.total}] {r['name']}: {text}"
        if self.bar is not None:
            if r["status"] == "failed":
                self.bar.write(f"caimg-nmf: {line}", file=self.report.stream)
            self.bar.update(1)
        else:
            self.report.info(line)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------
# The batch
# ------------------------------------------------------------------------------------------

def run_batch(batch, *, workers: int | None = None, executor: str | None = None, force: bool = False,
              quiet: bool = False, stream=None, client=None) -> BatchSummary:
    """Analyse every recording of a batch file; write summary.csv and index.html.

    Parameters
    ----------
    batch : path to a batch TOML file, or a :class:`BatchSpec`
    workers, executor : override ``batch.workers`` / ``batch.executor``
    force : run every recording again, even when its result is up to date
    quiet : say nothing
    stream : where progress goes (default stderr)
    client : a ``distributed.Client`` to use with ``executor="dask"`` (else one is made from
        ``batch.scheduler`` or a LocalCluster)

    Returns
    -------
    BatchSummary
        ``.records`` (one dict per recording), ``.failed``, ``.summary_csv``, ``.index_html``.

    Raises
    ------
    ConfigError
        A bad batch file (unknown key, no inputs, invalid value in a recording's config).
    LockedError
        Another batch is writing to the same output folder.
    KeyboardInterrupt
        On Ctrl-C or SIGTERM (the summary of what finished is written first).
    """
    from ..io.atomic import check_writable_dir
    from .report import THUMB_DIR, write_reports
    from .safety import check_batch_paths

    spec = batch if isinstance(batch, BatchSpec) else load_batch(batch)
    changes = {k: v for k, v in (("workers", workers), ("executor", executor)) if v is not None}
    if client is not None and "executor" not in changes:
        changes["executor"] = "dask"
    if changes:
        spec = spec.replace_batch(**changes)
    report = Reporter(quiet=quiet, stream=stream)
    out_dir = spec.output_dir
    check_writable_dir(out_dir, "batch output")
    summary = BatchSummary(output_dir=out_dir)
    check_batch_paths(out_dir, files=("summary.csv", "index.html"), folders=(THUMB_DIR,), in_place=(BATCH_LOCK,))
    with OutputLock(out_dir / BATCH_LOCK, what="batch output", warn=report.warn):
        thumbs = out_dir / THUMB_DIR
        cleaned = clean_leftovers(out_dir, subfolders=[f"{THUMB_DIR}/{p.name}" for p in
                                                       (sorted(thumbs.iterdir()) if thumbs.is_dir() else ())])
        if cleaned:
            report.info(f"removed what an interrupted batch left in {out_dir}: {', '.join(cleaned)}")
        jobs, plan_warnings = plan_batch(spec)
        for w in plan_warnings:
            report.warn(w)
        b = spec.batch
        report.info(f"batch {spec.source}: {len(jobs)} recording(s), executor {b.executor}"
                    f"{'' if b.executor == 'serial' else f', {b.workers} worker(s)'}; results in {out_dir}")
        records: dict[int, dict] = {}
        progress = _Progress(report, len(jobs))

        def finished(record):
            records[record["index"]] = record
            progress.done(record)

        try:
            if b.executor == "serial":
                _run_serial(jobs, force, spec, finished, report)
            elif b.executor == "processes":
                _run_processes(jobs, force, spec, finished, report)
            else:
                _run_dask(jobs, force, spec, finished, report, client)
        except BaseException:
            summary.interrupted = True
            raise
        finally:
            progress.close()
            for job in jobs:
                records.setdefault(job.index, {
                    "index": job.index, "name": job.name, "input": job.rel, "output": job.name,
                    "status": "interrupted" if summary.interrupted else "failed",
                    "reason": "the batch was interrupted before this recording finished; run the batch again "
                              "to finish it" if summary.interrupted else "no result came back from the executor",
                    "n_cells": "", "run_time_s": "", "peak_memory_mb": "", "warnings": []})
            summary.records = [records[j.index] for j in jobs]
            summary.summary_csv, summary.index_html = write_reports(out_dir, summary.records, spec)
    if not summary.interrupted:
        report.info(f"batch done: {summary.count('ok')} ok, {summary.count('skipped')} skipped, "
                    f"{summary.count('failed')} failed; summary {summary.summary_csv}, page {summary.index_html}")
    return summary


def _capacity(spec) -> int:
    return int(spec.batch.memory_gb * 1024**3) if spec.batch.memory_gb > 0 else available_memory()


def _fail_unfit(jobs, capacity, spec) -> None:
    """Mark jobs that cannot fit in the batch's memory at all (they still get a skip check)."""
    where = f"batch.memory_gb = {spec.batch.memory_gb}" if spec.batch.memory_gb > 0 else "free memory"
    for job in jobs:
        need = memory_need(job, capacity)
        if not job.error and need > capacity:
            job.error = (f"{job.input}: needs about {format_bytes(need)} of memory but only {format_bytes(capacity)} "
                         f"is available ({where}); crop or bin it (preprocess.crop, spatial_bin, temporal_bin), "
                         "lower nmf.memory_budget_gb, or run it on a machine with more memory")


def _run_serial(jobs, force, spec, finished, report):
    _fail_unfit(jobs, _capacity(spec), spec)
    for job in jobs:
        finished(run_job(job, force))


def _blas_threads(spec) -> int:
    if spec.batch.blas_threads:
        return spec.batch.blas_threads
    return max(1, (os.cpu_count() or 1) // spec.batch.workers)


def _new_pool(spec):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from .worker import init_worker_process

    return ProcessPoolExecutor(max_workers=spec.batch.workers, mp_context=mp.get_context("spawn"),
                               initializer=init_worker_process, initargs=(_blas_threads(spec), os.getpid()))


def _stop_pool(pool) -> None:
    """Interrupt the running jobs (SIGTERM: they remove their temporary files) and stop the workers."""
    procs = list(getattr(pool, "_processes", {}).values()) if pool is not None else []
    for p in procs:
        try:
            p.terminate()
        except Exception:  # noqa: BLE001
            pass
    deadline = time.monotonic() + 20
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_processes(jobs, force, spec, finished, report):
    from concurrent.futures.process import BrokenProcessPool

    capacity = _capacity(spec)
    _fail_unfit(jobs, capacity, spec)
    pending = collections.deque(jobs)
    running: dict = {}          # future -> (job, need)
    solo: set = set()           # indices of jobs that must run alone (retried after a worker died)
    pool = _new_pool(spec)
    try:
        while pending or running:
            while pending and len(running) < spec.batch.workers:
                job = pending[0]
                need = memory_need(job, capacity)
                alone = job.index in solo or any(j.index in solo for j, _ in running.values())
                if running and (alone or not can_start(need, [n for _, n in running.values()], capacity,
                                                      available_memory())):
                    break
                pending.popleft()
                running[pool.submit(run_job, job, force)] = (job, need)
            done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            broken = []
            for fut in done:
                job, _ = running.pop(fut)
                try:
                    finished(fut.result())
                except BrokenProcessPool:
                    broken.append(job)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - e.g. a result that could not be pickled
                    finished(_failed(job, f"worker error: {type(exc).__name__}: {exc}"))
            if broken:
                # The pool is unusable: every job in it is lost. Retry the others alone; a job that
                # was already alone is the one that killed its worker.
                lost = broken + [j for j, _ in running.values()]
                running.clear()
                _stop_pool(pool)
                pool = _new_pool(spec)
                retry = []
                for job in sorted(lost, key=lambda j: j.index):
                    if len(lost) == 1 or job.index in solo:
                        finished(_failed(job, f"{job.input}: the worker process died while analysing it (killed by a "
                                         "signal or by the out-of-memory killer); see its run.log"))
                    else:
                        solo.add(job.index)
                        retry.append(job)
                if retry:
                    report.warn(f"a worker process died; retrying {len(retry)} recording(s) one at a time")
                pending.extendleft(reversed(retry))
    except BaseException:
        _stop_pool(pool)
        pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _failed(job, reason):
    return {"index": job.index, "name": job.name, "input": job.rel, "output": job.name, "status": "failed",
            "reason": reason, "n_cells": "", "run_time_s": "", "peak_memory_mb": "", "warnings": []}


def _run_dask(jobs, force, spec, finished, report, client=None):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError(f"{spec.source}: batch.executor = \"dask\" needs dask.distributed: "
                          "pip install 'caimg_nmf[dask]'") from None
    own = []
    try:
        if client is None:
            if spec.batch.scheduler:
                try:
                    client = Client(spec.batch.scheduler, timeout=30)
                except OSError as exc:
                    raise ConfigError(f"{spec.source}: cannot reach the dask scheduler batch.scheduler = "
                                      f"{spec.batch.scheduler!r}: {exc}") from None
            else:
                cluster = LocalCluster(n_workers=spec.batch.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
                own.append(cluster)
                client = Client(cluster)
            own.insert(0, client)
        futures = {}
        for job in jobs:
            fut = client.submit(run_job, job, force, pure=False, key=f"caimg-nmf-{job.index}-{job.name}-{os.getpid()}-{time.time_ns()}")
            futures[fut] = job
        try:
            for fut in as_completed(list(futures)):
                job = futures[fut]
                try:
                    finished(fut.result())
                except Exception as exc:  # noqa: BLE001 - KilledWorker, lost connection...
                    finished(_failed(job, f"{job.input}: dask task failed: {type(exc).__name__}: {exc}"))
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        for obj in own:
            try:
                obj.close()
            except Exception:  # noqa: BLE001
                pass


def install_signal_handlers():
    """Make SIGTERM interrupt like Ctrl-C (so that the batch stops its workers and writes its summary)."""
    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
