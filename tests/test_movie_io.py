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
