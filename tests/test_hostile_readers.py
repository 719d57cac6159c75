"""Hostile inputs for the readers (issue 14): broken, lying or oddly laid out movies, results, truth
files and matrices. Each case is a clean exit 2 (or a correct run) with a specific message, inputs
untouched. The harness is tests/hostile.py.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from hostile import expect_cli, expect_error, run_cli

h5py = pytest.importorskip("h5py")
tifffile = pytest.importorskip("tifffile")


def _noise_movie(shape=(30, 24, 24), seed=0):
    return (np.random.default_rng(seed).random(shape) * 100).astype(np.uint16)


def _cells_movie(n_frames=120, shape=(48, 48), seed=1):
    """A small synthetic recording (frames first) with cells, background and noise."""
    from caimg_nmf.synthetic import make_movie

    return make_movie(n_cells=6, shape=shape, n_frames=n_frames, seed=seed).movie


def _run(tmp_path, *args):
    return ["run", *args, "-o", tmp_path / "out" / "r.h5", "--no-figures"]


# --- 1. garbage after a valid TIFF magic number ------------------------------------------------------
def _garbage_tiff(path):
    rng = np.random.default_rng(3)
    path.write_bytes(b"II*\x00" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return path


def test_garbage_after_tiff_magic(tmp_path):
    """The user points run at a file that starts like a TIFF and is garbage after the magic number."""
    bad = _garbage_tiff(tmp_path / "movie.tif")
    expect_cli(_run(tmp_path, "-i", bad), protect=[bad], message=[r"movie\.tif", r"not a readable TIFF"])


def test_garbage_tiff_inside_a_folder(tmp_path):
    """One file of a folder of TIFFs is garbage after the magic: the error names that file."""
    folder = tmp_path / "session"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", _noise_movie())
    _garbage_tiff(folder / "b.tif")
    expect_cli(_run(tmp_path, "-i", folder), protect=[folder], message=[r"b\.tif", r"not a readable TIFF"])


# --- 2. HDF5 links to missing files ------------------------------------------------------------------
def test_hdf5_external_link_to_missing_file_run(tmp_path):
    """The movie's dataset is an external link into a file that was moved away."""
    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as fh:
        fh["mov"] = h5py.ExternalLink("gone.h5", "/data")
    expect_cli(_run(tmp_path, "-i", path), protect=[path],
               message=[r"movie\.h5", r"external link", r"/mov", r"gone\.h5"])


def test_hdf5_external_link_to_missing_file_run_named_dataset(tmp_path):
    """Same, with input.dataset naming the link."""
    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as fh:
        fh["other"] = np.zeros(3)
        fh["mov"] = h5py.ExternalLink("gone.h5", "/data")
    expect_cli(_run(tmp_path, "-i", path, "--set", "input.dataset=/mov"), protect=[path],
               message=[r"external link", r"gone\.h5"])


def test_hdf5_virtual_dataset_with_missing_sources(tmp_path):
    """The movie is a virtual dataset whose source files are gone (h5py would read zeros)."""
    src = tmp_path / "part.h5"
    with h5py.File(src, "w") as fh:
        fh["data"] = _noise_movie((20, 16, 16))
    layout = h5py.VirtualLayout(shape=(20, 16, 16), dtype=np.uint16)
    layout[:] = h5py.VirtualSource(str(src), "data", shape=(20, 16, 16))
    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as fh:
        fh.create_virtual_dataset("mov", layout)
    src.unlink()
    expect_cli(_run(tmp_path, "-i", path), protect=[path],
               message=[r"/mov is a virtual dataset whose source file is missing: .*part\.h5"])


# --- 3. a dataset declaring an absurd size ----------------------------------------------------------
def test_hdf5_declares_absurd_size(tmp_path):
    """An HDF5 dataset declares 1e6 x 4096 x 4096 frames but holds no data."""
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("mov", shape=(10**6, 4096, 4096), dtype=np.uint16, chunks=(1, 64, 64))
    out = expect_cli(_run(tmp_path, "-i", path), protect=[path],
                     message=[r"1000000 x 4096 x 4096", r"TB", r"crop|spatial_bin", r"n_frames"])
    assert not (tmp_path / "out" / "r.h5").exists(), out.text


