"""Export a result to other tools: CSV tables, ImageJ/Fiji ROI sets, NWB files.

``export(result, to, out_path)`` with ``to`` one of :data:`EXPORTERS`:

- ``"csv"``: traces as CSV (header ``time_s,cell_000,cell_001,…``, one row per frame); ΔF/F and
  spikes (when present) beside it as ``<stem>_dff.csv`` / ``<stem>_spikes.csv``, and a cell table
  ``<stem>_cells.csv`` (name, origin, centroid, area). ``out_path`` is a ``.csv`` file or a folder (then
  ``traces.csv``, ``dff.csv``… inside it).
- ``"imagej"``: an ImageJ/Fiji ROI set (``.zip``), one polygon per cell traced around its mask,
  named ``cell_000``…; needs ``roifile`` (``pip install caimg_nmf[imagej]``).
- ``"nwb"``: an NWB file with an ImagingPlane and an ``ophys`` module holding
  ImageSegmentation/PlaneSegmentation (image masks = footprints, gzip-compressed; columns
  ``cell_name`` and ``origin``), Fluorescence (traces) and DfOverF (ΔF/F); needs ``pynwb`` (``pip install caimg_nmf[nwb]``).

Cells are named as everywhere else (:func:`caimg_nmf.io.result.cell_names`: ``cell_000``…).
Every file is written atomically (temporary file in the same folder, then rename), with the
user's umask.
"""
from __future__ import annotations

import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import InputError
from .io.atomic import atomic_path, atomic_paths
from .io.result import cell_names

__all__ = ["export", "EXPORTERS", "export_csv", "export_imagej", "export_nwb", "mask_polygon", "cell_names"]


def _result(result):
    from .io import Result

    return result if isinstance(result, Result) else Result.load(result)


# -- CSV ---------------------------------------------------------------------------------------
def _csv_targets(out_path: Path):
    if out_path.suffix.lower() == ".csv":
        stem = out_path.with_suffix("")
        return out_path, lambda what: stem.parent / f"{stem.name}_{what}.csv"
    folder = out_path
    return folder / "traces.csv", lambda what: folder / f"{what}.csv"


def _write_table(path: Path, header: list[str], columns: list) -> None:
    """A CSV table: ``columns`` are numeric arrays (written as %.9g) or lists of strings."""
    with open(path, "w", newline="") as fh:
        fh.write(",".join(header) + "\n")
        if not columns or not len(columns[0]):
            return
        if all(isinstance(c, np.ndarray) for c in columns):
            np.savetxt(fh, np.column_stack(columns), delimiter=",", fmt="%.9g")
        else:
            import csv

            text = [c if not isinstance(c, np.ndarray) else [f"{v:.9g}" for v in c] for c in columns]
            csv.writer(fh, lineterminator="\n").writerows(zip(*text))


def _origins(result) -> list[str]:
    """``/cells/origin`` (activity or mean image) per cell; results without it (the whole method,
    older files) found every cell from activity."""
    origin = result.get("cells/origin")
    if origin is not None and len(origin) == result.n_cells:
        return [str(o) for o in origin]
    return ["activity"] * result.n_cells


def export_csv(result, out_path, *, overwrite: bool = True) -> list[Path]:
    """Traces, ΔF/F, spikes (when present) and a cell table as CSV; returns the files written."""
    result = _result(result)
    out_path = Path(out_path)
    traces_path, sibling = _csv_targets(out_path)
    K, T = result.traces.shape
    time_s = np.arange(T) / result.frame_rate
    names = cell_names(K)
    header = ["time_s"] + names
    tables = [(traces_path, result.traces), (sibling("dff"), result.dff)]
    spikes = result.get("spikes")
    if spikes is not None and np.shape(spikes) == (K, T):
        tables.append((sibling("spikes"), np.asarray(spikes)))
    tables = [(path, header, [time_s] + list(np.asarray(values, np.float64))) for path, values in tables]
    # one row per cell: where it is and how big
    from .figures._common import centroids

    cents = centroids(result) if K else np.zeros((0, 2))
    areas = result.get("rois/areas")
    if areas is not None and np.size(areas) == K:
        try:
            areas = np.asarray(areas, np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{result.path}: /rois/areas holds {np.asarray(areas).dtype} values, not numbers "
                             "(the area of each cell in pixels); the result file is damaged. Remove the dataset "
                             "(the areas are then counted from /roi_masks) or run again.") from None
    else:
        areas = result.roi_masks.sum(axis=(1, 2)).astype(np.float64)
    header = ["cell", "origin", "centroid_row", "centroid_col", "area_px"]
    cols = [names, _origins(result), cents[:, 0], cents[:, 1], areas]
    um = result.attrs.get("pixel_size_um")
    try:
        um = float(um) if um not in (None, "") else None
    except (TypeError, ValueError):
        um = None
    if um:
        header.append("area_um2")
        cols.append(areas * um * um)
    tables.append((sibling("cells"), header, cols if K else []))
    with atomic_paths([path for path, _, _ in tables], overwrite=overwrite) as tmps:  # all files or none
        for tmp, (_, head, columns) in zip(tmps, tables):
            _write_table(tmp, head, columns)
    return [path for path, _, _ in tables]


