"""Hostile cases from an outside review of issue 14 as merged: variations of the issue's kinds that
the other test_hostile_*.py modules did not cover. Each case: exit 2 (or InputError from Python) with
a specific message, no traceback, inputs unchanged, nothing left behind. Harness: tests/hostile.py.
"""
import json
import struct

import numpy as np
import pytest

from hostile import expect_cli, expect_error
from test_hostile_outputs import scored  # noqa: F401 - a fixture: R.h5, T.npy, movie.npy

h5py = pytest.importorskip("h5py")
tifffile = pytest.importorskip("tifffile")


def _run(tmp_path, movie):
    return ["run", "-q", "--no-figures", "-i", movie, "-o", tmp_path / "out" / "r.h5", "--cell-diameter", "6"]


# --- .npy headers that lie --------------------------------------------------------------------------
def _npy_with_header(path, header: bytes):
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117) + b"\n" + bytes(400))
    return path


NPY_HEADERS = [
    pytest.param(b"{'descr': '<f4', 'fortran_ord", [r"not a readable \.npy array"], id="header-cut-mid-dict"),
    pytest.param(b"{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 24, 24), }",
                 [r"negative", r"-3 x 24 x 24"], id="negative-shape"),
]


@pytest.mark.parametrize("header, messages", NPY_HEADERS)
def test_run_on_npy_with_a_lying_header(tmp_path, header, messages):
    """run on a .npy whose header is cut inside its dict (TokenError) or declares a negative size
    (OverflowError from the memory map): both were 'unexpected error', exit 1."""
    path = _npy_with_header(tmp_path / "movie.npy", header)
    expect_cli(_run(tmp_path, path), protect=[path], message=[r"movie\.npy", *messages])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("header, messages", NPY_HEADERS)
def test_rank_and_evaluate_on_npy_with_a_lying_header(tmp_path, scored, header, messages):
    """The same files as a rank matrix and as an evaluate truth."""
    path = _npy_with_header(tmp_path / "X.npy", header)
    expect_cli(["rank", path, "-o", tmp_path / "rk"], protect=[path], message=messages)
    expect_cli(["evaluate", scored[0], "--truth", path], protect=[path, scored[0]], message=messages)


# --- HDF5 datasets with a null dataspace (h5py.Empty) ------------------------------------------------
def _null_dataset(fh, name):
    if name in fh:
        del fh[name]
    fh.create_dataset(name, data=h5py.Empty("f4"))


@pytest.mark.parametrize("dataset, message", [(None, r"no 3-D dataset, .*Datasets: /mov \(\)"),
                                              ("/mov", r"/mov holds no values: it has no dataspace")])
def test_run_on_hdf5_dataset_with_no_dataspace(tmp_path, dataset, message):
    """The movie file's only dataset has a null dataspace (written as h5py.Empty): TypeError, exit 1;
    named with input.dataset, it is said to hold no values."""
    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as fh:
        _null_dataset(fh, "mov")
    args = _run(tmp_path, path) + (["--set", f'input.dataset="{dataset}"'] if dataset else [])
    expect_cli(args, protect=[path], message=[message])


def test_result_with_a_dataset_with_no_dataspace(tmp_path, scored):
    """A result whose /traces has a null dataspace: info and export said 'unexpected error'."""
    path = scored[0]
    with h5py.File(path, "a") as fh:
        _null_dataset(fh, "traces")
    for args in (["info", path], ["export", path, "--to", "csv", "--out", tmp_path / "t.csv"]):
        expect_cli(args, protect=[path], message=[r"not a valid caimg_nmf result|/traces", r"no dataspace"])


# --- evaluate --frame-rate --------------------------------------------------------------------------
@pytest.mark.parametrize("value, message", [("nan", r"NaN"), ("inf", r"finite"), ("1e300", r"at most"),
                                            ("0", r"greater than 0")])
def test_evaluate_frame_rate_out_of_bounds(scored, value, message):
    """evaluate --movie M --frame-rate nan / inf: ValueError / OverflowError, exit 1 (run's --frame-rate
    refused them)."""
    result, truth, movie = scored
    expect_cli(["evaluate", result, "--truth", truth, "--movie", movie, "--frame-rate", value],
               protect=[result, truth, movie], message=[rf"--frame-rate {value}", message])


