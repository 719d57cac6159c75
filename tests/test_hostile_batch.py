"""Hostile cases against `caimg-nmf batch` (issue 14): each a clean exit with a specific message,
every input (and every file a planted link points to) left byte-for-byte as it was.

The harness is tests/hostile.py; the batch helpers come from tests/test_batch.py.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from hostile import expect_cli
from test_batch import HEADER, make_inputs, read_summary, write_batch

REPO = Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and signals")


def _frames(seed, shape=(100, 32, 32)):
    from caimg_nmf.synthetic import make_movie

    return make_movie(3, shape[1:], shape[0], seed=seed).movie.astype(np.float32)


def _first_run_then_change(tmp_path, change, dataset="/movie"):
    """Run the batch once (ok), apply ``change()`` to what the movie's data is read from, run again:
    the recording must be analysed again, not reported up to date."""
    header = HEADER.replace('"raw/*.tif"', '"raw/*.h5"') + f'\n[input]\ndataset = "{dataset}"\n'
    batch = write_batch(tmp_path, header=header)
    expect_cli(["batch", batch], code=0, protect=[tmp_path / "raw"], message=r"\[1/1\] m1: ok")
    change()
    return expect_cli(["batch", batch], code=0, protect=[tmp_path / "raw"], message=r"\[1/1\] m1: ok")


# ------------------------------------------------------------------------------------------
# Skip-by-hash: the hash covers what is read, not only the file named in the batch
# ------------------------------------------------------------------------------------------

def test_external_link_target_changed_is_analysed_again(tmp_path):
    """The movie is an HDF5 ExternalLink into another file; that other file is then rewritten."""
    raw = tmp_path / "raw"
    raw.mkdir()
    data = tmp_path / "data" / "frames.h5"
    data.parent.mkdir()
    with h5py.File(data, "w") as fh:
        fh["movie"] = _frames(0)
    with h5py.File(raw / "m1.h5", "w") as fh:
        fh["movie"] = h5py.ExternalLink(str(data), "/movie")

    def rewrite():
        with h5py.File(data, "r+") as fh:
            fh["movie"][...] = _frames(7)

    out = _first_run_then_change(tmp_path, rewrite)
    assert "up to date" not in out.text


def test_external_link_to_a_group_changed_is_analysed_again(tmp_path):
    """The link is one level up: /acq is an ExternalLink to a group holding the movie."""
    raw = tmp_path / "raw"
    raw.mkdir()
    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as fh:
        fh.create_group("session")["movie"] = _frames(0)
    with h5py.File(raw / "m1.h5", "w") as fh:
        fh["acq"] = h5py.ExternalLink(str(data), "/session")

    def rewrite():
        with h5py.File(data, "r+") as fh:
            fh["session/movie"][...] = _frames(3)

    _first_run_then_change(tmp_path, rewrite, dataset="/acq/movie")


def test_virtual_dataset_source_changed_is_analysed_again(tmp_path):
    """The movie is a virtual dataset stitched from two source files; one of them is rewritten."""
    raw = tmp_path / "raw"
    raw.mkdir()
    frames = _frames(0)
    parts = [tmp_path / "src" / f"part{i}.h5" for i in (0, 1)]
    parts[0].parent.mkdir()
    for i, p in enumerate(parts):
        with h5py.File(p, "w") as fh:
            fh["data"] = frames[50 * i:50 * (i + 1)]
    layout = h5py.VirtualLayout(shape=frames.shape, dtype=frames.dtype)
    for i, p in enumerate(parts):
        layout[50 * i:50 * (i + 1)] = h5py.VirtualSource(str(p), "data", shape=(50, 32, 32))
    with h5py.File(raw / "m1.h5", "w") as fh:
        fh.create_virtual_dataset("movie", layout)

    def rewrite():
        with h5py.File(parts[1], "r+") as fh:
            fh["data"][...] = _frames(5)[50:]

    _first_run_then_change(tmp_path, rewrite)


def test_external_raw_storage_changed_is_analysed_again(tmp_path):
    """The dataset's bytes live in an external raw file (HDF5 external storage), rewritten later."""
    raw = tmp_path / "raw"
    raw.mkdir()
    frames = _frames(0)
    blob = tmp_path / "frames.bin"
    blob.write_bytes(frames.tobytes())
    with h5py.File(raw / "m1.h5", "w") as fh:
        fh.create_dataset("movie", shape=frames.shape, dtype=frames.dtype,
                          external=[(str(blob), 0, frames.nbytes)])

    _first_run_then_change(tmp_path, lambda: blob.write_bytes(_frames(4).tobytes()))


