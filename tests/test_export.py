"""Exporters: CSV, ImageJ ROI zip, NWB — each read back and compared."""
import os
import sys

import numpy as np
import pytest

from caimg_nmf.errors import InputError, OutputError
from caimg_nmf.export import EXPORTERS, export, mask_polygon, read_csv
from caimg_nmf.io import Result
from caimg_nmf.io.result import cell_names

FR = 12.5


def planted(K=4, H=36, W=44, T=50, px=None, seed=1, spikes=True):
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:H, :W]
    fps = np.zeros((K, H, W), np.float32)
    for k in range(K):
        r, c = rng.uniform(0, H), rng.uniform(0, W)  # some cells touch the border
        fps[k] = np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * rng.uniform(1.5, 3.5) ** 2))
    masks = fps > 0.3
    traces = rng.gamma(2.0, 20.0, (K, T)).astype(np.float32)
    dff = (traces / traces.mean(axis=1, keepdims=True) - 1).astype(np.float32)
    attrs = {"frame_rate": FR, "config": ""}
    if px:
        attrs["pixel_size_um"] = px
    extras = {"spikes": (traces > 60).astype(np.float32)} if spikes else {}
    return Result(fps, traces, dff, masks, fps.sum(axis=0) + 10, extras=extras, attrs=attrs)


def test_unknown_target_lists_valid_ones(tmp_path):
    with pytest.raises(InputError) as err:
        export(planted(), "matlab", tmp_path / "x")
    for name in ("csv", "imagej", "nwb"):
        assert name in str(err.value)
    assert set(EXPORTERS) == {"csv", "imagej", "nwb"}


# -- CSV ---------------------------------------------------------------------------------------
def test_csv_round_trip(tmp_path):
    r = planted(K=3, px=0.5)
    written = export(r, "csv", tmp_path / "cells.csv")
    assert [p.name for p in written] == ["cells.csv", "cells_dff.csv", "cells_spikes.csv", "cells_cells.csv"]
    for path, want in zip(written[:3], (r.traces, r.dff, r.get("spikes"))):
        header, data = read_csv(path)
        assert header == ["time_s", "cell_000", "cell_001", "cell_002"]
        np.testing.assert_allclose(data[:, 0], np.arange(r.n_frames) / FR)
        np.testing.assert_array_equal(data[:, 1:].T.astype(np.float32), want)
    header, table = read_csv(written[3])
    assert header == ["cell", "origin", "centroid_row", "centroid_col", "area_px", "area_um2"]
    assert list(table[:, 0]) == ["cell_000", "cell_001", "cell_002"]
    assert list(table[:, 1]) == ["activity"] * 3            # no /cells/origin: the whole method's
    np.testing.assert_array_equal(table[:, 4].astype(float), r.masks.sum(axis=(1, 2)))
    np.testing.assert_allclose(table[:, 5].astype(float), table[:, 4].astype(float) * 0.25)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]


def test_csv_folder_and_empty(tmp_path):
    r = planted(K=0, spikes=False)
    written = export(r, "csv", tmp_path / "out")
    assert [p.name for p in written] == ["traces.csv", "dff.csv", "cells.csv"]
    header, data = read_csv(written[0])
    assert header == ["time_s"] and data.shape == (r.n_frames, 1)


def test_no_overwrite(tmp_path):
    r = planted(K=1)
    export(r, "csv", tmp_path / "a.csv")
    with pytest.raises(OutputError):
        export(r, "csv", tmp_path / "a.csv", overwrite=False)


# -- ImageJ ------------------------------------------------------------------------------------
def test_imagej_round_trip(tmp_path):
    roifile = pytest.importorskip("roifile")
    from skimage.draw import polygon2mask

    from caimg_nmf.figures._common import polygon_area

    r = planted(K=6)
    (path,) = export(r, "imagej", tmp_path / "rois.zip")
    rois = roifile.roiread(path)
    assert [roi.name for roi in rois] == cell_names(6) == [f"cell_{k:03d}" for k in range(6)]
    for k, roi in enumerate(rois):
        xy = roi.coordinates()
        area = r.masks[k].sum()
        assert abs(polygon_area(xy)) == pytest.approx(area, rel=0.15)
        filled = polygon2mask(r.frame_shape, np.column_stack([xy[:, 1] - 0.5, xy[:, 0] - 0.5]))
        assert filled.sum() == pytest.approx(area, rel=0.05)
        assert (filled & r.masks[k]).sum() >= 0.95 * area


