"""What the figures cost in the default run: `caimg-nmf run` on 600 x 512 x 512 (the real recording
stacked with its vertically flipped copy, as bench_pipeline.py builds it) with and without
--no-figures, each in its own process: wall time and that process's peak RSS (its tile workers' own
peaks are counted only as their maximum, not summed), plus the figures stage alone
(`make_figures` on the result, CPU time beside wall time: less sensitive to other jobs' load).

Run:  python benchmarks/bench_figures.py [--keep DIR] [--repeat N]
Real data: /work/shared/data/neurofinder_top or $CAIMG_NEUROFINDER (skipped with a message if absent).
The machine is shared: the load average is printed with every measurement; compare runs of one sitting.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import DATA, ROOT, machine  # noqa: E402  (the same machine line and data)

RUN = "import sys; sys.path.insert(0, {root!r}); from caimg_nmf.cli import main; sys.exit(main({argv!r}))"
FIGURES = """
import resource, sys, time
sys.path.insert(0, {root!r})
from caimg_nmf.figures import make_figures
from caimg_nmf.io import Result
result = Result.load({result!r})
w0, c0 = time.perf_counter(), time.process_time()
written = make_figures(result, {out!r}, overwrite=True)
print(f"{{time.perf_counter() - w0:.1f}} s wall, {{time.process_time() - c0:.1f}} s CPU, "
      f"{{sum(len(v) for v in written.values())}} files; peak RSS {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}} GB "
      "(the loaded result included)")
"""


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def measured(cmd) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in GB, exit code) of a command run as a child process. The
    CPU time (user + system, its worker processes included) depends less on other jobs than the wall time."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)   # this child's own peak, not that of earlier ones
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code:
            err.seek(0)
            print(f"    exit {code}: {err.read().decode(errors='replace')[-1500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, code


def big_movie(folder: Path) -> Path:
    import numpy as np
    import tifffile

    path = folder / "big.tif"
    if not path.exists():
        movie = tifffile.imread(DATA / "movie.tif")
        tifffile.imwrite(path, np.concatenate([movie, movie[:, ::-1]], axis=1))
    return path


def main() -> None:
    print("machine:", machine())
    if not (DATA / "movie.tif").exists():
        print(f"real data not found at {DATA}: skipped")
        return
    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
    with tempfile.TemporaryDirectory(prefix="bench_figures-", dir=keep) as tmp:
        folder = Path(tmp)
        movie = big_movie(folder)
        print(f"input: {DATA / 'movie.tif'} stacked with its vertically flipped copy: 600 x 512 x 512 uint16, "
              f"{movie.stat().st_size / 2**20:.0f} MB uncompressed TIFF")
        for i in range(repeat):
            for label, extra in (("--no-figures", ["--no-figures"]), ("figures (default)", [])):
                out = folder / ("nofig" if extra else "fig") / "result.h5"
                argv = ["run", "-i", str(movie), "-o", str(out), "--frame-rate", "7", "-q", "--overwrite", *extra]
                before = load()
                wall, cpu, rss, code = measured([sys.executable, "-c", RUN.format(root=str(ROOT), argv=argv)])
                print(f"run {i + 1}, {label:>17}: {wall:6.1f} s ({cpu:.1f} s CPU), peak RSS {rss:.2f} GB ({before}; "
                      f"after: {load()})", flush=True)
        result = folder / "fig" / "result.h5"
        if result.exists():
            code = FIGURES.format(root=str(ROOT), result=str(result), out=str(folder / "figures_again"))
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            print(f"make_figures alone on that result: {(out.stdout.strip() or out.stderr.strip()[-1500:])} ({load()})")


if __name__ == "__main__":
    main()