# --- 4. results and truth files that are not what they say -----------------------------------------
def _result_file(tmp_path, name="r.h5", K=2, T=20, H=8, W=8):
    from caimg_nmf.io.result import Result

    rng = np.random.default_rng(0)
    r = Result(footprints=rng.random((K, H, W)), traces=rng.random((K, T)), dff=rng.random((K, T)),
               roi_masks=rng.random((K, H, W)) > 0.5, mean_image=rng.random((H, W)),
               attrs={"frame_rate": 10.0})
    return r.save(tmp_path / name)


def _edit(path, fn):
    with h5py.File(path, "a") as fh:
        fn(fh)
    return path


def _string_version(fh):
    fh.attrs["schema_version"] = "one"


def _footprints_group(fh):
    del fh["footprints"]
    fh.create_group("footprints")


def _traces_1d(fh):
    del fh["traces"]
    fh["traces"] = np.zeros(20, np.float32)


def _dff_wrong_shape(fh):
    del fh["dff"]
    fh["dff"] = np.zeros((2, 7), np.float32)


def _huge_traces(fh, names=("traces", "dff")):
    for name in names:
        del fh[name]
        fh.create_dataset(name, shape=(2, 10**12), dtype=np.float32, chunks=(1, 1024))


def _external_missing(fh):
    del fh["traces"]
    fh["traces"] = h5py.ExternalLink("gone.h5", "/traces")


def _loss_group(fh):
    del fh["nmf/loss"]
    fh.create_group("nmf/loss")


def _soft_link_dangling(fh):
    del fh["mean_image"]
    fh["mean_image"] = h5py.SoftLink("/nowhere")


BROKEN_RESULTS = [
    pytest.param(_string_version, [r"schema_version", r"'one'"], id="schema_version-string"),
    pytest.param(_footprints_group, [r"/footprints", r"group"], id="footprints-is-a-group"),
    pytest.param(_traces_1d, [r"/traces", r"1-D|2-D"], id="traces-wrong-rank"),
    pytest.param(_dff_wrong_shape, [r"dff", r"\(2, 7\)"], id="dff-inconsistent-shape"),
    pytest.param(_huge_traces, [r"/traces", r"2 x 1000000000000", r"TB"], id="declares-huge-array"),
    pytest.param(_external_missing, [r"/traces", r"external link", r"gone\.h5"], id="external-link-missing"),
    pytest.param(_loss_group, [r"/nmf/loss is not a 1-D numeric dataset"], id="loss-is-a-group"),
    pytest.param(_soft_link_dangling, [r"/mean_image is a soft link to '/nowhere', which does not exist"],
                 id="dangling-soft-link"),
]


@pytest.mark.parametrize("breakage, messages", BROKEN_RESULTS)
@pytest.mark.parametrize("command", ["info", "export", "figures", "evaluate"])
def test_broken_result(tmp_path, command, breakage, messages):
    """A result file edited by hand or by another tool is refused as not a valid result."""
    path = _edit(_result_file(tmp_path), breakage)
    args = {"info": ["info", path], "export": ["export", path, "--to", "csv", "--out", tmp_path / "t.csv"],
            "figures": ["figures", path, "--out", tmp_path / "figs"],
            "evaluate": ["evaluate", path, "--truth", path]}[command]
    expect_cli(args, protect=[path], message=[r"not a valid caimg_nmf result", *messages])


@pytest.mark.parametrize("breakage, messages", BROKEN_RESULTS)
def test_broken_result_python(tmp_path, breakage, messages):
    """Result.load on the same files raises InputError with the same message."""
    from caimg_nmf.io.result import Result

    path = _edit(_result_file(tmp_path), breakage)
    expect_error(Result.load, path, protect=[path], message=[r"not a valid caimg_nmf result", *messages])


def test_truth_declaring_huge_array(tmp_path):
    """A truth file whose /traces declares 10^12 frames is refused before reading."""
    from caimg_nmf.synthetic import load_truth, make_movie

    truth = make_movie(n_cells=2, shape=(16, 16), n_frames=20, seed=0)
    path = tmp_path / "truth.h5"
    truth.save_truth(path)
    _edit(path, lambda fh: _huge_traces(fh, ["traces"]))
    expect_error(load_truth, path, protect=[path], message=[r"/traces", r"2 x 1000000000000", r"TB"])


# --- 5. caimg-nmf rank on broken matrices ------------------------------------------------------------
def _object_npy(path, shape):
    arr = np.empty(shape, dtype=object)
    arr[...] = "x"
    np.save(path, arr, allow_pickle=True)
    return path