def _ome_xml(own_uuid, uuids, frames, shape):
    """OME-XML of a float32 series of ``frames`` frames, half in each of the files of ``uuids``."""
    T, (H, W), half = frames, shape, frames // 2
    data = "".join(f'<TiffData FirstT="{i * half}" IFD="0" PlaneCount="{half}"><UUID FileName="{name}">{u}</UUID>'
                   "</TiffData>" for i, (name, u) in enumerate(uuids.items()))
    return (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
            f'UUID="{own_uuid}"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="float" '
            f'SizeX="{W}" SizeY="{H}" SizeC="1" SizeZ="1" SizeT="{T}" BigEndian="false">'
            f'<Channel ID="Channel:0:0" SamplesPerPixel="1"/>{data}</Pixels></Image></OME>')


def test_multi_file_ome_tiff_second_file_changed_is_analysed_again(tmp_path):
    """The movie is an OME-TIFF whose series continues in a second file; that file is rewritten."""
    import tifffile

    raw = tmp_path / "raw"
    raw.mkdir()
    uuids = {"s1.ome.tif": "urn:uuid:6f1c3c44-0000-4000-8000-000000000001",
             "s1_part2.ome.tif": "urn:uuid:6f1c3c44-0000-4000-8000-000000000002"}
    frames = _frames(0)

    def write(name, data):
        tifffile.imwrite(raw / name, data, description=_ome_xml(uuids[name], uuids, 100, (32, 32)), metadata=None)

    write("s1.ome.tif", frames[:50])
    write("s1_part2.ome.tif", frames[50:])
    header = HEADER.replace('"raw/*.tif"', '"raw/s1.ome.tif"')
    batch = write_batch(tmp_path, header=header)
    expect_cli(["batch", batch], code=0, protect=[raw], message=r"\[1/1\] s1\.ome: ok")
    write("s1_part2.ome.tif", _frames(6)[50:])
    expect_cli(["batch", batch], code=0, protect=[raw], message=r"\[1/1\] s1\.ome: ok")


# ------------------------------------------------------------------------------------------
# A recording that did not finish is never "done"
# ------------------------------------------------------------------------------------------

