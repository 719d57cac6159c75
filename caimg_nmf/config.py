"""Configuration: one frozen dataclass per pipeline section, loaded from TOML and validated here.

This module is the one place where configuration is declared and checked. Every key has a
documented default (``caimg-nmf config --defaults`` prints them all as TOML). Unknown sections
or keys, wrong types and out-of-range values are errors that name the source, the key and the
valid choices. A loaded :class:`Config` is immutable: stages read it and never change it;
``Config.replace`` returns a new one.

Relative paths in a config file (``input.path``, ``output.path``) are relative to the file's
folder; they are resolved when used (:meth:`Config.resolve_path`), never rewritten in place.
"""
from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import ConfigError

__all__ = ["Config", "load_config", "read_toml", "SECTIONS", "parse_override", "describe_defaults"]


def _key(default, doc, *, choices=None, min=None, max=None, min_exclusive=False, length=None,
         words=None):
    """Declare a config key: its default, its documentation and its allowed values.

    ``words``: strings accepted in place of a number (e.g. ``("auto",)`` for nmf.rank)."""
    meta = {"doc": doc, "choices": choices, "min": min, "max": max,
            "min_exclusive": min_exclusive, "length": length, "words": words}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")  # guards our own code
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------
# Sections. Each is a frozen dataclass with a ``section`` name; add new ones to SECTIONS below.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputConfig:
    section: ClassVar[str] = "input"
    path: str = _key("", "Movie to analyse: a TIFF file, a glob or folder of TIFFs (concatenated in "
                     "time, sorted by name), an HDF5 file, or a .npy file. Relative to the config file.")
    dataset: str = _key("", "HDF5 dataset holding the movie, e.g. '/mov'. Empty: the file's only 3-D dataset.")
    axes: str = _key("TYX", "Axis order of the stored movie: 'TYX' (frames first, as TIFF stores it) or "
                     "'YXT' (height x width x frames, as the NMF primer and MATLAB describe it).",
                     choices=("TYX", "YXT"))
    first_frame: int = _key(0, "First frame to use (0-based).", min=0)
    n_frames: int = _key(0, "Number of frames to use from first_frame; 0 means all.", min=0)
    check_axes: bool = _key(True, "Refuse an axis order that looks wrong (frames 8x longer than wide while the "
                            "other order gives ordinary frames). Set false if such frames are real.")
    frame_rate: float = _key(10.0, "Frames per second of the recording (used for time axes, ΔF/F "
                             "baseline windows and spike inference). Set it: 10 Hz is only a guess.",
                             min=0.0, min_exclusive=True)
    pixel_size_um: Optional[float] = _key(None, "Pixel size in micrometres (scale bars). Omit if unknown.",
                                          min=0.0, min_exclusive=True)
    cell_diameter: Optional[float] = _key(None, "Typical cell diameter in pixels. Omit to estimate it "
                                          "from the movie.", min=2.0)


@dataclass(frozen=True)
class PreprocessConfig:
    section: ClassVar[str] = "preprocess"
    crop: tuple = _key((), "Crop [top, bottom, left, right] in pixels (Python slice bounds, bottom/right "
                       "exclusive) applied before anything else; empty for the whole frame.", length=(0, 4))
    spatial_bin: int = _key(1, "Average blocks of N x N pixels (1 = off).", min=1)
    temporal_bin: int = _key(1, "Average groups of N consecutive frames (1 = off); divides frame_rate.", min=1)
    baseline: str = _key("percentile", "How the movie is made nonnegative around its resting level: "
                         "'percentile' subtracts each pixel's baseline_percentile over time and clips at 0 "
                         "(cells stand out, static background goes); 'min' subtracts the movie's minimum; "
                         "'none' only checks that the movie is already nonnegative.",
                         choices=("percentile", "min", "none"))
    baseline_percentile: float = _key(50.0, "Percentile over time used as each pixel's baseline. The median "
                                      "is a pixel's resting level when cells fire sparsely; a low percentile "
                                      "leaves a positive noise floor after clipping that NMF spreads into "
                                      "every footprint (five-cell sample: worst footprint cosine 0.87 at 10, "
                                      "0.98 at 50).", min=0.0, max=100.0)