# --- export to several files: all or nothing ----------------------------------------------------------
@pytest.mark.parametrize("blocker", ["folder", "file", "symlink"])
def test_export_csv_writes_nothing_when_a_later_file_is_refused(tmp_path, scored, blocker):
    """export --to csv --out t.csv when t_cells.csv is a folder, an existing file or a link: t.csv and
    t_dff.csv were written before the refusal and left behind."""
    result = scored[0]
    out = tmp_path / "ex"
    out.mkdir()
    cells = out / "t_cells.csv"
    if blocker == "folder":
        cells.mkdir()
    elif blocker == "file":
        cells.write_text("mine\n")
    else:
        cells.symlink_to(result)
    expect_cli(["export", result, "--to", "csv", "--out", out / "t.csv"], protect=[result, cells],
               message=[r"t_cells\.csv"])
    assert sorted(p.name for p in out.iterdir()) == ["t_cells.csv"]


# --- hostile truth files for evaluate ---------------------------------------------------------------
def _truth_file(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    return path


def _empty_second_mask():
    masks = np.zeros((2, 24, 24), bool)
    masks[0, 2:8, 2:8] = True
    return masks


TRUTHS = [
    pytest.param("regions.json", "[" * 100000 + "]" * 100000, [r"not valid JSON", r"nested"], id="json-nested-deep"),
    pytest.param("regions.json", json.dumps([{"id": "a", "coordinates": [[3, 3]]}, {"id": "b", "coordinates": []}]),
                 [r"region 'b'", r"no pixels"], id="json-region-without-pixels"),
    pytest.param("masks.npy", np.zeros((2, 24, 24), dtype=[("a", "f4")]), [r"\[\('a', '<f4'\)\]", r"0 and 1"],
                 id="npy-structured-dtype"),
    pytest.param("masks.npy", np.ones((2, 24, 24), np.complex64), [r"complex64", r"0 and 1"], id="npy-complex"),
    pytest.param("masks.npy", _empty_second_mask(), [r"mask 1", r"no pixels"], id="npy-empty-mask"),
    pytest.param("regions.json", "[]", [r"holds no regions \(an empty list\)"], id="json-no-regions"),
    pytest.param("masks.npy", np.zeros((0, 24, 24), bool), [r"holds no cells \(0 masks\)"], id="npy-no-masks"),
]


@pytest.mark.parametrize("name, content, messages", TRUTHS)
def test_evaluate_hostile_truth(tmp_path, scored, name, content, messages):
    """evaluate --truth FILE with a truth that is not a set of cells: JSON nested 100000 deep
    (RecursionError, exit 1); a region or mask without pixels (counted as a cell no result can ever
    match, lowering recall silently); structured dtype (TypeError, exit 1) or complex values (scored);
    no cells at all (scored 'recall 0.000' over 0 true cells)."""
    result = scored[0]
    truth = _truth_file(tmp_path, name, content)
    expect_cli(["evaluate", result, "--truth", truth], protect=[result, truth], message=messages)


def _synthetic_truth(tmp_path, edit):
    from caimg_nmf.synthetic import make_movie

    path = tmp_path / "truth.h5"
    make_movie(n_cells=2, shape=(24, 24), n_frames=30, seed=0).save_truth(path)
    with h5py.File(path, "a") as fh:
        edit(fh)
    return path


@pytest.mark.parametrize("edit, messages", [
    pytest.param(lambda fh: fh.__delitem__("baselines"), [r"/baselines", r"missing"], id="dataset-missing"),
    pytest.param(lambda fh: fh.attrs.__delitem__("frame_rate"), [r"frame_rate", r"missing"], id="attr-missing"),
    pytest.param(lambda fh: fh.attrs.__setitem__("seed", "x"), [r"seed", r"'x'"], id="attr-not-a-number"),
    pytest.param(lambda fh: fh.attrs.__setitem__("params", "{"), [r"params", r"JSON"], id="params-not-json"),
])
def test_evaluate_synthetic_truth_with_parts_missing(tmp_path, scored, edit, messages):
    """A synthetic truth .h5 (kind attribute set) with a dataset or attribute missing or mangled:
    KeyError / ValueError, exit 1, in evaluate and load_truth."""
    from caimg_nmf.synthetic import load_truth

    result = scored[0]
    truth = _synthetic_truth(tmp_path, edit)
    expect_cli(["evaluate", result, "--truth", truth], protect=[result, truth], message=messages)
    expect_error(load_truth, truth, protect=[truth], message=messages)


# --- a folder or a FIFO where a command reads a file ------------------------------------------------
def _reader_args(tmp_path, scored, bad):
    result, truth, movie = scored
    return {"info": ["info", bad], "figures": ["figures", bad, "--out", tmp_path / "figs"],
            "export": ["export", bad, "--to", "csv", "--out", tmp_path / "t.csv"],
            "evaluate-result": ["evaluate", bad, "--truth", truth],
            "evaluate-truth": ["evaluate", result, "--truth", bad],
            "run-config": ["run", bad, "-i", movie, "-o", tmp_path / "o" / "r.h5"],
            "config": ["config", bad], "rank-matrix": ["rank", bad, "-o", tmp_path / "rk"],
            "figures-style": ["figures", result, "--out", tmp_path / "figs", "--style", bad]}


_READERS = ["info", "figures", "export", "evaluate-result", "evaluate-truth", "run-config", "config",
            "rank-matrix", "figures-style"]


@pytest.mark.parametrize("kind", ["folder", "fifo"])
@pytest.mark.parametrize("command", _READERS)
def test_folder_or_fifo_where_a_file_is_read(tmp_path, scored, command, kind):
    """The result, truth, config, matrix or style named is a folder or a FIFO (with the file's usual
    suffix): it was reported as 'not found', which sends the user looking for a missing file."""
    suffix = {"evaluate-truth": ".npy", "run-config": ".toml", "config": ".toml", "rank-matrix": ".csv",
              "figures-style": ".mplstyle"}.get(command, ".h5")
    bad = tmp_path / f"thing{suffix}"
    bad.mkdir() if kind == "folder" else __import__("os").mkfifo(bad)
    what = "a folder" if kind == "folder" else r"not a regular file \(a pipe"
    expect_cli(_reader_args(tmp_path, scored, bad)[command], protect=list(scored),
               message=[rf"thing\{suffix} is {what}"])
    assert not (tmp_path / "o").exists()


# --- rank: a range too large to build ---------------------------------------------------------------
@pytest.mark.parametrize("ranks, message", [("1:99999999999", r"99999999999 ranks to try; at most 10000"),
                                            ("1:99999999999:1000", r"at most 10000")])
def test_rank_range_too_large_to_build(tmp_path, ranks, message):
    """rank --ranks 1:99999999999: the list of ranks was built before any check (MemoryError, exit 1)."""
    matrix = tmp_path / "X.csv"
    np.savetxt(matrix, np.random.default_rng(0).random((20, 10)), delimiter=",")
    expect_cli(["rank", matrix, "--ranks", ranks, "-o", tmp_path / "rk"], protect=[matrix],
               message=[rf"--ranks {ranks}", message])
    assert not (tmp_path / "rk").exists()


def test_select_rank_python_with_a_huge_rank_count():
    """parse_ranks(10**12) from Python: the same refusal, not a MemoryError."""
    from caimg_nmf.rank import parse_ranks

    expect_error(parse_ranks, 10**12, message=[r"1000000000000 ranks to try; at most 10000"])


# --- values so large that the factorization overflows -------------------------------------------------
def test_nmf_on_values_whose_squares_overflow():
    """nmf(X) with entries of 1e200: the factors came back as NaN with only a ConvergenceWarning."""
    from caimg_nmf.nmf import nmf

    X = np.full((6, 5), 1e200)
    expect_error(nmf, X, 2, message=[r"values up to 1e\+200", r"overflow", r"X / X\.max\(\)"])


def test_nmf_on_float32_values_whose_squares_overflow():
    """float32 data is factorized in float32, whose squares overflow far sooner (1e30**2)."""
    from caimg_nmf.nmf import nmf

    X = np.full((6, 5), 1e30, np.float32)
    expect_error(nmf, X, 2, message=[r"too large to factorize in float32"])


def test_rank_on_a_matrix_whose_squares_overflow(tmp_path):
    """caimg-nmf rank on a CSV of 1e308 values: ValueError from the stability matching, exit 1."""
    matrix = tmp_path / "X.csv"
    matrix.write_text("1e308,1e308\n1e308,1e308\n")
    expect_cli(["rank", matrix, "--ranks", "1:2", "-o", tmp_path / "rk"], protect=[matrix],
               message=[r"values up to 1e\+308", r"Rescale"])
    assert not (tmp_path / "rk").exists()


# --- Python API counts that allocate before any work ----------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    pytest.param({"replicates": 10**9}, r"replicates must be an integer >= 1 and <= 10000", id="replicates"),
    pytest.param({"compress": 10**9}, r"compress=1000000000: the sketch would have .* more than min\(P, T\) = 10",
                 id="compress"),
])
def test_nmf_counts_that_would_exhaust_memory(kwargs, message):
    """nmf(X, 2, replicates=10**9) spawned 10**9 seeds and was killed by the kernel at 22 GB; a
    compress oversampling of 10**9 sketches X with 10**9 random columns."""
    from caimg_nmf.nmf import nmf

    X = np.random.default_rng(0).random((20, 10))
    expect_error(nmf, X, 2, message=[message], **kwargs)