def read_csv(path):
    """Read a CSV written by :func:`export_csv`: ``(header list, (rows, cols) array)``, float, or
    object with the text columns (cell names, origin) as str and the others as float."""
    import csv

    with open(Path(path), newline="") as fh:
        header, *rows = list(csv.reader(fh))
    columns = []
    for j in range(len(header)):
        values = [row[j] for row in rows]
        try:
            columns.append(np.array(values, dtype=np.float64))
        except ValueError:
            columns.append(np.array(values, dtype=object))
    if not rows:
        return header, np.zeros((0, len(header)))
    if all(c.dtype == np.float64 for c in columns):
        return header, np.column_stack(columns)
    return header, np.column_stack([c.astype(object) for c in columns])


# -- ImageJ ------------------------------------------------------------------------------------
def mask_polygon(mask) -> np.ndarray:
    """The outline of a cell mask as (N, 2) ImageJ (x, y) coordinates: the largest contour of
    ``skimage.measure.find_contours`` at 0.5 (closed at the image border), moved by half a pixel
    so that it runs along pixel edges in ImageJ's convention (pixel (x, y) spans x…x+1).
    Empty (0, 2) for an empty mask."""
    from skimage.measure import find_contours

    from .figures._common import polygon_area

    m = np.asarray(mask, bool)
    if not m.any():
        return np.zeros((0, 2))
    pieces = find_contours(np.pad(m, 1).astype(np.float32), 0.5)
    best = max(pieces, key=lambda p: abs(polygon_area(p))) - 1  # (row, col), pixel centres at integers
    if len(best) > 1 and np.allclose(best[0], best[-1]):
        best = best[:-1]
    return np.column_stack([best[:, 1] + 0.5, best[:, 0] + 0.5])


def _need(module, extra):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"exporting to {extra} needs the optional package {module!r}: "
                         f"pip install caimg_nmf[{extra}]") from None


def export_imagej(result, out_path, *, overwrite: bool = True) -> list[Path]:
    """One polygon ROI per cell (mask outline, named ``cell_000``…) in an ImageJ ROI set zip.
    Cells with an empty mask are traced around their footprint at half its peak instead."""
    roifile = _need("roifile", "imagej")
    result = _result(result)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".zip":
        out_path = out_path.with_name(out_path.name + ".zip") if out_path.suffix else out_path / "rois.zip"
    names = cell_names(result.n_cells)
    with atomic_path(out_path, overwrite=overwrite) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for k, name in enumerate(names):
                mask = result.roi_masks[k]
                if not mask.any():
                    mask = result.footprints[k] >= 0.5 * max(float(result.footprints[k].max()), 1e-12)
                pts = mask_polygon(mask)
                if len(pts) < 3:
                    continue
                roi = roifile.ImagejRoi.frompoints(pts.astype(np.float32), name=name)
                zf.writestr(f"{name}.roi", roi.tobytes())
    return [out_path]


