"""The result file: HDF5 schema v1 (see docs/schema.md), written atomically, read back as Result.

Core datasets (never renamed): ``/footprints`` (K, H, W) float32, ``/traces`` (K, T) float32,
``/dff`` (K, T) float32, ``/roi_masks`` (K, H, W) uint8, ``/mean_image`` (H, W) float32,
``/nmf/loss`` (n_iter,). Any other array the pipeline produced (background, shifts, spikes,
rejected components, ROI tables…) is stored under its own name in ``extras``. Root attributes
hold the schema version, package version, the TOML config actually used, and the input's identity.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["Result", "SCHEMA_VERSION", "cell_names", "cell_number", "stored_datasets"]

SCHEMA_VERSION = 1
_CORE = ("footprints", "traces", "dff", "roi_masks", "mean_image")


def cell_number(k: int, n: int) -> str:
    """Cell ``k`` of ``n`` as every output names it, without the prefix: ``007`` (3 digits, more
    from 1000 cells); shown on images and axes, where ``cell_007`` would not fit."""
    return f"{k:0{max(3, len(str(max(n - 1, 0))))}d}"


def cell_names(n: int) -> list[str]:
    """The cells' names in every output (CSV columns, ImageJ ROIs, NWB, figure labels):
    ``cell_000``, ``cell_001``, …; cell k is row k of ``/footprints``."""
    return [f"cell_{cell_number(k, n)}" for k in range(n)]


@dataclass
class Result:
    """Cells found in a movie, with everything needed to check and plot them.

    Attributes
    ----------
    footprints : ndarray (K, H, W) float32
        Spatial footprint of each cell, each scaled to a peak of 1.
    traces : ndarray (K, T) float32
        Activity of each cell in movie units (fluorescence at its footprint peak).
    dff : ndarray (K, T) float32
        ΔF/F of each trace.
    roi_masks : ndarray (K, H, W) bool
        Binary mask of each cell (also ``.masks``).
    mean_image : ndarray (H, W) float32
        Mean of the (registered, cropped) movie.
    loss : ndarray (n_iter,)
        Relative error per NMF iteration.
    extras : dict of str -> ndarray
        Further datasets by HDF5 path, e.g. ``"spikes"``, ``"motion/shifts"``,
        ``"rejected/footprints"``.
    attrs : dict
        Root attributes: provenance, config (TOML text), input identity, frame rate, timings.
    """

    footprints: np.ndarray
    traces: np.ndarray
    dff: np.ndarray
    roi_masks: np.ndarray
    mean_image: np.ndarray
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    extras: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        self.footprints = np.asarray(self.footprints, np.float32)
        K = self.footprints.shape[0]
        self.traces = np.asarray(self.traces, np.float32)
        self.dff = np.asarray(self.dff, np.float32)
        self.roi_masks = np.asarray(self.roi_masks, bool)
        self.mean_image = np.asarray(self.mean_image, np.float32)
        if self.footprints.ndim != 3 or self.traces.ndim != 2 or self.traces.shape[0] != K \
                or self.roi_masks.shape != self.footprints.shape or self.dff.shape != self.traces.shape \
                or self.mean_image.shape != self.footprints.shape[1:]:
            raise InputError(
                "not a valid caimg_nmf result: inconsistent result shapes: "
                f"footprints {self.footprints.shape}, traces {self.traces.shape}, "
                f"dff {self.dff.shape}, roi_masks {self.roi_masks.shape}, mean_image {self.mean_image.shape}; "
                "expected (K,H,W), (K,T), (K,T), (K,H,W), (H,W).") from None

    # -- convenient views -----------------------------------------------------------------
    @property
    def masks(self) -> np.ndarray:
        return self.roi_masks

    @property
    def n_cells(self) -> int:
        return int(self.footprints.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.traces.shape[1])

    @property
    def frame_shape(self) -> tuple:
        return tuple(self.mean_image.shape)

    @property
    def frame_rate(self) -> float:
        """Frames per second of the traces (attribute ``frame_rate``; 10 Hz for results without it).
        A value that is not a number within input.frame_rate's bounds is an InputError naming it."""
        from ..config import check_key
        from ..errors import ConfigError

        raw = self.attrs.get("frame_rate")
        if raw is None:
            return 10.0
        try:
            return check_key("input.frame_rate", raw, label=f"{self.path or 'result'}: attribute frame_rate = "
                                                          f"{raw!r}")
        except ConfigError as exc:
            raise InputError(f"{exc}. Set it to the frames per second of the traces (with h5py: "
                             "f.attrs['frame_rate'] = 30.0).") from None

    @property
    def config_toml(self) -> str:
        return str(self.attrs.get("config", ""))

    @property
    def config(self):
        """The configuration the result was made with, as a :class:`caimg_nmf.config.Config`."""
        from ..config import Config, tomllib
        from ..errors import ConfigError

        source = f"{self.path or 'result'}:/config"
        try:
            return Config.from_dict(tomllib.loads(self.config_toml), source=source)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: the config attribute is not valid TOML ({exc}); the result file was "
                              "edited or damaged. `caimg-nmf info --config` shows it as stored.") from None

    def get(self, name, default=None):
        """An extra dataset by name (e.g. ``"spikes"``), or ``default``."""
        return self.extras.get(name.strip("/"), default)

    def __repr__(self):
        T = self.n_frames
        H, W = self.frame_shape
        return f"Result({self.n_cells} cells, {T} frames of {H} x {W}{', from ' + str(self.path) if self.path else ''})"

    # -- HDF5 -------------------------------------------------------------------------------
    def save(self, path, *, overwrite: bool = True, inputs=()) -> Path:
        """Write the result to ``path`` atomically (temporary file, then rename).

        The HDF5 file is built in memory and written with plain ``os.write``: a full disk is then a
        clean OutputError naming the size needed (HDF5 writing into a full disk can crash the
        interpreter), and no partial file is left. ``inputs`` are files ``path`` must never be
        (see :func:`caimg_nmf.io.atomic.refuse_inputs`)."""
        from .atomic import check_output_path, write_bytes_atomic

        path = check_output_path(path, overwrite=overwrite, inputs=inputs)
        write_bytes_atomic(path, self.to_bytes(), overwrite=overwrite, inputs=inputs, what="the result")
        self.path = path
        return path

    def to_bytes(self) -> bytes:
        """The result as the bytes of an HDF5 file (schema v1), built in memory."""
        import h5py

        with h5py.File(f"caimg_nmf-result-{id(self)}.h5", "w", driver="core", backing_store=False) as fh:
            opts = dict(compression="gzip", compression_opts=4, shuffle=True)
            fh.create_dataset("footprints", data=self.footprints, **(opts if self.footprints.size else {}))
            fh.create_dataset("traces", data=self.traces)
            fh.create_dataset("dff", data=self.dff)
            fh.create_dataset("roi_masks", data=self.roi_masks.astype(np.uint8),
                              **(opts if self.roi_masks.size else {}))
            fh.create_dataset("mean_image", data=self.mean_image)
            fh.create_dataset("nmf/loss", data=np.asarray(self.loss, np.float64))
            for name, value in self.extras.items():
                _write_extra(fh, name.strip("/"), value)
            attrs = {"schema_version": SCHEMA_VERSION, "n_cells": self.n_cells, **self.attrs}
            for key, value in attrs.items():
                fh.attrs[key] = _attr_value(value)
            fh.flush()
            return fh.id.get_file_image()

    @classmethod
    def load(cls, path) -> "Result":
        """Read a result file written by :meth:`save` (schema v1)."""
        import h5py

        from .inputs import check_input_file

        path = check_input_file(path, "result file")
        try:
            fh = h5py.File(path, "r")
        except OSError as exc:
            raise InputError(f"{path}: not a readable HDF5 result file ({exc}).") from None
        with fh:
            core, loss, extras, attrs = _read_checked(fh, path)
        return cls(**core, loss=loss, extras=extras, attrs=attrs, path=path)