def test_select_rank_replicates_that_would_exhaust_memory():
    """select_rank(X, [1, 2], replicates=10**9): the same, through the rank selection's own check."""
    from caimg_nmf.rank import select_rank

    X = np.random.default_rng(0).random((20, 10))
    expect_error(select_rank, X, [1, 2], replicates=10**9, message=[r"replicates = 1000000000", r"1 to 1000"])


# --- the Python API with numpy values and paths that are not paths ----------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    pytest.param({"cell_diameter": np.float32(1e30)}, r"cell_diameter=\S*1e\+30\)?: must be at most 100000 px", id="float32-huge"),
    pytest.param({"rank": np.int64(-1)}, r"rank=\S*-1\)?: must be at least 1", id="int64-negative"),
    pytest.param({"frame_rate": np.float32("nan")}, r"frame_rate=\S*nan\)?: NaN is not allowed", id="float32-nan"),
])
def test_run_python_numpy_scalars_are_checked_as_numbers(tmp_path, scored, kwargs, message):
    """caimg_nmf.run(input=..., rank=np.int64(k)) said 'expected an integer' for a numpy integer (and
    'expected a number' for a float32): a value out of bounds must be told its bounds."""
    import caimg_nmf

    movie = scored[2]
    expect_error(caimg_nmf.run, None, input=str(movie), output=str(tmp_path / "o" / "r.h5"), protect=[movie],
                 message=[message], **kwargs)
    assert not (tmp_path / "o").exists()


