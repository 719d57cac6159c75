"""Hostile outputs (issue 14): what commands WRITE. Each case: a clean exit with a specific message,
and every input (and any file the output path points at) left as it was.

The harness is tests/hostile.py. Covered: an output that is an input (same path, symbolic or hard
link, the config file, a file of a folder input) even with --overwrite; existing files replaced only
with --overwrite (evaluate --json, export --out, figures, rank); links, FIFOs and folders at an output
or lock path; names over NAME_MAX; a full disk; leftovers of killed runs; the output folder of a
failed run; figures of the replaced result.
"""
import errno
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tifffile

from hostile import expect_cli, expect_error, run_cli

from caimg_nmf.io import Result


def _frames():
    return np.random.default_rng(0).random((30, 24, 24), dtype=np.float32)


def _write_movie(path):
    data = _frames()
    if path.suffix == ".npy":
        np.save(path, data)
    elif path.suffix == ".tif":
        tifffile.imwrite(path, (data * 1000).astype(np.uint16))
    else:
        with h5py.File(path, "w") as fh:
            fh.create_dataset("movie", data=data)
    return path


@pytest.fixture
def movie(tmp_path):
    return _write_movie(tmp_path / "movie.npy")


@pytest.fixture
def scored(tmp_path):
    """A small result R.h5 (2 cells, 30 frames of 24 x 24), its truth mask stack T.npy, and a movie."""
    masks = np.zeros((2, 24, 24), bool)
    masks[0, 2:8, 2:8] = masks[1, 12:20, 12:20] = True
    rng = np.random.default_rng(1)
    Result(footprints=masks.astype(np.float32), traces=rng.random((2, 30)), dff=rng.random((2, 30)),
           roi_masks=masks, mean_image=np.ones((24, 24)), attrs={"frame_rate": 10.0}).save(tmp_path / "R.h5")
    np.save(tmp_path / "T.npy", masks)
    _write_movie(tmp_path / "movie.npy")
    return tmp_path / "R.h5", tmp_path / "T.npy", tmp_path / "movie.npy"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


RUN = ["run", "--no-figures", "-q"]


# --- 1. --overwrite never replaces an input ---------------------------------------------------------------
@pytest.mark.parametrize("suffix, flags", [(".npy", ["--overwrite"]), (".tif", ["--overwrite"]),
                                           (".h5", ["--overwrite"]), (".tif", [])])
def test_run_output_is_the_input_movie(tmp_path, suffix, flags):
    """run -i movie.X -o movie.X [--overwrite]: the movie would be replaced by the result (without
    --overwrite too, the message says it is the input rather than suggesting --overwrite)."""
    m = _write_movie(tmp_path / f"movie{suffix}")
    expect_cli([*RUN, "-i", m, "-o", m, *flags], protect=[m],
               message=[r"result .*movie\.\w+ is the input movie of this command", "never replaces an input"])


def test_run_output_is_a_hard_link_to_the_movie(tmp_path, movie):
    """-o names another path of the same file (a hard link)."""
    os.link(movie, tmp_path / "r.h5")
    expect_cli([*RUN, "-i", movie, "-o", tmp_path / "r.h5", "--overwrite"], protect=[movie],
               message=r"r\.h5 is the input movie \(.*movie\.npy\)")


def test_run_output_is_a_symlink_to_the_movie(tmp_path, movie):
    """-o names a symbolic link to the movie: refused, not resolved and written."""
    (tmp_path / "r.h5").symlink_to(movie)
    expect_cli([*RUN, "-i", movie, "-o", tmp_path / "r.h5", "--overwrite"], protect=[movie, tmp_path / "r.h5"],
               message=r"r\.h5 is a symbolic link \(to .*movie\.npy\)")


