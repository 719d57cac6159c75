"""Configuration: one frozen dataclass per pipeline section, loaded from TOML and validated here.

The sections (one frozen dataclass per stage, every key declared once with its default, documentation
and allowed values) are in :mod:`caimg_nmf._config_sections`; this module loads and checks them. Every key has a
documented default (``caimg-nmf config`` prints them all as TOML, each with its documentation). Unknown sections
or keys, wrong types and out-of-range values are errors that name the source, the key and the
valid choices. A loaded :class:`Config` is immutable: stages read it and never change it;
``Config.replace`` returns a new one.

Relative paths in a config file (``input.path``, ``output.path``) are relative to the file's
folder; they are resolved when used (:meth:`Config.resolve_path`), never rewritten in place. Paths
given any other way (command-line flags and ``--set``, ``run(..., input=...)``, overrides,
:meth:`Config.replace`) are relative to the working folder at the moment they are given, as a shell
user expects: they are made absolute then.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import ConfigError

# The sections live in their own module; they are re-exported here, the one place users import them from.
from ._config_sections import (  # noqa: F401
    SECTIONS, CurateConfig, DetectConfig, FactorizeConfig, FiguresConfig, InputConfig, MotionConfig, NMFConfig,
    OutputConfig, PreprocessConfig, RankConfig, RoisConfig, SomataConfig, SpikesConfig, TracesConfig)

__all__ = ["Config", "load_config", "read_toml", "SECTIONS", "parse_override", "describe_defaults", "check_key",
           "InputConfig", "PreprocessConfig", "MotionConfig", "FactorizeConfig", "NMFConfig", "RankConfig",
           "DetectConfig", "CurateConfig", "SomataConfig", "RoisConfig", "TracesConfig", "SpikesConfig", "OutputConfig",
           "FiguresConfig", "PATH_KEYS"]

# Keys holding a file path: relative to the config file's folder when written in a file, relative to
# the working folder when given as an override.
PATH_KEYS = ("input.path", "output.path")


# --------------------------------------------------------------------------------------------
# The Config object
# --------------------------------------------------------------------------------------------

def _section_attr(cls) -> str:
    return cls.section


def _make_config_class():
    fields = [(_section_attr(cls), cls, field(default_factory=cls)) for cls in SECTIONS]
    return dataclasses.make_dataclass("_ConfigBase", fields, frozen=True)


class Config(_make_config_class()):
    """The whole pipeline configuration: one attribute per section (``cfg.nmf.rank``).

    Build it with :func:`load_config` (TOML file), :meth:`from_dict`, or ``Config()`` for the
    defaults. ``base_dir`` is the folder that relative paths are resolved against. ``explicit``
    holds the ``"section.key"`` names that were given (in a file, a dict or an override) rather than
    left at their defaults.
    """

    def __init__(self, *args, base_dir: str | Path | None = None, source: str = "<defaults>",
                 explicit=frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "base_dir", Path(base_dir) if base_dir is not None else Path.cwd())
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "explicit", frozenset(explicit))

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<dict>", base_dir=None, labels: dict | None = None,
                  explicit=None) -> "Config":
        """Validate a nested mapping ``{section: {key: value}}`` and build a Config.

        ``labels`` maps ``"section.key"`` to what the user typed to set it (e.g. ``"--rank 0"``):
        an error about that key names it instead of ``source``. ``explicit``: the keys given (by
        default, those in ``data``)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the configuration must be a table of sections, got "
                              f"{type(data).__name__}") from None
        by_name = {c.section: c for c in SECTIONS}
        sections = {}
        for name, values in data.items():
            if name not in by_name:
                raise ConfigError(f"{source}: unknown section [{name}]. Valid sections: "
                                  f"{', '.join(sorted(by_name))}.") from None
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{name}] must be a table of keys, got {values!r}") from None
            sections[name] = _build_section(by_name[name], values, source, labels or {})
        if explicit is None:
            explicit = {f"{s}.{k}" for s, values in data.items() for k in values}
        cfg = cls(base_dir=base_dir, source=source, explicit=explicit, **sections)
        _check_cross(cfg, source, labels or {})
        return cfg

    def replace(self, overrides: dict | None = None, *, labels: dict | None = None, **dotted) -> "Config":
        """Return a new Config with ``{"section.key": value}`` overrides applied and validated.

        A relative path given here (``input.path``, ``output.path``, and ``figures.style`` when it names
        a file) is relative to the current working folder, not to the config file's: it is made
        absolute now.

        ``labels``: ``{"section.key": what the user typed}``, named by errors about those keys."""
        merged = self.to_dict()
        given = {**(overrides or {}), **dotted}
        for dotted_key, value in given.items():
            section, key = _split_dotted(dotted_key)
            dotted_key = f"{section}.{key}"
            if dotted_key in PATH_KEYS or (dotted_key == "figures.style" and _names_a_file(value)):
                value = _absolute_from_cwd(value)
            merged.setdefault(section, {})[key] = value
        return Config.from_dict(merged, source=self.source, base_dir=self.base_dir, labels=labels,
                                explicit=self.explicit | set(given))

    # -- output ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Nested plain-Python dict of every key (defaults included); None values are left out."""
        out = {}
        for cls in SECTIONS:
            sec = getattr(self, cls.section)
            out[cls.section] = {f.name: (list(v) if isinstance(v, tuple) else v)
                                for f in dataclasses.fields(sec)
                                if (v := getattr(sec, f.name)) is not None}
        return out

    def to_toml(self) -> str:
        """The effective configuration as TOML text (written into every result)."""
        return _dict_to_toml(self.to_dict())

    def resolve_path(self, path: str) -> Path:
        """Resolve a path from the config against the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def figure_style(self) -> str:
        """``figures.style``, where it names a style file beside the config file, as that file's path
        (a relative path in a config file is relative to the file, as for ``input.path``); a style
        name (``paper``) or any other value as it is."""
        style = self.figures.style
        beside = self.resolve_path(style)
        return str(beside) if style and not Path(style).expanduser().is_absolute() and beside.is_file() else style


def _absolute_from_cwd(value):
    """A path given outside a config file, absolute against the working folder (other values, and
    empty or ``~`` paths, unchanged: validation reports a wrong type)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return os.path.abspath(value)
    return value


