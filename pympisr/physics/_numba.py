"""Import numba's decorators, with a clear error when numba is missing.

The physics kernels are compiled with numba (``cache=True``: compiled once per
machine, then loaded from ``__pycache__``). numba is listed in pympisr's ``speed`` and
``dev`` extras; without it the simulator cannot reach useful speeds, so importing the
kernels raises an ImportError that says how to install it.
"""

from __future__ import annotations

try:
    from numba import njit, prange
except ImportError as exc:  # pragma: no cover - numba is installed in dev and CI
    raise ImportError(
        "pympisr.physics needs numba for its compiled kernels: pip install 'pympisr[speed]'"
    ) from exc

__all__ = ["njit", "prange"]
