"""Spike inference benchmark: AR(1) (OASIS) against AR(2) (spikes.order = 2) on planted transients that
rise over a few frames (30 Hz, decay 1 s, rise 0.1 s, as GCaMP6s), time constants given and estimated.

Prints the machine, the inputs, spike precision / recall (a detected spike within one frame of a planted
one), the correlation of the denoised trace with the noise-free one, and seconds per cell.

Run:  python benchmarks/bench_spikes.py [N_CELLS]
"""
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from caimg_nmf.config import Config  # noqa: E402
from caimg_nmf.stages._spikes_ar2 import ar2_from_time_constants  # noqa: E402
from caimg_nmf.stages.spikes import infer_spikes  # noqa: E402

FR, DECAY, RISE, NOISE = 30.0, 1.0, 0.1, 4.0


def planted(n_cells, n_frames, seed=0):
    rng = np.random.default_rng(seed)
    g1, g2 = ar2_from_time_constants(DECAY, RISE, FR)
    h = lfilter([1.0], [1.0, -g1, -g2], np.r_[1.0, np.zeros(299)])
    s = np.zeros((n_cells, n_frames))
    n_spikes = n_frames // 60
    for k in range(n_cells):
        s[k, rng.choice(np.arange(10, n_frames - 10, 12), n_spikes, replace=False)] = rng.uniform(1, 2, n_spikes)
    c = lfilter([1.0 / h.max()], [1.0, -g1, -g2], s, axis=1)
    return (100 + 50 * c + rng.normal(0, NOISE, c.shape)).astype(np.float32), s, 100 + 50 * c


def precision_recall(true_s, est_s, tol=1):
    hits_p = hits_r = n_true = n_est = 0
    for ts, es in zip(true_s, est_s):
        tt, ee = np.flatnonzero(ts), np.flatnonzero(es)
        n_true, n_est = n_true + tt.size, n_est + ee.size
        if tt.size and ee.size:
            hits_r += sum(np.abs(ee - t).min() <= tol for t in tt)
            hits_p += sum(np.abs(tt - e).min() <= tol for e in ee)
    return hits_p / max(n_est, 1), hits_r / max(n_true, 1)


def main():
    n_cells = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(f"machine: {platform.machine()} cpus={os.cpu_count()} python {platform.python_version()}, "
          f"load average {os.getloadavg()}")
    print(f"planted: {n_cells} cells at {FR:g} Hz, decay {DECAY} s, rise {RISE} s, noise sd {NOISE} "
          "(a spike is 50-100 at its transient's peak)")
    models = {
        "AR(1), decay given": {"spikes.decay_time_s": DECAY},
        "AR(1), estimated": {},
        "AR(2), time constants given": {"spikes.order": 2, "spikes.decay_time_s": DECAY, "spikes.rise_time_s": RISE},
        "AR(2), estimated": {"spikes.order": 2},
    }
    for n_frames in (1800, 30000):
        y, s, clean = planted(n_cells, n_frames)
        for name, over in models.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                spikes, denoised = infer_spikes(y, Config().replace(over).spikes, frame_rate=FR)
            dt = (time.perf_counter() - t0) / n_cells
            p, r = precision_recall(s, spikes)
            corr = np.mean([np.corrcoef(d, c)[0, 1] for d, c in zip(denoised, clean)])
            notes = "; ".join(str(w.message) for w in caught)
            print(f"  {n_frames} frames, {name}: precision {p:.3f} recall {r:.3f}, denoised r {corr:.4f}, "
                  f"{dt:.3f} s per cell{'  [' + notes + ']' if notes else ''}")


if __name__ == "__main__":
    main()