@dataclass(frozen=True)
class FactorizeConfig:
    section: ClassVar[str] = "factorize"
    method: str = _key("local", "'local': cells are found where the movie's pixels co-fluctuate (correlation "
                       "image), then a local NMF fits each cell's footprint within about one cell diameter "
                       "of its seed together with smooth background components; the number of cells "
                       "follows from the data (set input.cell_diameter). 'whole': one NMF of the whole "
                       "baseline-subtracted field with nmf.rank components (the NMF primer's recipe; fine "
                       "for small, clean movies, finds background on real recordings).",
                       choices=("local", "whole"))


@dataclass(frozen=True)
class NMFConfig:
    section: ClassVar[str] = "nmf"
    rank: Union[int, str] = _key(5, "Number of components K for factorize.method = 'whole' (the local method "
                                 "finds the number of cells from the data), or \"auto\" to choose it by "
                                 "cross-validation over the ranks of the [rank] section (caimg-nmf rank "
                                 "shows the evidence).", min=1, words=("auto",))
    solver: str = _key("hals", "NMF solver.", choices=("hals", "mu", "als", "anls"))
    beta_loss: str = _key("frobenius", "Loss: 'frobenius' (Gaussian noise) or 'kullback-leibler' (Poisson "
                          "photon counts; solver 'mu' only).", choices=("frobenius", "kullback-leibler"))
    init: str = _key("nndsvda", "Initialisation.", choices=("random", "nndsvd", "nndsvda", "nndsvdar"))
    replicates: int = _key(1, "Independent starts; the lowest-error one is kept.", min=1)
    max_iter: int = _key(300, "Iteration limit per replicate.", min=1)
    tol: float = _key(1e-4, "Stop when the relative decrease of the error falls below this.", min=0.0)
    l1_W: float = _key(0.0, "L1 (sparsity) penalty on footprints.", min=0.0)
    l1_H: float = _key(0.0, "L1 (sparsity) penalty on traces.", min=0.0)
    seed: int = _key(0, "Random seed: the same input, config and seed give the same result.", min=0)
    n_jobs: int = _key(1, "Parallel workers for replicates.", min=1)
    backend: str = _key("numpy", "Compute backend: 'numpy', or 'torch' (optional extra caimg_nmf[gpu]).",
                        choices=("numpy", "torch"))
    memory_budget_gb: float = _key(2.0, "Memory the NMF may use; larger movies are streamed from disk.",
                                   min=0.0, min_exclusive=True)


# --- rank selection (nmf.rank = "auto" and caimg-nmf rank) -------------------------------------
@dataclass(frozen=True)
class RankConfig:
    section: ClassVar[str] = "rank"
    min_rank: int = _key(1, "Smallest rank tried when nmf.rank = \"auto\".", min=1)
    max_rank: int = _key(20, "Largest rank tried (capped at min(pixels, frames)).", min=1)
    step: int = _key(1, "Step between the ranks tried.", min=1)
    replicates: int = _key(5, "Held-out masks (cross-validation) and independent fits (stability) per rank.",
                           min=2)
    holdout: float = _key(0.1, "Fraction of the movie's entries hidden in each cross-validation mask.",
                          min=0.0, max=0.5, min_exclusive=True)
    methods: tuple = _key(("vaf", "cv", "stability"), "Evidence computed; the recommendation uses 'cv' "
                          "when present, else 'stability', else the 'vaf' elbow.",
                          choices=("vaf", "cv", "stability"), length=(1, 2, 3))


@dataclass(frozen=True)
class RoisConfig:
    section: ClassVar[str] = "rois"
    threshold: float = _key(0.3, "A pixel belongs to a cell's mask when its footprint value is at least "
                            "this fraction of the footprint's peak (the region holding the peak is kept).",
                            min=0.0, max=1.0, min_exclusive=True)
    smooth: float = _key(0.7, "Gaussian sigma (pixels) applied to a footprint before thresholding, so that "
                          "pixel noise in the footprint does not cut its mask into pieces (0 = none).", min=0.0)
    fill_holes: bool = _key(True, "Fill holes enclosed by a mask: GCaMP somata are rings around a dark "
                            "nucleus, which belongs to the cell.")
    min_area: int = _key(4, "Masks smaller than this many pixels are flagged.", min=0)


@dataclass(frozen=True)
class TracesConfig:
    section: ClassVar[str] = "traces"
    baseline_percentile: float = _key(8.0, "Running percentile used as the baseline F0 of ΔF/F.", min=0.0, max=100.0)
    baseline_window_s: float = _key(30.0, "Length of the running-percentile window in seconds.",
                                    min=0.0, min_exclusive=True)


