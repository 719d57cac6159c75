import re

import h5py
import numpy as np
import pytest
import tifffile

from caimg_nmf.errors import InputError
from caimg_nmf.io import load_movie


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return (rng.random((12, 9, 14)) * 1000).astype(np.uint16)  # non-square frames


def test_tiff_lazy_and_exact(tmp_path, stack):
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, stack)
    m = load_movie(p)
    assert m.shape == (12, 9, 14) and m.dtype == np.uint16
    np.testing.assert_array_equal(m[3:7], stack[3:7])
    np.testing.assert_array_equal(m[5], stack[5])
    np.testing.assert_array_equal(m.to_array(), stack)


def test_compressed_bigtiff_and_imagej(tmp_path, stack):
    p = tmp_path / "c.tif"
    tifffile.imwrite(p, stack, compression="zlib", bigtiff=True)
    np.testing.assert_array_equal(load_movie(p)[2:5], stack[2:5])
    q = tmp_path / "ij.tif"
    tifffile.imwrite(q, stack[:, None, None], imagej=True, metadata={"axes": "TZCYX"})
    m = load_movie(q)
    assert m.shape == stack.shape
    np.testing.assert_array_equal(m.to_array(), stack)


def test_tiff_list_and_glob_concatenate_in_time(tmp_path, stack):
    for i, part in enumerate((stack[:5], stack[5:])):
        tifffile.imwrite(tmp_path / f"part{i}.tif", part)
    m = load_movie(str(tmp_path / "part*.tif"))
    assert m.shape == stack.shape
    np.testing.assert_array_equal(m[3:8], stack[3:8])
    np.testing.assert_array_equal(load_movie(tmp_path).to_array(), stack)


def test_hdf5_named_and_found(tmp_path, stack):
    p = tmp_path / "m.h5"
    with h5py.File(p, "w") as f:
        f["meta/ts"] = np.arange(12)
        f["mov"] = stack
    np.testing.assert_array_equal(load_movie(p).to_array(), stack)
    np.testing.assert_array_equal(load_movie(p, dataset="/mov")[1:3], stack[1:3])
    with pytest.raises(InputError, match="no dataset '/nope'.*mov"):
        load_movie(p, dataset="/nope")


def test_hdf5_ambiguous(tmp_path, stack):
    p = tmp_path / "two.h5"
    with h5py.File(p, "w") as f:
        f["a"] = stack
        f["b"] = stack
    with pytest.raises(InputError, match="2 3-D datasets.*input.dataset"):
        load_movie(p)


def test_npy_memmap_and_yxt(tmp_path, stack):
    p = tmp_path / "m.npy"
    np.save(p, np.moveaxis(stack, 0, 2))  # stored height x width x frames
    m = load_movie(p, axes="YXT")
    assert m.shape == stack.shape
    np.testing.assert_array_equal(m[4:9], stack[4:9])


def test_errors(tmp_path, stack):
    with pytest.raises(InputError, match="not found"):
        load_movie(tmp_path / "missing.tif")
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(InputError, match="not a TIFF, HDF5 or .npy"):
        load_movie(bad)
    fake = tmp_path / "fake.tif"
    fake.write_bytes(b"not really a tiff")
    with pytest.raises(InputError, match="not a readable TIFF"):
        load_movie(fake)
    img = tmp_path / "img.tif"
    tifffile.imwrite(img, stack[0])
    with pytest.raises(InputError, match="single 2-D image"):
        load_movie(img)
    # a height x width x frames array read as frames first: frames 64 x 1000 look wrong
    yxt = np.zeros((64, 64, 1000), np.float32)
    with pytest.raises(InputError, match="input.axes = 'YXT'"):
        load_movie(yxt)
    assert load_movie(yxt, axes="YXT").shape == (1000, 64, 64)


def test_truncated_tiff_names_the_file(tmp_path, stack):
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, stack, compression="zlib")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="t.tif"):
        load_movie(p).to_array()


def test_truncated_hdf5_names_the_file(tmp_path, stack):
    p = tmp_path / "m.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("mov", data=stack, chunks=(1, 9, 14), compression="gzip")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="m.h5"):
        load_movie(p).to_array()


# -- pixel size from the file's metadata (input.pixel_size_um when not configured) ---------------
def _imagej(path, stack, um_per_px, unit):
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / um_per_px, 1 / um_per_px),
                     metadata={"axes": "TYX", "unit": unit})
    return path


@pytest.mark.parametrize("unit, scale", [("micron", 1.0), ("um", 1.0), ("\\u00B5m", 1.0), ("nm", 1e-3),
                                         ("mm", 1e3)], ids=["micron", "um", "imagej-escaped-mu", "nm", "mm"])
def test_pixel_size_from_imagej_resolution_and_unit(tmp_path, stack, unit, scale):
    """An ImageJ TIFF saved with Image > Properties: 0.8 <unit> per pixel (XResolution 1.25 per unit)."""
    m = load_movie(_imagej(tmp_path / "ij.tif", stack, 0.8, unit))
    assert m.pixel_size_um == pytest.approx(0.8 * scale)
    assert m.subset(2, 5).pixel_size_um == pytest.approx(0.8 * scale)   # views keep it


def test_pixel_size_from_compressed_imagej_and_a_list_of_files(tmp_path, stack):
    """Compressed (read page by page, not memory-mapped) and a folder of such files: the first file's."""
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate((stack[:6], stack[6:])):
        tifffile.imwrite(folder / f"p{i}.tif", part, imagej=True, resolution=(2.0, 2.0), compression="zlib",
                         metadata={"axes": "TYX", "unit": "micron"})
    assert load_movie(folder / "p0.tif").pixel_size_um == pytest.approx(0.5)
    assert load_movie(folder).pixel_size_um == pytest.approx(0.5)


