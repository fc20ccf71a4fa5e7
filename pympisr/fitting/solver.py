"""Fit the simulator to a measured system matrix (DESIGN section 13, issue 13 item 1).

Model: component ``j`` (receive channel ``c_j``, rfft bin ``k_j``) of the measurement is
``y_j = a_j s_j(theta) + n_j`` with ``s_j`` the simulated component for the parameter
vector ``theta`` (:class:`.model.ParameterSpace`: geometry and particle) and ``a_j`` a free
complex factor that absorbs the transfer function, coil gains and the overall scale.

Variable projection (Golub & Pereyra 1973): for fixed ``theta`` the best factor is the
closed-form least-squares solution ``a_j = <s_j, y_j> / <s_j, s_j>``, so the nonlinear
least-squares problem in ``theta`` alone has residuals

    r_j(theta) = w_j (y_j - a_j(theta) s_j(theta)),
    w_j = 1 / sqrt(sigma_j^2 + (rho rms(y_j))^2),

whitened by the component's noise std ``sigma_j`` (:mod:`pympisr.restoration.noise_level`)
and a relative model-error floor ``rho`` so that strong components are not trusted beyond
what the equilibrium model can reproduce.

Only components whose energy is significantly above the noise take part: with complex
white noise of per-part std ``sigma`` on ``N`` voxels the noise energy has mean
``2 N sigma^2`` and std ``2 sqrt(N) sigma^2``, and a component is kept if its excess
energy is at least ``z_min`` (default 5) of those stds. A component without signal has
a simulated counterpart near zero whose shape changes arbitrarily from one parameter
value to the next; with its free factor it fits the noise, and the cost then jumps by
about one unit (whitened) between parameters 1e-5 apart, which stalls the solver at its
start (measured at SNR 3: bins 813 and 751 of a 2D SM, simulated energy 1e-4 of the
median).

The file's stated geometry is a prior, not only a start value: the residuals include
``p_g / tau_g`` for every geometry parameter (log gradient, log drive ratio, centre
offset in FOV units) with tolerances ``tau`` (default 5 %, 5 %, 3 % of the FOV), i.e. a
Gaussian prior around the stated values. Where the data determine the geometry (high
SNR, standard error ``s << tau``) the prior pulls the estimate towards the stated value
by a fraction of about ``(s / tau)^2`` of their difference; where they do not (few
significant components), the estimate stays near the stated values instead of
drifting, and the covariance below includes the prior, so the reported uncertainty is
that of the prior rather than an absurdly small number.

``scipy.optimize.least_squares`` (trust region
reflective, robust loss ``soft_l1`` with ``f_scale`` 3 in these whitened units, finite
difference Jacobian) minimises them on the strongest components and, in 3D, on a subset of
voxels that contains the grid corners (where fluid particles' ``|G r|`` peaks, which
normalises their anisotropy). Fluid and immobilised particles are fitted separately
(a discrete choice); the state with the lower robust cost is kept. Each state starts
from the best of a few particle start values at the file's nominal geometry.

Uncertainties are the square roots of the diagonal of ``s^2 (J^T J)^+`` at the solution
(``J`` the Jacobian of the whitened residuals, ``s^2`` their mean square per degree of
freedom), propagated to physical units to first order.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from tqdm.auto import tqdm

from ..errors import FitWarning, InvalidInputError
from ..physics import fields
from ..restoration.noise_level import component_noise
from ..simulation.system_matrix import simulate_spectra
from ..system_matrix import SystemMatrix
from .model import Nominal, ParameterSpace, nominal_geometry
from .result import FitResult

__all__ = ["FIT_DEFAULTS", "FitProblem", "GEOMETRY_TOLERANCE", "MIN_SIGNAL_FRACTION",
           "MIN_SIGNIFICANCE", "energy_above_noise", "fit", "frequency_bins",
           "select_components", "select_voxels"]

# per dims: strongest components used, voxels used, solver evaluations per state
FIT_DEFAULTS: dict[int, dict[str, int]] = {
    2: {"components": 40, "max_voxels": 1600, "max_nfev": 40},
    3: {"components": 40, "max_voxels": 250, "max_nfev": 12},
}
# median share of signal energy in the chosen components below which fit() warns
MIN_SIGNAL_FRACTION = 0.5
# default z_min of the component selection (module docstring)
MIN_SIGNIFICANCE = 5.0
# default prior widths of the stated geometry: log gradient, log drive, centre (FOV units)
GEOMETRY_TOLERANCE = (0.05, 0.05, 0.03)
_F_SCALE = 3.0
_DIFF_STEP = 1e-3
_EXAMPLES = 4


def frequency_bins(sm: SystemMatrix) -> np.ndarray:
    """0-based rfft bins of ``sm``'s frequencies on the simulated trajectory's grid."""
    if sm.frequency_indices is not None:
        return np.asarray(sm.frequency_indices, dtype=np.int64)
    spacing = fields.SAMPLING_RATE / fields.period_samples(sm.dims)
    bins = np.rint(sm.frequencies / spacing)
    if not np.allclose(bins * spacing, sm.frequencies, rtol=0, atol=1e-3 * spacing):
        raise InvalidInputError("system matrix frequencies are not multiples of the "
                                f"simulated trajectory's spacing {spacing:.3f} Hz")
    return bins.astype(np.int64)


def energy_above_noise(data: np.ndarray, sigma: np.ndarray | float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy ``sum |y|^2`` of each component of ``data`` ``(..., N)`` (complex, over its
    ``N`` voxels), its excess over the mean noise energy ``2 N sigma^2`` and the std of
    the noise energy ``2 sqrt(N) sigma^2`` (complex white noise of per-part std
    ``sigma``, broadcast over the leading axes; module docstring)."""
    n = data.shape[-1]
    energy = np.sum(np.abs(data) ** 2, axis=-1, dtype=np.float64)
    sigma2 = np.broadcast_to(np.asarray(sigma, dtype=np.float64) ** 2, energy.shape)
    return energy, energy - 2.0 * n * sigma2, 2.0 * np.sqrt(n) * sigma2