def _truncated_npy(path):
    np.save(path, np.ones((40, 30)))
    path.write_bytes(path.read_bytes()[:300])
    return path


@pytest.mark.parametrize("make, messages", [
    pytest.param(lambda p: _object_npy(p, (5,)), [r"holds Python objects", r"never unpickled"], id="object-1d"),
    pytest.param(lambda p: _object_npy(p, (4, 3)), [r"holds Python objects", r"never unpickled"], id="object-2d"),
    pytest.param(lambda p: _truncated_npy(p), [r"truncated: its header declares 40 x 30"], id="truncated"),
    pytest.param(lambda p: (np.save(p, np.array([["a", "b"], ["c", "d"]])), p)[1], [r"<U1|str", r"numbers"],
                 id="strings-2d"),
    pytest.param(lambda p: (np.save(p, np.array([[1.0, np.nan], [2.0, 3.0]])), p)[1], [r"NaN|finite"],
                 id="nan-2d"),
    pytest.param(lambda p: (np.save(p, np.array([[1.0, -2.0], [2.0, 3.0]])), p)[1], [r"negative"],
                 id="negative-2d"),
])
def test_rank_on_broken_npy(tmp_path, make, messages):
    """caimg-nmf rank on a .npy that is not a numeric matrix."""
    path = make(tmp_path / "m.npy")
    expect_cli(["rank", path, "--output", tmp_path / "o"], protect=[path], message=[r"m\.npy", *messages])


@pytest.mark.parametrize("text, messages", [
    pytest.param("1,2\nfoo,3\n", [r"row 2, column 1", r"'foo' is not a number"], id="text"),
    pytest.param("1,2\n3\n", [r"row 2 has 1 columns"], id="ragged"),
    pytest.param("1,nan\n3,4\n", [r"not a finite number"], id="nan"),
])
def test_rank_on_broken_csv(tmp_path, text, messages):
    """caimg-nmf rank on a CSV with text, ragged rows or NaN (already refused: regression guards)."""
    path = tmp_path / "m.csv"
    path.write_text(text)
    expect_cli(["rank", path, "--output", tmp_path / "o"], protect=[path], message=messages)


# --- 6. what is actually wrong with a TIFF ------------------------------------------------------------
def test_truncated_tiff(tmp_path):
    """A TIFF cut to 200 bytes (an interrupted copy) is called truncated, not a 2-D image."""
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, _noise_movie())
    path.write_bytes(path.read_bytes()[:200])
    expect_cli(_run(tmp_path, "-i", path), protect=[path],
               message=[r"movie\.tif", r"damaged or truncated: its header declares"])


def test_truncated_tiff_tail(tmp_path):
    """A TIFF missing its last half: the pages' data lie beyond the end of the file."""
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, _noise_movie((30, 24, 24)))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    expect_cli(_run(tmp_path, "-i", path), protect=[path],
               message=[r"movie\.tif", r"damaged or truncated: its header declares"])


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".h5"])
def test_frames_of_one_pixel(tmp_path, suffix):
    """A 200 x 1 x 1 movie: 'frames' of one pixel are not images."""
    path = tmp_path / f"movie{suffix}"
    arr = _noise_movie((200, 1, 1))
    if suffix == ".tif":
        tifffile.imwrite(path, arr)
    elif suffix == ".npy":
        np.save(path, arr)
    else:
        with h5py.File(path, "w") as fh:
            fh["mov"] = arr
    expect_cli(_run(tmp_path, "-i", path), protect=[path], message=[r"1 x 1 pixel", r"not images"])


