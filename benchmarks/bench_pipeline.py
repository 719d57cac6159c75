"""Whole-pipeline benchmark: caimg_nmf.run on (a) the real recording, scored against its annotations,
(b) a 600 x 512 x 512 movie (the real one stacked with its vertically flipped copy) for time and peak
memory, in a subprocess so that maxrss is its own, (c) the synthetic scenarios.

Run:  python benchmarks/bench_pipeline.py [--skip-real] [--skip-large] [--skip-synthetic]
Real data: /work/shared/data/neurofinder_top or $CAIMG_NEUROFINDER (skipped with a message if absent).
"""
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import caimg_nmf  # noqa: E402
from caimg_nmf import evaluate as ev  # noqa: E402

DATA = Path(os.environ.get("CAIMG_NEUROFINDER", "/work/shared/data/neurofinder_top"))
FRAME_RATE = 7.0


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, load average {os.getloadavg()}, python {platform.python_version()}"


def real():
    if not (DATA / "movie.tif").exists():
        print(f"(a) real data not found at {DATA}: skipped")
        return
    import tifffile
    movie = tifffile.imread(DATA / "movie.tif").astype(np.float32)
    truth = ev.load_truth_masks(DATA / "regions.json", shape=movie.shape[1:])[0]
    active = ev.active_cells(movie, truth, frame_rate=FRAME_RATE)
    print(f"(a) real {DATA.name}: {movie.shape}, {len(truth)} annotated, {int(active.sum())} active")
    for diam, somata in ((9.0, True), (None, True), (None, False)):
        t0 = time.perf_counter()
        r = caimg_nmf.run(movie=movie, frame_rate=FRAME_RATE, cell_diameter=diam, save=False, quiet=True,
                          overrides={"somata.enabled": somata})
        s = ev.evaluate(r.roi_masks, truth, active=active)
        origin = np.asarray(r.extras.get("cells/origin", []))
        print(f"    diameter {diam} (used {r.attrs['cell_diameter_px']:.1f}), somata {'on' if somata else 'off'}: "
              f"{r.n_cells} cells ({int((origin == 'mean image').sum())} from the mean image), P {s.precision:.3f} "
              f"R {s.recall:.3f} F1 {s.f1:.3f} recall(active) {s.recall_active:.3f}; "
              f"{time.perf_counter() - t0:.1f} s, stages {r.attrs['stage_timings']}")


LARGE = """
import resource, sys, time, numpy as np, tifffile
sys.path.insert(0, {root!r})
import caimg_nmf
m = tifffile.imread({path!r})
big = np.concatenate([m, m[:, ::-1]], axis=1)
del m
import threading
def available():
    return int(next(l for l in open("/proc/meminfo") if l.startswith("MemAvailable")).split()[1]) * 1024
low = [available()]
start_avail = low[0]
done = threading.Event()
def watch():   # the machine's memory in use, worker processes included (ru_maxrss sees one process)
    while not done.wait(0.1):
        low[0] = min(low[0], available())
threading.Thread(target=watch, daemon=True).start()
t0 = time.perf_counter()
r = caimg_nmf.run(movie=big, frame_rate=7.0, cell_diameter=9.0, save=False, quiet=True)
dt = time.perf_counter() - t0
done.set()
print(f"{{big.shape}}: {{r.n_cells}} cells, {{dt:.1f}} s, stages {{r.attrs['stage_timings']}}, "
      f"peak RSS {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}} GB "
      f"(input uint16 stack included); machine memory in use rose by at most {{(start_avail - low[0]) / 2**30:.2f}} GB "
      f"during the run (tile workers included; the input stack was loaded before)")
"""


def large():
    if not (DATA / "movie.tif").exists():
        print("(b) large: needs the real recording: skipped")
        return
    out = subprocess.run([sys.executable, "-c", LARGE.format(root=str(ROOT), path=str(DATA / "movie.tif"))],
                         capture_output=True, text=True)
    print("(b) large", (out.stdout.strip() or out.stderr.strip()[-2000:]))


def synthetic():
    from caimg_nmf.synthetic import scenario
    for name in ("realistic", "dense"):
        for seed in (0, 1):
            truth = scenario(name, seed=seed)
            t0 = time.perf_counter()
            r = caimg_nmf.run(movie=truth.movie, cell_diameter=truth.cell_diameter, frame_rate=truth.frame_rate,
                              save=False, quiet=True)
            s = ev.evaluate(r.roi_masks, truth.masks(), pred_traces=r.traces, true_traces=truth.traces)
            r_text = "n/a" if s.trace_corr is None else f"{s.trace_corr:.3f}"
            print(f"(c) {name} seed {seed}: {r.n_cells}/{truth.n_cells} cells, P {s.precision:.3f} "
                  f"R {s.recall:.3f} F1 {s.f1:.3f} trace r {r_text}; {time.perf_counter() - t0:.1f} s")


def main():
    print("machine:", machine())
    if "--skip-real" not in sys.argv:
        real()
    if "--skip-large" not in sys.argv:
        large()
    if "--skip-synthetic" not in sys.argv:
        synthetic()
    print("load average at the end:", os.getloadavg())


if __name__ == "__main__":
    main()