def select_components(sm: SystemMatrix, sigma: np.ndarray, count: int,
                      min_significance: float = MIN_SIGNIFICANCE) -> np.ndarray:
    """``(J, 2)`` (channel, row): of the ``count`` components with the largest energy
    above the noise (:func:`energy_above_noise`), those whose excess is positive and at
    least ``min_significance`` stds of the noise energy (module docstring), skipping the
    DC bin and channels the trajectory does not drive (z in 2D)."""
    c, k = sm.data.shape[:2]
    _, excess, spread = energy_above_noise(sm.data.reshape(c, k, -1), sigma)
    excess[:, frequency_bins(sm) == 0] = -np.inf
    excess[sm.dims:] = -np.inf
    usable = (excess > 0) & (excess >= min_significance * spread)
    order = np.argsort(excess, axis=None)[::-1][:count]
    chosen = np.stack(np.unravel_index(order, (c, k)), axis=1)
    chosen = chosen[usable[chosen[:, 0], chosen[:, 1]]]
    if chosen.shape[0] < 3:
        raise InvalidInputError(f"only {chosen.shape[0]} components rise above the noise by "
                                f"{min_significance:g} stds of its energy; the fit needs "
                                "at least 3 (a lower min_significance, --min-significance "
                                "on the command line, admits weaker ones)")
    return chosen


