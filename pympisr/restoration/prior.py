"""Simulation-prior restoration: per component, least squares on a span of simulations
around fitted parameters (DESIGN section 13; issue 13 item 2).

For a system matrix whose geometry was fitted (:func:`pympisr.fitting.fit`):

1. ``K`` simulations on the task's *output* grid (:meth:`Task.output_geometry`): the
   fitted parameters and ``K - 1`` draws with particle variation (diameter, anisotropy,
   gamma or easy axis) and a small geometry jitter (gradient, drive amplitude, centre);
2. per component ``(c, k)`` the simulated components form the columns of ``S`` (the
   equilibrium model gives real (imaginary-axis) components, so ``S`` is real) and its
   leading left singular vectors ``U_R`` a basis of the prior subspace;
3. with the task's operator ``A`` (identity, strided sampling, block mean, mask), the
   measured component ``y`` (complex, noise std ``sigma`` per part) and ``M = A U_r``
   with SVD ``M = P diag(s) Q^T``, the regularised least-squares solution

       c = argmin ||M c - y||^2 + lambda ||c||^2 = Q diag(s / (s^2 + lambda)) P^T y

   (complex ``c``: the real operator acts on real and imaginary parts alike) for each
   rank ``r <= R`` and ``lambda`` of a grid, choosing the pair with the lowest Stein
   unbiased estimate of the prediction risk in the measurement space (Stein 1981; for
   linear smoothers ``H``: ``||H y - y||^2 - 2 m sigma^2 + 4 sigma^2 tr(H)``, ``2 m``
   real degrees of freedom), and ``x = U_r c``;
4. denoising: the prior estimate competes with the measurement and DCT-F (SURE-tuned)
   in the SURE-optimal convex combination of :func:`.safety.sure_combination`, so a
   prior that does not fit the data (unmodelled physics) falls back to the classical
   baseline or the measurement; where its residual ``y - x`` is a
   :func:`significant_misfit`, the prior's candidate is ``x + DCT-F(y - x)`` (the
   structure the simulations lack, denoised), its divergence probed like the rest;
   super-resolution and inpainting: :func:`residual_refinement` adds the
   interpolated (or biharmonically filled) measurement residual where the noise
   cannot explain it;
5. every task: :func:`.safety.consistency_step` (discrepancy principle, DESIGN
   section 11).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import InvalidInputError, RestorationError
from ..operators import LinearOperator
from ..simulation.parameters import SimulationParameters
from ..simulation.system_matrix import simulate_spectra
from ..system_matrix import SystemMatrix
from ..tasks import Task, get_task
from .noise_level import component_noise
from .safety import (ACTIONS, SafetyOptions, consistency_step, sure_combination)

__all__ = ["PRIOR_PROVENANCE", "PriorOptions", "PriorRecord", "prior_parameters",
           "prior_restore", "residual_refinement", "significant_misfit", "subspace_solve"]

PRIOR_PROVENANCE = "/_pympisr/restoration"
_LAMBDAS = (0.0, 1e-3, 1e-2, 1e-1, 1.0)  # lambda / s_max^2 tried for every rank


@dataclass(frozen=True)
class PriorOptions:
    """Parameters of the simulation prior (module docstring).

    Attributes
    ----------
    simulations:
        ``K``, simulations spanning the prior (the fitted one included).
    max_rank:
        ``R``, largest subspace rank considered.
    diameter_spread, anisotropy_spread:
        Log-normal std of the particle diameter and anisotropy draws.
    gamma_spread, axis_spread:
        Std of gamma (fluid) and of the easy-axis direction (immobilised, radians).
    geometry_spread:
        Relative std of the gradient and drive-amplitude jitter; the centre is
        jittered by this fraction of the FOV.
    memory_bytes:
        Budget of the simulated stack; larger stacks are simulated in frequency chunks.
    """

    simulations: int = 16
    max_rank: int = 10
    diameter_spread: float = 0.05
    anisotropy_spread: float = 0.3
    gamma_spread: float = 0.15
    axis_spread: float = 0.15
    geometry_spread: float = 0.005
    memory_bytes: int = 512 * 2**20

    def __post_init__(self) -> None:
        if self.simulations < 1 or self.max_rank < 1:
            raise InvalidInputError("PriorOptions: simulations and max_rank must be >= 1")
        for name in ("diameter_spread", "anisotropy_spread", "gamma_spread", "axis_spread",
                     "geometry_spread"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise InvalidInputError(f"PriorOptions.{name} must be finite and >= 0")


@dataclass
class PriorRecord:
    """Per component ``(C, K)``: chosen rank and relative ``lambda`` (lambda / s_max^2),
    prior weight and DCT-F weight in the SURE combination (denoising; 1 and 0 else),
    action codes (:data:`.safety.ACTIONS`), residual-to-noise ratio after the
    consistency step, and whether the prior misfit its measurement
    (:func:`significant_misfit`) so that its residual was added back (1) or not (0)."""

    rank: np.ndarray
    lam: np.ndarray
    prior_weight: np.ndarray
    baseline_weight: np.ndarray
    action: np.ndarray
    residual_ratio: np.ndarray
    misfit: np.ndarray


def prior_parameters(fitted: SimulationParameters, grid: tuple[int, ...], fov: np.ndarray,
                     options: PriorOptions, rng: np.random.Generator
                     ) -> list[SimulationParameters]:
    """The fitted parameters on ``grid``/``fov`` followed by ``K - 1`` jittered draws."""
    base = fitted.replace(grid=tuple(int(n) for n in grid), fov=np.asarray(fov, np.float64),
                          transfer_function=None)
    out = [base]
    d = base.dims
    for _ in range(options.simulations - 1):
        geo = options.geometry_spread
        gradient, drive, center = base.gradient.copy(), base.drive_amplitude.copy(), base.center.copy()
        gradient[:d] *= np.exp(rng.normal(0, geo, d))
        drive[:d] *= np.exp(rng.normal(0, geo, d))
        center[:d] += rng.normal(0, geo, d) * base.fov[:d]
        axis = base.easy_axis + rng.normal(0, options.axis_spread, 3)
        out.append(base.replace(
            gradient=gradient, drive_amplitude=drive, center=center,
            diameter=float(np.clip(base.diameter * np.exp(rng.normal(0, options.diameter_spread)),
                                   9e-9, 30e-9)),
            anisotropy=float(min(base.anisotropy * np.exp(rng.normal(0, options.anisotropy_spread)),
                                 5500.0)),
            gamma=float(max(0.05, base.gamma + rng.normal(0, options.gamma_spread))),
            easy_axis=axis))
    return out


def subspace_solve(basis: np.ndarray, y: np.ndarray, sigma: float, operator: LinearOperator,
                   out_shape: tuple[int, ...]) -> tuple[np.ndarray, int, float]:
    """Regularised least squares of ``y`` on the span of ``basis`` through ``operator``.

    ``basis`` real ``(R, N_out)`` orthonormal rows (strongest first), ``y`` complex
    measurement (spatial shape of ``A x``), ``sigma`` per-part noise std. Returns
    ``x`` complex ``out_shape``, the chosen rank and ``lambda / s_max^2`` (module doc,
    step 3).
    """
    rank_max = basis.shape[0]
    images = basis.reshape(rank_max, *out_shape)
    mapped = np.asarray(operator.forward(images), dtype=np.float64).reshape(rank_max, -1).T
    yv = np.asarray(y, dtype=np.complex128).reshape(-1)
    m = yv.size
    var = float(sigma) ** 2
    best = (np.inf, 1, 0.0, None)
    for r in range(1, rank_max + 1):
        p, s, qt = np.linalg.svd(mapped[:, :r], full_matrices=False)
        proj = p.T @ yv  # (r,) complex
        smax2 = float(s[0] ** 2) if s.size else 1.0
        for rel in _LAMBDAS:
            lam = rel * smax2
            gain = s**2 / (s**2 + lam) if lam > 0 else np.ones_like(s)
            fit = p @ (gain * proj)
            risk = float(np.sum(np.abs(fit - yv) ** 2)) - 2 * m * var + 4 * var * float(gain.sum())
            if risk < best[0]:
                positive = s > 0
                inverse = np.zeros_like(s)
                inverse[positive] = s[positive] / (s[positive] ** 2 + lam)
                coeff = qt.T @ (proj * inverse)
                best = (risk, r, rel, coeff)
    _, rank, rel, coeff = best
    x = (coeff @ basis[:rank]).reshape(out_shape)
    return x, rank, rel


def _component_bases(stack: np.ndarray, max_rank: int) -> np.ndarray:
    """Orthonormal bases ``(B, R, N)`` of real stacks ``(B, K, N)`` (leading singular
    vectors; R = min(max_rank, K))."""
    _, _, vt = np.linalg.svd(stack.astype(np.float64), full_matrices=False)
    return vt[:, :max_rank]


def _simulated_stack(params: list[SimulationParameters], bins: np.ndarray,
                     channels: np.ndarray) -> np.ndarray:
    """Simulated components ``(J, K, N_out)`` real (the imaginary part: equilibrium
    components are purely imaginary) for (channel, bin) pairs ``(J,)``."""
    unique, rows = np.unique(bins, return_inverse=True)
    out = np.empty((bins.size, len(params), int(np.prod(params[0].grid))), np.float32)
    for i, p in enumerate(params):
        spec = simulate_spectra(p, bins=unique)
        out[:, i] = spec[channels, rows].imag
    return out


def _task_object(task: str | Task, dims: int) -> Task:
    return get_task(task, dims=dims) if isinstance(task, str) else task


def prior_restore(sm: SystemMatrix, task: str | Task = "denoise", *, fit: Any = None,
                  noise: float | np.ndarray | None = None, mask: Any = None, seed: int = 0,
                  options: PriorOptions = PriorOptions(),
                  safety: SafetyOptions = SafetyOptions(), progress: bool = True
                  ) -> tuple[SystemMatrix, PriorRecord]:
    """Restore ``sm`` with the simulation prior (module docstring).

    Parameters
    ----------
    sm:
        Measured system matrix ``(C, K, Nz, Ny, Nx)`` whose metadata states the scanner
        geometry; its rows need rfft bins (``frequency_indices`` or frequencies on the
        simulated trajectory's grid).
    task:
        Task name (``get_task(task, dims=sm.dims)``) or a :class:`Task` (scale factor).
    fit:
        A :class:`pympisr.fitting.FitResult` of ``sm``, known
        :class:`SimulationParameters` of it, or None to fit now.
    noise:
        Per-part noise std (scalar or ``(C, K)``); default from the file
        (:func:`.noise_level.component_noise`).
    mask:
        Inpainting: bool ``(Nz, Ny, Nx)`` (or ``(Ny, Nx)`` in 2D), True = valid.
    seed:
        Seed of the prior's parameter draws and of the SURE probes.
    options, safety:
        :class:`PriorOptions`, :class:`.safety.SafetyOptions`.
    progress:
        tqdm bars (fit and components).

    Returns
    -------
    The restored SystemMatrix on the task's output grid (metadata records the method
    under ``/_pympisr/restoration/``) and the :class:`PriorRecord`.
    """
    from ..fitting import fit as run_fit
    from ..fitting.solver import frequency_bins

    task_obj = _task_object(task, sm.dims)
    if task_obj.needs_mask != (mask is not None):
        raise InvalidInputError(f"task {task_obj.name!r} " + (
            "needs a mask (True = valid position)" if task_obj.needs_mask else "takes no mask"))
    level = component_noise(sm, noise)
    if fit is None:
        fit = run_fit(sm, noise=level.std, progress=progress)
    squeeze = sm.dims == 2
    spatial_in = sm.data.shape[3:] if squeeze else sm.data.shape[2:]
    spatial_out = task_obj.output_grid(spatial_in)
    out_grid, out_fov, out_center = task_obj.output_geometry(sm.grid, sm.fov, sm.center)
    grid_mask = None
    if mask is not None:
        grid_mask = np.asarray(mask, dtype=bool).reshape(spatial_in)
    operator = task_obj.operator(spatial_out, grid_mask)
    rng = np.random.default_rng(seed)
    fitted = fit if isinstance(fit, SimulationParameters) else fit.parameters
    params = prior_parameters(fitted, out_grid, out_fov, options, rng)
    c_count, k_count = sm.data.shape[:2]
    bins_all = frequency_bins(sm)
    n_out = int(np.prod(spatial_out))
    per_row = 4 * len(params) * n_out * c_count
    chunk = max(1, min(k_count, options.memory_bytes // max(per_row, 1)))
    data = np.empty((c_count, k_count, *(((1,) if squeeze else ()) + spatial_out)),
                    dtype=np.complex64)
    record = PriorRecord(*(np.zeros((c_count, k_count), dt) for dt in
                           (np.int16, np.float64, np.float64, np.float64, np.int8,
                            np.float64, np.int8)))
    dims = task_obj.dims
    with tqdm(total=c_count * k_count, disable=not progress, unit="comp",
              desc=f"prior {task_obj.name}") as bar:
        for start in range(0, k_count, chunk):
            ks = np.arange(start, min(k_count, start + chunk))
            chans = np.repeat(np.arange(c_count), ks.size)
            rows = np.tile(ks, c_count)
            stack = _simulated_stack(params, bins_all[rows], chans)
            bases = _component_bases(stack, options.max_rank)
            y = sm.data[chans, rows]
            y = y[:, 0] if squeeze else y
            if grid_mask is not None:
                y = y * grid_mask.reshape(y.shape[1:])
            sigma = level.std[chans, rows]
            x = np.empty((rows.size, *spatial_out), np.complex128)
            smoothers = []
            for j in range(rows.size):
                x[j], rank, rel = subspace_solve(bases[j], y[j], sigma[j], operator, spatial_out)
                record.rank[chans[j], rows[j]] = rank
                record.lam[chans[j], rows[j]] = rel
                smoothers.append((bases[j][:rank], rel))
            x, a, b, codes, misfit = _safety(x, y, sigma, task_obj, operator, safety, rng,
                                             dims, smoothers)
            data[chans, rows] = (x[:, None] if squeeze else x).astype(np.complex64)
            record.prior_weight[chans, rows] = a
            record.baseline_weight[chans, rows] = b
            record.action[chans, rows] = codes[0]
            record.residual_ratio[chans, rows] = codes[1]
            record.misfit[chans, rows] = misfit
            bar.update(rows.size)
    if not np.all(np.isfinite(data)):
        raise RestorationError("the simulation-prior restoration produced non-finite values")
    metadata = dict(sm.metadata)
    metadata.update({f"{PRIOR_PROVENANCE}/task": task_obj.name,
                     f"{PRIOR_PROVENANCE}/scaleFactor": task_obj.scale_factor,
                     f"{PRIOR_PROVENANCE}/method": "prior",
                     f"{PRIOR_PROVENANCE}/noiseSource": level.source,
                     f"{PRIOR_PROVENANCE}/noiseStd": level.std.astype(np.float32),
                     f"{PRIOR_PROVENANCE}/action": record.action,
                     f"{PRIOR_PROVENANCE}/actionNames": json.dumps(list(ACTIONS)),
                     f"{PRIOR_PROVENANCE}/priorRank": record.rank,
                     f"{PRIOR_PROVENANCE}/priorWeight": record.prior_weight.astype(np.float32),
                     f"{PRIOR_PROVENANCE}/baselineWeight":
                         record.baseline_weight.astype(np.float32),
                     f"{PRIOR_PROVENANCE}/residualRatio":
                         record.residual_ratio.astype(np.float32),
                     f"{PRIOR_PROVENANCE}/priorMisfit": record.misfit})
    if out_grid != sm.grid:
        metadata.pop("/calibration/positions", None)
    return sm.replace(data=data, grid=out_grid, fov=out_fov, center=out_center,
                      metadata=metadata), record


def _safety(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, task: Task,
            operator: LinearOperator, safety: SafetyOptions, rng: np.random.Generator,
            dims: int, smoothers: list[tuple[np.ndarray, float]]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray],
                       np.ndarray]:
    """SURE combination with DCT-F and the measurement (denoising) or the residual
    refinement (super-resolution, inpainting), then the consistency step. ``smoothers`` per
    component: (basis rows ``(r, N)``, lambda).
    Returns ``x``, prior and baseline weights, (action codes, ratio) and the misfit
    flags ``(B,)`` (:func:`significant_misfit`)."""
    batch = x.shape[0]
    a, b = np.ones(batch), np.zeros(batch)
    codes = np.full(batch, ACTIONS.index("restored"))
    misfit = np.zeros(batch, dtype=bool)
    if task.name == "denoise":
        from ..baselines.dct import dct_denoise, dct_denoise_sure

        prior = x.copy()
        misfit = significant_misfit(y - prior, sigma, int(np.prod(y.shape[1:])))

        def network(z: np.ndarray) -> np.ndarray:
            # for A = I the chosen estimate is the linear smoother
            # H = U_r U_r^T / (1 + lambda) (orthonormal basis: s = 1), so the SURE probe
            # y + e maps to x + H e; where the prior misfits, the candidate also adds
            # the DCT-F of its residual z - H z (module docstring, step 4)
            probe = (z[batch:] - z[:batch]).reshape(batch, -1)
            moved = np.empty_like(probe)
            for j in range(batch):
                u = smoothers[j][0]
                moved[j] = ((u @ probe[j]) @ u) / (1.0 + smoothers[j][1])
            out = np.concatenate([prior, prior + moved.reshape(prior.shape)])
            chosen = np.concatenate([misfit, misfit])
            if np.any(chosen):
                std = np.concatenate([sigma, sigma])[chosen]
                out[chosen] += dct_denoise(z[chosen] - out[chosen], std, dims=dims)
            return out

        def baseline(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            out, div, _ = dct_denoise_sure(z, sigma, dims=dims)
            return out, div

        x, a, b = sure_combination(y, sigma, dims, network, baseline if safety.use_baseline
                                   else None, safety, rng)
        codes = np.full(batch, ACTIONS.index("blended"))
        codes[a >= 0.95] = ACTIONS.index("restored")
        codes[b >= 0.95] = ACTIONS.index("baseline")
        codes[a + b < 0.05] = ACTIONS.index("kept")
    else:
        x, misfit = residual_refinement(x, y, sigma, task, operator)
    x, projected, ratio = consistency_step(x, y, sigma, operator, safety)
    codes = np.where(projected, ACTIONS.index("projected"), codes)
    return x, a, b, (codes.astype(np.int8), ratio), misfit


def significant_misfit(residual: np.ndarray, sigma: np.ndarray, measured: int,
                       z_min: float = 3.0) -> np.ndarray:
    """Bool ``(B,)``: components whose residual ``(B, ...)`` (zero where not measured)
    the noise cannot explain. With complex noise of per-part std ``sigma`` on
    ``measured`` values, ``||r||^2`` of a consistent estimate is about
    ``2 m sigma^2`` with std ``2 sqrt(m) sigma^2``; a misfit exceeds that by ``z_min``
    stds: structure the prior's subspace misses (physics the simulator lacks)."""
    var = np.asarray(sigma, dtype=np.float64) ** 2
    energy = np.sum(np.abs(residual.reshape(residual.shape[0], -1)) ** 2, axis=1)
    return energy - 2.0 * measured * var > z_min * 2.0 * np.sqrt(measured) * var


