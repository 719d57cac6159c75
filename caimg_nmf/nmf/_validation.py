"""Argument validation for :func:`caimg_nmf.nmf.nmf`, declared in one table.

``_PARAMETER_CONSTRAINTS`` lists what each parameter may be (in the spirit of
scikit-learn's ``_nmf.py``); :func:`validate_params` checks a dict of parameters
against it and :func:`check_cross` does the checks that involve several arguments.
Every failure raises :class:`caimg_nmf.errors.InputError` naming the argument.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import InputError

SOLVERS = ("hals", "mu", "als", "anls")
BETA_LOSSES = ("frobenius", "kullback-leibler")
INITS = ("random", "nndsvd", "nndsvda", "nndsvdar")
NORMALIZE = ("footprints_max", "H_max", "unit_norm")
ORDERS = ("energy",)
BACKENDS = ("numpy", "torch", "cupy")


class _Int:
    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi

    def ok(self, v):
        return (isinstance(v, numbers.Integral) and not isinstance(v, bool)
                and (self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi))

    def __str__(self):
        lo = "" if self.lo is None else f" >= {self.lo}"
        hi = "" if self.hi is None else f" and <= {self.hi}"
        return f"an integer{lo}{hi}"


class _Real(_Int):
    def ok(self, v):
        return (isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)
                and (self.lo is None or v >= self.lo))

    def __str__(self):
        lo = "" if self.lo is None else f" >= {self.lo}"
        return f"a finite number{lo}"


class _Options:
    def __init__(self, options):
        self.options = tuple(options)

    def ok(self, v):
        return isinstance(v, str) and v in self.options

    def __str__(self):
        return "one of " + ", ".join(repr(o) for o in self.options)


class _Type:
    def __init__(self, types, text):
        self.types, self.text = types, text

    def ok(self, v):
        return isinstance(v, self.types)

    def __str__(self):
        return self.text


class _Exact:
    def __init__(self, value):
        self.value = value

    def ok(self, v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v == self.value

    def __str__(self):
        return repr(self.value)


class _Callable:
    def ok(self, v):
        return callable(v)

    def __str__(self):
        return "a callable"


_NONE = _Type(type(None), "None")

#: parameter -> list of accepted forms (any one of them)
_PARAMETER_CONSTRAINTS = {
    "rank": [_Int(1)],
    "solver": [_Options(SOLVERS)],
    "beta_loss": [_Options(BETA_LOSSES)],
    "init": [_Options(INITS)],
    "replicates": [_Int(1, 10000)],  # as nmf.replicates in a config; each replicate is a whole fit
    "max_iter": [_Int(1)],
    "tol": [_Real(0)],
    "random_state": [_NONE, _Int(0), _Type(np.random.SeedSequence, "a numpy SeedSequence")],
    "l1_W": [_Real(0)],
    "l1_H": [_Real(0)],
    "l2_W": [_Real(0)],
    "l2_H": [_Real(0)],
    "normalize": [_NONE, _Options(NORMALIZE)],
    "order": [_NONE, _Options(ORDERS)],
    "n_jobs": [_NONE, _Int(1), _Exact(-1)],
    "backend": [_Options(BACKENDS)],
    "memory_budget": [_NONE, _Int(1)],
    "callback": [_NONE, _Callable()],
    "verbose": [_Type((bool, numbers.Integral), "a bool or an integer")],
    "compress": [_NONE, _Options(("auto",)), _Int(1)],
}

_HINTS = {
    "rank": "Pass the number of components as a positive int, e.g. rank=10.",
    "l1_W": "Penalties must be >= 0 (0 disables them).",
    "l1_H": "Penalties must be >= 0 (0 disables them).",
    "l2_W": "Penalties must be >= 0 (0 disables them).",
    "l2_H": "Penalties must be >= 0 (0 disables them).",
    "memory_budget": "Pass a number of bytes, e.g. memory_budget=2 * 1024**3.",
    "n_jobs": "Pass a positive number of worker threads, or -1 for one per core.",
    "compress": "Pass None (off), 'auto', or the oversampling as an int, e.g. compress=20.",
}


def validate_params(params: dict) -> None:
    """Check each entry of ``params`` against ``_PARAMETER_CONSTRAINTS``."""
    for name, value in params.items():
        forms = _PARAMETER_CONSTRAINTS[name]
        if any(f.ok(value) for f in forms):
            continue
        allowed = " or ".join(str(f) for f in forms)
        msg = f"{name} must be {allowed}; got {value!r}."
        if name in _HINTS:
            msg += " " + _HINTS[name]
        raise InputError(msg) from None


def check_cross(*, shape, rank, solver, beta_loss, W0, H0, W_support, backend, streamed):
    """Checks that involve more than one argument (after the per-parameter table)."""
    P, T = shape
    if rank > min(P, T):
        raise InputError(
            f"rank must be at most min(P, T) = {min(P, T)} for X of shape {shape}; got {rank}. "
            "Pass a smaller rank (number of components).") from None
    if beta_loss == "kullback-leibler" and solver != "mu":
        raise InputError(
            f"beta_loss='kullback-leibler' is only supported by solver='mu'; got solver={solver!r}. "
            "Pass solver='mu' (or beta_loss='frobenius').") from None
    for name, M, want in (("W0", W0, (P, rank)), ("H0", H0, (rank, T))):
        if M is None:
            continue
        M = np.asarray(M)
        if M.shape != want:
            raise InputError(
                f"{name} must have shape {want} (X is {shape}, rank={rank}); got {M.shape}. "
                f"Pass a {name} matching X and rank, or leave it None.") from None
        _check_values(M, name)
    if W_support is not None:
        S = np.asarray(W_support)
        if S.shape != (P, rank):
            raise InputError(
                f"W_support must be a boolean mask of shape {(P, rank)}; got shape {S.shape}.") from None
        if S.dtype != bool:
            raise InputError(f"W_support must be a boolean array; got dtype {S.dtype}. "
                             "Pass e.g. mask.astype(bool).") from None
    if streamed and (solver != "hals" or backend != "numpy"):
        raise InputError(
            f"out-of-core X (h5py.Dataset, np.memmap or memory_budget below X's size) needs "
            f"solver='hals' and backend='numpy'; got solver={solver!r}, backend={backend!r}.") from None


def _check_values(M, name):
    if not np.issubdtype(M.dtype, np.number) or np.issubdtype(M.dtype, np.complexfloating):
        raise InputError(f"{name} must hold real numbers; got dtype {M.dtype}.") from None
    if M.size == 0:
        return
    lo, hi = np.min(M), np.max(M)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"{name} contains NaN or Inf values. Replace them (e.g. np.nan_to_num) "
                         "before factorizing.") from None
    if lo < 0:
        raise InputError(f"{name} must be nonnegative; its minimum is {lo:.6g}. "
                         "Subtract the minimum or clip negative values to 0.") from None
    # the solvers sum squares and products of entries: values this large overflow to inf, and the
    # factors come back as NaN without an error
    dtype = M.dtype if np.issubdtype(M.dtype, np.floating) else np.dtype(np.float64)
    limit = float(np.sqrt(np.finfo(dtype).max / M.size)) / 16
    if hi > limit:
        raise InputError(f"{name} holds values up to {float(hi):.3g}, too large to factorize in {dtype}: sums "
                         f"of their squares overflow (at most {limit:.3g} for {M.size} entries). Rescale it "
                         f"first, e.g. {name} / {name}.max().") from None


def check_X(X, name="X"):
    """Validate the data matrix; return (array-or-dataset, dtype, streamed_kind).

    In-memory arrays are returned without copying when they are already float32 or
    float64 (never written to). Out-of-core inputs (h5py.Dataset, np.memmap) are
    returned as is and checked block by block later.
    """
    mod = type(X).__module__ or ""
    if mod.startswith("h5py"):
        kind = "h5py"
    elif isinstance(X, np.memmap):
        kind = "memmap"
    else:
        kind = None
        try:
            X = np.asarray(X)
        except Exception as exc:  # noqa: BLE001 - report what we got
            raise InputError(f"{name} must be a 2-D array-like; could not convert {type(X).__name__} "
                             f"({exc}).") from None
    shape = tuple(getattr(X, "shape", ()))
    if len(shape) != 2:
        raise InputError(f"{name} must be 2-D (pixels x frames); got {len(shape)}-D with shape {shape}. "
                         "Reshape a movie (T, Y, X) to (Y*X, T) first.") from None
    if min(shape) < 1:
        raise InputError(f"{name} must not be empty; got shape {shape}.") from None
    dt = np.dtype(X.dtype)
    if not (np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating) or dt == bool):
        raise InputError(f"{name} must hold real numbers; got dtype {dt}.") from None
    dtype = np.float32 if dt == np.float32 else np.float64
    if kind is None:
        if X.dtype != dtype:
            X = X.astype(dtype)
        _check_values(X, name)
        X = X.view()
        X.flags.writeable = False
    return X, np.dtype(dtype), kind