def test_run_python_numpy_integer_rank_is_accepted():
    """A valid numpy integer is a valid value (Config.replace keeps it as a plain int)."""
    from caimg_nmf.config import Config

    cfg = Config().replace({"nmf.rank": np.int64(4), "input.cell_diameter": np.float32(6.0)})
    assert cfg.nmf.rank == 4 and type(cfg.nmf.rank) is int
    assert cfg.input.cell_diameter == 6.0


@pytest.mark.parametrize("iou", [float("nan"), 2.0, 0.0, -0.5, "0.3", True])
def test_evaluate_python_iou_threshold_out_of_range(iou):
    """evaluate(pred, true, iou_threshold=nan or 2) matched nothing and scored 0 (the CLI's --iou refuses them)."""
    from caimg_nmf.evaluate import evaluate

    masks = np.ones((2, 4, 4), bool)
    expect_error(evaluate, masks, masks, iou_threshold=iou, message=[r"iou_threshold = .*\(0, 1\]"])


@pytest.mark.parametrize("reader", ["Result.load", "export", "load_truth_masks", "load_truth", "read_toml"])
@pytest.mark.parametrize("path", [None, "", 5])
def test_python_readers_given_no_path(reader, path):
    """Result.load(None) / export(None, ...): TypeError from pathlib; '' was 'result file . is a folder'."""
    from caimg_nmf.config import read_toml
    from caimg_nmf.evaluate import load_truth_masks
    from caimg_nmf.export import export
    from caimg_nmf.io import Result
    from caimg_nmf.synthetic import load_truth

    call = {"Result.load": Result.load, "export": lambda p: export(p, "csv", "t.csv"),
            "load_truth_masks": load_truth_masks, "load_truth": load_truth, "read_toml": read_toml}[reader]
    expect_error(call, path, message=[rf"expected a path \(str or Path\), got {path!r}"])