def _names_a_file(value) -> bool:
    """A figures.style override that names a file in the working folder (not a style name)."""
    return isinstance(value, (str, os.PathLike)) and bool(os.fspath(value)) and os.path.isfile(value)


def load_config(path=None, overrides: dict | None = None, labels: dict | None = None) -> Config:
    """Load a TOML config file (or the defaults when ``path`` is None) and apply overrides.

    Parameters
    ----------
    path : str or Path, optional
        TOML file. Relative paths inside it are relative to its folder.
    overrides : dict, optional
        ``{"section.key": value}`` applied after the file (e.g. from the command line); paths in
        them are relative to the working folder.
    labels : dict, optional
        ``{"section.key": what the user typed}`` (e.g. ``"--cell-diameter 0.1"``): errors about an
        override name that instead of the config's source.
    """
    if path is None:
        cfg = Config()
    else:
        path = Path(path)
        data = read_toml(path, what="config file", hint="Check the path, or run without a config file "
                         "and give --input.")
        cfg = Config.from_dict(data, source=str(path), base_dir=path.resolve().parent)
    return cfg.replace(overrides, labels=labels) if overrides else cfg


def check_key(dotted: str, value, *, label: str):
    """Check ``value`` against the declaration of config key ``dotted`` (its type and bounds, the one
    declared place) for a flag that is not applied to a Config (e.g. ``caimg-nmf rank --holdout``);
    an error names ``label`` (what the user typed). Returns the value as the key would hold it."""
    section, key = _split_dotted(dotted)
    cls = next(c for c in SECTIONS if c.section == section)
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == key)
    return _check_value(dotted, value, typing.get_type_hints(cls)[key], meta, "", label)


def read_toml(path, *, what: str = "config file", hint: str = "") -> dict:
    """Read a TOML file into a dict, or raise ConfigError saying what is wrong with it."""
    from .io.inputs import check_input_file

    path = check_input_file(path, what, hint=hint, error=ConfigError)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; a {what} must be UTF-8 TOML.") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``section.key=value`` from the command line; the value is read as TOML, else as a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. --set nmf.rank=10") from None
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        _split_dotted(key)
    except ConfigError as exc:
        raise ConfigError(f"--set {text}: {exc}") from None
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word such as  --set nmf.solver=mu
    return key, value


