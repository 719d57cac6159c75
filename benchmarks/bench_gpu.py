"""Per-iteration time of HALS on the GPU (backend="torch").

X is 262144 x 10000 float32 (10.5 GB, e.g. a 512 x 512 movie of 10000 frames), K = 100.
Target: <= 10 ms per iteration on an H100 (two passes over X per iteration are already
~6 ms at 3.35 TB/s, so the products must run near memory bandwidth and the row sweeps
must stay small).

STATUS: UNMEASURED. No GPU was available when this script was written; it has only
been run on the CPU with a small shape (``--small``). Run it on a CUDA machine with
torch installed::

    python benchmarks/bench_gpu.py            # full size, needs ~25 GB GPU memory
    python benchmarks/bench_gpu.py --small    # 16384 x 2000, K = 40, quick check
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--inner", type=int, default=2)
    a = ap.parse_args()
    import torch

    from caimg_nmf.nmf.torch_hals import TorchHALS

    P, T, K = (16384, 2000, 40) if a.small else (262144, 10000, 100)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "CPU"
    print(f"torch {torch.__version__}, device {dev} ({name}); X {P} x {T} float32 "
          f"({P * T * 4 / 1e9:.1f} GB), K={K}, inner sweeps {a.inner}, block {a.block}")
    g = torch.Generator(device=dev).manual_seed(0)
    # build X on the device (low rank + noise) without a host copy
    Wt = torch.rand(P, K, device=dev, generator=g) * (torch.rand(P, K, device=dev, generator=g) < 0.05)
    Ht = torch.rand(K, T, device=dev, generator=g)
    X = Wt @ Ht
    X += 0.01 * torch.rand(P, T, device=dev, generator=g)
    norm_sq = float((X.double() ** 2).sum())

    solver = TorchHALS.__new__(TorchHALS)
    solver.lib, solver.t, solver.dev = "torch", torch, dev
    solver.X = X
    solver.Wt = torch.rand(K, P, device=dev, generator=g)
    solver.Hd = torch.rand(K, T, device=dev, generator=g)
    solver.mask = None
    solver.norm_sq = norm_sq
    solver.l1_W = solver.l1_H = solver.l2_W = solver.l2_H = 0.0
    solver.inner, solver.block = a.inner, a.block

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):                   # warm-up
        solver.step()
    sync()
    t = time.perf_counter()
    for _ in range(3):
        B = X @ solver.Hd.T
        C = solver.Wt @ X
    sync()
    t_prod = (time.perf_counter() - t) / 3
    del B, C
    t = time.perf_counter()
    rel = None
    for _ in range(a.iters):
        obj, err_sq, _ = solver.step()   # step() syncs once (error as a Python float)
        rel = np.sqrt(err_sq / norm_sq)
    sync()
    per = (time.perf_counter() - t) / a.iters
    print(f"two products X@H^T + W^T X: {t_prod * 1e3:.2f} ms")
    print(f"HALS iteration: {per * 1e3:.2f} ms ({per / t_prod:.2f} x the products); "
          f"rel_error after {a.iters + 3} iterations: {rel:.4g}")
    if dev == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
