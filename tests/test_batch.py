"""Batch runs: the batch file, planning, skip/rerun rules, locks, memory, summary (in-process, fast)."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from caimg_nmf.batch import LockedError, OutputLock, load_batch, plan_batch, run_batch
from caimg_nmf.batch.plan import folder_names
from caimg_nmf.batch.runner import BATCH_LOCK, can_start
from caimg_nmf.cli import main

HEADER = """[batch]
inputs = ["raw/*.tif"]
output_dir = "out"
executor = "serial"

[factorize]
method = "whole"

[nmf]
rank = 3

[figures]
enabled = false
"""


def make_inputs(folder, names=("mouse1_s1", "mouse2_s1"), frames=100):
    from caimg_nmf.synthetic import make_movie

    raw = Path(folder) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        make_movie(3, (32, 32), frames, seed=i).save_movie(raw / f"{name}.tif")
    return raw


def write_batch(folder, extra="", header=HEADER):
    path = Path(folder) / "batch.toml"
    path.write_text(header + extra)
    return path


def read_summary(out):
    with open(Path(out) / "summary.csv", newline="") as fh:
        return {row["output"]: row for row in csv.DictReader(fh)}


def datasets(path):
    out = {}
    with h5py.File(path, "r") as fh:
        fh.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


@pytest.mark.parametrize("text, expected", [
    ('[batch]\ninputs = ["raw/*.tif"]\nwokers = 2\n', "unknown key 'wokers' in [batch]. Valid keys: inputs, output_dir, workers"),
    ('[batch]\ninputs = ["raw/*.tif"]\n[nmff]\nrank = 2\n', "unknown section [nmff]. Valid sections: batch"),
    ('[batch]\ninputs = ["raw/*.tif"]\n[nmf]\nrnk = 2\n', "unknown key 'rnk' in [nmf]. Valid keys: rank"),
    ('[batch]\ninputs = ["raw/*.tif"]\n[[batch.override]]\nmatch = "m*"\n"nmf.rnk" = 2\n', "Valid keys in [nmf]"),
    ('[batch]\ninputs = ["raw/*.tif"]\n[[batch.override]]\n"nmf.rank" = 2\n', "needs match"),
    ('[batch]\ninputs = ["raw/*.tif"]\n[[batch.override]]\nmatch = "m*"\n"nmf.rank" = 0\n', "nmf.rank = 0: must be at least 1"),
    ('[batch]\ninputs = ["raw/*.tif"]\n[input]\npath = "x.tif"\n', "input.path cannot be set in a batch file"),
    ('[batch]\ninputs = ["raw/*.tif"]\nexecutor = "slurm"\n', "not one of the valid choices: processes, dask, serial"),
    ('[batch]\ninputs = ["nothing/*.tif"]\n', "match no movie files"),
    ('[nmf]\nrank = 2\n', "no [batch] section"),
    ('[batch\n', "not valid TOML"),
])
def test_bad_batch_file_exits_2_naming_file_and_key(tmp_path, capsys, text, expected):
    make_inputs(tmp_path, names=("a",))
    path = tmp_path / "batch.toml"
    path.write_text(text)
    assert main(["batch", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path) in err, err


def test_workers_flag_is_validated(tmp_path, capsys):
    make_inputs(tmp_path, names=("a",))
    assert main(["batch", str(write_batch(tmp_path)), "--workers", "0", "-q"]) == 2
    assert "batch.workers = 0: must be at least 1" in capsys.readouterr().err


def test_folder_names_unique_and_deterministic():
    paths = [Path("/d/mouse1/s1.tif"), Path("/d/mouse2/s1.tif"), Path("/d/x/a b.tif"), Path("/e/x/a b.tif")]
    names = folder_names(paths)
    assert names[:2] == ["mouse1_s1", "mouse2_s1"]
    assert len(set(names)) == 4 and names[2] == "d_x_a_b" and names[3] == "e_x_a_b"
    assert folder_names(paths[::-1]) == names[::-1]


def test_plan_overrides_and_outputs(tmp_path):
    make_inputs(tmp_path, names=("mouse1_s1", "mouse2_s1"))
    spec = load_batch(write_batch(tmp_path, '[[batch.override]]\nmatch = "mouse2_*"\n"nmf.rank" = 2\n'
                                            'nmf.max_iter = 50\n'))
    jobs, warnings = plan_batch(spec)
    assert [j.name for j in jobs] == ["mouse1_s1", "mouse2_s1"] and not warnings
    assert [j.config["nmf"]["rank"] for j in jobs] == [3, 2]
    assert jobs[1].config["nmf"]["max_iter"] == 50 and jobs[0].config["nmf"]["max_iter"] == 300
    assert jobs[0].out_dir == str(tmp_path / "out" / "mouse1_s1") and jobs[0].shape == (100, 32, 32)
    assert jobs[0].need > 0


def test_serial_batch_skips_reruns_and_never_touches_inputs(tmp_path, capsys):
    raw = make_inputs(tmp_path, names=("mouse1_s1", "mouse2_s1", "mouse3_s1"))
    (raw / "short.tif").write_bytes((raw / "mouse1_s1.tif").read_bytes())  # replaced below: 2 frames
    from caimg_nmf.synthetic import make_movie

    make_movie(1, (32, 32), 2, seed=9).save_movie(raw / "short.tif")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in raw.iterdir()}
    batch = write_batch(tmp_path, '[[batch.override]]\nmatch = "mouse3_*"\n"nmf.rank" = 2\n')
    out = tmp_path / "out"

    s1 = run_batch(batch, quiet=True)
    rows = read_summary(out)
    assert rows["mouse1_s1"]["status"] == "ok" and rows["mouse1_s1"]["n_cells"] == "3"
    assert rows["mouse3_s1"]["n_cells"] == "2"
    assert rows["short"]["status"] == "failed" and "short.tif" in rows["short"]["reason"]
    assert "min(pixels, frames)" in rows["short"]["reason"]
    assert float(rows["mouse1_s1"]["peak_memory_mb"]) > 10 and float(rows["mouse1_s1"]["run_time_s"]) > 0
    assert len(s1.failed) == 1 and not s1.ok
    for name in ("mouse1_s1", "mouse2_s1", "mouse3_s1"):
        folder = out / name
        assert (folder / "result.h5").is_file() and (folder / "run.json").is_file()
        log = (folder / "run.log").read_text()
        assert "NMF" in log and "done:" in log
        assert not (folder / ".lock").exists()
    assert "failed:" in (out / "short" / "run.log").read_text()
    first = {n: (out / n / "result.h5").stat().st_mtime_ns for n in ("mouse1_s1", "mouse2_s1", "mouse3_s1")}

    # unchanged: everything done is skipped (and says so); the failed one is tried again
    capsys.readouterr()
    s2 = run_batch(batch, stream=sys.stderr)
    err = capsys.readouterr().err
    assert [r["status"] for r in s2.records] == ["skipped", "skipped", "skipped", "failed"]
    assert "mouse1_s1: skipped: result up to date (same input content and config)" in err
    assert all((out / n / "result.h5").stat().st_mtime_ns == t for n, t in first.items())

    # a changed config reruns only the recordings it affects; a changed input reruns that one
    write_batch(tmp_path, '[[batch.override]]\nmatch = "mouse3_*"\n"nmf.rank" = 1\n')
    from caimg_nmf.synthetic import make_movie

    make_movie(3, (32, 32), 100, seed=42).save_movie(raw / "mouse2_s1.tif")
    s3 = run_batch(batch, quiet=True)
    assert [r["status"] for r in s3.records] == ["skipped", "ok", "ok", "failed"]
    assert "config changed" in (out / "mouse3_s1" / "run.log").read_text() or s3.records[2]["n_cells"] == 1
    assert s3.records[2]["n_cells"] == 1

    # --force reruns everything
    s4 = run_batch(batch, quiet=True, force=True)
    assert [r["status"] for r in s4.records] == ["ok", "ok", "ok", "failed"]

    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in raw.iterdir()}
    assert set(after) == set(before)
    assert after["mouse1_s1.tif"] == before["mouse1_s1.tif"] and after["mouse3_s1.tif"] == before["mouse3_s1.tif"]
    assert not list(raw.glob(".*")), "nothing may be written next to the inputs"


def test_lock_refuses_second_writer_and_takes_over_stale(tmp_path, capsys):
    make_inputs(tmp_path, names=("a",))
    batch = write_batch(tmp_path)
    out = tmp_path / "out"
    with OutputLock(out / BATCH_LOCK):
        with pytest.raises(LockedError, match=r"being written by another run \(pid %d on host" % os.getpid()):
            run_batch(batch, quiet=True)
        assert main(["batch", str(batch), "-q"]) == 2
        assert "being written by another run" in capsys.readouterr().err
    assert not (out / BATCH_LOCK).exists()

    # a lock left by a dead process on this host is taken over with a warning
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for lock in (out / BATCH_LOCK, out / "a" / ".lock"):
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(f"{dead.pid} {socket.gethostname()} 2024-01-01T00:00:00\n")
    capsys.readouterr()
    summary = run_batch(batch, stream=sys.stderr)
    err = capsys.readouterr().err
    assert f"taking over a stale lock on {out} left by pid {dead.pid}" in err
    assert summary.records[0]["status"] == "ok"
    assert any("stale lock" in w for w in summary.records[0]["warnings"])

    # a lock from another host cannot be checked: refused, naming the file to delete
    (out / "a" / ".lock").write_text("12345 some-other-host 2024-01-01T00:00:00\n")
    summary = run_batch(batch, quiet=True, force=True)
    assert summary.records[0]["status"] == "failed"
    assert "locked by pid 12345 on host some-other-host" in summary.records[0]["reason"]


def test_memory_aware_start_rule():
    GB = 1024**3
    assert can_start(3 * GB, [], capacity=2 * GB, free_now=0)            # alone: always (pre-filtered)
    assert can_start(1 * GB, [1 * GB], capacity=3 * GB, free_now=2 * GB)
    assert not can_start(2 * GB, [2 * GB], capacity=3 * GB, free_now=8 * GB)  # not beside the running one
    assert not can_start(1 * GB, [1 * GB], capacity=8 * GB, free_now=GB // 2)  # not in what is free now


def test_recording_too_big_for_memory_fails_with_reason(tmp_path):
    make_inputs(tmp_path, names=("a", "b"))
    batch = write_batch(tmp_path, header=HEADER.replace('executor = "serial"', 'executor = "serial"\nmemory_gb = 0.01'))
    summary = run_batch(batch, quiet=True)
    assert [r["status"] for r in summary.records] == ["failed", "failed"]
    reason = summary.records[0]["reason"]
    assert "a.tif: needs about" in reason and "batch.memory_gb = 0.01" in reason and "crop or bin" in reason


def test_interrupted_run_leaves_no_partial_result(tmp_path, monkeypatch):
    """Ctrl-C during the write of a result: nothing at the final path, no temporary file left."""
    make_inputs(tmp_path, names=("a", "b"))
    batch = write_batch(tmp_path)
    from caimg_nmf.io import result as result_mod

    real_save = result_mod.Result.save
    calls = []

    def save_then_interrupt(self, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            import h5py

            from caimg_nmf.io.atomic import atomic_path

            with atomic_path(path) as tmp:  # half-written file, then Ctrl-C
                h5py.File(tmp, "w").close()
                raise KeyboardInterrupt
        return real_save(self, path, **kw)

    monkeypatch.setattr(result_mod.Result, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_batch(batch, quiet=True)
    out = tmp_path / "out"
    assert (out / "a" / "result.h5").exists() and not (out / "b" / "result.h5").exists()
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".caimg_nmf-")]
    assert leftovers == [] and not list(out.rglob(".lock")) and not (out / BATCH_LOCK).exists()
    assert read_summary(out)["b"]["status"] == "interrupted"
    monkeypatch.setattr(result_mod.Result, "save", real_save)
    summary = run_batch(batch, quiet=True)
    assert [r["status"] for r in summary.records] == ["skipped", "ok"]


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path):
    make_inputs(tmp_path, names=("a",))
    out = tmp_path / "out"
    (out / "a" / "figures").mkdir(parents=True)
    (out / "a" / ".result.h5.abc123.tmp").write_bytes(b"partial")
    (out / "a" / ".caimg_nmf-xyz").mkdir()
    (out / "a" / "figures" / ".footprints.png.q.tmp").write_bytes(b"partial")
    (out / ".summary.csv.k.tmp").write_text("partial")
    summary = run_batch(write_batch(tmp_path), quiet=True)
    assert summary.records[0]["status"] == "ok"
    assert [p.name for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".caimg_nmf-")] == []
