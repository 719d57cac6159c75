"""One recording of a batch, as run by a worker (a process, a dask task, or this process).

:func:`run_job` never raises for a recording that fails: it returns a record with the reason, so
that one bad input does not stop the others. Only an interruption (Ctrl-C, SIGTERM) propagates,
after the temporary files are removed and the lock released. This module imports nothing heavy at
the top, so that a worker process can limit its math-library threads before numpy loads.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path

__all__ = ["run_job", "init_worker_process", "Interrupted"]

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


class Interrupted(KeyboardInterrupt):
    """Raised in a worker on SIGTERM so that clean-up code runs as for Ctrl-C."""


_IN_JOB = [0]


def _on_sigterm(signum, frame):
    if _IN_JOB[0]:
        raise Interrupted(f"signal {signum}")
    os._exit(128 + signum)  # idle worker: nothing to clean up


def init_worker_process(blas_threads: int = 0, parent_pid: int | None = None) -> None:
    """Initializer of batch worker processes: SIGTERM interrupts the running job cleanly (its
    temporary files are removed), the worker gets that SIGTERM when the batch process ``parent_pid``
    dies (even by ``kill -9``), and math libraries use ``blas_threads`` threads."""
    from .._process import die_with_parent

    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)  # Ctrl-C reaches the workers too: same clean stop
    die_with_parent(parent_pid)
    if blas_threads > 0:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(blas_threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(blas_threads)
        except Exception:  # noqa: BLE001 - optional tuning only
            pass
    _ON_WORKER_PROCESS[0] = True


_ON_WORKER_PROCESS = [False]


def _peak_reset() -> bool:
    """Reset this process's peak-RSS counter (Linux), so that the peak of one job is measured."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


#: Temporary files of caimg_nmf.io.atomic.atomic_path (".<target>.<random>.tmp") for the files a
#: batch writes; the user's own hidden .tmp files are not the batch's to remove.
_TEMP = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")
_TEMP_TARGETS = ("result.h5", "run.json", "summary.csv", "index.html")


def _is_own_temp(name: str) -> bool:
    m = _TEMP.match(name)
    return bool(m) and (m["target"] in _TEMP_TARGETS or m["target"].lower().endswith(FIGURE_SUFFIXES))


def clean_leftovers(folder: Path, subfolders=("figures",)) -> list[str]:
    """Remove what a killed run left in ``folder`` and its ``subfolders`` (only call while holding
    its lock): pipeline scratch folders (``.caimg_nmf-*``) and the temporary files of the files a
    batch writes. Returns the names removed (relative to ``folder``), for the log. Links are never
    followed: a linked subfolder is not entered, a linked scratch name is not removed."""
    folder = Path(folder)
    removed = []
    for sub in ("", *subfolders):
        where = folder / sub
        if not where.is_dir() or where.is_symlink():
            continue
        for p in sorted(where.iterdir()):
            name = p.name
            try:
                if name.startswith(".caimg_nmf-") and p.is_dir() and not p.is_symlink():  # pipeline scratch
                    shutil.rmtree(p)
                elif _is_own_temp(name) and p.is_file() and not p.is_symlink():  # atomic_path temp
                    p.unlink()
                else:
                    continue
            except OSError:
                continue
            removed.append(str(Path(sub, name)))
    return removed


class _ThreadLogHandler(logging.Handler):
    """Copies the library's log records of one thread (figures, readers) into a run's log."""

    def __init__(self, stream, warnings=False):
        super().__init__(logging.WARNING if warnings else logging.INFO)
        self.stream = stream
        self.thread = threading.get_ident()

    def emit(self, record):
        if record.thread != self.thread or record.name == "caimg_nmf":  # Reporter lines are written already
            return
        with contextlib.suppress(Exception):
            self.stream.write(f"caimg-nmf: {record.levelname.lower()}: {record.getMessage()}\n")
            self.stream.flush()


def _write_json(path: Path, data: dict) -> None:
    from ..io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    from .report import publish

    publish(path)