def describe_defaults() -> str:
    """Every section and key with its default and documentation, as commented TOML."""
    lines = ["# caimg_nmf configuration: every key with its default.", ""]
    defaults = Config().to_dict()
    for cls in SECTIONS:
        lines.append(f"[{cls.section}]")
        for f in dataclasses.fields(cls):
            meta = f.metadata
            doc = meta["doc"]
            if meta.get("choices"):
                doc += f" Choices: {', '.join(map(str, meta['choices']))}."
            lines.append(f"# {doc}")
            value = defaults[cls.section].get(f.name)
            lines.append(f"{f.name} = {_toml_value(value)}" if value is not None else f"# {f.name} = (unset)")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Validation: the one place
# --------------------------------------------------------------------------------------------

def _split_dotted(dotted: str) -> tuple[str, str]:
    parts = dotted.split(".")
    valid = {c.section: c for c in SECTIONS}
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"config key {dotted!r} must look like section.key, e.g. nmf.rank") from None
    if parts[0] not in valid:
        raise ConfigError(f"unknown config section {parts[0]!r} in {dotted!r}. Valid sections: "
                          f"{', '.join(sorted(valid))}.") from None
    names = [f.name for f in dataclasses.fields(valid[parts[0]])]
    if parts[1] not in names:
        raise ConfigError(f"unknown config key {dotted!r}. Valid keys in [{parts[0]}]: {', '.join(names)}.") from None
    return parts[0], parts[1]


# Keys that were removed in favour of another: the error names the new place.
_MOVED_KEYS = {"curate.threshold": "[rois] threshold (curation checks the masks the result will hold)"}


def _build_section(cls, values: dict, source: str, labels: dict | None = None):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            moved = _MOVED_KEYS.get(f"{cls.section}.{key}")
            hint = f" It moved: use {moved} instead." if moved else ""
            raise ConfigError(f"{source}: unknown key {key!r} in [{cls.section}].{hint} Valid keys: "
                              f"{', '.join(fields)}.") from None
        where = f"{cls.section}.{key}"
        kwargs[key] = _check_value(where, value, hints[key], fields[key].metadata, source,
                                   (labels or {}).get(where))
    return cls(**kwargs)


def _type_name(tp) -> str:
    if tp is type(None):
        return "nothing"
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            tuple: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def _matches(value, tp) -> bool:
    """Whether ``value`` has the Python type that the key type ``tp`` takes (bounds aside)."""
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is tuple:
        return isinstance(value, (list, tuple))
    return isinstance(value, tp) if isinstance(tp, type) else False


def _bound(value, unit) -> str:
    number = str(value) if isinstance(value, int) else f"{value:g}"
    return f"{number}{' ' + unit if unit else ''}"


def _range_hint(lo, hi, meta, unit) -> str:
    """' (from 2 px up to 100000 px)': the key's valid range, for messages."""
    low = "" if lo is None else f"{'above' if meta.get('min_exclusive') else 'from'} {_bound(lo, unit)}"
    high = "" if hi is None else f"up to {_bound(hi, unit)}"
    return f" ({' '.join(p for p in (low, high) if p)})" if low or high else ""


