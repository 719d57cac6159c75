"""The command line: exit codes and messages a user sees."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import caimg_nmf.pipeline
from caimg_nmf.cli import main
from hostile import expect_cli


def cli(*args, cwd=None):
    """Run the CLI in a subprocess, as a user would (in a scratch folder: default outputs land there)."""
    import tempfile

    p = subprocess.run([sys.executable, "-m", "caimg_nmf.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd or tempfile.mkdtemp(prefix="caimg-cli-"))
    return p.returncode, p.stdout, p.stderr


def test_run_and_info(tmp_path, five_cells):
    movie, _ = five_cells
    out = tmp_path / "res" / "r.h5"
    code, stdout, stderr = cli("run", "--input", movie, "--output", out, "--rank", "5", "--set", "factorize.method=whole", "--no-figures", "--quiet")
    assert code == 0, stderr
    assert "5 cells" in stdout and stderr == ""
    code, stdout, _ = cli("info", out, "--config")
    assert code == 0
    assert "cells: 5" in stdout and "/footprints (5, 64, 64)" in stdout and "rank = 5" in stdout


def test_set_overrides_and_config_printing(tmp_path, capsys):
    assert main(["config"]) == 0
    assert "[nmf]" in capsys.readouterr().out
    cfg = tmp_path / "c.toml"
    cfg.write_text("[nmf]\nrank = 3\n")
    assert main(["config", str(cfg), "--set", "nmf.solver=mu"]) == 0
    text = capsys.readouterr().out
    assert 'solver = "mu"' in text and "rank = 3" in text


@pytest.mark.parametrize("make_args, expected", [
    (lambda d: ["run", "--input", d / "missing.tif"], "not found"),
    (lambda d: ["run", "--input", d / "notes.txt"], "not a TIFF, HDF5 or .npy"),
    (lambda d: ["run", "--input", d / "image.tif"], "single 2-D image"),
    (lambda d: ["run", "--input", d / "yxt.npy"], "input.axes = 'YXT'"),
    (lambda d: ["run", "--input", d / "nan.tif"], "frame 3 contains NaN"),
    (lambda d: ["run", "--input", d / "flat.tif"], "constant"),
    (lambda d: ["run", "--input", d / "movie.tif", "--rank", "0"], "--rank 0: must be at least 1"),
    (lambda d: ["run", "--input", d / "movie.tif", "--rank", "-3"], "must be at least 1"),
    (lambda d: ["run", "--input", d / "movie.tif", "--rank", "500", "--set", "factorize.method=whole"],
     "larger than min(pixels, frames)"),
    (lambda d: ["run", "--input", d / "movie.tif", "--rank", "5", "--set", "factorize.method=local"],
     "set factorize.method = 'whole'"),
    (lambda d: ["run", "--input", d / "movie.tif", "--set", "nmf.rnk=3"], "Valid keys in [nmf]"),
    (lambda d: ["run", d / "typo.toml"], "unknown key 'rnak' in [nmf]"),
    (lambda d: ["run", "--input", d / "movie.tif", "--output", d / "blocker" / "r.h5"], "cannot create the output folder"),
    (lambda d: ["run"], "no input movie"),
    (lambda d: ["info", d / "movie.tif"], "not a readable HDF5"),
])
def test_bad_input_exit_2_with_clear_message(tmp_path, make_args, expected):
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "movie.tif", (rng.random((20, 16, 16)) * 100).astype(np.uint16))
    tifffile.imwrite(tmp_path / "image.tif", np.zeros((16, 16), np.uint16))
    nan = rng.random((10, 8, 8)).astype(np.float32)
    nan[3, 2, 2] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    tifffile.imwrite(tmp_path / "flat.tif", np.full((10, 8, 8), 5, np.uint16))
    np.save(tmp_path / "yxt.npy", rng.random((64, 64, 1000)).astype(np.float32))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    (tmp_path / "typo.toml").write_text("[input]\npath = 'movie.tif'\n[nmf]\nrnak = 3\n")
    args = make_args(tmp_path)
    code, stdout, stderr = cli(*args, *(["--no-figures"] if args[0] == "run" else []), cwd=tmp_path)
    assert code == 2, (stdout, stderr)
    assert expected in stderr, stderr
    assert "Traceback" not in stderr
    assert not list(tmp_path.glob("**/*.h5"))  # no partial result anywhere


def test_usage_error_exit_2():
    code, _, stderr = cli("run", "--rank", "five")
    assert code == 2 and "invalid int value" in stderr


def test_figures_and_export_commands(tmp_path, five_cells):
    movie, _ = five_cells
    out = tmp_path / "r.h5"
    assert cli("run", "--input", movie, "--output", out, "--rank", "5", "--set", "factorize.method=whole", "--no-figures", "-q")[0] == 0
    code, stdout, stderr = cli("figures", out, "--out", tmp_path / "figs", "--format", "png", "--dpi", "80",
                               "--style", "screen")
    assert code == 0, stderr
    pngs = sorted(p.name for p in (tmp_path / "figs").glob("*.png"))
    assert {"contours_mean.png", "footprints.png", "traces_dff.png", "reconstruction.png"} <= set(pngs)
    code, stdout, stderr = cli("export", out, "--to", "csv", "--out", tmp_path / "t.csv")
    assert code == 0, stderr
    header = (tmp_path / "t.csv").read_text().splitlines()[0]
    assert header.split(",") == ["time_s"] + [f"cell_{k:03d}" for k in range(5)]   # one naming (io.result.cell_names)
    code, _, stderr = cli("export", out, "--to", "xls")
    assert code == 2 and "invalid choice" in stderr


@pytest.mark.parametrize("raised, code, message", [
    (KeyboardInterrupt, 130, r"caimg-nmf: interrupted; no partial result"),
    (RuntimeError("boom in the pipeline"), 1,
     r"unexpected error: RuntimeError: boom in the pipeline.*--debug for a traceback"),
])
def test_interrupt_and_unexpected_error_exit_codes(tmp_path, monkeypatch, five_cells, raised, code, message):
    """Ctrl-C in the middle of a run exits 130, an unexpected exception exits 1; both say so in one
    line, without a traceback, and leave no result."""
    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(caimg_nmf.pipeline, "run", fail)
    movie, _ = five_cells
    expect_cli(["run", "--input", movie, "--output", tmp_path / "r.h5", "--no-figures"], code=code,
               message=message, protect=[movie])
    assert not (tmp_path / "r.h5").exists()


def test_unexpected_error_with_debug_shows_the_traceback(tmp_path, monkeypatch, five_cells):
    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(caimg_nmf.pipeline, "run", fail)
    with pytest.raises(RuntimeError, match="boom"):
        main(["run", "--input", str(five_cells[0]), "--output", str(tmp_path / "r.h5"), "--debug"])


def test_ctrl_c_during_a_real_run(tmp_path, five_cells):
    """SIGINT to the process group (what Ctrl-C in a terminal does) while the cells are being found:
    exit 130, one line saying so, no traceback, and nothing left in the output folder."""
    frames = tifffile.imread(five_cells[0])
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.concatenate([frames] * 3))      # 900 frames: long enough to interrupt
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "caimg_nmf.cli", "run", "--input", str(movie),
                          "--output", str(out / "r.h5"), "--no-figures"], cwd=tmp_path,
                         stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    for line in p.stderr:                                       # wait until the local fit has started
        seen.append(line)
        if "find cells (local NMF) ..." in line:
            os.killpg(p.pid, signal.SIGINT)
            break
    stderr = "".join(seen) + p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == 130, stderr
    assert "interrupted; no partial result was left behind" in stderr
    assert "Traceback" not in stderr + p.stdout.read()
    left = sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob("*") if f.name != "movie.tif")
    assert left in ([], ["out"]), left                          # at most the (empty) output folder


def test_demo_recovers_the_five_planted_cells(tmp_path, capsys, five_cells):
    """`caimg-nmf demo` (the README's first command) into a folder of its own: the result and its
    figures are written there, and every planted cell is recovered, checked here against the truth
    independently of the demo's own summary."""
    from conftest import match_report

    import caimg_nmf

    assert main(["demo", "--output", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "demo: 5/5 planted cells recovered" in out, out
    result = caimg_nmf.Result.load(tmp_path / "demo" / "result.h5")
    assert result.n_cells == 5
    cos, corr = match_report(result.footprints, result.traces, five_cells[1])
    assert len(cos) == 5 and cos.min() >= 0.9 and corr.min() >= 0.9, (cos, corr)
    assert {"footprints.png", "contours_mean.png", "traces_dff.png"} <= {
        p.name for p in (tmp_path / "demo" / "figures").glob("*.png")}