def run_job(job, force: bool = False) -> dict:
    """Run (or skip) one recording; return its summary record (never raises for a failed input).

    ``job`` is a :class:`caimg_nmf.batch.plan.Job`. The record has: index, name, input, output,
    status ("ok", "skipped" or "failed"), reason, n_cells, run_time_s, peak_memory_mb, warnings."""
    _IN_JOB[0] += 1
    try:
        return _run_job(job, force)
    except Interrupted:
        if _ON_WORKER_PROCESS[0]:  # clean-up is done (finally blocks ran): leave at once
            os._exit(143)
        raise
    finally:
        _IN_JOB[0] -= 1


def _run_job(job, force):
    from ..config import Config
    from ..io.lock import LockedError, OutputLock
    from .plan import LOCK_NAME, config_fingerprint, up_to_date
    from .safety import recording_problem

    started = time.perf_counter()
    measured = _peak_reset() if _ON_WORKER_PROCESS[0] else False
    folder = Path(job.out_dir)
    record = {"index": job.index, "name": job.name, "input": job.rel, "output": job.name, "status": "failed",
              "reason": "", "n_cells": "", "run_time_s": "", "peak_memory_mb": "", "warnings": []}
    # checked again here: a link may have been planted since the batch was planned
    problem = job.unsafe or recording_problem(job)
    if problem:  # write nothing at all for this recording
        record["reason"] = problem
        return record
    lock_warnings: list[str] = []
    try:
        lock = OutputLock(folder / LOCK_NAME, what="recording output", warn=lock_warnings.append).acquire()
    except LockedError as exc:
        record["reason"] = str(exc)
        return record
    except OSError as exc:
        record["reason"] = f"cannot create the output folder {folder}: {exc.strerror or exc}"
        return record
    try:
        cleaned = clean_leftovers(folder)
        record["warnings"].extend(lock_warnings)
        cfg = Config.from_dict(job.config, source=job.source, base_dir=job.base_dir)
        fingerprint = config_fingerprint(job.config)
        why = "--force: analysing every recording again"
        if not force:
            try:
                fresh, why = up_to_date(job, cfg)
            except Exception as exc:  # noqa: BLE001 - e.g. the input became unreadable: run and report
                fresh, why = False, f"cannot check the existing result ({exc})"
            if fresh:
                return _skipped(record, folder, why, started)
        return _run(job, cfg, record, folder, fingerprint, started, measured, why, cleaned)
    finally:
        lock.release()


def _skipped(record, folder, why, started):
    from .plan import read_status

    status = read_status(folder)
    record.update(status="skipped", reason=why, n_cells=status.get("n_cells", ""),
                  run_time_s=round(time.perf_counter() - started, 2))
    record["warnings"] += status.get("warnings", [])
    return record