@dataclass(frozen=True)
class OutputConfig:
    section: ClassVar[str] = "output"
    path: str = _key("", "Result HDF5 file. Empty: '<input name>_caimg/result.h5' in the current folder. "
                     "Figures go to a 'figures' folder beside it.")
    overwrite: bool = _key(False, "Replace an existing result at output.path (atomically).")


@dataclass(frozen=True)
class FiguresConfig:
    section: ClassVar[str] = "figures"
    enabled: bool = _key(True, "Write figures after the run.")
    formats: tuple = _key(("png", "pdf"), "File formats to write.", choices=("png", "pdf", "svg"))
    style: str = _key("paper", "'paper' (journal column sizes, 7 pt text), 'screen' (slides, posters), or "
                      "the path of your own matplotlib .mplstyle file.")
    dpi: int = _key(300, "Resolution of raster figures.", min=50)


@dataclass(frozen=True)
class MotionConfig:
    section: ClassVar[str] = "motion"
    method: str = _key("rigid", "Motion correction: 'none' (frames are only converted to float32), 'rigid' "
                       "(one sub-pixel translation per frame, by phase correlation with a template) or "
                       "'piecewise' (a translation per overlapping patch, blended into a smooth "
                       "displacement field; for tissue that warps). 'piecewise' falls back to 'rigid' "
                       "when the frame holds fewer than two patches.",
                       choices=("none", "rigid", "piecewise"))
    max_shift: float = _key(10.0, "Largest shift searched, in pixels along each axis; estimated shifts are "
                            "clipped to +-max_shift. It is also capped at a quarter of the frame's height "
                            "(rows) or width (columns).", min=0.0)
    upsample: int = _key(10, "Sub-pixel precision of the phase correlation: shifts are found to 1/upsample "
                         "pixel (1 = whole pixels only).", min=1)
    template_frames: int = _key(200, "Number of frames, spread over the movie, used to build the template.", min=1)
    iterations: int = _key(1, "Template refinement passes: after registering the template frames to their "
                           "mean, register them again this many times to the improved template.", min=0)
    patch_size: int = _key(128, "Side of the square patches of 'piecewise', in pixels.", min=8)
    patch_overlap: int = _key(32, "Overlap of neighbouring patches of 'piecewise', in pixels (less than "
                              "patch_size).", min=0)
    max_deviation: float = _key(3.0, "'piecewise': largest difference, in pixels along each axis, between a "
                                "patch's shift and the frame's rigid shift.", min=0.0)
    chunk_frames: int = _key(200, "Frames read, registered and written at a time (bounds the memory used).",
                             min=1)
    spatial_filter_sigma: float = _key(1.0, "Band-pass applied before correlation, so that noise and slow "
                                       "background do not drive the registration: Gaussian smoothing with "
                                       "this sigma (pixels) minus a Gaussian 8 times wider. 0 = off. The "
                                       "registered frames themselves are not filtered.", min=0.0)


@dataclass(frozen=True)
class DetectConfig:
    section: ClassVar[str] = "detect"
    summary_rate: float = _key(4.0, "Frames are averaged in groups to about this rate (Hz) for the summary "
                               "images and the footprint fit; traces are then fitted at the full rate.",
                               min=0.0, min_exclusive=True)
    baseline_percentile: float = _key(10.0, "Percentile over time of each (time-binned) pixel used as its "
                                      "resting level when computing the correlation and peak-to-noise images.",
                                      min=0.0, max=100.0)
    min_corr: float = _key(0.2, "Seeds need a local correlation (pixel vs. its 8 neighbours, on the "
                           "high-passed movie) of at least this.", min=-1.0, max=1.0)
    min_pnr: float = _key(6.0, "Seeds need a peak-to-noise ratio (peak of the smoothed, high-passed trace over "
                          "its noise) of at least this.", min=0.0)
    seed_separation: float = _key(0.4, "Minimum distance between seeds, in cell diameters.", min=0.0)
    max_cells: int = _key(0, "At most this many seeds, best first (0 = no limit).", min=0)
    window_radius: float = _key(1.0, "A footprint may be nonzero only within this radius (in cell diameters) "
                                "of its seed. At least 0.8: a cell must not reach its window's rim, which "
                                "marks spread-out background (max_rim).", min=0.8)
    background_spacing: float = _key(3.0, "Neuropil/background is modelled by smooth bilinear 'tent' footprints on "
                                     "a grid with this spacing (in cell diameters), each with its own trace.",
                                     min=0.5)
    tile_size: int = _key(96, "The fit runs on square tiles of this many pixels (plus a margin), one at a time.",
                          min=16)
    n_iter: int = _key(40, "Alternating HALS iterations for footprints and traces on the time-binned movie.", min=1)
    n_trace_iter: int = _key(10, "HALS iterations for the traces at the full frame rate.", min=0)
    reseed_passes: int = _key(1, "After the first fit, look for more seeds in the residual (movie minus the fitted "
                              "cells and background) this many times, refitting after each: finds cells "
                              "hidden next to brighter ones.", min=0)
    reseed_separation: float = _key(0.4, "Seeds found in the residual must lie at least this many cell "
                                    "diameters from every existing seed.", min=0.0)
    max_rim: float = _key(0.15, "Components whose mask covers more than this fraction of the outer ring of their "
                          "window (radius window_radius diameters) are spread-out background, not cells: "
                          "dropped before the last fit.", min=0.0, max=1.0)
    merge_corr: float = _key(0.7, "Components whose masks touch and whose detrended traces correlate at least "
                             "this much are pieces of one cell: they are merged and refitted (1 = never).",
                             min=0.0, max=1.0)


