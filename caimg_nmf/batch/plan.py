"""Planning a batch: which recordings, where their results go, with which config, and whether an
existing result is still up to date.

Nothing here reads pixel data: the movie's shape comes from its header (``load_movie(path).shape``)
and the content digest is computed only when a result already exists and must be checked.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import tomllib
from ..errors import CaimgError, ConfigError
from ..io.movie import HDF5_SUFFIXES, TIFF_SUFFIXES

__all__ = ["Job", "plan_batch", "expand_inputs", "folder_names", "config_fingerprint", "up_to_date",
           "RESULT_NAME", "LOG_NAME", "STATUS_NAME"]

RESULT_NAME, LOG_NAME, STATUS_NAME, LOCK_NAME = "result.h5", "run.log", "run.json", ".lock"
MOVIE_SUFFIXES = TIFF_SUFFIXES + HDF5_SUFFIXES + (".npy",)
#: Keys left out when deciding whether a result was made with the same config: where the input
#: and the result live (the input's identity is its content digest instead) and overwrite.
_IGNORED_KEYS = {"input": ("path",), "output": ("path", "overwrite")}


@dataclass
class Job:
    """One recording of a batch; plain data so that it travels to worker processes and dask."""

    index: int
    name: str                 # output sub-folder name
    input: str                # absolute path of the movie (file or folder)
    rel: str                  # input as shown to the user (relative to the batch file when inside it)
    out_dir: str              # absolute output folder of this recording
    config: dict = field(default_factory=dict)   # effective pipeline config (Config.to_dict())
    base_dir: str = ""
    source: str = ""
    shape: tuple | None = None    # movie (T, H, W) from its header
    need: int = 0                 # estimated peak bytes of an in-memory run
    streamed_need: int = 0        # estimated peak bytes when frames are streamed from disk
    error: str = ""               # set when the job cannot run at all (reported as failed)
    unsafe: str = ""              # why its outputs cannot be written safely (nothing is written for it)
    notes: list = field(default_factory=list)   # what the reader said while planning (e.g. damaged file)

    @property
    def result_path(self) -> Path:
        return Path(self.out_dir) / RESULT_NAME


def expand_inputs(spec, *, warn=None) -> list[tuple[Path, str]]:
    """``[(absolute path, displayed path)]`` of every recording named by ``batch.inputs``, in a stable
    order (entries in file order; matches of a glob sorted), duplicates and anything inside
    ``output_dir`` left out. A literal path that does not exist is kept (it fails, reported)."""
    out_dir = spec.output_dir
    seen, found = set(), []
    for entry in spec.batch.inputs:
        pattern = os.path.expanduser(entry)
        full = pattern if os.path.isabs(pattern) else str(spec.base_dir / pattern)
        is_glob = any(ch in entry for ch in "*?[")
        if is_glob:
            matches = [Path(p) for p in sorted(glob.glob(full, recursive=True))]
            matches = [p for p in matches if (p.is_file() and p.suffix.lower() in MOVIE_SUFFIXES) or
                       (p.is_dir() and any(q.suffix.lower() in TIFF_SUFFIXES for q in p.iterdir()))]
            if not matches and warn:
                warn(f"{spec.source}: batch.inputs pattern {entry!r} matches no movie files")
        else:
            matches = [Path(full)]
        inside = []
        for p in matches:
            p = Path(os.path.abspath(p))
            real = Path(os.path.realpath(p))  # through links: where the batch would really read
            if real == out_dir or out_dir in real.parents:
                inside.append(p)
                continue
            if real in seen:  # the same movie named twice (directly and through a link, say)
                continue
            seen.add(real)
            try:
                rel = Path(os.path.relpath(p, spec.base_dir)).as_posix()
            except ValueError:  # another drive (Windows)
                rel = p.as_posix()
            found.append((p, rel))
        # a glob over a tree that holds output_dir matches earlier results: say so only when the
        # entry yields nothing else (a literal path is always worth a word)
        if inside and warn and (len(inside) == len(matches) or not is_glob):
            what = str(inside[0]) if len(inside) == 1 else f"{len(inside)} matches ({inside[0]}, ...)"
            warn(f"{spec.source}: batch.inputs {entry!r}: {what} is inside the batch's output folder {out_dir}; "
                 "left out (a batch never reads what it writes). Move the movies out of output_dir or "
                 "choose another output_dir.")
    return found


def _clean(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "movie"
    return name


def folder_names(paths: list[Path]) -> list[str]:
    """A unique output folder name per input, from its file stem (folder name for a folder of TIFFs).

    Duplicate stems are told apart by their parent folders' names (``mouse1_s1``, ``mouse2_s1``),
    and, failing that, by a ``-2``, ``-3`` suffix in sorted-path order, so the names depend only on
    the set of inputs, not on the order they were listed in."""
    stems = [_clean(p.name if p.is_dir() else p.stem) for p in paths]
    names = list(stems)
    for depth in (1, 2, 3):
        counts = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        dup = [i for i, n in enumerate(names) if counts[n] > 1]
        if not dup:
            return names
        for i in dup:
            parents = [_clean(q.name) for q in list(paths[i].parents)[:depth] if q.name][::-1]
            names[i] = "_".join([*parents, stems[i]])
    groups = {}
    for i in sorted(range(len(paths)), key=lambda i: str(paths[i])):
        groups.setdefault(names[i], []).append(i)
    for n, idx in groups.items():
        for k, i in enumerate(idx[1:], 2):
            names[i] = f"{n}-{k}"
    return names


def plan_batch(spec) -> tuple[list[Job], list[str]]:
    """The jobs of a batch (in input order) and planning warnings.

    Raises ConfigError when no input is found or a recording's effective config is invalid."""
    from ..memory import estimate_run_memory
    from ..stages.preprocess import output_shape

    warnings: list[str] = []
    inputs = expand_inputs(spec, warn=warnings.append)
    if not inputs:
        raise ConfigError("\n".join([f"{spec.source}: batch.inputs {list(spec.batch.inputs)} match no movie files "
                                     f"(paths are relative to {spec.base_dir}).", *warnings])) from None
    from .safety import input_ids, recording_problem

    names = folder_names([p for p, _ in inputs])
    out_dir = spec.output_dir
    protected = input_ids([p for p, _ in inputs])
    jobs = []
    for i, ((path, rel), name) in enumerate(zip(inputs, names)):
        folder = out_dir / name
        cfg = spec.config_for(rel, path, folder / RESULT_NAME)
        job = Job(index=i, name=name, input=str(path), rel=rel, out_dir=str(folder), config=cfg.to_dict(),
                  base_dir=str(spec.base_dir), source=spec.source)
        job.unsafe = recording_problem(job, protected)
        try:
            from ..io.movie import load_movie

            with _capture_log("tifffile", job.notes), load_movie(str(path), dataset=cfg.input.dataset, axes=cfg.input.axes,
                            check_axes=cfg.input.check_axes) as movie:
                job.shape = tuple(movie.shape)
            shape = output_shape(job.shape, cfg.input, cfg.preprocess)
            job.need = estimate_run_memory(shape, cfg.nmf.rank)
            job.streamed_need = _streamed_need(shape, cfg)
        except CaimgError as exc:
            job.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a reader choking on a damaged file
            job.error = f"{path}: cannot read the movie ({type(exc).__name__}: {exc})"
        jobs.append(job)
    return jobs, warnings


