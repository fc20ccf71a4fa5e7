"""Degradation operators for system-matrix restoration (seed paper 3.2, DESIGN section 6).

A degraded system matrix is modelled as ``S_deg = T(S) + N``: ``T`` is the identity
(denoising), a regular downsampling (accelerated calibration, upsampling) or a mask
(inpainting), and ``N`` is measurement noise.  Each piece is a small operator object in
the style of deepinv's "physics" classes; all act on complex numpy arrays whose trailing
``dims`` axes (2 or 3) are spatial, ``(..., H, W)`` or ``(..., D, H, W)``, with any
number of leading batch axes.  Random operators take a ``numpy.random.Generator``
explicitly, so every degradation is reproducible from a seed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = [
    "AdditiveGaussianNoise",
    "AdditiveSourceNoise",
    "Downsample",
    "InpaintingMask",
    "NoiseSampler",
    "complex_gaussian",
]


def check_dims(dims: int) -> int:
    """Validate the number of spatial axes (2 or 3)."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    return int(dims)


def spatial_shape(x: np.ndarray, dims: int) -> tuple[int, ...]:
    """The trailing ``dims`` axes of ``x`` (raises if ``x`` has fewer axes)."""
    if np.ndim(x) < dims:
        raise ValueError(f"array of shape {np.shape(x)} has fewer than dims={dims} axes")
    return tuple(np.shape(x)[-dims:])