def test_mask_polygon_xy_order():
    m = np.zeros((10, 20), bool)
    m[2:4, 5:15] = True  # wide in x
    xy = mask_polygon(m)
    assert np.ptp(xy[:, 0]) == pytest.approx(10, abs=1) and np.ptp(xy[:, 1]) == pytest.approx(2, abs=1)


def test_missing_optional_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    monkeypatch.setitem(sys.modules, "roifile", None)
    with pytest.raises(InputError, match=r"pip install caimg_nmf\[nwb\]"):
        export(planted(), "nwb", tmp_path / "x.nwb")
    with pytest.raises(InputError, match=r"pip install caimg_nmf\[imagej\]"):
        export(planted(), "imagej", tmp_path / "x.zip")


# -- NWB ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [4, 0])
def test_nwb_round_trip(tmp_path, K):
    pytest.importorskip("pynwb")
    from pynwb import NWBHDF5IO

    r = planted(K=K, px=0.9)
    (path,) = export(r, "nwb", tmp_path / "session.nwb", indicator="GCaMP6f")
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ophys = nwb.processing["ophys"]
        plane = nwb.imaging_planes["ImagingPlane"]
        assert plane.imaging_rate == FR and plane.indicator == "GCaMP6f"
        seg = ophys["ImageSegmentation"]["PlaneSegmentation"]
        assert len(seg) == K
        if K:
            np.testing.assert_array_equal(np.asarray(seg["image_mask"][:]), r.footprints)
        assert list(seg["cell_name"][:]) == cell_names(K)
        assert list(seg["origin"][:]) == ["activity"] * K
        fl = ophys["Fluorescence"]["RoiResponseSeries"]
        df = ophys["DfOverF"]["RoiResponseSeries"]
        assert fl.rate == FR and df.rate == FR
        assert fl.data.shape == df.data.shape == (r.n_frames, K)
        np.testing.assert_array_equal(np.asarray(fl.data[:]).T, r.traces)
        np.testing.assert_array_equal(np.asarray(df.data[:]).T, r.dff)
        np.testing.assert_array_equal(ophys["SummaryImages"]["mean"].data[:], r.mean_image)



# -- one naming, the origin column, file modes, compression ---------------------------------------
def test_csv_cells_table_says_where_each_cell_came_from(tmp_path):
    """A user could not tell from the CSV which cells came from activity and which from the mean image."""
    r = planted(K=4)
    r.extras["cells/origin"] = ["activity", "activity", "activity", "mean image"]
    header, table = read_csv(export(r, "csv", tmp_path / "out")[-1])
    assert header[:2] == ["cell", "origin"]
    assert list(table[:, 1]) == ["activity", "activity", "activity", "mean image"]


def test_one_naming_for_cells_in_csv_imagej_and_figures(tmp_path):
    """Cells were cell_0 in CSV, cell_000 in ImageJ and 0 in figures."""
    from caimg_nmf.figures.spatial import contours, footprint_montage
    from caimg_nmf.figures.temporal import traces_stacked

    r = planted(K=12)
    names = cell_names(12)
    assert names[:2] == ["cell_000", "cell_001"] and cell_names(1001)[-1] == "cell_1000"
    header, _ = read_csv(export(r, "csv", tmp_path / "t.csv")[0])
    assert header[1:] == names
    ax = contours(r).axes[0]
    assert [ln.get_label() for ln in ax.get_lines() if ln.get_gid() and ln.get_gid().startswith("contour_")] == names
    assert [t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("cell_id_")] == \
        [n.removeprefix("cell_") for n in names]
    assert [ln.get_label() for ln in traces_stacked(r).axes[0].get_lines()
            if (ln.get_gid() or "").startswith("trace_")] == names
    assert [p.get_label() for p in footprint_montage(r).axes[0].patches
            if (p.get_gid() or "").startswith("footprint_")] == names


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["umask022", "umask002"])
def test_exported_files_follow_the_umask(tmp_path, umask):
    """NWB files were written 0600 (private) whatever the user's umask."""
    formats = ["csv"] + [f for f, mod in (("imagej", "roifile"), ("nwb", "pynwb")) if _importable(mod)]
    old = os.umask(umask)
    try:
        written = [p for f in formats for p in export(planted(K=3), f, tmp_path / f"out_{f}")]
    finally:
        os.umask(old)
    assert len(written) >= 4
    for path in written:
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~umask), path


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_nwb_image_masks_are_compressed(tmp_path):
    """227 cells of 256 x 512 made a 124 MB NWB file: the mostly-zero masks were stored raw."""
    pytest.importorskip("pynwb")
    import h5py

    r = planted(K=60, H=128, W=256, T=40)
    r.footprints[r.footprints < 0.05] = 0                  # zero away from the cell, as NMF's are
    (path,) = export(r, "nwb", tmp_path / "big.nwb")
    raw = r.footprints.nbytes                              # 7.9 MB as float32
    assert path.stat().st_size < raw / 10, path.stat().st_size
    with h5py.File(path, "r") as fh:
        ds = fh["processing/ophys/ImageSegmentation/PlaneSegmentation/image_mask"]
        assert ds.compression == "gzip" and ds.chunks == (1, 128, 256)
        assert ds.id.get_storage_size() < raw / 50, ds.id.get_storage_size()
        np.testing.assert_array_equal(ds[()], r.footprints)


