"""The batch file: a ``[batch]`` section plus the usual pipeline sections, applied to every input.

The ``[batch]`` section is parsed here rather than added to :data:`caimg_nmf.config.SECTIONS`:
the pipeline's sections describe *one run* and are written into every result (``config`` attr,
compared to decide whether a result is up to date), while ``[batch]`` describes how a set of runs
is scheduled (workers, executor, output folder) and holds an array of tables
(``[[batch.override]]``) that the flat pipeline sections cannot express. Changing ``workers``
must not make every result look stale. The keys are still declared with :func:`caimg_nmf.config._key`
and checked by the pipeline config's validator, so errors read exactly the same.

Example (see ``configs/batch_example.toml``)::

    [batch]
    inputs = ["raw/*.tif"]
    output_dir = "results"
    workers = 2

    [nmf]
    rank = 5

    [[batch.override]]
    match = "mouse2_*"
    "nmf.rank" = 8
"""
from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .. import config as _config
from .._config_sections import _key
from ..config import SECTIONS, Config, read_toml
from ..errors import ConfigError

__all__ = ["BatchSection", "BatchSpec", "Override", "load_batch", "batch_from_dict"]

#: Keys a batch sets for each recording; the batch file may not set them.
RESERVED = ("input.path", "output.path", "output.overwrite")


@dataclass(frozen=True)
class BatchSection:
    section: ClassVar[str] = "batch"
    inputs: tuple = _key((), "Movies to analyse, one recording each: file paths, folders (a folder of TIFFs is one "
                         "recording) and glob patterns ('raw/*.tif', 'raw/**/*.h5'), relative to the batch file.")
    output_dir: str = _key("batch_results", "Folder for the results, relative to the batch file. Each recording gets "
                           "a sub-folder named after its input file (result.h5, figures/, run.log, run.json); "
                           "summary.csv and index.html go here.")
    workers: int = _key(1, "Recordings analysed at the same time (worker processes, or dask tasks in flight).", min=1)
    executor: str = _key("processes", "'processes': worker processes on this machine (memory-aware); 'dask': "
                         "dask.distributed (optional extra caimg_nmf[dask]); 'serial': one at a time in this "
                         "process (debugging).", choices=("processes", "dask", "serial"))
    scheduler: str = _key("", "dask scheduler address 'tcp://host:port'; empty: start a local cluster with "
                          "`workers` worker processes.")
    memory_gb: float = _key(0.0, "Memory the batch may use on this machine, in GB; 0: the memory free when the batch "
                            "starts. A recording is started only when its estimated peak fits beside the running "
                            "ones.", min=0.0, max=65536.0, unit="GB")
    blas_threads: int = _key(0, "Math-library threads per worker process; 0: CPU cores / workers.", min=0)


@dataclass(frozen=True)
class Override:
    """Per-input settings: ``match`` (glob pattern(s)) and ``{"section.key": value}``."""

    patterns: tuple
    values: dict
    where: str

    def matches(self, rel: str) -> bool:
        """Whether the input (its path relative to the batch file) matches: the pattern is tried on
        the file's stem, its name, and every trailing part of its path ("session3/*")."""
        parts = [q for q in Path(rel).as_posix().split("/") if q]
        candidates = [Path(rel).stem] + ["/".join(parts[i:]) for i in range(len(parts))]
        return any(fnmatch.fnmatchcase(s, p) for p in self.patterns for s in candidates)


@dataclass(frozen=True)
class BatchSpec:
    """A parsed batch file."""

    path: Path | None          # the batch file (None when built from a dict)
    base_dir: Path             # folder that relative paths are resolved against
    batch: BatchSection
    base_config: dict          # pipeline sections as given (validated), applied to every input
    overrides: tuple           # of Override, in file order (later ones win)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<batch dict>"

    @property
    def output_dir(self) -> Path:
        p = Path(self.batch.output_dir).expanduser()
        return (p if p.is_absolute() else self.base_dir / p).resolve()

    def replace_batch(self, **changes) -> "BatchSpec":
        values = {f.name: getattr(self.batch, f.name) for f in dataclasses.fields(self.batch)}
        values.update(changes)
        section = _config._build_section(BatchSection, values, self.source)
        return dataclasses.replace(self, batch=section)

    def config_for(self, rel: str, input_path: Path, result_path: Path) -> Config:
        """The effective pipeline config of one recording (validated)."""
        data = {s: dict(v) for s, v in self.base_config.items()}
        for ov in self.overrides:
            if ov.matches(rel):
                for dotted, value in ov.values.items():
                    section, key = dotted.split(".", 1)
                    data.setdefault(section, {})[key] = value
        data.setdefault("input", {})["path"] = str(input_path)
        data.setdefault("output", {}).update(path=str(result_path), overwrite=True)
        return Config.from_dict(data, source=self.source, base_dir=self.base_dir)