def _plain(value):
    """A numpy scalar or array given from Python (``rank=np.int64(5)``, ``crop=np.array([...])``) as
    the Python value it holds, so that it is checked as one: numpy's int64/float32 are not int/float."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return value


def _check_value(where: str, value, tp, meta, source, label=None):
    value = _plain(value)

    def fail(why):
        prefix = label if label else f"{source}: {where} = {value!r}"
        raise ConfigError(f"{prefix}: {why}") from None

    words = meta.get("words")
    if words:  # a number, or one of a few words (nmf.rank = "auto")
        if isinstance(value, str):
            tp = next(a for a in typing.get_args(tp) if a is not str)
            if value not in words:
                kind = "true, false" if tp is bool else "an integer"
                fail(f"expected {kind} or {' or '.join(repr(w) for w in words)}")
            return value
        tp = next(a for a in typing.get_args(tp) if a is not str)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType) and value is None and type(None) in typing.get_args(tp):
        return None  # optional key left unset (possible from Python; TOML has no null)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        for option in options:  # the alternative of the value's type decides: its own error says the rule
            if _matches(value, option):
                return _check_value(where, value, option, meta, source, label)
        fail(f"expected {_type_name(tp)}")
    if tp is bool:
        if not isinstance(value, bool):
            fail("expected true or false (TOML booleans are lower case, without quotes)")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("expected an integer")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("expected a number")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float's range
            fail("must be a finite number")
    elif tp is str:
        if not isinstance(value, str):
            fail("expected a string (in quotes)")
    elif tp is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            fail("expected a list, e.g. [1, 2]")
        value = tuple(value)
        length = meta.get("length")
        if length is not None and len(value) not in length:
            fail(f"expected a list of {' or '.join(map(str, length))} items")
        if meta.get("choices"):
            bad = [v for v in value if v not in meta["choices"]]
            if bad:
                fail(f"{bad[0]!r} is not allowed. Valid choices: {', '.join(map(str, meta['choices']))}")
        return value
    if meta.get("choices") is not None and value not in meta["choices"]:
        fail(f"not one of the valid choices: {', '.join(map(str, meta['choices']))}")
    lo, hi, unit = meta.get("min"), meta.get("max"), meta.get("unit")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:
            fail(f"NaN is not allowed; give a number{_range_hint(lo, hi, meta, unit)}")
        if isinstance(value, float) and math.isinf(value):
            fail(f"must be a finite number{_range_hint(lo, hi, meta, unit)}")
        if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
            fail(f"must be {'greater than' if meta.get('min_exclusive') else 'at least'} {_bound(lo, unit)}")
        if hi is not None and value > hi:
            fail(f"must be at most {_bound(hi, unit)}")
    return value


def _check_cross(cfg: Config, source: str, labels: dict) -> None:
    """Checks that involve more than one key. An error names the flags that set the keys involved
    (``labels``), or else the config's source."""
    def fail(msg, *keys):
        given = [labels[k] for k in keys if k in labels]
        raise ConfigError(f"{', '.join(given) if given else source}: {msg}") from None

    if cfg.nmf.beta_loss == "kullback-leibler" and cfg.nmf.solver != "mu":
        fail("nmf.beta_loss = 'kullback-leibler' needs nmf.solver = 'mu' (the only solver for KL).",
             "nmf.beta_loss", "nmf.solver")
    if cfg.rank.min_rank > cfg.rank.max_rank:
        fail(f"rank.min_rank = {cfg.rank.min_rank} is larger than rank.max_rank = {cfg.rank.max_rank}.",
             "rank.min_rank", "rank.max_rank")
    if len(set(cfg.rank.methods)) != len(cfg.rank.methods):
        fail(f"rank.methods = {list(cfg.rank.methods)}: each method at most once.", "rank.methods")
    crop = cfg.preprocess.crop
    if crop:
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in crop):
            fail(f"preprocess.crop = {list(crop)}: expected four nonnegative integers [top, bottom, left, right]",
                 "preprocess.crop")
        if crop[0] >= crop[1] or crop[2] >= crop[3]:
            fail(f"preprocess.crop = {list(crop)}: top must be < bottom and left < right", "preprocess.crop")
    if 0 < cfg.detect.max_binned_frames < 10:
        fail(f"detect.max_binned_frames = {cfg.detect.max_binned_frames}: use 0 (no limit) or at least 10 "
             "(the summary images need that many binned frames).", "detect.max_binned_frames")
    sp = cfg.spikes
    if sp.order == 1 and sp.rise_time_s > 0:
        fail(f"spikes.rise_time_s = {sp.rise_time_s} is used by the AR(2) model only: set spikes.order = 2, "
             "or rise_time_s = 0.", "spikes.rise_time_s", "spikes.order")
    if sp.order == 2 and (sp.decay_time_s > 0) != (sp.rise_time_s > 0):
        fail("spikes.order = 2 takes both spikes.decay_time_s and spikes.rise_time_s, or neither (0: both "
             f"estimated per cell); got decay_time_s = {sp.decay_time_s}, rise_time_s = {sp.rise_time_s}.",
             "spikes.order", "spikes.decay_time_s", "spikes.rise_time_s")
    if cfg.motion.patch_overlap >= cfg.motion.patch_size:
        fail(f"motion.patch_overlap = {cfg.motion.patch_overlap} must be less than motion.patch_size = "
             f"{cfg.motion.patch_size} (neighbouring patches would not advance).",
             "motion.patch_overlap", "motion.patch_size")


# --------------------------------------------------------------------------------------------
# TOML writing (tomllib reads only); enough for our flat sections.
# --------------------------------------------------------------------------------------------

# TOML basic strings: these escapes, and \uXXXX for every other control character (U+0000-U+001F, U+007F).
_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
                 "\r": "\\r"}


def _toml_char(ch: str) -> str:
    return f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + "".join(_TOML_ESCAPES.get(ch) or _toml_char(ch) for ch in v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _dict_to_toml(data: dict) -> str:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)
