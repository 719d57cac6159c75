"""Benchmark of the motion-correction stage.

Times rigid and piecewise-rigid correction of a synthetic 600 x 512 x 512 uint16 movie with known
shifts and prints the time and the shift error; then, if the Neurofinder development movie is
present (/work/shared/data/neurofinder_top/movie.tif, 600 x 256 x 512 uint16), times rigid
correction on it and prints the shifts found.

    python benchmarks/bench_motion.py [--frames 600] [--size 512] [--skip-piecewise] [--real PATH]

Needs about 2.5 GB of memory at the default size.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from caimg_nmf.config import Config  # noqa: E402
from caimg_nmf.stages.motion import correct_motion  # noqa: E402

REAL = "/work/shared/data/neurofinder_top/movie.tif"
PAD = 16  # the scene is larger than the frame, so shifted frames show real content at their borders


def scene(rng, size):
    """A textured field with cell-like blobs, (size + 2 PAD) square, float64."""
    n = size + 2 * PAD
    img = ndimage.gaussian_filter(rng.standard_normal((n, n)), 3.0) * 300 + 1000
    cells = np.zeros((n, n))
    ys, xs = rng.integers(0, n, (2, max(20, n * n // 2500)))
    cells[ys, xs] = 1.0
    cells = ndimage.gaussian_filter(cells, 2.5) * 2 * np.pi * 2.5 ** 2 * 800
    return img, cells


def planted_rigid(rng, t_total):
    """Slow drift plus jitter, within +-6 px."""
    drift = np.cumsum(rng.normal(0, 0.3, (t_total, 2)), axis=0)
    drift -= drift.mean(axis=0)
    d = np.clip(drift + rng.normal(0, 0.7, (t_total, 2)), -6, 6)
    return d - d.mean(axis=0)


def nonrigid(t_total, size, rng):
    """Per-frame amplitude of a smooth warp: (dy, dx) += amp_t * (sin, cos) of the column / row."""
    amp = rng.uniform(-1.5, 1.5, (t_total, 2))
    return amp - amp.mean(axis=0)


def make_movie(t_total, size, rng, d, amp=None):
    img, cells = scene(rng, size)
    activity = 1 + 0.5 * np.abs(rng.standard_normal(t_total))
    n = size + 2 * PAD
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    mov = np.empty((t_total, size, size), np.uint16)
    pre_img = ndimage.spline_filter(img)
    pre_cells = ndimage.spline_filter(cells)
    for t in range(t_total):
        sy = np.full((size, size), d[t, 0])
        sx = np.full((size, size), d[t, 1])
        if amp is not None:
            sy = sy + amp[t, 0] * np.sin(2 * np.pi * xx / size)
            sx = sx + amp[t, 1] * np.cos(2 * np.pi * yy / size)
        coords = [yy + PAD - sy, xx + PAD - sx]  # content displaced by +(sy, sx)
        frame = (ndimage.map_coordinates(pre_img, coords, order=3, prefilter=False, mode="nearest")
                 + activity[t] * ndimage.map_coordinates(pre_cells, coords, order=3, prefilter=False,
                                                         mode="nearest"))
        frame += rng.normal(0, 60, frame.shape)
        mov[t] = np.clip(frame, 0, 65535)
    assert n > 0
    return mov


def rms(e):
    return float(np.sqrt(np.mean(np.sum(e ** 2, axis=-1))))


def run(label, mov, cfg):
    t0 = time.perf_counter()
    res = correct_motion(mov, cfg)
    return res, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--skip-piecewise", action="store_true")
    ap.add_argument("--real", default=REAL)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    base = Config().motion
    t_total, size = args.frames, args.size

    print(f"synthetic {t_total} x {size} x {size} uint16, cpu_count={os.cpu_count()}")
    d = planted_rigid(rng, t_total)
    t0 = time.perf_counter()
    mov = make_movie(t_total, size, rng, d)
    print(f"  (made in {time.perf_counter() - t0:.1f} s; planted |shift| max {np.abs(d).max():.2f} px)")
    res, el = run("rigid", mov, base)
    err = res.shifts + d
    print(f"rigid      : {el:6.2f} s  ({t_total / el:.0f} frames/s)  shift error RMS {rms(err):.3f} px, "
          f"after removing the common offset {rms(err - err.mean(0)):.3f} px, max {np.abs(err).max():.3f} px")
    del res

    if not args.skip_piecewise:
        amp = nonrigid(t_total, size, rng)
        mov = make_movie(t_total, size, rng, d, amp)
        cfg = dataclasses.replace(base, method="piecewise")
        res, el = run("piecewise", mov, cfg)
        cy, cx = res.patch_centers
        # planted displacement at the patch centres; the estimate is minus the applied shift
        true = np.empty(res.patch_shifts.shape)
        true[..., 0] = d[:, None, None, 0] + amp[:, None, None, 0] * np.sin(2 * np.pi * cx[None, None, :] / size)
        true[..., 1] = d[:, None, None, 1] + amp[:, None, None, 1] * np.cos(2 * np.pi * cy[None, :, None] / size)
        err = -res.patch_shifts - true
        err_rigid = -res.shifts[:, None, None, :] - true
        print(f"piecewise  : {el:6.2f} s  ({t_total / el:.0f} frames/s)  {len(cy)}x{len(cx)} patches, "
              f"patch shift error RMS {rms(err):.3f} px (offset removed {rms(err - err.mean((0, 1, 2))):.3f}); "
              f"a rigid shift would be off by {rms(err_rigid):.3f} px")
        rigid_res, el_r = run("rigid", mov, base)
        err_r = -rigid_res.shifts[:, None, None, :] - true
        print(f"  rigid on the same warped movie: {el_r:.2f} s, error at patch centres RMS {rms(err_r):.3f} px")
        del res, rigid_res
    del mov

    if args.real and os.path.exists(args.real):
        import tifffile
        real = tifffile.imread(args.real)
        res, el = run("rigid", real, base)
        s = res.shifts
        mag = np.hypot(s[:, 0], s[:, 1])
        print(f"real {real.shape} {real.dtype}: rigid {el:.2f} s ({real.shape[0] / el:.0f} frames/s); "
              f"max |shift| {res.max_shift():.2f} px per axis, |shift| max {mag.max():.2f} px, mean {mag.mean():.2f} px; "
              f"mean |dy|,|dx| = {np.abs(s[:, 0]).mean():.2f}, {np.abs(s[:, 1]).mean():.2f} px")
    else:
        print(f"real movie not found at {args.real}; skipped")


if __name__ == "__main__":
    main()
