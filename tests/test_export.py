"""Exporters: CSV, ImageJ ROI zip, NWB — each read back and compared."""
import os
import sys

import numpy as np
import pytest

from caimg_nmf.errors import InputError, OutputError
from caimg_nmf.export import EXPORTERS, export, mask_polygon, read_csv
from caimg_nmf.io import Result

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
        assert header == ["time_s", "cell_0", "cell_1", "cell_2"]
        np.testing.assert_allclose(data[:, 0], np.arange(r.n_frames) / FR)
        np.testing.assert_array_equal(data[:, 1:].T.astype(np.float32), want)
    header, table = read_csv(written[3])
    assert header == ["cell", "centroid_row", "centroid_col", "area_px", "area_um2"]
    np.testing.assert_array_equal(table[:, 3], r.masks.sum(axis=(1, 2)))
    np.testing.assert_allclose(table[:, 4], table[:, 3] * 0.25)
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
    assert [roi.name for roi in rois] == [f"cell_{k:03d}" for k in range(6)]
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
        fl = ophys["Fluorescence"]["RoiResponseSeries"]
        df = ophys["DfOverF"]["RoiResponseSeries"]
        assert fl.rate == FR and df.rate == FR
        assert fl.data.shape == df.data.shape == (r.n_frames, K)
        np.testing.assert_array_equal(np.asarray(fl.data[:]).T, r.traces)
        np.testing.assert_array_equal(np.asarray(df.data[:]).T, r.dff)
        np.testing.assert_array_equal(ophys["SummaryImages"]["mean"].data[:], r.mean_image)