def test_crash_after_result_before_status_is_analysed_again(tmp_path, monkeypatch):
    """The batch died after result.h5 was written and before run.json said "ok": the next batch
    must analyse the recording again, not skip it as done."""
    from caimg_nmf.batch import run_batch, worker

    make_inputs(tmp_path, names=("m1",))
    batch = write_batch(tmp_path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # stands for a kill: nothing after this point runs

    monkeypatch.setattr(worker, "_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        run_batch(batch, quiet=True)
    folder = tmp_path / "out" / "m1"
    assert (folder / "result.h5").is_file() and not (folder / "run.json").exists()
    monkeypatch.undo()
    out = expect_cli(["batch", batch], code=0, protect=[tmp_path / "raw"], message=r"\[1/1\] m1: ok")
    assert "m1: skipped" not in out.text
    assert "up-to-date check: previous run did not finish" in (folder / "run.log").read_text()


def test_failed_status_with_a_result_is_analysed_again(tmp_path):
    """run.json says the last run failed (after result.h5 was written): not skipped."""
    import json

    make_inputs(tmp_path, names=("m1",))
    batch = write_batch(tmp_path)
    expect_cli(["batch", batch], code=0, protect=[tmp_path / "raw"], message=r"m1: ok")
    status = tmp_path / "out" / "m1" / "run.json"
    data = json.loads(status.read_text())
    status.write_text(json.dumps(dict(data, status="failed", reason="figures: disk full")))
    expect_cli(["batch", batch], code=0, protect=[tmp_path / "raw"], message=r"\[1/1\] m1: ok")
    log = (tmp_path / "out" / "m1" / "run.log").read_text()
    assert "up-to-date check: previous run did not finish" in log


# ------------------------------------------------------------------------------------------
# Outputs that resolve to inputs, and links planted where the batch writes
# ------------------------------------------------------------------------------------------

def _planted(tmp_path, where, make):
    """A batch of m1 and m2 with ``make(path, target)`` planted at out/<where>, pointing at m1's movie."""
    raw = make_inputs(tmp_path, names=("m1", "m2"))
    batch = write_batch(tmp_path)
    path = tmp_path / "out" / where
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path, raw / "m1.tif")
    return batch, raw, path


@posix_only
@pytest.mark.parametrize("where", ["m1/result.h5", "m2/result.h5", "m1/run.json"])
def test_result_symlinked_to_a_movie_is_refused(tmp_path, where):
    """A recording's output is a symlink to a movie of the batch (its own, or another's)."""
    batch, raw, link = _planted(tmp_path, where, lambda p, t: p.symlink_to(t))
    expect_cli(["batch", batch], code=1, protect=[raw, link],
               message=[rf"{Path(where).name} is a symbolic link", "refus"])
    rows = read_summary(tmp_path / "out")
    name = where.split("/")[0]
    assert rows[name]["status"] == "failed" and "symbolic link" in rows[name]["reason"]
    other = "m2" if name == "m1" else "m1"
    assert rows[other]["status"] == "ok"


@posix_only
@pytest.mark.parametrize("where", ["m1/result.h5", "m2/result.h5"])
def test_result_hard_linked_to_a_movie_is_refused(tmp_path, where):
    """A recording's result.h5 is a hard link to a movie of the batch."""
    batch, raw, link = _planted(tmp_path, where, lambda p, t: os.link(t, p))
    expect_cli(["batch", batch], code=1, protect=[raw],
               message=[r"is the same file as the input .*m1\.tif"])


def _link_to_notes(tmp_path, where):
    """A one-recording batch and a symlink at out/<where> to a file of the user's notes."""
    make_inputs(tmp_path, names=("m1",))
    batch = write_batch(tmp_path)
    victim = tmp_path / "notes.txt"
    victim.write_text("a week of notes\n")
    link = tmp_path / "out" / where
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    return batch, victim, link


@pytest.mark.parametrize("kind", ["tif", "h5"])
def test_result_path_holding_another_movie_is_not_replaced(tmp_path, kind):
    """The recording's output folder already holds a movie saved as result.h5 (a TIFF, or an HDF5
    movie; not one of the batch's inputs): the batch must not replace it with its result."""
    from caimg_nmf.synthetic import make_movie

    make_inputs(tmp_path, names=("m1",))
    batch = write_batch(tmp_path)
    folder = tmp_path / "out" / "m1"
    folder.mkdir(parents=True)
    other = make_movie(2, (16, 16), 20, seed=3)
    if kind == "tif":
        other.save_movie(tmp_path / "other.tif")
        (tmp_path / "other.tif").rename(folder / "result.h5")
    else:
        other.save_movie(folder / "result.h5")
    expect_cli(["batch", batch], code=1, protect=[tmp_path / "raw", folder / "result.h5"],
               message=[r"result\.h5 exists and is not a caimg_nmf result", "refusing to replace it"])


@posix_only
@pytest.mark.parametrize("where", ["m1/run.log", "m1/.lock"])
def test_symlink_planted_at_a_recording_file_does_not_truncate_its_target(tmp_path, where):
    """A symlink at a recording's run.log or lock file, pointing at a file of the user's."""
    batch, victim, link = _link_to_notes(tmp_path, where)
    expect_cli(["batch", batch], code=1, protect=[tmp_path / "raw", victim, link],
               message=[rf"{Path(where).name} is a symbolic link"])


@posix_only
@pytest.mark.parametrize("name", [".batch.lock", "summary.csv", "index.html"])
def test_symlink_planted_at_a_batch_file_is_refused(tmp_path, name):
    """A symlink at the batch lock or at a batch summary file: exit 2 before anything runs."""
    batch, victim, link = _link_to_notes(tmp_path, name)
    expect_cli(["batch", batch], code=2, protect=[tmp_path / "raw", victim, link],
               message=[rf"{name} is a symbolic link"])
    assert not (tmp_path / "out" / "m1").exists()


@posix_only
@pytest.mark.parametrize("where", [".batch.lock", "m1/.lock"])
def test_lock_file_hard_linked_to_the_movie_is_refused(tmp_path, where):
    """A lock path is a hard link to a movie: taking the lock (truncate, write) would destroy it."""
    batch, raw, link = _planted(tmp_path, where, lambda p, t: os.link(t, p))
    code = 2 if where == ".batch.lock" else 1
    expect_cli(["batch", batch], code=code, protect=[raw], message=[r"\.lock (is the same file as|has 1 other name)"])


@posix_only
def test_recording_folder_symlinked_into_the_inputs_is_refused(tmp_path):
    """out/m1 is a symlink to the folder of movies: the recording would write (and clean) there."""
    raw = make_inputs(tmp_path, names=("m1", "m2"))
    (raw / ".keep.abcd1234.tmp").write_text("not the batch's")
    batch = write_batch(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "m1").symlink_to(raw)
    expect_cli(["batch", batch], code=1, protect=[raw, tmp_path / "out" / "m1"],
               message=[r"m1 is a symbolic link"])
    assert read_summary(tmp_path / "out")["m2"]["status"] == "ok"


@posix_only
def test_figures_folder_symlinked_to_user_pictures_is_refused(tmp_path):
    """out/m1/figures is a symlink to a folder of the user's PNGs (old figures there get removed)."""
    make_inputs(tmp_path, names=("m1",))
    batch = write_batch(tmp_path, header=HEADER.replace("enabled = false", "enabled = true"))
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "holiday.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "out" / "m1").mkdir(parents=True)
    (tmp_path / "out" / "m1" / "figures").symlink_to(pictures)
    expect_cli(["batch", batch], code=1, protect=[tmp_path / "raw", pictures],
               message=[r"figures is a symbolic link"])


@posix_only
def test_thumbnail_folder_symlinked_to_user_pictures_is_refused(tmp_path):
    """out/_thumbs/m1 (the page's thumbnails of m1's figures) is a symlink to a folder of the user's
    own figures: neither the recording nor the batch's page may write there."""
    from PIL import Image

    make_inputs(tmp_path, names=("m1",))
    batch = write_batch(tmp_path)
    figures = tmp_path / "out" / "m1" / "figures"
    figures.mkdir(parents=True)
    Image.new("RGB", (640, 480), "white").save(figures / "footprints.png")  # from an earlier run
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "footprints.png").write_bytes(b"\x89PNG the user's own figure")
    os.utime(pictures / "footprints.png", (1e9, 1e9))  # older than the figure: it would be "remade"
    (tmp_path / "out" / "_thumbs").mkdir()
    (tmp_path / "out" / "_thumbs" / "m1").symlink_to(pictures)
    expect_cli(["batch", batch], code=1, protect=[tmp_path / "raw", pictures],
               message=[r"_thumbs/m1 is a symbolic link"])