def test_tiff_header_claims_huge_image(tmp_path):
    """A small TIFF whose header claims 200000 x 200000 pixels: the declared size is far beyond its bytes."""
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        offsets = [tags["ImageWidth"].offset, tags["ImageLength"].offset]
        types = [tags["ImageWidth"].dtype, tags["ImageLength"].dtype]
    for off, dt in zip(offsets, types):
        # the tag entry: code (2), type (2), count (4), value (4): rewrite type to LONG and the value
        data[off + 2:off + 4] = (4).to_bytes(2, "little")
        data[off + 8:off + 12] = (200000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    expect_cli(_run(tmp_path, "-i", path), protect=[path],
               message=[r"declares 200000 x 200000 pixels", r"but the file has only \d+ bytes"])


def test_single_rgb_image(tmp_path):
    """A colour (RGB) picture is a single picture, not a movie; no advice to set input.axes."""
    path = tmp_path / "photo.tif"
    tifffile.imwrite(path, _noise_movie((64, 80, 3)).astype(np.uint8), photometric="rgb")
    out = expect_cli(_run(tmp_path, "-i", path), protect=[path],
                     message=[r"a single colour \(RGB\) picture", r"3 samples per pixel"])
    assert "input.axes" not in out.text


# --- 7. file names with glob characters --------------------------------------------------------------
@pytest.mark.parametrize("name", ["movie[1].tif", "what?.tif", "star*.tif"])
def test_existing_path_with_glob_characters_is_a_path(tmp_path, name):
    """An existing file whose name holds [ ] * ? is read as that file, not as a pattern."""
    from caimg_nmf.io import load_movie

    path = tmp_path / name
    tifffile.imwrite(path, _noise_movie())
    movie = load_movie(path)
    assert movie.shape == (30, 24, 24)
    assert movie.paths == [path]


# --- 8. folders of one-frame TIFFs --------------------------------------------------------------------
def test_folder_of_single_frame_tiffs_in_natural_order(tmp_path):
    """A folder of one-frame TIFFs (frame1, frame2, ..., frame10) is a movie in natural name order."""
    from caimg_nmf.io import load_movie

    folder = tmp_path / "frames"
    folder.mkdir()
    image = _noise_movie((1, 8, 10))[0] * 10  # the still image; frame i adds i
    for i in range(1, 13):
        tifffile.imwrite(folder / f"frame{i}.tif", image + i)
    movie = load_movie(folder)
    assert movie.shape == (12, 8, 10)
    np.testing.assert_array_equal(movie.read()[:, 0, 0] - image[0, 0], np.arange(1, 13))
    globbed = load_movie(str(folder / "frame*.tif"))
    np.testing.assert_array_equal(globbed.read()[:, 0, 0] - image[0, 0], np.arange(1, 13))


def test_folder_mixing_2d_and_3d_tiffs(tmp_path):
    """A folder with a 3-frame stack and single-frame files of the same size."""
    from caimg_nmf.io import load_movie

    folder = tmp_path / "frames"
    folder.mkdir()
    image = _noise_movie((1, 8, 10))[0] * 10
    tifffile.imwrite(folder / "a.tif", np.stack([image + v for v in (1, 2, 3)]), photometric="minisblack")
    tifffile.imwrite(folder / "b.tif", image + 4)
    tifffile.imwrite(folder / "c.tif", image + 5)
    movie = load_movie(folder)
    np.testing.assert_array_equal(movie.read()[:, 3, 3] - image[3, 3], [1, 2, 3, 4, 5])


def test_folder_of_single_frames_of_different_sizes(tmp_path):
    """Single frames of different sizes cannot be one movie: the error lists each file's size."""
    folder = tmp_path / "frames"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.zeros((8, 10), np.uint16))
    tifffile.imwrite(folder / "b.tif", np.zeros((8, 12), np.uint16))
    expect_cli(_run(tmp_path, "-i", folder), protect=[folder], message=[r"different frame sizes", r"b\.tif: 8x12"])


# --- 9. frames-last movies read as frames-first ------------------------------------------------------
def _shared_data():
    """The folder of shared real recordings: beside $CAIMG_NEUROFINDER (the benchmarks' variable, a
    recording's folder), ../shared/data beside the clone (CI), or /work/shared/data; None if absent."""
    env = os.environ.get("CAIMG_NEUROFINDER", "")
    repo = Path(__file__).resolve().parent.parent
    candidates = [Path(env).parent] if env else []
    for folder in candidates + [repo.parent / "shared" / "data", Path("/work/shared/data")]:
        if folder.is_dir():
            return folder
    return None


@pytest.mark.parametrize("shape", [(120, 48, 48), (150, 40, 64)])
def test_frames_last_synthetic_is_refused(tmp_path, shape):
    """A synthetic movie saved height x width x frames without input.axes = 'YXT'."""
    movie = _cells_movie(shape[0], shape[1:])
    path = tmp_path / "movie.npy"
    np.save(path, np.ascontiguousarray(np.moveaxis(movie, 0, 2)))
    expect_cli(_run(tmp_path, "-i", path), protect=[path],
               message=[r"input\.axes = 'YXT'", r"check_axes = false"])