def _run(job, cfg, record, folder, fingerprint, started, measured, why="", cleaned=()):
    from ..errors import CaimgError, OutputError
    from ..progress import Reporter
    from .plan import LOG_NAME, STATUS_NAME
    from .safety import create_fresh

    status_path = folder / STATUS_NAME
    with contextlib.suppress(FileNotFoundError):
        status_path.unlink()  # from here on, no "ok" status until this run has finished everything
    try:
        log = create_fresh(folder / LOG_NAME)
    except OutputError as exc:
        record["reason"] = str(exc)
        return record
    logger = logging.getLogger("caimg_nmf")
    handler = _ThreadLogHandler(log)
    old_level = logger.level
    logger.addHandler(handler)
    reader_log = logging.getLogger("tifffile")
    reader_handler = _ThreadLogHandler(log, warnings=True)
    reader_log.addHandler(reader_handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    report = Reporter(stream=log, bars=False)
    report.info(f"batch recording {job.name}: input {job.input}")
    if why:
        report.info(f"up-to-date check: {why}")
    if cleaned:
        report.info(f"removed what an interrupted run left: {', '.join(cleaned)}")
    for w in record["warnings"]:
        report.warn(w)
    for note in job.notes:
        report.warn(f"{job.rel}: reader: {note}")
    tb = ""
    try:
        if job.error:
            raise _PlanError(job.error)
        from ..pipeline import run

        _check_readable(job, cfg)
        result = run(cfg, reporter=report, figures=False)
        if cfg.figures.enabled:
            _figures(result, folder / "figures", cfg, report)
        from .report import publish

        publish(folder / "result.h5", *(p for p in (folder / "figures").glob("*") if p.is_file()))
        record.update(status="ok", reason="", n_cells=result.n_cells)
    except (KeyboardInterrupt, SystemExit):
        report.info("interrupted; no partial result was left behind")
        raise
    except _PlanError as exc:
        record["reason"] = str(exc)
    except CaimgError as exc:
        record["reason"] = str(exc)
    except MemoryError as exc:
        record["reason"] = f"out of memory ({exc or 'MemoryError'}); crop or bin the movie or give the batch more memory"
    except Exception as exc:  # noqa: BLE001 - report it, carry on with the other recordings
        record["reason"] = (f"unexpected error: {type(exc).__name__}: {exc} (traceback in "
                            f"{folder / LOG_NAME})")
        tb = traceback.format_exc()
    finally:
        elapsed = round(time.perf_counter() - started, 2)
        peak = _peak_bytes()
        record["run_time_s"] = elapsed
        record["peak_memory_mb"] = round(peak / 1024**2, 1)
        record["peak_memory_scope"] = "job" if measured else "process"
        record["warnings"] = list(report.warnings)
        if record["status"] != "ok":
            if record["reason"] and job.input not in record["reason"] and job.rel not in record["reason"]:
                record["reason"] = f"{job.rel}: {record['reason']}"
            with contextlib.suppress(Exception):
                report.info(f"failed: {record['reason'] or 'interrupted'}")
                if tb:
                    log.write(tb)
        else:
            report.info(f"done: {record['n_cells']} cells in {elapsed} s")
        logger.removeHandler(handler)
        reader_log.removeHandler(reader_handler)
        logger.setLevel(old_level)
        log.close()
    _write_json(status_path, {"status": record["status"], "reason": record["reason"],
                              "config_fingerprint": fingerprint, "n_cells": record["n_cells"],
                              "run_time_s": record["run_time_s"], "peak_memory_mb": record["peak_memory_mb"],
                              "warnings": record["warnings"], "input": job.input})
    return record


class _PlanError(Exception):
    pass


def _check_readable(job, cfg) -> None:
    """Read the first and last frames, so that a damaged or truncated file fails at once with a
    message naming it rather than deep inside a stage."""
    from ..errors import CaimgError, InputError
    from ..io.movie import load_movie

    with load_movie(job.input, dataset=cfg.input.dataset, axes=cfg.input.axes,
                    check_axes=cfg.input.check_axes) as movie:
        for t in sorted({0, movie.shape[0] - 1}):
            try:
                movie[t]
            except CaimgError:
                raise
            except Exception as exc:  # noqa: BLE001 - what a reader raises on a damaged file varies
                raise InputError(f"{job.input}: cannot read frame {t} of {movie.shape[0]} ({type(exc).__name__}: "
                                 f"{exc}); the file looks damaged or truncated.") from None


def _figures(result, folder: Path, cfg, report) -> dict:
    from ..figures import make_figures

    written = make_figures(result, folder, formats=cfg.figures.formats, style=cfg.figure_style(),
                           dpi=cfg.figures.dpi)
    keep = {p.name for paths in written.values() for p in paths}
    for p in folder.iterdir():  # figures of an earlier run that this one did not make
        if p.is_file() and p.suffix.lower() in FIGURE_SUFFIXES and p.name not in keep:
            with contextlib.suppress(OSError):
                p.unlink()
    report.info(f"figures: {len(keep)} files in {folder}")
    return written