@posix_only
def test_output_folder_reached_through_a_link_into_an_input_folder(tmp_path):
    """The recording is a folder of TIFFs named through a symlink, and output_dir is the real parent
    folder: the recording's output folder would be the input folder itself."""
    raw = make_inputs(tmp_path, names=("a",))
    session = raw / "session1"
    session.mkdir()
    (raw / "a.tif").rename(session / "frames.tif")
    (tmp_path / "link").symlink_to(raw)
    batch = write_batch(tmp_path, header=HEADER.replace('"raw/*.tif"', '"link/session1"')
                        .replace('output_dir = "out"', 'output_dir = "raw"'))
    expect_cli(["batch", batch], code=2, protect=[raw],
               message=[r"session1.* is inside the batch's output folder", "match no movie"])


# ------------------------------------------------------------------------------------------
# Leftovers: the batch removes its own (and says so), nothing else
# ------------------------------------------------------------------------------------------

def test_cleaning_leftovers_keeps_the_users_dot_tmp_files(tmp_path):
    """The output folders hold the user's own hidden .tmp files (an editor's, a sync tool's) beside
    the leftovers of a killed batch: only the batch's leftovers are removed, and the log says so."""
    make_inputs(tmp_path, names=("m1",))
    batch = write_batch(tmp_path)
    out = tmp_path / "out"
    (out / "m1" / "figures").mkdir(parents=True)
    mine = [out / ".notes.md.tmp", out / "m1" / ".draft.tmp", out / "m1" / "figures" / ".sketch.svg.tmp"]
    for p in mine:
        p.write_text("the user's\n")
    leftovers = [out / ".summary.csv.k2j4_x9a.tmp", out / "m1" / ".result.h5.abc12345.tmp",
                 out / "m1" / "figures" / ".footprints.png.q1w2e3r4.tmp"]
    for p in leftovers:
        p.write_bytes(b"partial")
    (out / "m1" / ".caimg_nmf-3kd9s0a1").mkdir()
    expect_cli(["batch", batch], code=0, protect=[tmp_path / "raw", *mine],
               message=[r"removed what an interrupted batch left in .*out: \.summary\.csv\.k2j4_x9a\.tmp"])
    assert not any(p.exists() for p in leftovers) and not (out / "m1" / ".caimg_nmf-3kd9s0a1").exists()
    log = (out / "m1" / "run.log").read_text()
    assert "removed what an interrupted run left: .caimg_nmf-3kd9s0a1, .result.h5.abc12345.tmp, " \
           "figures/.footprints.png.q1w2e3r4.tmp" in log