# --- full disk while a command writes several files ------------------------------------------------------
def _no_space(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_rank_disk_full_while_writing_the_figure(tmp_path, monkeypatch):
    """rank on a disk that fills while the .png is written: rank_selection.h5 was left behind (and
    its new output folder) although the message said 'nothing was left behind'."""
    import matplotlib.figure

    matrix = tmp_path / "X.csv"
    np.savetxt(matrix, np.random.default_rng(0).random((20, 10)), delimiter=",")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _no_space)
    expect_cli(["rank", matrix, "--ranks", "1:2", "-o", tmp_path / "rk"], protect=[matrix],
               message=[r"no space left on .*rk", r"nothing was left behind"])
    assert not (tmp_path / "rk").exists()


def test_rank_disk_full_keeps_the_previous_selection(tmp_path, monkeypatch):
    """rank --overwrite over an earlier selection, disk full at the figure: the earlier three files stay
    as they were (not a new .h5 beside the old figures)."""
    import matplotlib.figure

    matrix = tmp_path / "X.csv"
    np.savetxt(matrix, np.random.default_rng(0).random((20, 10)), delimiter=",")
    out = tmp_path / "rk"
    expect_cli(["rank", matrix, "--ranks", "1:2", "-o", out, "-q"], code=0)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _no_space)
    expect_cli(["rank", matrix, "--ranks", "1:3", "-o", out, "--overwrite"], protect=[matrix, out],
               message=[r"no space left"])
    assert sorted(p.name for p in out.iterdir()) == ["rank_selection.h5", "rank_selection.pdf", "rank_selection.png"]


def test_export_csv_disk_full_on_the_last_table(tmp_path, scored, monkeypatch):
    """export --to csv with the disk full at the cells table: traces and ΔF/F tables were left behind."""
    import caimg_nmf.export as export_module

    real, calls = export_module._write_table, []

    def fill_at_cells(path, header, columns):
        calls.append(path)
        if header[0] == "cell":
            _no_space()
        real(path, header, columns)

    monkeypatch.setattr(export_module, "_write_table", fill_at_cells)
    out = tmp_path / "ex"
    out.mkdir()
    expect_cli(["export", scored[0], "--to", "csv", "--out", out / "t.csv"], protect=[scored[0]],
               message=[r"no space left on .*ex", r"t_cells\.csv"])
    assert len(calls) == 3 and list(out.iterdir()) == []


# --- the figures folder ------------------------------------------------------------------------------
def test_run_figures_folder_symlinked_to_a_users_folder(tmp_path, scored):
    """run -o r/R.h5 where r/figures is a link to the user's pictures: the run wrote its 16 figures
    and its manifest into that folder (batch refuses this; run did not)."""
    movie = scored[2]
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "mine.png").write_bytes(b"mine")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "figures").symlink_to(pictures)
    expect_cli(["run", "-q", "-i", movie, "-o", tmp_path / "r" / "R.h5", "--cell-diameter", "6"],
               protect=[movie, pictures], message=[r"figures folder .*figures is a symbolic link", r"--no-figures"])
    assert sorted(p.name for p in pictures.iterdir()) == ["mine.png"]
    assert not (tmp_path / "r" / "R.h5").exists()


def test_figures_default_folder_symlinked_with_overwrite(tmp_path, scored):
    """caimg-nmf figures R.h5 --overwrite where figures/ beside R.h5 is a link to another folder."""
    result = scored[0]
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (tmp_path / "figures").symlink_to(pictures)
    expect_cli(["figures", result, "--overwrite", "--format", "png"], protect=[result, pictures],
               message=[r"figures folder .*figures is a symbolic link"])
    assert list(pictures.iterdir()) == []


def test_figures_bad_style_leaves_no_folder(tmp_path, scored):
    """figures --out NEW --style nosuchstyle: refused, but NEW was created first and left empty."""
    expect_cli(["figures", scored[0], "--out", tmp_path / "new", "--style", "nosuchstyle"], protect=[scored[0]],
               message=[r"unknown figure style 'nosuchstyle'"])
    assert not (tmp_path / "new").exists()