# -- NWB ---------------------------------------------------------------------------------------
def export_nwb(result, out_path, *, overwrite: bool = True, session_description: str | None = None,
               identifier: str | None = None, session_start_time=None, indicator: str = "unknown",
               location: str = "unknown", excitation_lambda: float = float("nan"),
               emission_lambda: float = float("nan"), device: str = "microscope") -> list[Path]:
    """An NWB file: ImagingPlane, ``ophys`` module with ImageSegmentation/PlaneSegmentation
    (``image_mask`` = footprints), Fluorescence/RoiResponseSeries (traces) and
    DfOverF/RoiResponseSeries (ΔF/F) at ``rate = frame_rate``; mean (and correlation) images too."""
    pynwb = _need("pynwb", "nwb")
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.common import VectorData
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel, PlaneSegmentation

    result = _result(result)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".nwb":
        out_path = out_path / "result.nwb" if not out_path.suffix else out_path.with_suffix(".nwb")
    import uuid

    from . import __version__

    start = session_start_time or _start_time(result)
    nwb = pynwb.NWBFile(
        session_description=session_description or f"caimg_nmf result from {result.attrs.get('input_path', 'a movie')}",
        identifier=identifier or str(uuid.uuid4()), session_start_time=start,
        source_script=f"caimg_nmf {__version__}", source_script_file_name="caimg_nmf.export")
    dev = nwb.create_device(name=device, description="recording device")
    channel = OpticalChannel(name="OpticalChannel", description="imaging channel", emission_lambda=emission_lambda)
    um = result.attrs.get("pixel_size_um")
    plane_kw = {}
    try:
        if um not in (None, "") and float(um) > 0:
            plane_kw = dict(grid_spacing=[float(um) * 1e-6] * 2, grid_spacing_unit="meters")
    except (TypeError, ValueError):
        pass
    plane = nwb.create_imaging_plane(
        name="ImagingPlane", optical_channel=channel, description="imaging plane", device=dev,
        excitation_lambda=excitation_lambda, imaging_rate=result.frame_rate, indicator=indicator,
        location=location, **plane_kw)
    ophys = nwb.create_processing_module(name="ophys", description="caimg_nmf: NMF cells, traces and ΔF/F")
    seg = ImageSegmentation(name="ImageSegmentation")
    ophys.add(seg)
    planeseg = PlaneSegmentation(name="PlaneSegmentation", description="NMF footprints (peak 1)",
                                 imaging_plane=plane, id=list(range(result.n_cells)),
                                 columns=_roi_columns(result, VectorData, H5DataIO))
    seg.add_plane_segmentation(planeseg)
    region = planeseg.create_roi_table_region(region=list(range(result.n_cells)), description="all cells")
    K, T = result.traces.shape
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)  # attach before adding series so their ROI region shares an ancestor
    fl.create_roi_response_series(
        name="RoiResponseSeries", data=np.ascontiguousarray(result.traces.T), rois=region, unit="a.u.",
        rate=result.frame_rate, starting_time=0.0, description="NMF traces (fluorescence at footprint peak)")
    dff = DfOverF(name="DfOverF")
    ophys.add(dff)
    dff.create_roi_response_series(
        name="RoiResponseSeries", data=np.ascontiguousarray(result.dff.T), rois=region, unit="n.a.",
        rate=result.frame_rate, starting_time=0.0, description="ΔF/F")
    images = [GrayscaleImage(name="mean", data=np.asarray(result.mean_image, np.float32),
                             description="mean image")]
    corr = result.get("correlation_image")
    if corr is not None and np.shape(corr) == result.frame_shape:
        images.append(GrayscaleImage(name="correlation", data=np.asarray(corr, np.float32),
                                     description="local correlation image"))
    ophys.add(Images(name="SummaryImages", images=images, description="summary images"))
    with atomic_path(out_path, overwrite=overwrite, suffix=out_path.suffix) as tmp:
        with pynwb.NWBHDF5IO(str(tmp), "w") as io_:
            io_.write(nwb)
    return [out_path]


def _roi_columns(result, VectorData, H5DataIO):
    """PlaneSegmentation columns: the footprints as ``image_mask``, gzip-compressed in one chunk per
    cell (footprints are mostly zeros: 227 cells of 256 x 512 took 124 MB uncompressed), the cells'
    names and how each was found (``/cells/origin``)."""
    masks = np.asarray(result.footprints, np.float32)
    if result.n_cells:
        masks = H5DataIO(masks, compression="gzip", compression_opts=4, shuffle=True,
                         chunks=(1, *result.frame_shape))
    return [VectorData(name="image_mask", description="Image masks for each ROI", data=masks),
            VectorData(name="cell_name", description="the cell's name in every caimg_nmf output",
                       data=np.array(cell_names(result.n_cells), dtype=str)),
            VectorData(name="origin", description="how the cell was found: activity or mean image",
                       data=np.array(_origins(result), dtype=str))]


def _start_time(result):
    for key in ("session_start_time", "created", "created_at"):
        value = result.attrs.get(key)
        if value:
            try:
                t = datetime.fromisoformat(str(value))
                return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
            except ValueError:
                pass
    return datetime.now(timezone.utc)


#: export target → function(result, out_path, **options) -> list of files written
EXPORTERS = {"csv": export_csv, "imagej": export_imagej, "nwb": export_nwb}


def export(result, to: str, out_path, **options) -> list[Path]:
    """Export ``result`` (a Result or a path to a result file) ``to`` ``"csv"``, ``"imagej"`` or
    ``"nwb"`` at ``out_path``; returns the files written. ``options`` go to the exporter
    (e.g. ``overwrite=False``; for NWB ``indicator="GCaMP6f"``, ``location="V1"``…)."""
    key = str(to).lower().strip()
    if key not in EXPORTERS:
        raise InputError(f"unknown export format {to!r}; valid ones: {', '.join(EXPORTERS)}.")
    return EXPORTERS[key](result, out_path, **options)
