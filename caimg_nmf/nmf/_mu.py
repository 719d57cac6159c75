"""Lee-Seung multiplicative updates for the Frobenius and Kullback-Leibler losses.

Frobenius: ``W <- W * (X H^T - l1) / (W H H^T + l2 W)`` and the same for H; the
error then comes from the products already computed. KL (for photon counts):
``W <- W * ((X / WH) H^T) / (1 H^T + l1 + l2 W)``; this needs ``W H`` explicitly,
so KL costs about two extra X-sized arrays. Multiplicative updates cannot move an
entry that is exactly 0, so exact zeros of the starting point (inside ``W_support``)
are lifted to a small positive value first.
"""
from __future__ import annotations

import numpy as np

__all__ = ["MUSolver"]


def _lift_zeros(A, mask=None):
    pos = A[A > 0]
    lift = (pos.mean() if pos.size else 1.0) * 1e-3
    z = A == 0
    if mask is not None:
        z &= mask
    A[z] = lift


class MUSolver:
    """Multiplicative updates; ``beta_loss`` "frobenius" or "kullback-leibler"."""

    def __init__(self, X, W0, H0, *, norm_sq, beta_loss="frobenius", l1_W=0.0, l1_H=0.0,
                 l2_W=0.0, l2_H=0.0, W_support=None, threads):
        self.X, self.threads, self.beta_loss = X, threads, beta_loss
        dt = X.dtype
        self.mask = None if W_support is None else np.asarray(W_support, dtype=bool)
        self._W = np.array(W0, dtype=dt)
        self._H = np.array(H0, dtype=dt)
        _lift_zeros(self._W, self.mask)
        _lift_zeros(self._H)
        self.norm_sq = float(norm_sq)
        self.l1_W, self.l1_H, self.l2_W, self.l2_H = map(float, (l1_W, l1_H, l2_W, l2_H))
        self.eps = np.finfo(dt).tiny * 1e4 if dt == np.float64 else 1e-30
        if beta_loss == "kullback-leibler":
            self.WH = np.empty_like(X)
            self.tmp = np.empty_like(X)
            pos = X[X > 0].astype(np.float64)
            self.kl_const = float(np.sum(pos * np.log(pos))) - float(pos.sum())

    W = property(lambda self: self._W)
    H = property(lambda self: self._H)

    def _pen(self, W, H, WtW=None, HHt=None):
        pen = self.l1_W * float(W.sum(dtype=np.float64)) + self.l1_H * float(H.sum(dtype=np.float64))
        if self.l2_W:
            pen += 0.5 * self.l2_W * float(np.vdot(W, W))
        if self.l2_H:
            pen += 0.5 * self.l2_H * float(np.vdot(H, H))
        return pen

    def step(self):
        if self.beta_loss == "kullback-leibler":
            return self._step_kl()
        X, W, H, eps = self.X, self._W, self._H, self.eps
        with self.threads.products():
            XHt = X @ H.T
        HHt = H @ H.T
        num = XHt - self.l1_W if self.l1_W else XHt
        np.maximum(num, 0, out=num)
        den = W @ HHt
        if self.l2_W:
            den += self.l2_W * W
        den += eps
        W *= num / den
        if self.mask is not None:
            W *= self.mask
        with self.threads.products():
            WtX = W.T @ X
        WtW = W.T @ W
        num = WtX - self.l1_H if self.l1_H else WtX.copy()
        np.maximum(num, 0, out=num)
        den = WtW @ H
        if self.l2_H:
            den += self.l2_H * H
        den += eps
        H *= num / den
        HHt = H @ H.T
        f64 = np.float64
        err_sq = self.norm_sq - 2.0 * float(np.vdot(WtX.astype(f64), H.astype(f64))) \
            + float(np.vdot(WtW.astype(f64), HHt.astype(f64)))
        err_sq = max(err_sq, 0.0)
        return 0.5 * err_sq + self._pen(W, H), err_sq, True

    def _ratio(self):
        """tmp <- X / (W H) (0 where X == 0); WH holds W H."""
        X, WH, tmp = self.X, self.WH, self.tmp
        with self.threads.products():
            np.matmul(self._W, self._H, out=WH)
        np.maximum(WH, self.eps, out=WH)
        np.divide(X, WH, out=tmp)
        return tmp

    def _step_kl(self):
        W, H = self._W, self._H
        R = self._ratio()
        with self.threads.products():
            num = R @ H.T
        den = H.sum(axis=1)[None, :] + self.l1_W
        if self.l2_W:
            den = den + self.l2_W * W
        W *= num / np.maximum(den, self.eps)
        if self.mask is not None:
            W *= self.mask
        R = self._ratio()
        with self.threads.products():
            num = W.T @ R
        den = W.sum(axis=0)[:, None] + self.l1_H
        if self.l2_H:
            den = den + self.l2_H * H
        H *= num / np.maximum(den, self.eps)
        with self.threads.products():
            np.matmul(W, H, out=self.WH)
        WH, tmp, X = self.WH, self.tmp, self.X
        np.maximum(WH, self.eps, out=WH)
        np.log(WH, out=tmp)
        kl = self.kl_const - float(np.vdot(X.astype(np.float64, copy=False).ravel(),
                                          tmp.astype(np.float64, copy=False).ravel())) \
            + float(WH.sum(dtype=np.float64))
        np.subtract(X, WH, out=tmp)
        err_sq = float(np.vdot(tmp.ravel(), tmp.ravel()))
        return max(kl, 0.0) + self._pen(W, H), err_sq, True