# --- leftovers of a killed export / evaluate --------------------------------------------------------------
def test_leftover_of_a_killed_export_is_removed_by_the_next(tmp_path, scored):
    """export killed mid-write leaves .t.csv.<pid>.<random>.tmp beside the CSV; only run cleaned such
    files, so every killed export, evaluate --json or figures left one for good. The next write of the
    same file removes those of dead processes (not a live one's, not a name without a pid)."""
    import subprocess
    import sys

    from test_hostile_outputs import _dead_pid

    out = tmp_path / "ex"
    out.mkdir()
    dead = out / f".t.csv.{_dead_pid()}.abcd1234.tmp"
    dead.write_text("partial")
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = out / f".t.csv.{live_proc.pid}.abcd1234.tmp"
        live.write_text("being written")
        users = out / ".t.csv.abcd1234.tmp"
        users.write_text("mine")
        outcome = expect_cli(["export", scored[0], "--to", "csv", "--out", out / "t.csv"], code=0,
                             protect=[scored[0], users, live])
    finally:
        live_proc.kill()
        live_proc.wait()
    assert not dead.exists() and live.exists() and users.exists()
    assert "left by a killed caimg_nmf process" in outcome.err


# --- results edited by another tool ------------------------------------------------------------------
def _edit_result(path, name, data):
    with h5py.File(path, "a") as fh:
        if name in fh:
            del fh[name]
        fh.create_dataset(name, data=data)
    return path


def test_result_with_complex_footprints(tmp_path, scored):
    """A result whose /footprints are complex: read with a ComplexWarning, the imaginary part dropped."""
    path = _edit_result(scored[0], "footprints", np.ones((2, 24, 24), np.complex64))
    expect_cli(["info", path], protect=[path], message=[r"not a valid caimg_nmf result", r"/footprints .*complex64",
                                                        r"numeric"])


def test_export_result_with_areas_that_are_not_numbers(tmp_path, scored):
    """A result whose /rois/areas holds strings: export --to csv said 'unexpected error: ValueError'."""
    path = _edit_result(scored[0], "rois/areas", np.array([b"a", b"b"]))
    expect_cli(["export", path, "--to", "csv", "--out", tmp_path / "t.csv"], protect=[path],
               message=[r"/rois/areas holds \S+ values, not numbers"])
    assert not (tmp_path / "t.csv").exists()


# --- batch keys ------------------------------------------------------------------------------------
def test_batch_memory_gb_absurd(tmp_path, scored):
    """[batch] memory_gb = 1e300: 'unexpected error: OverflowError', exit 1 (the pipeline's float keys
    all have a maximum; the batch section's did not)."""
    import shutil

    shutil.copy(scored[2], tmp_path / "m1.npy")
    batch = tmp_path / "b.toml"
    batch.write_text('[batch]\ninputs = ["m1.npy"]\noutput_dir = "out"\nmemory_gb = 1e300\n')
    expect_cli(["batch", batch, "-q"], protect=[batch, tmp_path / "m1.npy"],
               message=[r"batch\.memory_gb = 1e\+300: must be at most 65536 GB"])
    assert not (tmp_path / "out").exists()


def test_every_batch_float_key_declares_a_maximum():
    import dataclasses

    from caimg_nmf.batch.config import BatchSection

    floats = [f for f in dataclasses.fields(BatchSection) if f.type in (float, "float")]
    assert floats and all(f.metadata.get("max") is not None for f in floats), floats


def test_result_config_attribute_that_is_not_toml(scored):
    """Result.load(path).config on a result whose config attribute is not TOML: a raw TOMLDecodeError."""
    from caimg_nmf.io import Result

    path = scored[0]
    with h5py.File(path, "a") as fh:
        fh.attrs["config"] = "[[[not toml"
    result = Result.load(path)
    expect_error(lambda: result.config, protect=[path], message=[r"R\.h5:/config: the config attribute is not valid TOML"])