#: Expected rank of each core dataset, and which of (K, T, H, W) its dimensions are.
_CORE_DIMS = {"footprints": "KHW", "traces": "KT", "dff": "KT", "roi_masks": "KHW", "mean_image": "HW"}


def _invalid(path, why):
    raise InputError(f"{path}: not a valid caimg_nmf result: {why}.") from None


def _read_checked(fh, path):
    """Check a result file's schema, links, kinds, ranks, shapes and declared sizes, then read it."""
    import h5py

    from .hdf5 import check_declared_size, check_links, read_dataset

    missing = [n for n in _CORE if n not in fh and fh.get(n, getlink=True) is None]
    if missing or "schema_version" not in fh.attrs:
        _invalid(path, f"missing {', '.join('/' + n for n in missing) or 'the schema_version attribute'}")
    version = fh.attrs["schema_version"]
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)) or version < 1:
        _invalid(path, f"schema_version is {_read_attr(version)!r}, expected a whole number such as {SCHEMA_VERSION}")
    if version > SCHEMA_VERSION:
        raise InputError(f"{path}: result schema v{int(version)} is newer than this caimg_nmf reads "
                         f"(v{SCHEMA_VERSION}); upgrade caimg_nmf.") from None
    try:
        check_links(fh, path, [*_CORE, "nmf/loss"])
    except InputError as exc:
        _invalid(path, str(exc).split(": ", 1)[-1].rstrip("."))
    sizes = {}
    for name, dims in _CORE_DIMS.items():
        obj = fh[name]
        if not isinstance(obj, h5py.Dataset):
            _invalid(path, f"/{name} is a {type(obj).__name__.lower()}, expected a dataset")
        if obj.shape is None:
            _invalid(path, f"/{name} holds no values: it has no dataspace (an HDF5 null/empty dataset)")
        if len(obj.shape) != len(dims) or not _numeric(obj.dtype):
            _invalid(path, f"/{name} is a {len(obj.shape)}-D {obj.dtype} array of shape {obj.shape}, expected "
                     f"a {len(dims)}-D numeric array ({', '.join(dims)})")
        for d, n in zip(dims, obj.shape):
            if sizes.setdefault(d, (n, name))[0] != n:
                _invalid(path, f"/{name} has shape {obj.shape} but /{sizes[d][1]} says {d} = {sizes[d][0]} "
                         f"(expected footprints (K, H, W), traces and dff (K, T), roi_masks (K, H, W), "
                         f"mean_image (H, W))")
    if "nmf/loss" in fh and not (isinstance(fh["nmf/loss"], h5py.Dataset) and len(fh["nmf/loss"].shape or ()) == 1
                                 and _numeric(fh["nmf/loss"].dtype)):
        _invalid(path, "/nmf/loss is not a 1-D numeric dataset (the relative error per NMF iteration)")
    try:
        for name in _CORE:
            check_declared_size(fh[name], "/" + name, path)
        core = {n: read_dataset(fh[n], "/" + n, path) for n in _CORE}
        loss = read_dataset(fh["nmf/loss"], "/nmf/loss", path) if "nmf/loss" in fh else np.zeros(0)
        extras = {}
        for name, _ in _extra_datasets(fh, path):
            extras[name] = read_dataset(fh[name], "/" + name, path)
    except InputError as exc:
        _invalid(path, str(exc).split(": ", 1)[-1].rstrip("."))
    attrs = {k: _read_attr(v) for k, v in fh.attrs.items()}
    return core, loss, extras, attrs