@dataclass(frozen=True)
class CurateConfig:
    section: ClassVar[str] = "curate"
    min_area: float = _key(0.5, "Reject masks smaller than this fraction of a disc of one cell diameter.", min=0.0)
    max_area: float = _key(4.0, "Reject masks larger than this many discs of one cell diameter.", min=0.0)
    min_snr: float = _key(3.0, "Reject cells whose trace peak (3-frame mean, above its median) is below this "
                          "many noise standard deviations.", min=0.0)
    min_concentration: float = _key(0.85, "Reject components with less than this fraction of their footprint's "
                                    "energy (sum of squares) inside their mask: a cell's footprint is concentrated "
                                    "on its soma, while noise and neuropil pieces are scattered over their window.",
                                    min=0.0, max=1.0)
    min_compactness: float = _key(0.35, "Reject masks whose area / area of the enclosing disc (about the centroid) "
                                  "is below this (long thin shapes: dendrites, vessels).", min=0.0, max=1.0)
    min_consistency: float = _key(0.4, "Reject components whose event image (the movie at the 5 % of frames where "
                                  "the trace is highest, minus the movie where it is in its lower half) correlates "
                                  "less than this with the footprint: what lights up with the trace must look like "
                                  "the footprint. -1 turns the check off.", min=-1.0, max=1.0)
    merge_overlap: float = _key(0.5, "Two cells are duplicates when the smaller mask lies at least this fraction "
                                "inside the other ...", min=0.0, max=1.0)
    merge_corr: float = _key(0.8, "... and their traces correlate at least this much; the weaker is merged "
                             "into the stronger.", min=-1.0, max=1.0)


@dataclass(frozen=True)
class SpikesConfig:
    section: ClassVar[str] = "spikes"
    enabled: bool = _key(True, "Infer spikes from the traces (AR(1) nonnegative deconvolution).")
    decay_time_s: float = _key(0.0, "Decay time constant of the indicator in seconds; 0 estimates it per cell "
                               "from the trace's autocorrelation (GCaMP6s ~1.0, GCaMP6f ~0.4).", min=0.0)
    min_spike: float = _key(2.5, "Smallest spike kept, in noise standard deviations of the trace.", min=0.0)
    baseline_percentile: float = _key(20.0, "Percentile of the trace used as its baseline before "
                                      "deconvolution.", min=0.0, max=100.0)


