"""scikit-learn estimator around :func:`caimg_nmf.nmf.nmf` (sklearn optional).

Orientation follows scikit-learn exactly: ``X`` is (n_samples, n_features),
``fit_transform`` returns ``W`` (n_samples, K) and ``components_`` is ``H``
(K, n_features). For a movie matrix (pixels x frames) that means samples = pixels,
so ``fit_transform`` gives the footprints and ``components_`` the traces, exactly as
``nmf`` does.
"""
from __future__ import annotations

import inspect

import numpy as np

from ..errors import InputError
from ._anls import nnls_bpp
from ._validation import check_X
from .api import _nmf

__all__ = ["NMF"]


class _PlainParams:
    """``get_params``/``set_params``/``repr`` as scikit-learn's ``BaseEstimator`` gives them.

    Used as the base of :class:`NMF` only when scikit-learn is not installed, so that the
    core imports without it; with scikit-learn, NMF subclasses the real
    ``BaseEstimator``/``TransformerMixin`` (pipelines, ``clone``, tags, HTML repr).
    """

    @classmethod
    def _get_param_names(cls):
        return [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self"]

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise InputError(f"{type(self).__name__} has no parameter {key!r}; valid ones: "
                                 f"{', '.join(valid)}.") from None
            setattr(self, key, value)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = {k: v for k, v in self.get_params().items()
                   if not (defaults[k] is v or _equal(defaults[k], v))}
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"


def _equal(a, b):
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd objects: not equal to a default
        return False


try:  # scikit-learn is the optional extra ``bench``; the core must import without it
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_non_negative, validate_data
    _BASES = (ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator)
except ImportError:
    _BASES = (_PlainParams,)
    NotFittedError = AttributeError
    validate_data = None


class NotFittedInputError(InputError, NotFittedError):
    """A method that needs a fitted model was called before ``fit``.

    An :class:`InputError` and, with scikit-learn installed, its ``NotFittedError``.
    """


class NMF(*_BASES):
    """Nonnegative matrix factorization estimator ``X ~= W @ components_``.

    A scikit-learn estimator (``BaseEstimator``, ``TransformerMixin``) when scikit-learn
    is installed, so it works in ``Pipeline``, ``clone`` and grid searches; a plain class
    with the same methods otherwise.

    Parameters
    ----------
    n_components : int or None
        K. None: ``min(n_samples, n_features)``.
    solver, beta_loss, init, replicates, max_iter, tol, random_state, l1_W, l1_H, l2_W, \
l2_H, normalize, order, n_jobs, backend, memory_budget, callback, verbose, compress
        Same as the keywords of :func:`caimg_nmf.nmf.nmf`.

    Attributes
    ----------
    components_ : ndarray (K, n_features)
    reconstruction_err_ : float
        ``||X - W H||_F`` of the fit (absolute, as scikit-learn).
    n_iter_ : int
    result_ : NMFResult
    n_components_, n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from caimg_nmf.nmf import NMF
    >>> X = np.random.default_rng(0).random((50, 30))
    >>> model = NMF(3, random_state=0, max_iter=1000)
    >>> W = model.fit_transform(X)
    >>> W.shape, model.components_.shape
    ((50, 3), (3, 30))
    """

    def __init__(self, n_components=None, *, solver="hals", beta_loss="frobenius",
                 init="nndsvda", replicates=1, max_iter=500, tol=1e-4, random_state=None,
                 l1_W=0.0, l1_H=0.0, l2_W=0.0, l2_H=0.0, normalize=None, order=None,
                 n_jobs=1, backend="numpy", memory_budget=None, callback=None,
                 verbose=False, compress=None):
        # scikit-learn's rule: store the parameters as given, validate them in fit
        self.n_components = n_components
        self.solver = solver
        self.beta_loss = beta_loss
        self.init = init
        self.replicates = replicates
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.l1_W = l1_W
        self.l1_H = l1_H
        self.l2_W = l2_W
        self.l2_H = l2_H
        self.normalize = normalize
        self.order = order
        self.n_jobs = n_jobs
        self.backend = backend
        self.memory_budget = memory_budget
        self.callback = callback
        self.verbose = verbose
        self.compress = compress

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True      # NMF is defined for X >= 0 only
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _fit_params(self):
        return {k: v for k, v in self.get_params().items() if k != "n_components"}

    def fit_transform(self, X, y=None, W=None, H=None):
        """Fit and return W (n_samples, K). ``W``/``H`` are optional starting factors."""
        X = self._validated(X, reset=True)
        rank = self.n_components
        if rank is None:
            rank = min(getattr(X, "shape", np.shape(X)) or (1,))
        res = _nmf(X, rank, W0=W, H0=H, W_support=None, stacklevel=5, **self._fit_params())
        self.result_ = res
        self.components_ = res.H
        self.n_components_ = res.H.shape[0]
        self.n_features_in_ = res.H.shape[1]  # also set (with feature names) by validate_data
        self.n_iter_ = res.n_iter
        self.reconstruction_err_ = float(res.rel_error * np.sqrt(_sumsq(X)))
        return res.W

    def fit(self, X, y=None, **fit_params):
        """Fit the model to X (n_samples, n_features); returns self."""
        self.fit_transform(X, **fit_params)
        return self

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise NotFittedInputError(f"This {type(self).__name__} instance is not fitted yet; "
                                      "call fit(X) first.") from None

    def _validated(self, X, reset):
        """X checked as scikit-learn checks it (its messages, feature names, n_features_in_).

        Without scikit-learn, and for out-of-core X (h5py.Dataset, np.memmap, which
        sklearn would load whole), X is returned as is: :func:`check_X` in ``nmf`` and
        ``transform`` checks it.
        """
        if validate_data is None or isinstance(X, np.memmap) or \
                (type(X).__module__ or "").startswith("h5py"):
            return X
        try:
            X = validate_data(self, X, reset=reset, accept_sparse=False,
                              dtype=(np.float64, np.float32))
            check_non_negative(X, f"{type(self).__name__} (input X)")
        except ValueError as exc:
            raise InputError(f"{exc} NMF needs X >= 0: subtract the minimum or clip negative "
                             "values to 0." if "Negative" in str(exc) else str(exc)) from None
        return X

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def transform(self, X):
        """W (n_samples, K) for new data with ``components_`` fixed (exact NNLS)."""
        self._check_fitted()
        X, _, _ = check_X(self._validated(X, reset=False))
        Hc = self.components_.astype(np.float64)
        if X.shape[1] != Hc.shape[1]:
            raise InputError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {Hc.shape[1]} features as input (the number of columns "
                             f"of the data it was fitted on); got shape {X.shape}.") from None
        C = Hc @ Hc.T
        C[np.diag_indices_from(C)] += self.l2_W
        D = Hc @ X.T.astype(np.float64) - self.l1_W
        return nnls_bpp(C, D).T.astype(X.dtype)

    def inverse_transform(self, X):
        """Reconstruction ``X @ components_`` (n_samples, n_features) of W = ``X``."""
        self._check_fitted()
        W = np.asarray(X)
        if W.ndim != 2 or W.shape[1] != self.components_.shape[0]:
            raise InputError(f"W must have shape (n_samples, {self.components_.shape[0]}); "
                             f"got {W.shape}.") from None
        return W @ self.components_


def _sumsq(X):
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    return float(sum(np.vdot(b, b) for b in (X[i:i + 4096].astype(np.float64)
                                              for i in range(0, X.shape[0], 4096))))