# ------------------------------------------------------------------------------------------
# Workers die with the batch
# ------------------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux")
def test_workers_die_when_the_batch_is_killed(tmp_path):
    """kill -9 of the batch's main process while its workers analyse long recordings: the workers
    must not live on (holding the terminal and the recordings' locks)."""
    make_inputs(tmp_path, names=("w1", "w2"), frames=300)
    text = HEADER.replace('executor = "serial"', 'executor = "processes"\nworkers = 2')
    # long enough that a surviving worker would still be busy when the test gives up
    text = text.replace("[nmf]\nrank = 3\n", "[nmf]\nrank = 3\nreplicates = 400\nmax_iter = 2000\ntol = 0.0\n")
    batch = tmp_path / "batch.toml"
    batch.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "caimg_nmf.cli", "batch", str(batch), "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.monotonic() + 120
        logs = [tmp_path / "out" / n / "run.log" for n in ("w1", "w2")]
        while not all(p.exists() for p in logs):  # both workers are analysing a recording
            assert proc.poll() is None, "the batch ended before its workers started"
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        workers = [pid for pid in _children(proc.pid) if _alive(pid)]
        locks = [int((tmp_path / "out" / n / ".lock").read_text().split()[0]) for n in ("w1", "w2")]
        assert set(locks) <= set(workers), (locks, workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30   # generous: they should be gone in well under a second
        while any(_alive(pid) for pid in locks) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in locks if _alive(pid)], "batch workers outlived the killed batch"
        # they stopped cleanly (SIGTERM): locks released, scratch folders removed
        left = [p.name for p in (tmp_path / "out").rglob("*") if p.name == ".lock" or p.name.startswith(".caimg_nmf-")]
        assert left == []
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