def test_run_output_is_the_config_file(tmp_path, movie):
    """run cfg.toml -o cfg.toml --overwrite: the config would be replaced."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[input]\npath = "movie.npy"\n[figures]\nenabled = false\n')
    expect_cli(["run", cfg, "-o", cfg, "--overwrite"], protect=[cfg, movie],
               message=r"cfg\.toml is the config file of this command")


def test_run_output_is_a_file_of_the_input_folder(tmp_path):
    """-i a folder of TIFFs, -o one of those TIFFs."""
    folder = tmp_path / "session"
    folder.mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(folder / name, (_frames()[:15] * 1000).astype(np.uint16))
    expect_cli([*RUN, "-i", folder, "-o", folder / "b.tif", "--overwrite"], protect=[folder],
               message=r"b\.tif is the input movie")


def test_refuse_inputs_is_reusable(tmp_path, movie):
    """The Python check other writers (batch) call: a hard link to an input is the input."""
    from caimg_nmf.errors import OutputError
    from caimg_nmf.io.atomic import refuse_inputs

    os.link(movie, tmp_path / "out.h5")
    expect_error(refuse_inputs, tmp_path / "out.h5", [("movie", movie)], error=OutputError,
                 message=r"out\.h5 is the movie \(.*movie\.npy\)", protect=[movie])


# --- 2. every written file: no silent replacement, never an input -----------------------------------------
@pytest.mark.parametrize("which, flags, message", [
    ("result", [], r"R\.h5 is the result of this command"),
    ("result", ["--overwrite"], r"R\.h5 is the result of this command"),
    ("truth", ["--overwrite"], r"T\.npy is the truth of this command"),
    ("movie", ["--overwrite"], r"movie\.npy is the movie of this command"),
], ids=["json-onto-result", "json-onto-result-overwrite", "json-onto-truth", "json-onto-movie"])
def test_evaluate_json_onto_an_input(scored, which, flags, message):
    """evaluate R.h5 --truth T --json <one of its inputs>."""
    result, truth, movie = scored
    target = {"result": result, "truth": truth, "movie": movie}[which]
    expect_cli(["evaluate", result, "--truth", truth, "--movie", movie, "--json", target, *flags],
               protect=[result, truth, movie], message=message)


def test_evaluate_json_existing_file_needs_overwrite(scored, tmp_path):
    """evaluate --json scores.json where scores.json holds earlier scores."""
    result, truth, _ = scored
    (tmp_path / "scores.json").write_text('{"f1": 0.9}\n')
    expect_cli(["evaluate", result, "--truth", truth, "--json", tmp_path / "scores.json"],
               protect=[result, truth, tmp_path / "scores.json"], message=r"scores\.json already exists")
    expect_cli(["evaluate", result, "--truth", truth, "--json", tmp_path / "scores.json", "--overwrite"],
               protect=[result, truth], code=0)
    assert '"f1"' in (tmp_path / "scores.json").read_text() and "precision" in (tmp_path / "scores.json").read_text()


def test_evaluate_json_is_a_symlink(scored, tmp_path):
    """--json names a symbolic link to another file: refused, the file it points to is kept."""
    result, truth, _ = scored
    victim = tmp_path / "thesis.txt"
    victim.write_text("three years of work\n")
    (tmp_path / "s.json").symlink_to(victim)
    expect_cli(["evaluate", result, "--truth", truth, "--json", tmp_path / "s.json", "--overwrite"],
               protect=[result, truth, victim, tmp_path / "s.json"], message=r"s\.json is a symbolic link")


def test_export_existing_file_needs_overwrite(scored, tmp_path):
    """export --out traces.csv where traces.csv exists (export used to replace it always)."""
    result = scored[0]
    (tmp_path / "traces.csv").write_text("mine\n")
    expect_cli(["export", result, "--to", "csv", "--out", tmp_path / "traces.csv"],
               protect=[result, tmp_path / "traces.csv"], message=r"traces\.csv already exists")


def test_export_onto_its_result(tmp_path, scored):
    """export R.csv --to csv --out R.csv --overwrite, where R.csv is the (HDF5) result."""
    os.replace(scored[0], tmp_path / "R.csv")
    result = tmp_path / "R.csv"
    expect_cli(["export", result, "--to", "csv", "--out", result, "--overwrite"], protect=[result],
               message=r"R\.csv is the result of this command")


def test_figures_existing_figures_need_overwrite(scored, tmp_path):
    """figures R.h5 --out DIR where DIR holds figures already; with --overwrite they are replaced,
    stale pages of the earlier figures go, and the user's own files stay."""
    result = scored[0]
    out = tmp_path / "figs"
    out.mkdir()
    (out / "footprints.png").write_bytes(b"old figure")
    (out / "notes.txt").write_text("mine")
    expect_cli(["figures", result, "--out", out, "--format", "png", "--dpi", "50"],
               protect=[result, out], message=r"footprints\.png already exists .*Pass --overwrite")
    (out / "footprints_p02.png").write_bytes(b"page 2 of an earlier, bigger result")
    expect_cli(["figures", result, "--out", out, "--format", "png", "--dpi", "50", "--overwrite"],
               protect=[result, out / "notes.txt"], code=0)
    assert (out / "footprints.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "footprints_p02.png").exists()


def test_rank_output_is_its_input_movie(tmp_path):
    """rank cfg.toml --output DIR --overwrite, where the config's movie is DIR/rank_selection.h5."""
    movie = _write_movie(tmp_path / "rank_selection.h5")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[input]\npath = "rank_selection.h5"\n')
    expect_cli(["rank", cfg, "--output", tmp_path, "--ranks", "1:2", "--replicates", "2", "--overwrite", "-q"],
               protect=[movie, cfg], message=r"rank_selection\.h5 is the input movie of this command")


def test_rank_output_is_a_symlink(tmp_path):
    """rank m.npy --output DIR --overwrite, where DIR/rank_selection.png is a link to a user's file."""
    np.save(tmp_path / "m.npy", np.random.default_rng(0).random((12, 10)))
    victim = tmp_path / "photo.png"
    victim.write_bytes(b"\x89PNG holiday")
    (tmp_path / "rank_selection.png").symlink_to(victim)
    expect_cli(["rank", tmp_path / "m.npy", "--output", tmp_path, "--ranks", "1:2", "--overwrite", "-q"],
               protect=[tmp_path / "m.npy", victim, tmp_path / "rank_selection.png"],
               message=r"rank_selection\.png is a symbolic link")


# --- 3. links and special files at an output or lock path -------------------------------------------------
@pytest.mark.parametrize("planted", ["symlink", "user file", "hard link"])
def test_lock_path_holds_something_else(tmp_path, movie, planted):
    """A symbolic link, a user's file or a hard link sits at r.h5.lock: never truncated."""
    victim = tmp_path / "notes.txt"
    victim.write_text("my notes\n")
    lock = tmp_path / "r.h5.lock"
    if planted == "symlink":
        lock.symlink_to(victim)
    elif planted == "hard link":
        os.link(victim, lock)
    else:
        lock.write_text("do not delete\n")
    expect_cli([*RUN, "-i", movie, "-o", tmp_path / "r.h5"], protect=[movie, victim, lock],
               message=r"r\.h5\.lock (is a symbolic link|exists and is not a caimg_nmf lock file|has other hard links)")
    assert not (tmp_path / "r.h5").exists()


def test_output_is_a_fifo(tmp_path, movie):
    """-o names a FIFO (named pipe) --overwrite."""
    os.mkfifo(tmp_path / "r.h5")
    expect_cli([*RUN, "-i", movie, "-o", tmp_path / "r.h5", "--overwrite"], protect=[movie],
               message=r"r\.h5 is a FIFO \(named pipe\), not a regular file")


def test_output_is_a_folder(tmp_path, movie):
    """-o names an existing folder --overwrite (refused before the work, not after)."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    expect_cli([*RUN, "-i", movie, "-o", tmp_path / "out", "--overwrite"], protect=[movie, tmp_path / "out"],
               message=r"out is a folder, not a regular file")


def test_output_is_a_device_node(tmp_path, movie):
    """-o names a character device (like /dev/null) --overwrite: refused, the node stays."""
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o600 | __import__("stat").S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("making a device node needs root")
    expect_cli([*RUN, "-i", movie, "-o", node, "--overwrite"], protect=[movie],
               message=r"null is a character device, not a regular file")
    assert __import__("stat").S_ISCHR(os.lstat(node).st_mode)


# --- 6. names over the file system's limit -----------------------------------------------------------------
def test_run_output_name_too_long(tmp_path, movie):
    """-o <300 characters>.h5: ENAMETOOLONG, as a message naming the path and the limit."""
    out = tmp_path / ("a" * 300 + ".h5")
    expect_cli([*RUN, "-i", movie, "-o", out], protect=[movie],
               message=[r"aaaa\.\.\. is 303 bytes long", r"at most 250 bytes per name here \(NAME_MAX = 255\)"])


def test_run_output_folder_name_too_long(tmp_path, movie):
    """-o <300 characters>/r.h5: a folder name over the limit; nothing is created."""
    out = tmp_path / ("d" * 300) / "r.h5"
    expect_cli([*RUN, "-i", movie, "-o", out], protect=[movie], message=r"is 300 bytes long.*NAME_MAX = 255")
    assert sorted(os.listdir(tmp_path)) == ["movie.npy"]


def test_run_output_path_too_long(tmp_path, movie):
    """-o with 25 nested folders of 200 characters: over PATH_MAX; nothing is created."""
    out = tmp_path.joinpath(*["p" * 200] * 25, "r.h5")
    expect_cli([*RUN, "-i", movie, "-o", out], protect=[movie], message=r"bytes long.*PATH_MAX = 4096")
    assert sorted(os.listdir(tmp_path)) == ["movie.npy"]


def test_evaluate_json_name_too_long(scored, tmp_path):
    """evaluate --json <300 characters>.json."""
    result, truth, _ = scored
    expect_cli(["evaluate", result, "--truth", truth, "--json", tmp_path / ("s" * 300 + ".json")],
               protect=[result, truth], message=r"is 305 bytes long.*NAME_MAX = 255")


def test_export_name_too_long(scored, tmp_path):
    """export --out <300 characters>.csv."""
    result = scored[0]
    expect_cli(["export", result, "--to", "csv", "--out", tmp_path / ("c" * 300 + ".csv")], protect=[result],
               message=r"is 304 bytes long.*NAME_MAX = 255")


# --- 4. disk full ----------------------------------------------------------------------------------------
def _listing(folder):
    return sorted(os.listdir(folder))


def test_disk_full_while_writing_the_result(tmp_path, movie, monkeypatch):
    """The disk fills while the result is written (os.write fails with ENOSPC): exit 2 with the size
    needed, the previous result kept, nothing left behind, and the next run works."""
    import caimg_nmf.io.atomic as atomic

    out = tmp_path / "out"
    assert run_cli([*RUN, "-i", movie, "-o", out / "r.h5"]).code == 0
    written = []

    def full_disk(fd, data):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        return os.write(fd, data[: len(data) // 2])

    monkeypatch.setattr(atomic, "_write", full_disk)
    expect_cli([*RUN, "-i", movie, "-o", out / "r.h5", "--overwrite"], protect=[movie, out / "r.h5"],
               message=r"no space left on .*out: the result needs about \d+\.\d+ MB")
    assert _listing(out) == ["r.h5"]
    monkeypatch.undo()
    assert run_cli([*RUN, "-i", movie, "-o", out / "r.h5", "--overwrite"]).code == 0


def test_not_enough_free_space_for_the_result(tmp_path, movie, monkeypatch):
    """statvfs says the folder has 10 kB free: refused before writing; a folder it made is removed."""
    import caimg_nmf.io.atomic as atomic

    real = os.statvfs

    class Small:
        def __init__(self, st):
            self.f_frsize, self.f_bavail = 1024, 10

    monkeypatch.setattr(atomic.os, "statvfs", lambda p: Small(real(p)))
    expect_cli([*RUN, "-i", movie, "-o", tmp_path / "new" / "r.h5"], protect=[movie],
               message=r"no space left on .*new: the result needs about \d+\.\d+ MB")
    assert _listing(tmp_path) == ["movie.npy"]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 kB tmpfs (root only; skipped where mounting is not permitted)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def test_disk_full_on_a_real_tmpfs(tmp_path, tiny_tmpfs):
    """run into a tiny tmpfs, as a user would (subprocess: a crash in HDF5 would show)."""
    movie = tmp_path / "movie.npy"
    np.save(movie, np.random.default_rng(0).random((200, 48, 48), dtype=np.float32))
    (tiny_tmpfs / "filler").write_bytes(b"x" * 40000)
    expect_cli([*RUN, "-i", movie, "-o", tiny_tmpfs / "r.h5"], protect=[movie], subprocess_run=True,
               message=r"no space left on .*full: the result needs about \d+\.\d+ MB")
    assert _listing(tiny_tmpfs) == ["filler"]


# --- 5. leftovers of killed runs; the folder of a failed run -------------------------------------------------
def test_run_removes_leftovers_of_a_killed_run(tmp_path, movie):
    """A killed run left a temporary result, a scratch folder and its lock; the next run removes
    exactly those (and says so), and leaves the user's look-alike files alone."""
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    (out / f".r.h5.{dead}.abcd1234.tmp").write_bytes(b"half a result")
    (out / ".r.h5.zzzz9999.tmp").write_bytes(b"half a result, older version")
    scratch = out / f".caimg_nmf-r.h5.{dead}.k2j3h4g5"
    scratch.mkdir()
    (scratch / "frames.npy").write_bytes(b"frames")
    (out / "r.h5.lock").write_text(f"{dead} {os.uname().nodename} 2026-01-01T00:00:00\n")
    (out / ".notes.tmp").write_text("mine")
    (out / ".other.h5.abcd1234.tmp").write_text("another result's, maybe in use")
    outcome = expect_cli(["run", "--no-figures", "-i", movie, "-o", out / "r.h5"], code=0,
                         protect=[movie, out / ".notes.tmp", out / ".other.h5.abcd1234.tmp"],
                         message=[r"removed what an earlier run that did not finish left", r"\.caimg_nmf-r\.h5\."])
    assert "taking over a stale lock" in outcome.text
    assert _listing(out) == [".notes.tmp", ".other.h5.abcd1234.tmp", "r.h5"]


@pytest.mark.parametrize("case", ["missing movie", "constant movie", "rank above the movie's"])
def test_failed_run_leaves_no_output_folder(tmp_path, case):
    """A run that fails before writing anything leaves no (empty) output folder behind."""
    movie = tmp_path / "movie.npy"
    if case != "missing movie":
        np.save(movie, np.full((30, 24, 24), 5, np.float32) if case == "constant movie" else _frames())
    extra = ["--set", "factorize.method=whole", "--rank", "5000"] if case.startswith("rank") else []
    expect_cli([*RUN, "-i", movie, "-o", tmp_path / "new" / "deeper" / "r.h5", *extra],
               protect=[movie] if movie.exists() else [], message=r"\S")
    assert not (tmp_path / "new").exists()


# --- 7. a replaced result's figures go with it -----------------------------------------------------------
def test_rerun_with_overwrite_removes_the_old_results_figures(tmp_path, movie):
    """The earlier result had 3 montage pages; the new one has 1: the old pages go, the user's files stay."""
    out = tmp_path / "out"
    assert run_cli([*RUN, "-i", movie, "-o", out / "r.h5"]).code == 0
    figures = out / "figures"
    figures.mkdir()
    for page in ("footprints_p01.png", "footprints_p02.pdf", "footprints_p03.png", "nmf_loss.svg"):
        (figures / page).write_bytes(b"an earlier run's figure")
    (figures / "my_panel.png").write_bytes(b"the user's own figure")
    (figures / "notes.txt").write_text("mine")
    expect_cli(["run", "-q", "-i", movie, "-o", out / "r.h5", "--overwrite", "--set", "figures.formats=['png']",
                "--set", "figures.dpi=50"], code=0, protect=[movie, figures / "my_panel.png", figures / "notes.txt"])
    left = _listing(figures)
    assert not [n for n in left if n.startswith("footprints_p") or n == "nmf_loss.svg"], left
    assert {"footprints.png", "my_panel.png", "notes.txt"} <= set(left)


def test_run_refuses_to_replace_another_runs_figures(tmp_path, movie):
    """run -o out/second.h5 (a new result) where out/figures/ holds the figures of out/first.h5."""
    (tmp_path / "out" / "figures").mkdir(parents=True)
    (tmp_path / "out" / "figures" / "contours_mean.png").write_bytes(b"first result's contours")
    expect_cli(["run", "-q", "-i", movie, "-o", tmp_path / "out" / "second.h5"], protect=[movie, tmp_path / "out"],
               message=r"contours_mean\.png already exists \(figures of another run.*--overwrite")


def test_demo_does_not_replace_a_users_result(tmp_path, scored):
    """demo -o DIR where DIR/result.h5 is the user's own result: refused (an earlier demo's is replaced)."""
    from caimg_nmf.cli import _is_demo_result
    from caimg_nmf.synthetic import sample_data_path

    os.replace(scored[0], tmp_path / "result.h5")
    expect_cli(["demo", "-q", "-o", tmp_path], protect=[tmp_path / "result.h5"],
               message=r"result\.h5 already exists")
    sample = sample_data_path("five_cells.tif")
    assert not _is_demo_result(tmp_path / "result.h5", sample)
    with h5py.File(tmp_path / "result.h5", "a") as fh:
        fh.attrs["input_path"] = str(sample.resolve())
    assert _is_demo_result(tmp_path / "result.h5", sample)


def test_figures_folder_is_a_file(tmp_path, movie):
    """out/figures is a file of the user's: refused before the work, not after the result is written."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "figures").write_text("my list of figures to make")
    expect_cli(["run", "-q", "-i", movie, "-o", tmp_path / "out" / "r.h5"], protect=[movie, tmp_path / "out"],
               message=r"figures is a file, not a folder for the figures")
    assert _listing(tmp_path / "out") == ["figures"]


def test_output_path_with_a_nul_character(tmp_path, movie):
    """--set output.path with a NUL character (ValueError deep in os)."""
    expect_cli([*RUN, "-i", movie, "--set", f'output.path="{tmp_path}/r\\u0000.h5"'], protect=[movie],
               message=r"holds a NUL character")


def test_disk_full_while_writing_the_lock(tmp_path, movie, monkeypatch):
    """The disk is full when the lock line is written: a clean error, no lock file left."""
    import caimg_nmf.io.lock as lock

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lock.os, "pwrite", full)
    expect_cli([*RUN, "-i", movie, "-o", tmp_path / "out" / "r.h5"], protect=[movie],
               message=r"cannot write the lock file .*r\.h5\.lock: No space left on device")
    assert _listing(tmp_path) == ["movie.npy"]


def test_run_killed_mid_way_then_run_again(tmp_path):
    """SIGKILL a run while it works (as the kernel's OOM killer would); the next run cleans up after it."""
    import signal
    import time

    movie = tmp_path / "m.npy"
    np.save(movie, np.random.default_rng(0).random((1500, 64, 64), dtype=np.float32))
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "caimg_nmf.cli", "run", "-q", "--no-figures", "-i", str(movie),
                              "-o", str(out / "r.h5")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # the scratch folder exists for the whole run, after the lock is taken
            if out.is_dir() and any(n.startswith(".caimg_nmf-") for n in os.listdir(out)) or child.poll() is not None:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    if child.returncode != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed")
    left = _listing(out)
    assert "r.h5.lock" in left and any(n.startswith(".caimg_nmf-r.h5.") for n in left), left
    expect_cli([*RUN[:-1], "-i", movie, "-o", out / "r.h5"], code=0, protect=[movie],
               message=[r"taking over a stale lock", r"removed what an earlier run that did not finish left"])
    assert _listing(out) == ["r.h5"]