def residual_refinement(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, task: Task,
                        operator: LinearOperator) -> tuple[np.ndarray, np.ndarray]:
    """Super-resolution and inpainting: add the task's classical method applied to the
    measurement residual ``r = y - A x``, denoised with DCT-F (SURE), to each component
    of ``x`` ``(B, *grid_out)`` whose residual the noise cannot explain
    (:func:`significant_misfit`). Returns the refined ``x`` and those misfit flags
    ``(B,)``.

    Super-resolution interpolates the denoised residual (bicubic, tricubic);
    inpainting fills the residual's gaps biharmonically first (DCT-F of a zero-filled
    residual would spread the gaps) and denoises the filled residual. Either way the
    structure the prior's subspace misses reaches every output sample smoothly, where
    the consistency step alone would add block-constant (block mean), single-sample
    (stride) or measured-positions-only (mask) corrections.
    """
    from ..baselines.dct import dct_denoise_sure

    r = y - operator.forward(x)
    misfit = significant_misfit(r, sigma, operator.measured_count(x.shape[1:]))
    if not np.any(misfit):
        return x, misfit
    out = x.copy()
    if task.needs_mask:
        mask = np.asarray(operator.mask, dtype=bool).reshape(x.shape[1:])
        filled = task.baseline(r[misfit], sigma[misfit], mask)
        out[misfit] += dct_denoise_sure(filled, sigma[misfit], dims=task.dims)[0]
    else:
        denoised, _, _ = dct_denoise_sure(r[misfit], sigma[misfit], dims=task.dims)
        out[misfit] += task.baseline(denoised, sigma[misfit])
    return out, misfit