@pytest.mark.parametrize("size, unit, expected", [(1.1, None, 1.1), (550.0, "nm", 0.55), (0.002, "mm", 2.0)])
def test_pixel_size_from_ome_physical_size(tmp_path, stack, size, unit, expected):
    """An OME-TIFF whose Pixels element has PhysicalSizeX (µm unless PhysicalSizeXUnit says otherwise)."""
    meta = {"axes": "TYX", "PhysicalSizeX": size, "PhysicalSizeY": size}
    if unit:
        meta.update(PhysicalSizeXUnit=unit, PhysicalSizeYUnit=unit)
    path = tmp_path / "m.ome.tif"
    tifffile.imwrite(path, stack, ome=True, metadata=meta)
    assert load_movie(path).pixel_size_um == pytest.approx(expected)


def test_no_pixel_size_without_a_length_unit(tmp_path, stack):
    """TIFF's own resolution (72 dpi by default) and ImageJ's 'pixel' unit say nothing about the sample;
    neither does an array or a .npy file."""
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, stack, resolution=(72, 72))
    assert load_movie(plain).pixel_size_um is None
    assert load_movie(_imagej(tmp_path / "px.tif", stack, 1.0, "pixel")).pixel_size_um is None
    np.save(tmp_path / "m.npy", stack)
    assert load_movie(tmp_path / "m.npy").pixel_size_um is None
    assert load_movie(stack).pixel_size_um is None


@pytest.mark.parametrize("where, key, value, expected", [("dataset", "pixel_size_um", 0.9, 0.9),
                                                         ("root", "um_per_pixel", 1.5, 1.5),
                                                         ("dataset", "element_size_um", [1.0, 2.0, 0.6], 0.6)])
def test_pixel_size_from_hdf5_attrs(tmp_path, stack, where, key, value, expected):
    """An attribute on the movie's dataset or the file's root; element_size_um (Fiji, ilastik) per axis, x last."""
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as fh:
        fh["mov"] = stack
        (fh["mov"] if where == "dataset" else fh).attrs[key] = value
    assert load_movie(path).pixel_size_um == pytest.approx(expected)


def _run_small(path, out, *extra):
    from hostile import run_cli

    from caimg_nmf.io import Result

    outcome = run_cli(["run", "-i", path, "-o", out, "--no-figures", "--rank", "2", "--frame-rate", "10",
                       "--set", "factorize.method=whole", *extra])
    assert outcome.code == 0, outcome.text
    return Result.load(out).attrs, outcome.text


def test_pixel_size_recorded_with_its_source(tmp_path):
    """Nothing says it: no pixel_size_um (scale bars in px), source 'unknown'. The file says 0.8 µm: it is
    used and recorded as from the file, times preprocess.spatial_bin. input.pixel_size_um wins, with a
    warning when it disagrees with the file."""
    from caimg_nmf.synthetic import make_movie

    movie = make_movie(3, (24, 24), 40, seed=0).movie.astype(np.float32)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, movie)
    attrs, _ = _run_small(plain, tmp_path / "a.h5")
    assert "pixel_size_um" not in attrs and attrs["pixel_size_source"] == "unknown"

    tagged = _imagej(tmp_path / "tagged.tif", movie, 0.8, "micron")
    attrs, text = _run_small(tagged, tmp_path / "b.h5")
    assert (attrs["pixel_size_um"], attrs["pixel_size_source"]) == (pytest.approx(0.8), "file")
    assert "pixel size 0.8 µm, as the file states" in text
    attrs, _ = _run_small(tagged, tmp_path / "c.h5", "--set", "preprocess.spatial_bin=2")
    assert attrs["pixel_size_um"] == pytest.approx(1.6)

    attrs, text = _run_small(tagged, tmp_path / "d.h5", "--set", "input.pixel_size_um=1.2")
    assert "input.pixel_size_um = 1.2 µm disagrees with the 0.8 µm that" in text
    assert (attrs["pixel_size_um"], attrs["pixel_size_source"]) == (pytest.approx(1.2), "config")


@pytest.mark.parametrize("size, unit, stated", [(5.0, "mm", "5000 µm"), (1e-4, "nm", "1e-07 µm")],
                         ids=["5-mm-per-pixel", "0.1-pm-per-pixel"])
def test_absurd_pixel_size_in_the_file_is_refused(tmp_path, size, unit, stated):
    """An ImageJ TIFF whose resolution says 1 pixel per 5 mm, or per 0.1 pm (unit mix-ups): refused with
    what to set, before anything is written; input.pixel_size_um overrides it."""
    from hostile import expect_cli

    from caimg_nmf.synthetic import make_movie

    movie = make_movie(3, (24, 24), 40, seed=0).movie.astype(np.float32)
    path = _imagej(tmp_path / "odd.tif", movie, size, unit)
    out = tmp_path / "out" / "r.h5"
    expect_cli(["run", "-i", path, "-o", out, "--no-figures", "--frame-rate", "10"], protect=[path],
               message=[rf"odd\.tif states a pixel size of {re.escape(stated)}", r"input\.pixel_size_um"])
    assert not out.parent.exists()
    attrs, _ = _run_small(path, tmp_path / "ok.h5", "--set", "input.pixel_size_um=2")
    assert attrs["pixel_size_um"] == pytest.approx(2.0)