def test_info_prints_dtypes_as_stored(tmp_path, capsys):
    """`caimg-nmf info` listed /roi_masks as bool; the file holds uint8."""
    from caimg_nmf.cli import main

    path = planted(K=4).save(tmp_path / "r.h5")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "/roi_masks (4, 36, 44) uint8" in out
    assert "/footprints (4, 36, 44) float32" in out and "/spikes (4, 50) float32" in out


def test_half_floats_and_bools_are_stored_as_matlab_types(tmp_path):
    """float16 arrays (rejected footprints of big fields) and bools (attributes too) on disk."""
    import h5py

    r = planted(K=2)
    r.extras.update({"rejected/footprints": np.ones((3, 36, 44), np.float16),
                     "rejected/none": np.zeros((0, 36, 44), np.float16), "flags": np.array([True, False])})
    r.attrs.update(nmf_converged=True, scale=np.float16(0.5), flags=[True, False])
    r.save(tmp_path / "r.h5")
    with h5py.File(tmp_path / "r.h5", "r") as fh:
        assert fh["rejected/footprints"].dtype == np.float32 and fh["rejected/none"].dtype == np.float32
        assert fh["flags"].dtype == np.uint8
        for key, want in (("nmf_converged", np.uint8), ("scale", np.float32), ("flags", np.uint8)):
            assert fh.attrs.get_id(key).dtype == want, key
    back = Result.load(tmp_path / "r.h5")
    assert back.attrs["nmf_converged"] == 1 and back.attrs["flags"] == [1, 0]


def _matlab_unreadable(type_id):
    """Why MATLAB's h5read/h5readatt cannot read an HDF5 datatype as a plain array, or None."""
    import h5py

    cls = type_id.get_class()
    if cls == h5py.h5t.FLOAT:
        return None if type_id.get_size() in (4, 8) else f"{8 * type_id.get_size()}-bit float"
    if cls == h5py.h5t.INTEGER:
        return None
    if cls == h5py.h5t.STRING:
        cset = type_id.get_cset()
        if type_id.is_variable_str():
            return None if cset in (h5py.h5t.CSET_UTF8, h5py.h5t.CSET_ASCII) else "string charset"
        return None if cset == h5py.h5t.CSET_ASCII else "fixed-length non-ASCII string"
    names = {h5py.h5t.ENUM: "enum (h5py's bool)", h5py.h5t.REFERENCE: "object reference",
             h5py.h5t.COMPOUND: "compound", h5py.h5t.OPAQUE: "opaque", h5py.h5t.BITFIELD: "bitfield",
             h5py.h5t.VLEN: "variable-length sequence", h5py.h5t.ARRAY: "array type"}
    return names.get(cls, f"HDF5 class {cls}")


@pytest.mark.parametrize("method", ["local", "whole"])
def test_every_dataset_and_attribute_of_a_real_result_reads_in_matlab(tmp_path, five_cells, method):
    """A MATLAB user's h5read failed on /rejected/footprints (float16) and bools (enums)."""
    import h5py

    import caimg_nmf

    opts = dict(rank=5) if method == "whole" else {}
    caimg_nmf.run(input=five_cells[0], output=tmp_path / "r.h5", figures=False, quiet=True,
                  overrides={"factorize.method": method}, **opts)
    bad, seen = [], []
    with h5py.File(tmp_path / "r.h5", "r") as fh:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                seen.append(name)
                why = _matlab_unreadable(obj.id.get_type())
                if why:
                    bad.append(f"/{name}: {why}")
            for key in obj.attrs:
                why = _matlab_unreadable(obj.attrs.get_id(key).get_type())
                if why:
                    bad.append(f"/{name} attribute {key}: {why}")

        visit("", fh)       # the root's attributes
        fh.visititems(visit)
    assert bad == []
    assert {"footprints", "roi_masks", "cells/origin" if method == "local" else "nmf/replicate_errors"} <= set(seen)
    if method == "local":
        assert "rejected/footprints" in seen