@pytest.mark.parametrize("suffix", [".npy", ".tif"])
def test_dataset_given_for_a_movie_that_is_not_hdf5(tmp_path, scored, suffix):
    """--set input.dataset=/mov with a .npy or .tif movie: ignored silently (the user thinks the named
    dataset was analysed)."""
    movie = scored[2]
    if suffix == ".tif":
        tifffile.imwrite(tmp_path / "movie.tif", np.load(movie))
        movie = tmp_path / "movie.tif"
    expect_cli(_run(tmp_path, movie) + ["--set", 'input.dataset="/mov"'], protect=[movie],
               message=[rf"input\.dataset = '/mov' names a dataset of an HDF5 file, but .*movie\{suffix} is not one"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("array, message", [
    pytest.param(np.ones(5), r"a matrix must be 2-D; got shape \(5,\)", id="1-D"),
    pytest.param(np.ones((2, 3, 4, 5)), r"a matrix must be 2-D; got shape \(2, 3, 4, 5\)", id="4-D"),
    pytest.param(np.zeros((0, 5)), r"the matrix is empty \(shape \(0, 5\)\)", id="0-rows"),
])
def test_rank_on_npy_that_is_no_matrix(tmp_path, array, message):
    """rank X.npy with a 1-D or 4-D array was told 'a movie must be 3-D'; a 0-row matrix that 'rank 2
    is larger than min(rows, columns) = 0'."""
    path = tmp_path / "X.npy"
    np.save(path, array)
    expect_cli(["rank", path, "--ranks", "1:2", "-o", tmp_path / "rk"], protect=[path], message=[message])
    assert not (tmp_path / "rk").exists()


# --- frame rates stated by the file ------------------------------------------------------------------
def _movie_with_rate_attr(tmp_path, value):
    path = tmp_path / "movie.h5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("mov", data=(np.random.default_rng(0).random((30, 24, 24)) * 1000).astype(np.uint16))
        fh["mov"].attrs["frame_rate"] = value
    return path


def test_absurd_frame_rate_stated_by_the_file(tmp_path):
    """An HDF5 movie whose frame_rate attribute is 1e300 (or an ImageJ finterval of 1e-300): used as
    the rate, with exit 0, where --frame-rate 1e300 is refused."""
    path = _movie_with_rate_attr(tmp_path, 1e300)
    expect_cli(_run(tmp_path, path), protect=[path],
               message=[r"movie\.h5:/mov states a frame rate of 1e\+300 Hz: must be at most 10000 Hz",
                        r"--frame-rate HZ"])
    assert not (tmp_path / "out").exists()


def test_absurd_frame_interval_in_imagej_metadata(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, (np.random.default_rng(0).random((30, 24, 24)) * 1000).astype(np.uint16), imagej=True,
                     metadata={"axes": "TYX", "finterval": 1e-300})
    expect_cli(_run(tmp_path, path), protect=[path], message=[r"states a frame rate of 1e\+300 Hz: must be at most"])


def test_boolean_frame_rate_attribute_is_no_rate():
    """frame_rate = True in HDF5 attributes was read as 1 Hz 'as the file states'."""
    from caimg_nmf.io.movie import _positive

    assert not _positive(True) and not _positive(np.bool_(True)) and not _positive(np.array([True]))
    assert _positive(30.0) and _positive(np.array([30.0])) and _positive("7.5")


# --- empty paths (an unset shell variable: -i "$MOVIE") ----------------------------------------------
@pytest.mark.parametrize("args, flag", [
    pytest.param(["run", "-i", "", "-o", "{tmp}/o/r.h5"], r"--input ''", id="run-input"),
    pytest.param(["rank", "", "-o", "{tmp}/rk"], r"rank ''", id="rank-data"),
    pytest.param(["evaluate", "{result}", "--truth", "{truth}", "--json", ""], r"--json ''", id="evaluate-json"),
])
def test_empty_path_is_refused(tmp_path, scored, monkeypatch, args, flag):
    """run -i "" read the working folder as a folder of TIFFs (Path('') is '.'), and so did rank "";
    evaluate --json "" wrote no JSON without a word."""
    tifffile.imwrite(tmp_path / "other.tif", np.zeros((30, 24, 24), np.uint16))  # a movie in the working folder
    args = [a.format(tmp=tmp_path, result=scored[0], truth=scored[1]) for a in args]
    expect_cli(args, cwd=tmp_path, protect=[tmp_path / "other.tif", scored[0]], message=[flag, r"empty"])
    assert not (tmp_path / "o").exists() and not (tmp_path / "rk").exists()


def test_no_figure_formats_is_refused_before_the_analysis(tmp_path, scored):
    """--set figures.formats=[]: the whole analysis ran and wrote the result, then failed at the
    figures ('unknown figure format(s) (none)'); refused at once, with nothing written."""
    movie = scored[2]
    expect_cli(["run", "-q", "-i", movie, "-o", tmp_path / "out" / "r.h5", "--cell-diameter", "6", "--set",
                "figures.formats=[]"],
               protect=[movie], message=[r"--set figures\.formats=\[\]: expected a list of 1 or 2 or 3 items"])
    assert not (tmp_path / "out").exists()
