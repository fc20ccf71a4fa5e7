"""Import numba's decorators, with a clear error when numba is missing.

The physics kernels are compiled with numba (``cache=True``: compiled once per
machine, then loaded from ``__pycache__``). numba is a core dependency of pympisr; an
environment that lacks it gets an ImportError that says how to install it.
"""

from __future__ import annotations

try:
    from numba import njit, prange
except ImportError as exc:  # pragma: no cover - numba is a core dependency
    raise ImportError("pympisr.physics needs numba for its compiled kernels: pip install numba") from exc

__all__ = ["njit", "prange"]