SECTIONS: tuple = (InputConfig, PreprocessConfig, MotionConfig, FactorizeConfig, NMFConfig, RankConfig,
                   DetectConfig, CurateConfig, RoisConfig, TracesConfig, SpikesConfig, OutputConfig,
                   FiguresConfig)


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
    defaults. ``base_dir`` is the folder that relative paths are resolved against.
    """

    def __init__(self, *args, base_dir: str | Path | None = None, source: str = "<defaults>", **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "base_dir", Path(base_dir) if base_dir is not None else Path.cwd())
        object.__setattr__(self, "source", source)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<dict>", base_dir=None) -> "Config":
        """Validate a nested mapping ``{section: {key: value}}`` and build a Config."""
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
            sections[name] = _build_section(by_name[name], values, source)
        cfg = cls(base_dir=base_dir, source=source, **sections)
        _check_cross(cfg, source)
        return cfg

    def replace(self, overrides: dict | None = None, **dotted) -> "Config":
        """Return a new Config with ``{"section.key": value}`` overrides applied and validated."""
        merged = self.to_dict()
        for dotted_key, value in {**(overrides or {}), **dotted}.items():
            section, key = _split_dotted(dotted_key)
            merged.setdefault(section, {})[key] = value
        return Config.from_dict(merged, source=self.source, base_dir=self.base_dir)

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


def load_config(path=None, overrides: dict | None = None) -> Config:
    """Load a TOML config file (or the defaults when ``path`` is None) and apply overrides.

    Parameters
    ----------
    path : str or Path, optional
        TOML file. Relative paths inside it are relative to its folder.
    overrides : dict, optional
        ``{"section.key": value}`` applied after the file (e.g. from the command line).
    """
    if path is None:
        cfg = Config()
    else:
        path = Path(path)
        data = read_toml(path, what="config file", hint="Check the path, or run without a config file "
                         "and give --input.")
        cfg = Config.from_dict(data, source=str(path), base_dir=path.resolve().parent)
    return cfg.replace(overrides) if overrides else cfg


def read_toml(path, *, what: str = "config file", hint: str = "") -> dict:
    """Read a TOML file into a dict, or raise ConfigError saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}.{' ' + hint if hint else ''}") from None
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
    _split_dotted(key)
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


def _build_section(cls, values: dict, source: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            moved = _MOVED_KEYS.get(f"{cls.section}.{key}")
            hint = f" It moved: use {moved} instead." if moved else ""
            raise ConfigError(f"{source}: unknown key {key!r} in [{cls.section}].{hint} Valid keys: "
                              f"{', '.join(fields)}.") from None
        kwargs[key] = _check_value(f"{cls.section}.{key}", value, hints[key], fields[key].metadata, source)
    return cls(**kwargs)


def _type_name(tp) -> str:
    if tp is type(None):
        return "nothing"
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            tuple: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def _check_value(where: str, value, tp, meta, source):
    def fail(why):
        raise ConfigError(f"{source}: {where} = {value!r}: {why}") from None

    words = meta.get("words")
    if words:  # a number, or one of a few words (nmf.rank = "auto")
        if isinstance(value, str):
            if value not in words:
                fail(f"expected an integer or {' or '.join(repr(w) for w in words)}")
            return value
        tp = next(a for a in typing.get_args(tp) if a is not str)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType) and value is None and type(None) in typing.get_args(tp):
        return None  # optional key left unset (possible from Python; TOML has no null)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        errors = []
        for option in options:  # first matching alternative wins
            try:
                return _check_value(where, value, option, meta, source)
            except ConfigError as exc:
                errors.append(str(exc))
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
        value = float(value)
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
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:
            fail("NaN is not allowed")
        if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
            fail(f"must be {'greater than' if meta.get('min_exclusive') else 'at least'} {lo}")
        if hi is not None and value > hi:
            fail(f"must be at most {hi}")
    return value


def _check_cross(cfg: Config, source: str) -> None:
    """Checks that involve more than one key."""
    def fail(msg):
        raise ConfigError(f"{source}: {msg}") from None

    if cfg.nmf.beta_loss == "kullback-leibler" and cfg.nmf.solver != "mu":
        fail("nmf.beta_loss = 'kullback-leibler' needs nmf.solver = 'mu' (the only solver for KL).")
    if cfg.rank.min_rank > cfg.rank.max_rank:
        fail(f"rank.min_rank = {cfg.rank.min_rank} is larger than rank.max_rank = {cfg.rank.max_rank}.")
    if len(set(cfg.rank.methods)) != len(cfg.rank.methods):
        fail(f"rank.methods = {list(cfg.rank.methods)}: each method at most once.")
    crop = cfg.preprocess.crop
    if crop:
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in crop):
            fail(f"preprocess.crop = {list(crop)}: expected four nonnegative integers [top, bottom, left, right]")
        if crop[0] >= crop[1] or crop[2] >= crop[3]:
            fail(f"preprocess.crop = {list(crop)}: top must be < bottom and left < right")
    if cfg.motion.patch_overlap >= cfg.motion.patch_size:
        fail(f"motion.patch_overlap = {cfg.motion.patch_overlap} must be less than motion.patch_size = "
             f"{cfg.motion.patch_size} (neighbouring patches would not advance).")


# --------------------------------------------------------------------------------------------
# TOML writing (tomllib reads only); enough for our flat sections.
# --------------------------------------------------------------------------------------------

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
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