def test_frames_first_synthetic_read_as_frames_last_is_refused(tmp_path):
    """A frames-first movie with input.axes = 'YXT' set by mistake."""
    path = tmp_path / "movie.npy"
    np.save(path, _cells_movie())
    expect_cli(_run(tmp_path, "-i", path, "--set", "input.axes=YXT"), protect=[path],
               message=[r"input\.axes = 'TYX'"])


def test_frames_first_synthetic_is_accepted(tmp_path):
    """The same movies in their true order load without complaint, in both declared layouts."""
    from caimg_nmf.io import load_movie

    movie = _cells_movie()
    assert load_movie(movie).shape == movie.shape
    assert load_movie(np.moveaxis(movie, 0, 2), axes="YXT").shape == movie.shape
    # check_axes = false is the way out for data the test gets wrong
    assert load_movie(np.moveaxis(movie, 0, 2), check_axes=False).shape == (48, 48, 120)


@pytest.mark.parametrize("name", ["neurofinder_top", "neurofinder_0101_left"])
def test_real_recordings_both_orders(tmp_path, name):
    """Real recordings: frames first is accepted; frames last without input.axes is refused."""
    from caimg_nmf.io import load_movie

    data = _shared_data()
    if data is None or not (data / name / "movie.tif").is_file():
        pytest.skip("shared real recordings absent")
    movie = load_movie(data / name / "movie.tif")
    sample = movie.read(0, 100)
    assert load_movie(sample).shape == sample.shape
    path = tmp_path / "movie.npy"
    np.save(path, np.ascontiguousarray(np.moveaxis(sample, 0, 2)))
    expect_error(load_movie, path, protect=[path], message=[r"input\.axes = 'YXT'"])
    assert load_movie(path, axes="YXT").shape == sample.shape


# --- 10. the frame rate: from the file, or said to be assumed -----------------------------------------
def test_frame_rate_from_imagej_tiff(tmp_path):
    """An ImageJ TIFF saved with a frame interval of 0.04 s is a 25 Hz recording."""
    from caimg_nmf.io import load_movie

    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, _noise_movie(), imagej=True, metadata={"axes": "TYX", "finterval": 0.04})
    assert load_movie(path).frame_rate == pytest.approx(25.0)


def test_frame_rate_from_scanimage_description(tmp_path):
    """A ScanImage-style description stating SI.hRoiManager.scanFrameRate."""
    from caimg_nmf.io import load_movie

    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, _noise_movie(), description="SI.hRoiManager.scanFrameRate = 30.02\nSI.foo = 1")
    assert load_movie(path).frame_rate == pytest.approx(30.02)


def test_frame_rate_from_ome_tiff(tmp_path):
    """An OME-TIFF whose Pixels element has TimeIncrement = 0.125 s."""
    from caimg_nmf.io import load_movie

    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, _noise_movie(), ome=True, metadata={"axes": "TYX", "TimeIncrement": 0.125,
                                                                "TimeIncrementUnit": "s"})
    assert load_movie(path).frame_rate == pytest.approx(8.0)


@pytest.mark.parametrize("where, key", [("dataset", "frame_rate"), ("root", "fs"), ("dataset", "fps")])
def test_frame_rate_from_hdf5_attrs(tmp_path, where, key):
    """A frame_rate / fs / fps attribute on the movie's dataset or the file's root; none on an array."""
    from caimg_nmf.io import load_movie

    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as fh:
        fh["mov"] = _noise_movie()
        (fh["mov"] if where == "dataset" else fh).attrs[key] = 15.5
    assert load_movie(path).frame_rate == pytest.approx(15.5)
    assert load_movie(_noise_movie()).frame_rate is None