def complex_gaussian(shape: tuple[int, ...], sigma: float | np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Complex Gaussian noise ``sigma * (n_r + 1j n_i)`` with ``n_r, n_i ~ N(0, 1)``.

    Real and imaginary parts each have standard deviation ``sigma`` (so ``E|n|^2 =
    2 sigma^2``); ``sigma`` may be an array broadcastable to ``shape`` (per-sample
    noise levels).  Returns complex128 of ``shape``; callers cast.
    """
    real = rng.standard_normal(shape)
    imag = rng.standard_normal(shape)
    return np.asarray(sigma) * (real + 1j * imag)


class AdditiveGaussianNoise:
    """Additive white complex Gaussian noise: ``x + sigma * (n_r + 1j n_i)``.

    Parameters
    ----------
    sigma
        Standard deviation of the real and of the imaginary part of the noise, in the
        units of ``x`` (for unit-max-normalised components this is the noise level of
        DESIGN section 7).  A scalar, or an array broadcastable to ``x`` (e.g. shape
        ``(B, 1, 1)`` for one level per component of a 2D batch ``(B, H, W)``).

    Calling ``op(x, rng)`` returns a new array with the dtype of ``x`` if it is complex
    (complex64 stays complex64), else complex128; ``x`` is never modified.
    """

    def __init__(self, sigma: float | np.ndarray) -> None:
        sigma_arr = np.asarray(sigma, dtype=np.float64)
        if np.any(sigma_arr < 0) or not np.all(np.isfinite(sigma_arr)):
            raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
        self.sigma = sigma_arr if sigma_arr.ndim else float(sigma_arr)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x)
        dtype = x.dtype if np.iscomplexobj(x) else np.complex128
        noise = complex_gaussian(x.shape, self.sigma, rng)
        return (x + noise).astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"AdditiveGaussianNoise(sigma={self.sigma!r})"


class NoiseSampler(Protocol):
    """What :class:`AdditiveSourceNoise` needs from a noise source.

    ``sample(shape, rng)`` returns complex noise of exactly ``shape`` (e.g.
    :class:`pympisr.simulation.noise.NoiseSource`, which cuts sub-sequences of measured
    background frames into the requested shape).
    """

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray: ...


class AdditiveSourceNoise:
    """Additive noise drawn from a noise source (e.g. measured background frames).

    The seed paper (3.2) adds measured background frames, reshaped to the component's
    size, as noise; training (3.3) scales that noise to a randomly drawn standard
    deviation.  This operator does both.

    Parameters
    ----------
    source
        Object with ``sample(shape, rng) -> complex ndarray of that shape``
        (:class:`NoiseSampler`), typically :class:`pympisr.simulation.noise.NoiseSource`.
    sigma
        ``None``: add the sampled noise as it is.  Otherwise a scalar (or array
        broadcastable to the leading batch axes of ``x``, with trailing singleton axes
        for the spatial ones): each sampled noise image (the trailing ``dims`` axes) is
        rescaled so that its real and imaginary parts have root-mean-square
        ``sqrt((mean(n_r^2) + mean(n_i^2)) / 2) = sigma`` (same convention as
        :class:`AdditiveGaussianNoise`).
    dims
        Number of trailing spatial axes (2 or 3) over which the noise level is measured;
        default: the source's ``dims`` attribute if it has one, else 2.
    """

    def __init__(self, source: NoiseSampler, sigma: float | np.ndarray | None = None,
                 dims: int | None = None) -> None:
        if not callable(getattr(source, "sample", None)):
            raise TypeError(f"{type(source).__name__} has no sample(shape, rng) method")
        if sigma is not None:
            sigma_arr = np.asarray(sigma, dtype=np.float64)
            if np.any(sigma_arr < 0) or not np.all(np.isfinite(sigma_arr)):
                raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
            sigma = sigma_arr if sigma_arr.ndim else float(sigma_arr)
        self.source = source
        self.sigma = sigma
        self.dims = check_dims(getattr(source, "dims", 2) if dims is None else dims)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x)
        spatial_shape(x, self.dims)
        noise = np.asarray(self.source.sample(x.shape, rng))
        if noise.shape != x.shape:
            raise ValueError(f"{type(self.source).__name__}.sample returned shape "
                             f"{noise.shape}, expected {x.shape}")
        if self.sigma is not None:
            axes = tuple(range(-self.dims, 0))
            rms = np.sqrt(np.mean(noise.real**2 + noise.imag**2, axis=axes, keepdims=True) / 2)
            noise = noise * (np.asarray(self.sigma) / np.where(rms > 0, rms, 1.0))
        dtype = x.dtype if np.iscomplexobj(x) else np.complex128
        return (x + noise).astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"AdditiveSourceNoise(source={self.source!r}, sigma={self.sigma!r})"


class Downsample:
    """Regular downsampling of the calibration grid by ``factor`` along every spatial axis.

    ``mode="stride"`` (seed paper 3.2, accelerated calibration): keep every
    ``factor``-th grid point, starting with the first, i.e. ``x[..., ::s, ::s]``.
    ``mode="mean"`` (TranSMS, eq. for box-car downsampling): the mean of each
    ``s x s`` (2D) or ``s x s x s`` (3D) block, i.e. a calibration with an ``s`` times
    larger sample.

    Non-divisible grids (``n % s != 0``): both modes return ``ceil(n / s)`` points per
    axis, so the whole field of view stays covered.  For ``"stride"`` this is what
    ``::s`` gives (a 25-point axis becomes 13 points at fine indices 0, 2, ..., 24);
    for ``"mean"`` the last block along such an axis is partial and averages only the
    ``n % s`` points it holds.  :meth:`coarse_coordinates` gives the position of every
    coarse sample on the fine index grid (block centres for ``"mean"``), which is what
    interpolation baselines need to undo the operator.
    """

    def __init__(self, factor: int, dims: int, mode: str = "stride") -> None:
        if int(factor) != factor or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        if mode not in ("stride", "mean"):
            raise ValueError(f"mode must be 'stride' or 'mean', got {mode!r}")
        self.factor = int(factor)
        self.dims = check_dims(dims)
        self.mode = mode

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of ``self(x)`` for ``x`` of ``shape`` (leading batch axes kept)."""
        shape = tuple(int(n) for n in shape)
        if len(shape) < self.dims:
            raise ValueError(f"shape {shape} has fewer than dims={self.dims} axes")
        lead, space = shape[:-self.dims], shape[-self.dims:]
        return lead + tuple(-(-n // self.factor) for n in space)

    def coarse_coordinates(self, spatial: Sequence[int]) -> list[np.ndarray]:
        """Per spatial axis, the fine-grid index (float) at which each coarse sample sits.

        ``"stride"``: ``0, s, 2s, ...``; ``"mean"``: the centre of each (possibly
        partial) block, ``(first + last) / 2``.
        """
        coords = []
        for n in spatial:
            starts = np.arange(0, n, self.factor)
            if self.mode == "stride":
                coords.append(starts.astype(np.float64))
            else:
                ends = np.minimum(starts + self.factor, n) - 1
                coords.append((starts + ends) / 2.0)
        return coords

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        space = spatial_shape(x, self.dims)
        s = self.factor
        if self.mode == "stride":
            return x[(Ellipsis, *[slice(None, None, s)] * self.dims)].copy()
        out = x
        for axis in range(-self.dims, 0):
            n = space[axis]
            starts = np.arange(0, n, s)
            counts = np.minimum(starts + s, n) - starts
            sums = np.add.reduceat(out, starts, axis=axis)
            shape = [1] * out.ndim
            shape[axis] = counts.size
            out = sums / counts.reshape(shape)
        return out.astype(x.dtype, copy=False) if np.iscomplexobj(x) else out

    def __repr__(self) -> str:
        return f"Downsample(factor={self.factor}, dims={self.dims}, mode={self.mode!r})"


class InpaintingMask:
    """Masks of corrupted calibration positions (seed paper 3.2, DESIGN section 6).

    One elementary mask models a run of failed measurements at consecutive robot
    positions:

    1. the spatial axes are permuted at random (the robot's fast axis can be any axis);
    2. with probability ``meander_prob`` (0.5 in the paper) the path is a meander: the
       order of the elements of the last (fastest) dimension is reversed on every
       second line, so consecutive robot positions are neighbours at line ends
       (boustrophedon); otherwise it is a raster path (every line in the same
       direction).  A plain flip of the whole last axis would only mirror a raster
       block, which the paper's "raster or meandering" does not describe;
    3. in that robot order (C order of the permuted volume, last axis fastest), one
       contiguous block of ``round(ratio * N)`` indices (``N`` = number of grid
       points) starting at a uniformly random index is marked missing;
    4. the block is mapped back to the grid and the axis permutation is inverted.

    ``num_masks`` such masks are drawn independently and combined (a position is
    missing if any mask marks it), so the missing fraction of a combined mask is at
    most ``num_masks * ratio``.

    Parameters
    ----------
    ratio
        Missing fraction of one elementary mask, relative to the grid size, in
        ``[0, 1]`` (the paper's tables use 0.1); or ``(low, high)`` to draw it uniformly
        per elementary mask.
    dims
        Number of spatial axes (2 or 3).
    num_masks
        Number of elementary masks combined; or ``(low, high)`` to draw it uniformly
        from ``low..high`` (inclusive) per call of :meth:`sample`.
    meander_prob
        Probability of a meandering robot path.
    permute_axes
        Whether to permute the spatial axes at random before building the path.
    """

    def __init__(self, ratio: float | tuple[float, float], dims: int,
                 num_masks: int | tuple[int, int] = 1, *, meander_prob: float = 0.5,
                 permute_axes: bool = True) -> None:
        low, high = (ratio, ratio) if np.isscalar(ratio) else tuple(ratio)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"ratio must lie in [0, 1] (or be a range low <= high), got {ratio!r}")
        n_low, n_high = (num_masks, num_masks) if np.isscalar(num_masks) else tuple(num_masks)
        if int(n_low) != n_low or int(n_high) != n_high or not 1 <= n_low <= n_high:
            raise ValueError(f"num_masks must be a positive integer or range, got {num_masks!r}")
        if not 0.0 <= meander_prob <= 1.0:
            raise ValueError(f"meander_prob must lie in [0, 1], got {meander_prob!r}")
        self.ratio = (float(low), float(high))
        self.dims = check_dims(dims)
        self.num_masks = (int(n_low), int(n_high))
        self.meander_prob = float(meander_prob)
        self.permute_axes = bool(permute_axes)

    @staticmethod
    def robot_order(shape: Sequence[int], meander: bool) -> np.ndarray:
        """Flat (C-order) grid indices in the order a robot visits them.

        Raster: plain C order (last axis fastest).  Meander: every second line of the
        last axis is traversed backwards; lines are counted over all leading axes.
        """
        shape = tuple(int(n) for n in shape)
        index = np.arange(int(np.prod(shape))).reshape(shape)
        if meander and len(shape) > 1:
            lines = index.reshape(-1, shape[-1])
            lines[1::2] = lines[1::2, ::-1]
            index = lines.reshape(shape)
        return index.reshape(-1)

    def sample_single(self, spatial: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        """One elementary mask of shape ``spatial`` (bool, True = valid)."""
        spatial = tuple(int(n) for n in spatial)
        if len(spatial) != self.dims:
            raise ValueError(f"spatial shape {spatial} does not have dims={self.dims} axes")
        perm = rng.permutation(self.dims) if self.permute_axes else np.arange(self.dims)
        permuted = tuple(spatial[p] for p in perm)
        meander = bool(rng.random() < self.meander_prob)
        n = int(np.prod(permuted))
        ratio = self.ratio[0] if self.ratio[0] == self.ratio[1] else rng.uniform(*self.ratio)
        length = min(int(round(ratio * n)), n)
        start = int(rng.integers(0, n - length + 1))
        valid = np.ones(n, dtype=bool)
        valid[self.robot_order(permuted, meander)[start:start + length]] = False
        return np.transpose(valid.reshape(permuted), np.argsort(perm))

    def sample(self, spatial_shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        """Combined mask of shape ``spatial_shape`` (bool, True = valid sample)."""
        count = int(rng.integers(self.num_masks[0], self.num_masks[1] + 1))
        valid = np.ones(tuple(int(n) for n in spatial_shape), dtype=bool)
        for _ in range(count):
            valid &= self.sample_single(spatial_shape, rng)
        return valid

    def __call__(self, x: np.ndarray, rng: np.random.Generator,
                 mask: np.ndarray | None = None) -> np.ndarray:
        """``x * mask`` (missing samples set to 0).

        Without ``mask``, a new mask is drawn for every image of the batch (the paper
        draws one per frequency component).  A given ``mask`` must broadcast to ``x``.
        """
        x = np.asarray(x)
        space = spatial_shape(x, self.dims)
        if mask is None:
            lead = x.shape[:-self.dims]
            mask = np.empty(x.shape, dtype=bool)
            for index in itertools.product(*map(range, lead)):
                mask[index] = self.sample(space, rng)
        else:
            mask = np.asarray(mask, dtype=bool)
            try:
                np.broadcast_shapes(mask.shape, x.shape)
            except ValueError:
                raise ValueError(f"mask of shape {mask.shape} does not broadcast to "
                                 f"data of shape {x.shape}") from None
        return x * mask

    def __repr__(self) -> str:
        return (f"InpaintingMask(ratio={self.ratio}, dims={self.dims}, "
                f"num_masks={self.num_masks}, meander_prob={self.meander_prob}, "
                f"permute_axes={self.permute_axes})")