def select_voxels(grid: tuple[int, int, int], max_voxels: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Flat voxel indices (MDF order): all, or the grid corners plus random others."""
    nx, ny, nz = grid
    total = nx * ny * nz
    if total <= max_voxels:
        return np.arange(total)
    corners = np.unique([x + nx * (y + ny * z) for x in (0, nx - 1) for y in (0, ny - 1)
                         for z in (0, nz - 1)])
    rest = np.setdiff1d(np.arange(total), corners)
    extra = rng.choice(rest, size=max(0, max_voxels - corners.size), replace=False)
    return np.sort(np.concatenate([corners, extra]))


class FitProblem:
    """Whitened variable-projection residuals of one particle state (module doc).

    ``measured`` ``(J, V)`` complex components on ``voxels``, ``channels`` and ``bins``
    ``(J,)`` their receive channels and rfft bins, ``weights`` ``(J,)`` the whitening
    factors, ``tolerance`` the geometry prior (None: none).
    """

    def __init__(self, space: ParameterSpace, measured: np.ndarray, channels: np.ndarray,
                 bins: np.ndarray, voxels: np.ndarray, weights: np.ndarray,
                 tolerance: tuple[float, float, float] | None = None) -> None:
        self.space, self.measured, self.channels = space, measured, channels
        self.voxels, self.weights = voxels, weights
        self.prior = None if tolerance is None else space.geometry_prior_weights(tolerance)
        self.unique_bins, self.rows = np.unique(bins, return_inverse=True)
        self.evaluations = 0

    def simulate(self, x: np.ndarray, voxels: np.ndarray | None = None) -> np.ndarray:
        """Simulated components ``(J, N)`` complex128 at ``x``."""
        self.evaluations += 1
        spec = simulate_spectra(self.space.parameters(x), bins=self.unique_bins,
                                voxels=self.voxels if voxels is None else voxels)
        return spec[self.channels, self.rows].astype(np.complex128)

    def scales(self, sim: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """Closed-form complex factors ``a_j`` ``(J,)``."""
        energy = np.sum(np.abs(sim) ** 2, axis=1)
        inner = np.sum(sim.conj() * measured, axis=1)
        return np.where(energy > 0, inner / np.where(energy > 0, energy, 1.0), 0.0)

    def residual(self, x: np.ndarray) -> np.ndarray:
        sim = self.simulate(x)
        r = (self.measured - self.scales(sim, self.measured)[:, None] * sim)
        r *= self.weights[:, None]
        parts = [r.real.ravel(), r.imag.ravel()]
        if self.prior is not None:
            parts.append(self.prior * x[:self.prior.size])
        return np.concatenate(parts)

    def information(self, x: np.ndarray, step: float = 1e-4) -> np.ndarray:
        """Fisher information ``J^T J`` ``(P, P)`` of the whitened residuals at ``x``
        (central differences with ``step``). With ``measured`` the noise-free data and
        no prior, ``sqrt(diag(inv(J^T J)))`` is the Cramer-Rao bound of an unbiased
        estimate from these components (the free factors are profiled out)."""
        columns = []
        for i in range(self.space.size):
            h = step * np.eye(self.space.size)[i]
            columns.append((self.residual(x + h) - self.residual(x - h)) / (2.0 * step))
        jac = np.stack(columns, axis=1)
        return jac.T @ jac

    def robust_cost(self, f: np.ndarray) -> float:
        """``least_squares``' soft-l1 cost of residuals ``f``."""
        z = (f / _F_SCALE) ** 2
        return float(0.5 * _F_SCALE**2 * np.sum(2.0 * (np.sqrt(1.0 + z) - 1.0)))


def _starts(space: ParameterSpace) -> list[np.ndarray]:
    """Particle start values: D 15/19/24 nm x K 0.2/1.5/4 kJ/m^3 (fluid: gamma 1;
    immobilised: easy axis in-plane at 0, 45, 90, 135 degrees or along z)."""
    particles = [(d * 1e-9, k) for d in (15, 19, 24) for k in (200.0, 1500.0, 4000.0)]
    if space.fluid:
        return [space.start(d, k) for d, k in particles]
    axes = [(np.deg2rad(a), 0.5 * np.pi) for a in (0, 45, 90, 135)] + [(0.0, 0.0)]
    return [space.start(d, k, azimuth=az, polar=po) for d, k in particles for az, po in axes]


def _covariance(jac: np.ndarray, f: np.ndarray, dof: int) -> np.ndarray:
    """``s^2 (J^T J)^-1``; directions the data do not determine (eigenvalues of
    ``J^T J`` below 1e-12 of the largest) get the variance of that floor, i.e. huge
    uncertainties instead of the zero a pseudo-inverse would report."""
    s2 = float(np.sum(f**2)) / max(dof, 1)
    eigval, eigvec = np.linalg.eigh(jac.T @ jac)
    floor = 1e-12 * max(float(eigval.max()), 1e-300)
    return s2 * (eigvec / np.maximum(eigval, floor)) @ eigvec.T


def _physical_uncertainty(space: ParameterSpace, x: np.ndarray,
                          cov: np.ndarray) -> dict[str, Any]:
    """First-order (finite difference) propagation of ``cov`` to physical values."""
    base = space.values(x)
    keys = [k for k, v in base.items() if k != "fluid"]
    grads: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in range(space.size):
        step = 1e-6 * max(1.0, abs(x[i]))
        shifted = space.values(x + step * np.eye(space.size)[i])
        for k in keys:
            grads[k].append((np.asarray(shifted[k], dtype=np.float64)
                             - np.asarray(base[k], dtype=np.float64)) / step)
    out: dict[str, Any] = {}
    for k in keys:
        g = np.array(grads[k])  # (n, ...) derivative per parameter
        g2 = g.reshape(space.size, -1)
        std = np.sqrt(np.maximum(np.einsum("ia,ij,ja->a", g2, cov, g2), 0.0))
        out[k] = float(std[0]) if np.ndim(base[k]) == 0 else std.reshape(np.shape(base[k]))
    return out


def _best_start(problem: FitProblem, bar: Any) -> np.ndarray:
    best_x, best_cost = None, np.inf
    for x0 in _starts(problem.space):
        cost = problem.robust_cost(problem.residual(x0))
        bar.update(1)
        if cost < best_cost:
            best_x, best_cost = x0, cost
    return best_x


def _solve(problem: FitProblem, x0: np.ndarray, max_nfev: int, bar: Any) -> Any:
    """Robust trust-region least squares from ``x0`` (module docstring)."""
    space = problem.space
    low, high = space.bounds()
    scale = np.array([0.02] * (3 * space.dims - 1) + [0.05, 0.5]
                     + ([0.3] if space.fluid else [0.3, 0.3]))

    def residual(x: np.ndarray) -> np.ndarray:
        bar.update(1)
        return problem.residual(x)

    return least_squares(residual, np.clip(x0, low, high), bounds=(low, high),
                         loss="soft_l1", f_scale=_F_SCALE, x_scale=scale,
                         diff_step=_DIFF_STEP, max_nfev=max_nfev, method="trf")


def fit(source: str | os.PathLike[str] | SystemMatrix, *, components: int | None = None,
        max_voxels: int | None = None, max_nfev: int | None = None,
        noise: float | np.ndarray | None = None, states: tuple[bool, ...] = (True, False),
        model_error: float = 0.01, min_significance: float = MIN_SIGNIFICANCE,
        geometry_tolerance: tuple[float, float, float] | None = GEOMETRY_TOLERANCE,
        seed: int = 0, progress: bool = True) -> FitResult:
    """Fit geometry and particle parameters of the simulator to a measured SM.

    Each particle state in ``states`` is fitted from its best start value with a
    quarter of ``max_nfev``; the state with the lowest robust cost continues up to
    ``max_nfev`` evaluations.

    Parameters
    ----------
    source:
        MDF calibration file (loaded background corrected, transfer function not
        divided out: the complex factors absorb it) or a :class:`SystemMatrix` whose
        metadata states the scanner geometry (:func:`.model.nominal_geometry`).
    components:
        Number of strongest components used (default :data:`FIT_DEFAULTS`).
    max_voxels:
        Voxels used at most (a subset with the grid corners; default per dims).
    max_nfev:
        Residual evaluations per particle state in the least-squares solver, not
        counting the ``n`` evaluations of each finite-difference Jacobian.
    noise:
        Per-part noise std of each component (scalar or ``(C, K)``), default from the
        file (:func:`pympisr.restoration.noise_level.component_noise`).
    states:
        Particle states tried: True = fluid, False = immobilised.
    model_error:
        Relative model-error floor ``rho`` of the residual weights (module doc).
    min_significance:
        ``z_min`` of the component selection (module docstring).
    geometry_tolerance:
        Prior widths of the stated geometry (relative gradient, relative drive ratio,
        centre in FOV units; module docstring); None fits without the prior.
    seed:
        Seed of the voxel subset.
    progress:
        tqdm bar over residual evaluations.

    Returns
    -------
    :class:`FitResult` of the better state.
    """
    started = time.perf_counter()
    path = None
    if isinstance(source, SystemMatrix):
        sm = source
    else:
        from ..mdf import require_regular_file
        from ..mdf.reader import load_system_matrix

        path = require_regular_file(source)
        sm = load_system_matrix(path, bg_correction=True, tf_correction=False)
    if not states:
        raise InvalidInputError("states must name at least one particle state")
    defaults = FIT_DEFAULTS[sm.dims]
    components = defaults["components"] if components is None else int(components)
    max_voxels = defaults["max_voxels"] if max_voxels is None else int(max_voxels)
    max_nfev = defaults["max_nfev"] if max_nfev is None else int(max_nfev)
    if components < 3 or max_voxels < 8 or max_nfev < 1 or not min_significance >= 0:
        raise InvalidInputError("fit needs components >= 3, max_voxels >= 8, max_nfev >= 1 "
                                "and min_significance >= 0")
    nominal = nominal_geometry(sm)
    level = component_noise(sm, noise)
    source = "system matrix" if path is None else str(path)
    try:
        chosen = select_components(sm, level.std, components, min_significance)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{source}: {exc}") from None
    voxels = select_voxels(sm.grid, max_voxels, np.random.default_rng(seed))
    flat = sm.data.reshape(*sm.data.shape[:2], -1)
    measured = flat[chosen[:, 0], chosen[:, 1]][:, voxels].astype(np.complex128)
    rms = np.sqrt(np.mean(np.abs(measured) ** 2, axis=1))
    sigma = level.std[chosen[:, 0], chosen[:, 1]]
    _warn_if_noise_dominated(flat[chosen[:, 0], chosen[:, 1]], sigma, source)
    weights = 1.0 / np.sqrt(sigma**2 + (model_error * rms) ** 2)
    bins = frequency_bins(sm)[chosen[:, 1]]
    # every state gets a quarter of the evaluations; the best one continues
    screen = max(1, max_nfev // 4) if len(states) > 1 else max_nfev
    fits: list[tuple[FitProblem, Any, float]] = []
    with tqdm(disable=not progress, unit="sim", desc="fit") as bar:
        for fluid in states:
            problem = FitProblem(ParameterSpace(nominal, fluid), measured, chosen[:, 0], bins,
                               voxels, weights, geometry_tolerance)
            res = _solve(problem, _best_start(problem, bar), screen, bar)
            fits.append((problem, res, float(res.cost)))
        index = int(np.argmin([cost for _, _, cost in fits]))
        problem, res, _ = fits[index]
        if screen < max_nfev and res.status == 0:  # stopped by the evaluation limit
            res = _solve(problem, res.x, max_nfev - screen, bar)
            fits[index] = (problem, res, float(res.cost))
    options = {"model_error": model_error, "min_significance": min_significance,
               "geometry_tolerance": None if geometry_tolerance is None
               else list(geometry_tolerance)}
    return _result(sm, path, nominal, problem, res, fits, chosen, level.source,
                   time.perf_counter() - started, options)


def _warn_if_noise_dominated(components: np.ndarray, sigma: np.ndarray, source: str) -> None:
    """:class:`~pympisr.errors.FitWarning` if the median share of signal energy
    ``(||y||^2 - 2 N sigma^2) / ||y||^2`` of the chosen components ``(J, N)`` is below
    :data:`MIN_SIGNAL_FRACTION`: the residual then jitters with the noise from one
    geometry to the next (the solver stalls near its start) and the covariance of
    ``(J^T J)^-1`` understates the error."""
    energy, excess, _ = energy_above_noise(components, sigma)
    fraction = float(np.median(excess / np.maximum(energy, np.finfo(float).tiny)))
    if fraction < MIN_SIGNAL_FRACTION:
        warnings.warn(FitWarning(
            f"{source}: the {components.shape[0]} strongest components are mostly noise "
            f"(median signal share of their energy {fraction:.2f} < "
            f"{MIN_SIGNAL_FRACTION}); the fitted geometry is weakly determined and its "
            "reported uncertainties are not reliable"), stacklevel=3)


def _result(sm: SystemMatrix, path: Path | None, nominal: Nominal, problem: FitProblem,
            res: Any, fits: list[tuple[FitProblem, Any, float]], chosen: np.ndarray,
            noise_source: str, elapsed: float, options: dict[str, Any]) -> FitResult:
    space = problem.space
    sim = problem.simulate(res.x)
    scales = problem.scales(sim, problem.measured)
    resid = problem.measured - scales[:, None] * sim
    relative = np.linalg.norm(resid, axis=1) / np.linalg.norm(problem.measured, axis=1)
    dof = 2 * problem.measured.size - space.size - 2 * problem.measured.shape[0]
    cov = _covariance(res.jac, res.fun, dof)
    flat = sm.data.reshape(*sm.data.shape[:2], -1)
    # example images: the strongest components, central z slice, on the full slice
    nx, ny, nz = sm.grid
    plane = nx * ny * (nz // 2) + np.arange(nx * ny)
    examples = chosen[:_EXAMPLES]
    example_problem = FitProblem(space, flat[examples[:, 0], examples[:, 1]][:, plane],
                               examples[:, 0], frequency_bins(sm)[examples[:, 1]], plane,
                               np.ones(examples.shape[0]))
    ex_sim = example_problem.simulate(res.x)
    ex_fit = example_problem.scales(ex_sim, example_problem.measured)[:, None] * ex_sim
    return FitResult(
        parameters=space.parameters(res.x), values=space.values(res.x),
        uncertainties=_physical_uncertainty(space, res.x, cov),
        names=list(space.names), vector=np.asarray(res.x), covariance=cov,
        gauge_invariants=space.gauge_invariants(res.x),
        costs={("fluid" if p.space.fluid else "immobilised"): c for p, _, c in fits},
        channels=chosen[:, 0].copy(), frequency_indices=frequency_bins(sm)[chosen[:, 1]],
        relative_residual=relative, scales=scales,
        example_measured=example_problem.measured.reshape(-1, ny, nx),
        example_fitted=ex_fit.reshape(-1, ny, nx), nominal=nominal,
        source_frequency_indices=frequency_bins(sm), noise_source=noise_source,
        evaluations=sum(p.evaluations for p, _, _ in fits), elapsed=elapsed,
        source=None if path is None else str(path), message=str(res.message),
        options=options)
