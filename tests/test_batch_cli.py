"""`caimg-nmf batch` as a user runs it: worker processes, a damaged input, SIGTERM mid-batch and resume."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from caimg_nmf.cli import main

from test_batch import HEADER, datasets, make_inputs, read_summary, write_batch

REPO = Path(__file__).resolve().parent.parent


def cli_env():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("COLUMNS", None)
    return env


def test_processes_damaged_input_fails_others_succeed(tmp_path, capsys):
    raw = make_inputs(tmp_path, names=("m1", "m2", "m3"))
    good = (raw / "m1.tif").read_bytes()
    (raw / "truncated.tif").write_bytes(good[: len(good) // 2])
    (raw / "garbage.tif").write_bytes(b"II*\x00 this is not a movie")
    batch = write_batch(tmp_path, header=HEADER.replace('executor = "serial"', 'executor = "processes"\nworkers = 2'))
    code = main(["batch", str(batch)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    rows = read_summary(tmp_path / "out")
    assert [rows[n]["status"] for n in ("m1", "m2", "m3")] == ["ok"] * 3
    assert rows["truncated"]["status"] == "failed" and "truncated.tif" in rows["truncated"]["reason"]
    assert "damaged or truncated" in rows["truncated"]["reason"]
    assert rows["garbage"]["status"] == "failed" and "garbage.tif" in rows["garbage"]["reason"]
    assert "2 of 5 recording(s) failed" in captured.err
    assert "[5/5]" in captured.err and "executor processes, 2 worker(s)" in captured.err
    # peak memory is measured per job in the worker
    assert all(float(rows[n]["peak_memory_mb"]) > 10 for n in ("m1", "m2", "m3"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_mid_batch_then_resume_is_bitwise_identical(tmp_path):
    names = ("r1", "r2", "r3")
    make_inputs(tmp_path, names=names)
    text = HEADER.replace('executor = "serial"', 'executor = "processes"\nworkers = 1')
    text = text.replace("[nmf]\nrank = 3\n", "[nmf]\nrank = 3\nreplicates = 2\n")  # slow enough to stop mid-batch
    batch = tmp_path / "batch.toml"
    batch.write_text(text)
    out = tmp_path / "out"

    proc = subprocess.Popen([sys.executable, "-m", "caimg_nmf.cli", "batch", str(batch)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any((out / n / "run.json").exists() for n in names):  # written when a recording is finished
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no result appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted" in err
    done = [n for n in names if (out / n / "run.json").exists()]
    assert 1 <= len(done) < len(names), "the batch should have been stopped mid-way"
    left = [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".caimg_nmf-")
            or p.name in (".lock", ".batch.lock")]
    assert left == []
    statuses = {n: r["status"] for n, r in read_summary(out).items()}
    assert "interrupted" in statuses.values()

    p = subprocess.run([sys.executable, "-m", "caimg_nmf.cli", "batch", str(batch)], env=cli_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"{done[0]}: skipped" in p.stderr
    assert all((out / n / "result.h5").exists() for n in names)

    # the same batch, uninterrupted, elsewhere (in this process, same math-library threads): identical datasets
    from caimg_nmf.batch import run_batch

    batch.write_text(text.replace('output_dir = "out"', 'output_dir = "ref"'))
    assert run_batch(batch, quiet=True, executor="serial").ok
    for n in names:
        a, b = datasets(out / n / "result.h5"), datasets(tmp_path / "ref" / n / "result.h5")
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].tobytes() == b[key].tobytes(), (n, key)


def test_killed_worker_fails_only_its_recording_and_rerun_finishes(tmp_path):
    import threading

    from caimg_nmf.batch import run_batch

    names = ("k1", "k2")
    make_inputs(tmp_path, names=names)
    text = HEADER.replace('executor = "serial"', 'executor = "processes"\nworkers = 1')
    batch = tmp_path / "batch.toml"
    batch.write_text(text.replace("[nmf]\nrank = 3\n", "[nmf]\nrank = 3\nreplicates = 6\n"))
    out = tmp_path / "out"
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("summary", run_batch(batch, quiet=True)))
    thread.start()
    lock = out / "k1" / ".lock"
    deadline = time.monotonic() + 60
    pid = 0
    while not pid and time.monotonic() < deadline and thread.is_alive():
        try:
            pid = int(lock.read_text().split()[0])  # the worker holding k1
        except (OSError, ValueError, IndexError):
            time.sleep(0.01)
    assert pid and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    statuses = [r["status"] for r in box["summary"].records]
    assert statuses == ["failed", "ok"], box["summary"].records
    assert "worker process died" in box["summary"].records[0]["reason"]
    assert not (out / "k1" / "run.json").exists()
    # the rerun takes over the dead worker's lock, cleans its leftovers and finishes k1
    again = run_batch(batch, quiet=True)
    assert [r["status"] for r in again.records] == ["ok", "skipped"]
    assert [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".caimg_nmf-")] == []
