"""Linear degradation operators ``A`` of the restoration tasks, with adjoints.

Each task's measurement model is ``y = A x + n`` (DESIGN sections 6 and 11):

===================  ==========================================  ================
operator             ``A``                                       ``A A^T``
===================  ==========================================  ================
:class:`Identity`    denoising                                   ``I``
:class:`StridedSampling`  keep every ``s``-th grid point (accelerated  ``I``
                     calibration, seed paper 3.2)
:class:`BlockMean`   mean of ``s^d`` blocks (TranSMS: an ``s`` times   ``s^-d I``
                     larger delta sample)
:class:`Masking`     zero the corrupted positions (inpainting)   ``diag(mask)``
===================  ==========================================  ================

The operators act on the trailing ``dims`` spatial axes of real or complex arrays with
any leading batch axes, and work on numpy arrays and torch tensors alike (the same
object serves the numpy baselines, the training loop and the exported graph), in the
style of deepinv's physics operators; ``tests/test_operators.py`` checks
``<A x, y> = <x, A^T y>`` for each.

:meth:`LinearOperator.project` is the data-consistency step of TranSMS (Guengoer et al.
2022, appendix) and DESIGN section 11: the point of ``{x : ||A x - y|| <= eps}``
reached from ``x`` by the minimum-norm correction
``x + A^T (A A^T)^-1 r (1 - eps / ||r||)``, ``r = y - A x`` (the exact Euclidean
projection when ``A A^T`` is a multiple of the identity on the measured samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BlockMean", "Identity", "LinearOperator", "Masking", "StridedSampling"]

Array = Any  # numpy.ndarray or torch.Tensor


def _is_torch(x: Array) -> bool:
    return type(x).__module__.startswith("torch")


def _zeros(like: Array, shape: Sequence[int]) -> Array:
    if _is_torch(like):
        import torch
        return torch.zeros(tuple(shape), dtype=like.dtype, device=like.device)
    return np.zeros(tuple(shape), dtype=np.result_type(like.dtype, np.float32))


def _sum_squares(x: Array, dims: int) -> Array:
    """``sum |x|^2`` over the trailing ``dims`` axes, keeping them as size-1 axes."""
    axes = tuple(range(-dims, 0))
    if _is_torch(x):
        mag = x.real ** 2 + x.imag ** 2 if x.is_complex() else x ** 2
        return mag.sum(dim=axes, keepdim=True)
    return np.sum(np.abs(x) ** 2, axis=axes, keepdims=True)


class LinearOperator:
    """Base class: ``forward`` (``A``), ``adjoint`` (``A^T``), ``gram_inverse`` and the
    data-consistency projection. Subclasses act on the trailing ``dims`` axes."""

    dims: int

    def forward(self, x: Array) -> Array:
        raise NotImplementedError

    def adjoint(self, y: Array) -> Array:
        raise NotImplementedError

    def gram_inverse(self, r: Array) -> Array:
        """``(A A^T)^-1 r`` for a residual in the measurement space (pseudo-inverse)."""
        return r

    def measured_count(self, shape: Sequence[int]) -> int:
        """Number of measured (complex) samples ``m`` per image for a fine ``shape``."""
        raise NotImplementedError

    def noise_gain(self, shape: Sequence[int]) -> float:
        """Per-sample std of ``A n`` for white noise ``n`` of unit std on a fine
        ``shape``: the norm of a row of ``A`` (all rows of these operators have the same
        norm; the row of the first measured sample is used)."""
        measured_shape = np.shape(self.forward(np.zeros((1, *tuple(shape)[-self.dims:]))))
        unit = np.zeros(measured_shape)
        unit[(0,) * unit.ndim] = 1.0
        return float(np.linalg.norm(self.adjoint(unit)))

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    def residual_norm(self, x: Array, y: Array) -> Array:
        """``||A x - y||`` per image (leading axes kept, spatial axes of size 1)."""
        return _sum_squares(self.forward(x) - y, self.dims) ** 0.5

    def project(self, x: Array, y: Array, eps: Array) -> Array:
        """Move ``x`` onto ``{x : ||A x - y|| <= eps}`` (module docstring).

        ``eps`` is a scalar or broadcasts to ``(..., 1, ..., 1)`` (one radius per image);
        images already inside the ball are returned unchanged.
        """
        r = y - self.forward(x)
        norm = _sum_squares(r, self.dims) ** 0.5
        if _is_torch(norm):
            import torch
            shrink = torch.clamp(1 - eps / torch.clamp(norm, min=1e-30), min=0.0)
        else:
            shrink = np.clip(1 - np.asarray(eps) / np.maximum(norm, 1e-30), 0.0, None)
        return x + self.adjoint(self.gram_inverse(r)) * shrink


class Identity(LinearOperator):
    """``A = I`` (denoising)."""

    def __init__(self, dims: int) -> None:
        self.dims = dims

    def forward(self, x: Array) -> Array:
        return x

    def adjoint(self, y: Array) -> Array:
        return y

    def measured_count(self, shape: Sequence[int]) -> int:
        return int(np.prod(shape[-self.dims:]))

    def __repr__(self) -> str:
        return f"Identity(dims={self.dims})"


class StridedSampling(LinearOperator):
    """Keep every ``factor``-th grid point along each spatial axis, starting at 0.

    A fine axis of ``n`` points gives ``ceil(n / s)`` measured points at fine indices
    ``0, s, 2 s, ...``. ``fine_shape`` (the spatial shape of ``x``) is needed by the
    adjoint, which scatters the measured values into zeros.
    """

    def __init__(self, factor: int, fine_shape: Sequence[int]) -> None:
        if int(factor) != factor or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        self.factor = int(factor)
        self.fine_shape = tuple(int(n) for n in fine_shape)
        self.dims = len(self.fine_shape)

    def _index(self) -> tuple[Any, ...]:
        return (Ellipsis, *[slice(None, None, self.factor)] * self.dims)

    def forward(self, x: Array) -> Array:
        return x[self._index()]

    def adjoint(self, y: Array) -> Array:
        out = _zeros(y, (*y.shape[:-self.dims], *self.fine_shape))
        out[self._index()] = y
        return out

    def measured_count(self, shape: Sequence[int]) -> int:
        return int(np.prod([-(-n // self.factor) for n in shape[-self.dims:]]))

    def __repr__(self) -> str:
        return f"StridedSampling(factor={self.factor}, fine_shape={self.fine_shape})"


class BlockMean(LinearOperator):
    """Mean over ``s x s`` (2D) or ``s x s x s`` (3D) blocks; fine sizes must be
    multiples of ``s``. ``A A^T = s^-d I``, so ``(A A^T)^-1 = s^d``."""

    def __init__(self, factor: int, dims: int) -> None:
        if int(factor) != factor or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        self.factor, self.dims = int(factor), int(dims)

    def _check(self, shape: Sequence[int]) -> None:
        space = tuple(shape[-self.dims:])
        if any(n % self.factor for n in space):
            raise ValueError(f"BlockMean(factor={self.factor}): spatial shape {space} is "
                             "not a multiple of the factor")

    def forward(self, x: Array) -> Array:
        self._check(x.shape)
        s, lead = self.factor, tuple(x.shape[:-self.dims])
        split: list[int] = []
        for n in x.shape[-self.dims:]:
            split += [n // s, s]
        blocks = x.reshape(*lead, *split)
        axes = tuple(len(lead) + 2 * i + 1 for i in range(self.dims))
        return blocks.mean(dim=axes) if _is_torch(x) else blocks.mean(axis=axes)

    def adjoint(self, y: Array) -> Array:
        s, out = self.factor, y
        for axis in range(y.ndim - self.dims, y.ndim):
            out = (out.repeat_interleave(s, dim=axis) if _is_torch(out)
                   else np.repeat(out, s, axis=axis))
        return out / s ** self.dims

    def gram_inverse(self, r: Array) -> Array:
        return r * self.factor ** self.dims

    def measured_count(self, shape: Sequence[int]) -> int:
        self._check(shape)
        return int(np.prod([n // self.factor for n in shape[-self.dims:]]))

    def __repr__(self) -> str:
        return f"BlockMean(factor={self.factor}, dims={self.dims})"


class Masking(LinearOperator):
    """``A = diag(mask)``: corrupted positions (mask 0) are zeroed; ``A A^T`` is the
    same projection, so ``(A A^T)^+ r = r`` on the measured samples.

    ``mask``: bool or 0/1 array (numpy or torch) broadcasting to the data, 1 = valid.
    """

    def __init__(self, mask: Array, dims: int) -> None:
        self.mask, self.dims = mask, int(dims)

    def _mask_for(self, x: Array) -> Array:
        if _is_torch(x) and not _is_torch(self.mask):
            import torch
            return torch.as_tensor(np.asarray(self.mask), device=x.device).to(
                x.real.dtype if x.is_complex() else x.dtype)
        if not _is_torch(x):
            return np.asarray(self.mask, dtype=np.float32)
        return self.mask.to(x.real.dtype if x.is_complex() else x.dtype)

    def forward(self, x: Array) -> Array:
        return x * self._mask_for(x)

    def adjoint(self, y: Array) -> Array:
        return y * self._mask_for(y)

    def noise_gain(self, shape: Sequence[int]) -> float:
        return 1.0

    def measured_count(self, shape: Sequence[int]) -> int:
        """Valid samples of one image (the first, when the mask has batch axes)."""
        mask = np.asarray(self.mask.cpu() if _is_torch(self.mask) else self.mask)
        mask = mask[(0,) * max(0, mask.ndim - self.dims)]
        return int(np.count_nonzero(np.broadcast_to(mask, tuple(shape)[-self.dims:])))

    def __repr__(self) -> str:
        return f"Masking(dims={self.dims}, valid={self.measured_count(np.shape(self.mask))})"
