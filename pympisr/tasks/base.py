"""The :class:`Task` base class: everything that differs between restoration tasks.

A task owns (issue 10, DESIGN sections 6, 8 and 11):

* the degradation operator ``A`` (:mod:`pympisr.operators`) and the grid rule that maps
  an input grid to the output grid (``"same"``, ``"scale"``: ``n s`` per axis,
  ``"stride"``: ``s (n - 1) + 1`` per axis);
* how a training sample is built from one clean component (:meth:`Task.make_sample`,
  the seed paper's preprocessing of section 3.3 plus a noise-level input);
* the training loss (:meth:`Task.loss`);
* the network's inputs: ``sm`` (real/imag channels), ``sigma`` (the noise standard
  deviation per component, FFDNet-style, Zhang et al. 2018) and, for inpainting,
  ``mask``;
* the classical baseline (:meth:`Task.baseline`) and how a restored component goes
  back into a system matrix (:meth:`Task.output_geometry`).

Training, export, the ONNX runtime, restore, evaluation, the CLI and the Julia package
all ask the task; adding a task means one module here and one line in
:data:`pympisr.tasks.TASK_CLASSES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ..operators import LinearOperator

__all__ = ["NoiseSampler", "Placement", "SampleOptions", "Task", "complex_to_channels",
           "with_grid_positions"]

GRID_RULES = ("same", "scale", "stride")


class NoiseSampler(Protocol):
    """Draws complex noise images: ``sample(shape, rng)`` -> complex array of ``shape``."""

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray: ...


def complex_to_channels(x: np.ndarray) -> np.ndarray:
    """One complex image ``(*spatial)`` -> float32 ``(2, *spatial)`` (real, imag)."""
    return np.stack([x.real, x.imag], axis=0).astype(np.float32)


def with_grid_positions(metadata: dict[str, Any], sm: Any) -> dict[str, Any]:
    """``metadata`` with ``/calibration/positions`` set to the voxel centres of ``sm``'s
    grid (``(N, 3)`` in m, x fastest as ``/calibration/order = "xyz"``) when the source
    had positions, and the per-voxel offset fields dropped (they belong to the old grid).
    """
    out = {key: value for key, value in metadata.items()
           if key not in ("/calibration/positions", "/calibration/offsetFields")}
    if "/calibration/positions" in metadata:
        out["/calibration/positions"] = sm.voxel_centers().reshape(-1, 3)
    return out


@dataclass(frozen=True)
class SampleOptions:
    """Parameters of the per-sample preprocessing (seed paper 3.3, DESIGN section 6).

    Attributes
    ----------
    dims:
        2 or 3 spatial axes.
    patch_size:
        Edge length of the network's *input* patch in pixels (the output patch follows
        from the task's grid rule).
    sigma_range:
        ``(low, high)`` of the noise standard deviation of the real and of the imaginary
        part, relative to the unit-max ground truth before the random scale.
    sigma_distribution:
        ``"uniform"`` on ``sigma_range``, or ``"loguniform"``: log-uniform on
        ``sigma_range`` (low > 0) with probability ``1 - zero_fraction``, else 0, so
        that relative noise from 1e-3 to above 1 (a real calibration's span, DESIGN
        section 12) is covered evenly per decade.
    zero_fraction:
        Share of noise-free samples with ``"loguniform"``.
    scale_range:
        ``(low, high)`` of the uniform random amplitude scale.
    """

    dims: int = 2
    patch_size: int = 32
    sigma_range: tuple[float, float] = (0.0, 0.35)
    sigma_distribution: str = "uniform"
    zero_fraction: float = 0.05
    scale_range: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {self.patch_size}")
        for name in ("sigma_range", "scale_range"):
            lo, hi = getattr(self, name)
            if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
                raise ValueError(f"{name} must satisfy 0 <= low <= high, got {(lo, hi)}")
        if self.scale_range[0] <= 0:
            raise ValueError("scale_range must be positive")
        if self.sigma_distribution not in ("uniform", "loguniform"):
            raise ValueError("sigma_distribution must be 'uniform' or 'loguniform', got "
                             f"{self.sigma_distribution!r}")
        if self.sigma_distribution == "loguniform" and self.sigma_range[0] <= 0:
            raise ValueError("a log-uniform sigma_range needs low > 0")
        if not 0 <= self.zero_fraction <= 1:
            raise ValueError(f"zero_fraction must lie in [0, 1], got {self.zero_fraction}")

    def draw_sigma(self, rng: np.random.Generator) -> float:
        """One relative noise level from the configured distribution."""
        lo, hi = self.sigma_range
        if self.sigma_distribution == "uniform":
            return float(rng.uniform(lo, hi))
        if rng.random() < self.zero_fraction:
            return 0.0
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


@dataclass(frozen=True)
class Placement:
    """Where a (cropped) component lies in the training patch, per axis: source and
    destination slices on the input grid and on the output grid."""

    src_in: tuple[slice, ...]
    dst_in: tuple[slice, ...]
    src_out: tuple[slice, ...]
    dst_out: tuple[slice, ...]


class Task:
    """Base class of the restoration tasks (module docstring).

    Parameters
    ----------
    dims:
        2 or 3 spatial axes.
    scale_factor:
        ``s`` of the super-resolution tasks (1 for denoising and inpainting).
    """

    name: str = ""
    grid_rule: str = "same"
    needs_mask: bool = False
    baseline_name: str = ""

    def __init__(self, dims: int = 2, scale_factor: int = 1) -> None:
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims!r}")
        if int(scale_factor) != scale_factor or scale_factor < 1:
            raise ValueError(f"scale_factor must be a positive integer, got {scale_factor!r}")
        if self.grid_rule == "same" and scale_factor != 1:
            raise ValueError(f"task {self.name!r} keeps the grid; scale_factor must be 1")
        self.dims = int(dims)
        self.scale_factor = int(scale_factor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dims={self.dims}, scale_factor={self.scale_factor})"

    # -- grids ------------------------------------------------------------------------
    def output_size(self, n: int) -> int:
        """Output points along an axis with ``n`` input points (the grid rule)."""
        s = self.scale_factor
        return {"same": n, "scale": n * s, "stride": s * (n - 1) + 1}[self.grid_rule]

    def output_grid(self, grid: Sequence[int]) -> tuple[int, ...]:
        """Output spatial shape for an input spatial shape."""
        return tuple(self.output_size(int(n)) for n in grid)

    def input_grid(self, fine: Sequence[int]) -> tuple[int, ...]:
        """The largest input grid whose output fits in the fine grid ``fine``."""
        s = self.scale_factor
        rule = {"same": lambda n: n, "scale": lambda n: n // s,
                "stride": lambda n: (n - 1) // s + 1}[self.grid_rule]
        return tuple(rule(int(n)) for n in fine)

    def output_geometry(self, grid: Sequence[int], fov: Sequence[float],
                        center: Sequence[float]) -> tuple[tuple[int, ...], np.ndarray,
                                                          np.ndarray]:
        """Grid, FOV (m) and centre (m) of the restored SM, all in (x, y, z) order.

        ``"same"`` and ``"scale"`` keep FOV and centre (``"scale"``: voxel centres of
        the finer grid). ``"stride"``: the measured positions are a subset of the
        output grid, so the voxel size shrinks by ``s`` and the FOV becomes
        ``N_out * voxel_out`` around the same centre (the first and last positions stay).
        Axes of size 1 (2D) are kept.
        """
        grid = tuple(int(n) for n in grid)
        fov = np.asarray(fov, dtype=np.float64)
        out = tuple(n if n == 1 else self.output_size(n) for n in grid)
        if self.grid_rule == "stride":
            voxel = fov / np.asarray(grid) / self.scale_factor
            fov = np.where(np.asarray(grid) == 1, fov, voxel * np.asarray(out))
        return out, fov, np.asarray(center, dtype=np.float64)

    def input_geometry(self, grid: Sequence[int], fov: Sequence[float],
                       center: Sequence[float]) -> tuple[tuple[int, ...], np.ndarray,
                                                         np.ndarray]:
        """Grid, FOV (m) and centre (m) of the degraded SM made from a fine SM (the
        inverse of :meth:`output_geometry`), all in (x, y, z) order.

        With fine voxel size ``v = fov / N`` and fine voxel centres
        ``c + (i - (N - 1) / 2) v``:

        * ``"stride"``: the measured positions are the fine indices ``0, s, ...,
          s (n - 1)`` with ``n = (N - 1) // s + 1``; they keep their physical coordinates,
          so the coarse voxel is ``s v``, the FOV ``n s v`` and the centre moves by
          ``(s (n - 1) - (N - 1)) v / 2`` (zero when ``s`` divides ``N - 1``);
        * ``"scale"``: each coarse voxel is the block of ``s`` fine voxels it averages;
          the first ``n = N // s`` blocks are kept, FOV ``n s v``, centre moved by
          ``(n s - N) v / 2``;
        * ``"same"``: unchanged. Axes of size 1 (2D) are kept.
        """
        grid_arr = np.asarray([int(n) for n in grid])
        fov = np.asarray(fov, dtype=np.float64)
        center = np.asarray(center, dtype=np.float64)
        if self.grid_rule == "same":
            return tuple(int(n) for n in grid_arr), fov, center
        s = self.scale_factor
        coarse = np.where(grid_arr == 1, 1, np.asarray(self.input_grid(grid_arr)))
        voxel = fov / grid_arr
        if self.grid_rule == "stride":
            span = s * (coarse - 1) - (grid_arr - 1)
        else:
            span = s * coarse - grid_arr
        flat = grid_arr == 1
        fov_in = np.where(flat, fov, voxel * s * coarse)
        center_in = np.where(flat, center, center + span * voxel / 2)
        return tuple(int(n) for n in coarse), fov_in, center_in

    def degrade_system_matrix(self, sm: Any, mask: Any = None) -> Any:
        """The SM a coarse or corrupted calibration of ``sm`` would have measured.

        Applies ``A`` to every component (:meth:`operator`; inpainting: zero where
        ``mask``, bool ``(Nz, Ny, Nx)`` with True = valid, is False) and sets the grid,
        FOV and centre of :meth:`input_geometry`; per-voxel metadata (positions) is
        rewritten for the new grid. Background frames and SNR are kept. ``sm`` is not
        modified. Used to make accelerated calibrations from fine ones (tests,
        evaluation, notebooks).
        """
        squeeze = sm.dims == 2
        data = sm.data[:, :, 0] if squeeze else sm.data
        fine = data.shape[2:]
        crop = self.training_crop(fine)
        data = data[(Ellipsis, *(slice(0, n) for n in crop))]
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            mask = mask.reshape(mask.shape[-self.dims:])
        out = np.asarray(self.operator(crop, mask).forward(data), dtype=np.complex64)
        if squeeze:
            out = out[:, :, None]
        grid, fov, center = self.input_geometry(sm.grid, sm.fov, sm.center)
        coarse = sm.replace(data=np.ascontiguousarray(out), grid=grid, fov=fov, center=center)
        return coarse.replace(metadata=with_grid_positions(sm.metadata, coarse))

    # -- operator ---------------------------------------------------------------------
    def operator(self, fine_shape: Sequence[int], mask: Any = None) -> LinearOperator:
        """The degradation operator ``A`` for components of spatial shape ``fine_shape``
        (``mask``: the inpainting mask, True = valid)."""
        raise NotImplementedError

    def training_crop(self, fine: Sequence[int]) -> tuple[int, ...]:
        """Fine grid a training component is cropped to so that ``A`` maps it exactly
        onto an input grid whose output grid is the crop itself."""
        return self.output_grid(self.input_grid(fine))

    def draw_mask(self, spatial: Sequence[int], rng: np.random.Generator) -> np.ndarray | None:
        """A training mask (inpainting) or None."""
        return None

    # -- training samples -------------------------------------------------------------
    def placement(self, grid_in: Sequence[int], patch: int,
                  rng: np.random.Generator) -> Placement:
        """Random placement of an input grid in a ``patch``-sized input box (zero
        padding, or a random crop of a larger grid) and the matching output slices."""
        s = 1 if self.grid_rule == "same" else self.scale_factor
        parts: list[list[slice]] = [[], [], [], []]
        for n in grid_in:
            if n <= patch:
                start, length, src0 = int(rng.integers(0, patch - n + 1)), n, 0
                dst0 = start
            else:
                src0, length, dst0 = int(rng.integers(0, n - patch + 1)), patch, 0
            out_len = self.output_size(length)
            parts[0].append(slice(src0, src0 + length))
            parts[1].append(slice(dst0, dst0 + length))
            parts[2].append(slice(src0 * s, src0 * s + out_len))
            parts[3].append(slice(dst0 * s, dst0 * s + out_len))
        return Placement(*(tuple(p) for p in parts))

    def make_sample(self, clean: np.ndarray, rng: np.random.Generator,
                    options: SampleOptions, noise: NoiseSampler | None = None
                    ) -> dict[str, torch.Tensor]:
        """One training sample from a clean complex component (``(H, W)``/``(D, H, W)``).

        1. ``g = S / max|S|``, rotated by a random phase and scaled by a random factor;
        2. the component is cropped to :meth:`training_crop` and degraded,
           ``y = A g + n`` with complex noise of per-part std ``sigma`` drawn by
           :meth:`SampleOptions.draw_sigma` (inpainting: missing positions are 0): white
           Gaussian, or drawn from ``noise`` (e.g. a
           :class:`pympisr.simulation.noise.NoiseSource` of real background frames,
           laid out along the robot path) and rescaled to that std;
        3. ``y``, ``g`` and ``sigma`` are divided by ``max|y|`` (known at inference);
        4. input and target are placed into fixed patches (:meth:`placement`).

        Returns float32 tensors ``input`` ``(2, *patch_in)``, ``target`` and ``valid``
        (``(2, *patch_out)``, ``(1, *patch_out)``: 1 on the component's grid),
        ``sigma`` ``(1,)`` (noise std relative to the input's max), and for inpainting
        ``mask`` ``(1, *patch_in)`` (1 = measured).
        """
        peak = float(np.abs(clean).max())
        gt = clean / peak if peak > 0 else clean.astype(np.complex64)
        phase = np.exp(1j * rng.uniform(0.0, 2.0 * np.pi))
        gt = (gt * (rng.uniform(*options.scale_range) * phase)).astype(np.complex64)
        crop = self.training_crop(gt.shape)
        if min(crop) < 1:
            raise ValueError(f"component grid {gt.shape} is too small for {self!r}")
        gt = gt[tuple(slice(0, n) for n in crop)]
        mask = self.draw_mask(gt.shape, rng)
        degraded = self.operator(gt.shape, mask).forward(gt)
        sigma = options.draw_sigma(rng)
        if noise is None:
            unit = rng.standard_normal(degraded.shape) + 1j * rng.standard_normal(degraded.shape)
        else:
            unit = np.asarray(noise.sample(degraded.shape, rng), dtype=np.complex128)
            std = np.sqrt(np.mean(np.abs(unit) ** 2) / 2)
            unit = unit / std if std > 0 else np.zeros_like(unit)
        noisy = degraded + sigma * unit
        if mask is not None:
            noisy = noisy * mask
        norm = float(np.abs(noisy).max())
        norm = norm if norm > 0 else 1.0
        place = self.placement(noisy.shape, options.patch_size, rng)
        patch_in = (options.patch_size,) * options.dims
        patch_out = self.output_grid(patch_in)
        x = np.zeros(patch_in, dtype=np.complex64)
        x[place.dst_in] = noisy[place.src_in] / norm
        target = np.zeros(patch_out, dtype=np.complex64)
        target[place.dst_out] = gt[place.src_out] / norm
        valid = np.zeros(patch_out, dtype=np.float32)
        valid[place.dst_out] = 1.0
        sample = {"input": torch.from_numpy(complex_to_channels(x)),
                  "target": torch.from_numpy(complex_to_channels(target)),
                  "valid": torch.from_numpy(valid[None]),
                  "sigma": torch.tensor([sigma / norm], dtype=torch.float32)}
        if self.needs_mask:
            known = np.zeros(patch_in, dtype=np.float32)
            known[place.dst_in] = np.asarray(mask, dtype=np.float32)[place.src_in]
            sample["mask"] = torch.from_numpy(known[None])
        return sample

    # -- training loss ------------------------------------------------------------------
    def loss(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L1 on the valid (non-padded) output pixels (seed paper 3.3). A network of the
        ``"stride"`` rule predicts ``s n`` points per axis; the first ``s (n - 1) + 1`` of
        them are the output grid (:meth:`crop_prediction`). Per-sample weights
        ``batch["sample_weight"]`` ``(B,)``, when present, make it a weighted mean
        (:mod:`pympisr.training.losses`)."""
        from ..training.losses import masked_l1
        target = batch["target"]
        return masked_l1(self.crop_prediction(pred, target), target, batch["valid"],
                         batch.get("sample_weight"))

    @staticmethod
    def crop_prediction(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``pred`` ``(B, C, *grid)`` cropped to ``target``'s spatial shape (leading
        corner; raises if ``pred`` is smaller)."""
        spatial = tuple(target.shape[2:])
        if tuple(pred.shape[2:]) == spatial:
            return pred
        if any(p < t for p, t in zip(pred.shape[2:], spatial)):
            raise ValueError(f"prediction grid {tuple(pred.shape[2:])} is smaller than the "
                             f"target grid {spatial}")
        return pred[(slice(None), slice(None), *(slice(0, n) for n in spatial))]

    # -- classical baseline -------------------------------------------------------------
    def baseline(self, y: np.ndarray, sigma: np.ndarray,
                 mask: np.ndarray | None = None) -> np.ndarray:
        """The classical method of this task on complex components ``(B, *grid_in)``
        with per-component noise std ``sigma`` ``(B,)``; returns ``(B, *grid_out)``."""
        raise NotImplementedError