def test_frame_rate_recorded_with_its_source(tmp_path):
    """No frame rate anywhere: 10 Hz is assumed with a warning and recorded as assumed; a file's rate
    is used and recorded as from the file; --frame-rate wins, with a warning when it disagrees."""
    from caimg_nmf.io.result import Result

    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, _noise_movie((40, 24, 24)))
    out = run_cli(["run", "-i", plain, "-o", tmp_path / "a.h5", "--no-figures", "--rank", "2",
                   "--set", "factorize.method=whole"])
    assert out.code == 0, out.text
    assert "does not state it: assuming 10 Hz" in out.text
    a = Result.load(tmp_path / "a.h5").attrs
    assert (a["frame_rate"], a["frame_rate_source"]) == (10.0, "assumed")

    tagged = tmp_path / "tagged.tif"
    tifffile.imwrite(tagged, _noise_movie((40, 24, 24)), imagej=True,
                     metadata={"axes": "TYX", "finterval": 0.05})
    out = run_cli(["run", "-i", tagged, "-o", tmp_path / "b.h5", "--no-figures", "--rank", "2",
                   "--set", "factorize.method=whole"])
    assert out.code == 0, out.text
    a = Result.load(tmp_path / "b.h5").attrs
    assert (a["frame_rate"], a["frame_rate_source"]) == (20.0, "file")

    out = run_cli(["run", "-i", tagged, "-o", tmp_path / "c.h5", "--no-figures", "--rank", "2",
                   "--set", "factorize.method=whole", "--frame-rate", "7"])
    assert out.code == 0, out.text
    assert "input.frame_rate = 7 Hz disagrees with the 20 Hz" in out.text
    a = Result.load(tmp_path / "c.h5").attrs
    assert (a["frame_rate"], a["frame_rate_source"]) == (7.0, "config")


def test_run_on_existing_path_with_brackets_names_the_result_after_it(tmp_path):
    """`run -i movie[1].tif` with no --output: the file is read and the result is named after it."""
    path = tmp_path / "movie[1].tif"
    tifffile.imwrite(path, _cells_movie(60, (32, 32)).astype(np.float32))
    out = run_cli(["run", "-i", path, "--no-figures", "--rank", "2", "--set", "factorize.method=whole",
                   "--frame-rate", "10"], cwd=tmp_path)
    assert out.code == 0, out.text
    assert (tmp_path / "movie[1]_caimg" / "result.h5").is_file(), out.text


def test_truncated_float_tiff_in_a_list(tmp_path):
    """A float32 stack cut in half (its header says 100 frames, only some pages remain), inside a folder."""
    from caimg_nmf.synthetic import make_movie

    folder = tmp_path / "raw"
    folder.mkdir()
    make_movie(3, (32, 32), 100, seed=0).save_movie(folder / "a.tif")
    data = (folder / "a.tif").read_bytes()
    (folder / "b.tif").write_bytes(data[:len(data) // 2])
    expect_cli(_run(tmp_path, "-i", folder), protect=[folder],
               message=[r"b\.tif", r"damaged or truncated: its header declares"])


def _npy_declaring(path, shape, dtype="<f4"):
    """A .npy file whose header declares ``shape`` but that holds only a few bytes of data."""
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 64)
    return path


def test_evaluate_truth_npy_declaring_huge_array(tmp_path):
    """`evaluate --truth masks.npy` where the .npy header declares 10^6 masks of 4096 x 4096."""
    result = _result_file(tmp_path)
    truth = _npy_declaring(tmp_path / "masks.npy", (10**6, 4096, 4096), "|u1")
    expect_cli(["evaluate", result, "--truth", truth], protect=[result, truth],
               message=[r"masks\.npy", r"truncated: its header declares 1000000 x 4096 x 4096"])


def test_run_on_npy_movie_declaring_more_than_it_holds(tmp_path):
    """A .npy movie whose header declares 5000 frames of 64 x 64 but holds 64 bytes."""
    path = _npy_declaring(tmp_path / "movie.npy", (5000, 64, 64))
    expect_cli(_run(tmp_path, "-i", path), protect=[path],
               message=[r"movie\.npy", r"truncated: its header declares 5000 x 64 x 64"])


def test_rank_on_a_movie_file(tmp_path):
    """`caimg-nmf rank movie.tif` (a documented input) reads and prepares the movie as run does."""
    from caimg_nmf.synthetic import make_movie

    path = tmp_path / "movie.tif"
    make_movie(3, (24, 24), 60, seed=0).save_movie(path)
    out = run_cli(["rank", path, "--output", tmp_path / "o", "--ranks", "1:3", "--replicates", "2",
                   "--set", "input.frame_rate=10"])
    assert out.code == 0, out.text
    assert "recommended rank: " in out.text and (tmp_path / "o" / "rank_selection.h5").is_file()


def test_hdf5_movie_dangling_soft_link(tmp_path):
    """The movie's dataset is a soft link to a dataset that was deleted."""
    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as fh:
        fh["mov"] = h5py.SoftLink("/raw/mov")
    expect_cli(_run(tmp_path, "-i", path), protect=[path],
               message=[r"movie\.h5", r"/mov is a soft link to '/raw/mov', which does not exist"])
