"""NMF engine of caimg_nmf: ``X (P pixels x T frames) ~= W (P x K) @ H (K x T)``.

Public API: :func:`nmf`, :class:`NMF` (scikit-learn-style estimator),
:class:`NMFResult`, :class:`ConvergenceWarning`, :func:`normalize_factors`,
:func:`order_components`, :func:`estimate_memory`.
"""
from .api import nmf
from .estimator import NMF
from .postprocess import normalize_factors, order_components
from .result import ConvergenceWarning, NMFResult
from .streamed import estimate_memory

__all__ = ["nmf", "NMF", "NMFResult", "ConvergenceWarning", "normalize_factors",
           "order_components", "estimate_memory"]

# ``caimg_nmf/__init__.py`` does ``from .nmf import nmf``, which rebinds the attribute
# ``caimg_nmf.nmf`` from this subpackage to the function. So that the spelled-out
# ``caimg_nmf.nmf.nmf(...)``, ``caimg_nmf.nmf.NMF``, ... keep working either way, the
# function also carries the public names of this subpackage.
for _name in __all__:
    setattr(nmf, _name, globals()[_name])
del _name