def load_batch(path) -> BatchSpec:
    """Read and validate a batch TOML file (raises ConfigError naming the file and key)."""
    path = Path(path)
    data = read_toml(path, what="batch file")
    return batch_from_dict(data, source=str(path), base_dir=path.resolve().parent, path=path)


def batch_from_dict(data: dict, *, source: str = "<batch dict>", base_dir=None, path=None) -> BatchSpec:
    """Validate ``{"batch": {...}, "nmf": {...}, ...}`` and build a :class:`BatchSpec`."""
    base_dir = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a batch file must be a table of sections") from None
    valid_sections = ["batch", *(c.section for c in SECTIONS)]
    for name, values in data.items():
        if name not in valid_sections:
            raise ConfigError(f"{source}: unknown section [{name}]. Valid sections: "
                              f"{', '.join(sorted(valid_sections))}.") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table of keys, got {values!r}") from None
    if "batch" not in data:
        raise ConfigError(f"{source}: no [batch] section; a batch file needs [batch] with at least "
                          "inputs = [...] (see configs/batch_example.toml).") from None
    raw = dict(data["batch"])
    raw_overrides = raw.pop("override", [])
    if isinstance(raw.get("inputs"), str):
        raw["inputs"] = [raw["inputs"]]
    fields = [f.name for f in dataclasses.fields(BatchSection)]
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {key!r} in [batch]. Valid keys: "
                              f"{', '.join(fields + ['override'])}.") from None
    section = _config._build_section(BatchSection, raw, source)
    if not section.inputs:
        raise ConfigError(f"{source}: [batch] inputs is empty; list the movies, e.g. inputs = [\"raw/*.tif\"].") from None
    if not all(isinstance(s, str) and s for s in section.inputs):
        raise ConfigError(f"{source}: batch.inputs = {list(section.inputs)!r}: expected a list of paths or "
                          "glob patterns (strings).") from None
    if section.executor != "dask" and section.scheduler:
        raise ConfigError(f"{source}: batch.scheduler is set but batch.executor = {section.executor!r}; set "
                          "executor = \"dask\" to use a dask scheduler.") from None

    base = {k: v for k, v in data.items() if k != "batch"}
    for dotted in RESERVED:
        sec, key = dotted.split(".")
        if key in base.get(sec, {}):
            raise ConfigError(f"{source}: {dotted} cannot be set in a batch file: the batch sets it for each "
                              "recording (inputs come from [batch] inputs, results go to [batch] output_dir).") from None
    Config.from_dict(base, source=source, base_dir=base_dir)  # validate the shared sections now

    if isinstance(raw_overrides, dict):
        raw_overrides = [raw_overrides]
    if not isinstance(raw_overrides, list):
        raise ConfigError(f"{source}: batch.override must be an array of tables ([[batch.override]]).") from None
    overrides = []
    for i, table in enumerate(raw_overrides, 1):
        where = f"{source}: [[batch.override]] #{i}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table with match = \"pattern\" and \"section.key\" = value") from None
        table = dict(table)
        match = table.pop("match", None)
        if isinstance(match, str):
            match = [match]
        if not match or not all(isinstance(m, str) and m for m in match):
            raise ConfigError(f"{where}: needs match = \"pattern\" (a glob on the input's name or path, "
                              "e.g. \"mouse2_*\"), or a list of patterns.") from None
        values = {}
        for dotted, value in table.items():
            if isinstance(value, dict):  # `nmf.rank = 8` without quotes parses as a nested table
                for k, v in value.items():
                    values[f"{dotted}.{k}"] = v
            else:
                values[dotted] = value
        for dotted in values:
            if dotted in RESERVED:
                raise ConfigError(f"{where}: {dotted} cannot be overridden; the batch sets it for each recording.") from None
            try:
                _config._split_dotted(dotted)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}. Besides match, keys are \"section.key\", e.g. \"nmf.rank\" = 8.") from None
        ov = Override(patterns=tuple(match), values=values, where=where)
        # validate values now, so that a typo fails before anything runs
        merged = {s: dict(v) for s, v in base.items()}
        for dotted, value in values.items():
            s, k = dotted.split(".")
            merged.setdefault(s, {})[k] = value
        Config.from_dict(merged, source=where, base_dir=base_dir)
        overrides.append(ov)
    return BatchSpec(path=Path(path) if path else None, base_dir=base_dir, batch=section,
                     base_config=base, overrides=tuple(overrides))