def _extra_datasets(fh, path):
    from .hdf5 import list_datasets

    return [(name.lstrip("/"), shape) for name, shape in list_datasets(fh, path)
            if name.lstrip("/") not in _CORE and name.lstrip("/") != "nmf/loss"]


def _numeric(dtype) -> bool:
    """Real numbers (complex values would lose their imaginary part in the float32 cast)."""
    return (np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)) or dtype == bool


def _write_extra(fh, name, value):
    if isinstance(value, (list, tuple)) and (len(value) == 0 or isinstance(value[0], str)):
        import h5py

        fh.create_dataset(name, data=np.array(value, dtype=object), dtype=h5py.string_dtype())
        return
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.float64 and arr.ndim >= 2:
        arr = arr.astype(np.float32)
    opts = dict(compression="gzip", compression_opts=4, shuffle=True) if arr.ndim >= 2 and arr.size > 4096 else {}
    if arr.dtype == np.float16 and arr.ndim >= 1 and len(arr):
        # MATLAB's h5read and many HDF5 tools have no half type: float32 on disk, written in blocks
        # of rows so that no float32 copy of the whole array is made (rejected footprints of big fields)
        ds = fh.create_dataset(name, shape=arr.shape, dtype=np.float32, **opts)
        rows = max(1, (64 << 20) // max(1, 4 * arr[0].size))   # blocks of ~64 MB in float32
        for i in range(0, len(arr), rows):
            ds[i:i + rows] = arr[i:i + rows].astype(np.float32)
        return
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    fh.create_dataset(name, data=arr, **opts)


def stored_datasets(path) -> list[tuple[str, tuple, str]]:
    """(name, shape, dtype as stored) of every dataset in a result file, in file order; strings
    are shown as ``string``. What the file holds, not what :meth:`Result.load` makes of it
    (``/roi_masks`` is uint8 on disk, bool in a loaded Result)."""
    import h5py

    out = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            dtype = "string" if h5py.check_string_dtype(obj.dtype) is not None else str(obj.dtype)
            out.append((name, tuple(obj.shape), dtype))

    with h5py.File(path, "r") as fh:
        fh.visititems(visit)
    return out


def _attr_value(value):
    if isinstance(value, (dict, list, tuple)) and not (isinstance(value, (list, tuple)) and value
                                                     and all(isinstance(v, (int, float)) for v in value)):
        return json.dumps(value)
    if value is None:
        return ""
    if isinstance(value, (list, tuple, np.ndarray, np.generic, bool)):
        # HDF5 has no bool (h5py writes an enum that MATLAB's h5readatt cannot read) and MATLAB
        # no half float: uint8 and float32 instead
        arr = np.asarray(value)
        if arr.dtype == bool:
            return arr.astype(np.uint8)
        if arr.dtype == np.float16:
            return arr.astype(np.float32)
    return value


def _read_attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return value