class _ListHandler(logging.Handler):
    def __init__(self, out):
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record):
        msg = record.getMessage().strip()
        if msg not in self.out:
            self.out.append(msg)


@contextlib.contextmanager
def _capture_log(name, out):
    """Collect a library's warnings (tifffile's 'invalid page offset'…) instead of printing them."""
    logger = logging.getLogger(name)
    handler = _ListHandler(out)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _streamed_need(shape, cfg) -> int:
    """Peak bytes when the pipeline streams the frames from disk (movies larger than memory)."""
    T, H, W = shape
    K = cfg.nmf.rank
    return int(cfg.nmf.memory_budget_gb * 1024**3 + 2 * (H * W * K + K * T) * 8 + 64 * 1024**2)


# ------------------------------------------------------------------------------------------
# Up to date?
# ------------------------------------------------------------------------------------------

def config_fingerprint(config) -> str:
    """Digest of an effective config (a dict, or TOML text) without the keys that only say where
    files are. Two runs with the same fingerprint and the same input content give the same result."""
    if isinstance(config, str):
        config = tomllib.loads(config)
    data = {s: {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()
                if k not in _IGNORED_KEYS.get(s, ()) and v is not None}
            for s, values in config.items()}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def read_status(out_dir) -> dict:
    try:
        return json.loads((Path(out_dir) / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return {}


def up_to_date(job: Job, cfg) -> tuple[bool, str]:
    """Whether ``job``'s existing result was made from the same input content and the same effective
    config (and finished, figures included). Returns (True, why) or (False, why not)."""
    import h5py

    from ..io.movie import load_movie
    from ..io.provenance import input_identity

    result = job.result_path
    if not result.exists():
        return False, "no result yet"
    try:
        with h5py.File(result, "r") as fh:
            old_hash = fh.attrs.get("input_hash", "")
            old_config = fh.attrs.get("config", "")
        old_hash = old_hash.decode() if isinstance(old_hash, bytes) else str(old_hash)
        old_config = old_config.decode() if isinstance(old_config, bytes) else str(old_config)
        old_fp = config_fingerprint(old_config)
    except Exception as exc:  # noqa: BLE001 - unreadable or foreign file: run again
        return False, f"existing result unreadable ({type(exc).__name__}); running again"
    new_fp = config_fingerprint(job.config)
    if old_fp != new_fp:
        return False, "config changed since the existing result; running again"
    status = read_status(job.out_dir)
    if status.get("status") != "ok" or status.get("config_fingerprint") != new_fp:
        return False, "previous run did not finish (figures or log incomplete); running again"
    with load_movie(job.input, dataset=cfg.input.dataset, axes=cfg.input.axes,
                    check_axes=cfg.input.check_axes) as movie:
        new_hash = input_identity(movie)["input_hash"]
    if new_hash != old_hash:
        return False, "input content changed since the existing result; running again"
    return True, "result up to date (same input content and config)"
