"""Optional array backends for HALS: ``"torch"`` (CUDA if available, else CPU) and
``"cupy"`` (CUDA). Imported lazily; a clear InputError if the package is missing."""
from __future__ import annotations

from ..errors import InputError

__all__ = ["fit_backend", "load_torch", "load_cupy"]


def load_torch():
    try:
        import torch
    except ImportError:
        raise InputError("backend='torch' needs PyTorch, which is not installed. Install it "
                         "(pip install torch, or caimg_nmf[gpu]) or use backend='numpy'.") from None
    return torch


def load_cupy():
    try:
        import cupy
    except ImportError:
        raise InputError("backend='cupy' needs CuPy, which is not installed. Install the "
                         "cupy build for your CUDA, or use backend='torch' / 'numpy'.") from None
    return cupy


def fit_backend(name):
    """A function ``fit(source, W, H, **options) -> FitOutcome`` for backend ``name``."""
    if name == "torch":
        load_torch()
        from .torch_hals import fit_torch
        return fit_torch
    if name == "cupy":
        load_cupy()
        from .torch_hals import fit_cupy
        return fit_cupy
    raise InputError(f"backend must be 'numpy', 'torch' or 'cupy'; got {name!r}.") from None
