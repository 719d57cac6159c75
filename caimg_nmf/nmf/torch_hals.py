"""HALS on PyTorch (GPU if available) or CuPy, in float32, X held on the device.

The row sweep (:func:`sweep_blocked`) avoids a full-matrix product per component:
rows are processed in blocks of ``block`` components; the block's numerators
``B_J - G_J A`` come from one matrix product, and inside the block each updated row
corrects the remaining numerators with a rank-1 update. Same objective and updates as
the numpy HALS (without extrapolation), driven by the shared loop in ``fit.py``.
"""
from __future__ import annotations

import numpy as np

from . import fit as _fit

__all__ = ["fit_torch", "fit_cupy", "TorchHALS"]


def sweep_blocked(xp, A, B, G, l1=0.0, mask=None, block=32):
    """One Gauss-Seidel pass over rows of ``A`` (K, n) in place, blocked.

    ``xp`` is None for torch, the cupy module for cupy. No host synchronisation inside
    (a zero diagonal entry means the row's numerator is 0 as well, so the row stays).
    """
    K = A.shape[0]
    diag = G.diagonal()
    diag = diag.clamp(min=1e-30) if xp is None else xp.maximum(diag, 1e-30)
    for s in range(0, K, block):
        e = min(K, s + block)
        N = B[s:e] - G[s:e] @ A              # (b, n) numerators before the block
        if l1:
            N -= l1
        for i in range(e - s):
            j = s + i
            new = A[j] + N[i] / diag[j]
            new = new.clamp_(min=0) if xp is None else xp.maximum(new, 0)
            if mask is not None:
                new *= mask[j]
            if i + 1 < e - s:
                d = new - A[j]
                N[i + 1:] -= G[s + i + 1:e, j][:, None] * d[None, :]
            A[j] = new


class TorchHALS:
    """HALS with X, W, H on a torch device (``W``/``H`` properties return numpy)."""

    def __init__(self, source, W0, H0, *, norm_sq, l1_W=0.0, l1_H=0.0, l2_W=0.0, l2_H=0.0,
                 support=None, device=None, inner=2, block=32, lib="torch"):
        self.lib = lib
        if lib == "torch":
            import torch
            self.t = torch
            dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
            self.dev = dev
            if dev.startswith("cuda"):
                torch.backends.cuda.matmul.allow_tf32 = False
            to = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
        else:
            import cupy
            self.t = cupy
            self.dev = "cuda"
            to = lambda a: cupy.asarray(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        self.X = to(source.X)                           # (P, T) on device
        self.Wt = to(np.asarray(W0).T)                  # (K, P)
        self.Hd = to(H0)                                # (K, T)
        self.mask = None if support is None else to(np.asarray(support, dtype=np.float32).T)
        self.norm_sq = float(norm_sq)
        self.l1_W, self.l1_H, self.l2_W, self.l2_H = map(float, (l1_W, l1_H, l2_W, l2_H))
        self.inner, self.block = inner, block
        self.eye = None

    def _np(self, a):
        if self.lib == "torch":
            return a.detach().cpu().numpy()
        return self.t.asnumpy(a)

    @property
    def W(self):
        return self._np(self.Wt).T

    @property
    def H(self):
        return self._np(self.Hd)

    def _dot64(self, a, b):
        if self.lib == "torch":
            return float((a.double() * b.double()).sum())
        return float((a.astype("f8") * b.astype("f8")).sum())

    def _eye(self, k):
        if self.lib == "torch":
            return self.t.eye(k, device=self.dev)
        return self.t.eye(k, dtype=self.t.float32)

    def _gram(self, A, l2):
        G = A @ A.T
        if l2:
            G += l2 * self._eye(G.shape[0])
        return G

    def step(self):
        xp = None if self.lib == "torch" else self.t
        X, Wt, H = self.X, self.Wt, self.Hd
        B = (X @ H.T).T                                  # (K, P)
        G = self._gram(H, self.l2_W)
        for _ in range(self.inner):
            sweep_blocked(xp, Wt, B, G, self.l1_W, self.mask, self.block)
        del B
        WtX = Wt @ X                                     # (K, T)
        WtW = Wt @ Wt.T
        G = WtW + self.l2_H * self._eye(WtW.shape[0]) if self.l2_H else WtW
        for _ in range(self.inner):
            sweep_blocked(xp, H, WtX, G, self.l1_H, None, self.block)
        HHt = H @ H.T
        err_sq = max(self.norm_sq - 2.0 * self._dot64(WtX, H) + self._dot64(WtW, HHt), 0.0)
        obj = 0.5 * err_sq + self.l1_W * float(Wt.sum()) + self.l1_H * float(H.sum()) \
            + 0.5 * self.l2_W * float(WtW.diagonal().sum()) \
            + 0.5 * self.l2_H * float(HHt.diagonal().sum())
        return obj, err_sq, True


def _fit_lib(lib, source, W, H, *, norm_sq, max_iter, tol, callback, verbose, support, **pen):
    if source.streamed:
        from ..errors import InputError
        raise InputError("backend='torch'/'cupy' needs X in memory (it is copied to the "
                         "device); use backend='numpy' for out-of-core X.") from None
    solver = TorchHALS(source, W, H, norm_sq=norm_sq, support=support, lib=lib, **pen)
    out = _fit.run(solver, norm_X=np.sqrt(norm_sq), max_iter=max_iter, tol=tol,
                   callback=callback, verbose=verbose, warn=False)
    return out


def fit_torch(source, W, H, **kw):
    return _fit_lib("torch", source, W, H, **kw)


def fit_cupy(source, W, H, **kw):
    return _fit_lib("cupy", source, W, H, **kw)
