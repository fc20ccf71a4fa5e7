"""Never worse than the input: the safety step after the network (DESIGN section 11).

A network's output ``f(y)`` is not trusted blindly. Per component, with the noise
level ``sigma`` (per real degree of freedom) known from the file:

Denoising (``A = I``)
    The output is the convex combination ``x = y + a (f(y) - y) + b (d(y) - y)`` of the
    measured component ``y``, the network ``f`` and the classical baseline ``d`` (DCT-F)
    (DCT-F with its threshold factor itself chosen per component by SURE,
    :func:`pympisr.baselines.dct.dct_denoise_sure`) with ``a, b >= 0, a + b <= 1`` that
    minimises Stein's unbiased risk estimate
    (Stein 1981)::

        SURE(x) = ||x - y||^2 - n sigma^2 + 2 sigma^2 div x(y),    n = 2 m real d.o.f.

    an unbiased estimate of ``||x - S||^2`` that needs no ground truth. ``div d`` is
    exact for DCT soft thresholding (:func:`pympisr.baselines.dct.dct_divergence`);
    ``div f`` is the Monte-Carlo estimate of Ramani, Blu & Unser (IEEE TIP 2008),
    ``b . (f(y + e b) - f(y)) / e`` with one Gaussian probe ``b``. SURE is quadratic in
    ``(a, b)``, so the minimiser over the triangle is found exactly. A network that
    erases weak structure or cannot reach a strong component's SNR gets a small weight;
    a component that is pure noise goes to the baseline's zero.
    Components whose relative noise ``sigma / max|y|`` is below ``network_floor`` never
    reach the network (its fidelity ceiling is about 45-50 dB), nor do those whose
    estimated relative noise ``sigma / (max|y| - sigma sqrt(2 ln N))`` (the noisy peak
    minus the typical peak of ``N`` noise samples) is above ``network_ceiling``: noise
    only, as most components of a full-band calibration are (DCT-F takes them to about
    zero). Only ``y`` and the baseline compete there.

Super-resolution and inpainting (held-out validation)
    SURE does not reach the positions that were never measured, so there the network's
    output ``f`` and the classical method ``c`` (the task's baseline with DCT-F: DCT-F
    before the bicubic/tricubic spline, after biharmonic filling) are judged on measured
    data the methods did not see: the measured component is degraded once more by the
    task's operator (super-resolution: ``y2 = A y``, whose restoration is compared with
    ``y`` on the null space of ``A``, i.e. the within-block detail or the skipped
    positions; inpainting: a further paper-style mask hides valid positions, and the
    fills are compared with ``y`` there). With white noise the compared part of ``y`` is
    independent of what the methods saw, so the squared error differs from the true
    error by a constant common to both methods. The weight ``a`` in ``[0, 1]`` of
    ``x = c + a (f - c)`` that minimises that held-out error (:func:`holdout_weight`)
    is then used at full resolution. The judgement is made one level coarser
    (super-resolution) or on another mask (inpainting): a proxy, which the calibration
    protocol measures. Components below ``network_floor`` and noise-only ones (above
    ``network_ceiling``) get the classical method ``c`` alone, as in denoising (where
    ``y`` and DCT-F compete).

Every task (discrepancy principle)
    The residual through the task's operator must be consistent with the noise:
    ``||A x - y|| <= tol sqrt(n) sigma``; otherwise ``x`` is projected onto that ball
    (:meth:`pympisr.operators.LinearOperator.project`, TranSMS' data-consistency
    projection). Components below ``keep_below`` relative noise are made exactly
    consistent with their measurement (``eps = 0``: measured samples are kept).

The per-component record (:class:`SafetyRecord`) stores the action taken, the weights
and the residual-to-noise ratio ``||A x - y|| / (sqrt(n) sigma)``; restore writes it
under ``/_pympisr/restoration/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from ..operators import LinearOperator

__all__ = ["ACTIONS", "DEFAULT_NETWORK_CEILING", "DEFAULT_NETWORK_FLOOR", "MODEL_TUNABLE",
           "SafetyOptions", "SafetyRecord", "consistency_step", "estimated_relative_noise",
           "holdout_weight", "sure_combination"]

# action codes stored per component (int8): index into ACTIONS
ACTIONS = ("copied", "restored", "blended", "baseline", "kept", "projected")
# network range of a model whose manifest entry recommends none (relative noise)
DEFAULT_NETWORK_FLOOR = 1e-3
DEFAULT_NETWORK_CEILING = 10.0
# SafetyOptions fields a model's manifest entry may recommend ("safety": {...})
MODEL_TUNABLE = ("network_floor", "network_ceiling")


@dataclass(frozen=True)
class SafetyOptions:
    """Parameters of the safety step (module docstring).

    Attributes
    ----------
    network_floor, network_ceiling:
        Relative noise below / above which the network is not run (every task); the
        ceiling compares with the estimated relative noise
        (:func:`estimated_relative_noise`). None: the value the model's manifest entry
        recommends (``"safety": {"network_floor": ..., "network_ceiling": ...}``, the
        range where the calibration protocol found the network useful), else
        :data:`DEFAULT_NETWORK_FLOOR` / :data:`DEFAULT_NETWORK_CEILING`
        (:meth:`for_model`).
    keep_below:
        Relative noise below which measured samples are kept exactly.
    tol:
        Discrepancy tolerance: project when ``||A x - y|| > tol sqrt(n) sigma``.
    probe_scale:
        Monte-Carlo SURE step ``e = probe_scale * sigma``.
    use_baseline:
        Let the classical baseline compete (denoising).
    """

    network_floor: float | None = None
    network_ceiling: float | None = None
    keep_below: float = 1e-4
    tol: float = 1.5
    probe_scale: float = 0.05
    use_baseline: bool = True

    def __post_init__(self) -> None:
        checked = ("keep_below", "tol", "probe_scale") + (
            () if self.network_floor is None else ("network_floor",))
        for name in checked:
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"SafetyOptions.{name} must be finite and >= 0, got {value}")
        floor, ceiling = self.network_floor, self.network_ceiling
        if not (floor is None or ceiling is None or ceiling > floor):
            raise ValueError("SafetyOptions.network_ceiling must exceed network_floor")
        if self.probe_scale == 0:
            raise ValueError("SafetyOptions.probe_scale must be positive")

    def for_model(self, recommended: Mapping[str, float] | None = None) -> SafetyOptions:
        """These options with every field left None filled from ``recommended`` (a
        model's manifest ``"safety"`` entry, keys of :data:`MODEL_TUNABLE`), else from
        the defaults (:data:`DEFAULT_NETWORK_FLOOR`, :data:`DEFAULT_NETWORK_CEILING`).

        Raises ValueError if the resulting floor is not below the ceiling."""
        recommended = recommended or {}
        defaults = {"network_floor": DEFAULT_NETWORK_FLOOR,
                    "network_ceiling": DEFAULT_NETWORK_CEILING}
        filled = {name: float(recommended.get(name, default))
                  for name, default in defaults.items() if getattr(self, name) is None}
        return replace(self, **filled) if filled else self


@dataclass
class SafetyRecord:
    """Per-component outcome: ``action`` (int8 codes of :data:`ACTIONS`), the weights
    ``network_weight`` (a) and ``baseline_weight`` (b), and ``residual_ratio``
    ``||A x - y|| / (sqrt(n) sigma)`` (NaN where sigma is 0)."""

    action: np.ndarray
    network_weight: np.ndarray
    baseline_weight: np.ndarray
    residual_ratio: np.ndarray


def _inner(u: np.ndarray, v: np.ndarray, dims: int) -> np.ndarray:
    axes = tuple(range(-dims, 0))
    return np.sum((u.conj() * v).real, axis=axes, dtype=np.float64)


def _simplex_minimum(quad: np.ndarray, lin: np.ndarray) -> np.ndarray:
    """Minimise ``w^T Q w + 2 l^T w`` over ``{w >= 0, w_1 + w_2 <= 1}`` per component.

    ``quad`` ``(B, 2, 2)`` positive semi-definite, ``lin`` ``(B, 2)``; returns ``(B, 2)``.
    Candidates: the interior stationary point, the minimiser on each of the three edges
    and the vertices; the feasible candidate with the lowest value wins.
    """
    batch = quad.shape[0]
    cands = [np.zeros((batch, 2)), np.tile([1.0, 0.0], (batch, 1)),
             np.tile([0.0, 1.0], (batch, 1))]
    for i in (0, 1):  # edges w_j = 0
        w = np.zeros((batch, 2))
        denom = quad[:, i, i]
        w[:, i] = np.clip(np.where(denom > 0, -lin[:, i] / np.where(denom > 0, denom, 1), 0), 0, 1)
        cands.append(w)
    # edge w_1 + w_2 = 1: w = (t, 1 - t)
    e = np.array([1.0, -1.0])
    q_e = np.einsum("i,bij,j->b", e, quad, e)
    slope = np.einsum("i,bij->bj", e, quad)[:, 1] + lin @ e
    t = np.clip(np.where(q_e > 0, -slope / np.where(q_e > 0, q_e, 1), 0), 0, 1)
    cands.append(np.stack([t, 1 - t], axis=1))
    det = quad[:, 0, 0] * quad[:, 1, 1] - quad[:, 0, 1] ** 2
    ok = det > 1e-12 * (quad[:, 0, 0] * quad[:, 1, 1] + 1e-300)
    safe = np.where(ok, det, 1.0)
    w0 = (-lin[:, 0] * quad[:, 1, 1] + lin[:, 1] * quad[:, 0, 1]) / safe
    w1 = (-lin[:, 1] * quad[:, 0, 0] + lin[:, 0] * quad[:, 0, 1]) / safe
    inside = ok & (w0 >= 0) & (w1 >= 0) & (w0 + w1 <= 1)
    cands.append(np.where(inside[:, None], np.stack([w0, w1], axis=1), 0.0))
    stack = np.stack(cands, axis=1)  # (B, n_cand, 2)
    values = np.einsum("bci,bij,bcj->bc", stack, quad, stack) + 2 * np.einsum(
        "bci,bi->bc", stack, lin)
    return stack[np.arange(batch), np.argmin(values, axis=1)]


def sure_combination(y: np.ndarray, sigma: np.ndarray, dims: int,
                     network: Callable[[np.ndarray], np.ndarray] | None,
                     baseline: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None,
                     options: SafetyOptions, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SURE-optimal convex combination of ``y``, ``network(y)`` and the baseline.

    Parameters
    ----------
    y:
        complex ``(B, *grid)`` measured components.
    sigma:
        ``(B,)`` per-part noise std (units of ``y``).
    network:
        ``network(z)`` -> complex ``(B', *grid)`` for a batch ``z`` (the network with
        its noise levels already bound), or None.
    baseline:
        ``baseline(y)`` -> (output, divergence ``(B,)``), or None.

    Returns
    -------
    ``x`` (complex64, shape of ``y``), network weight ``a`` and baseline weight ``b``
    (``(B,)`` each).
    """
    batch = y.shape[0]
    n = 2.0 * np.prod(y.shape[1:])
    var = np.asarray(sigma, dtype=np.float64) ** 2
    y128 = y.astype(np.complex128)
    deltas: list[np.ndarray] = []
    lin_terms: list[np.ndarray] = []
    for name in ("network", "baseline"):
        if name == "network" and network is not None:
            eps = options.probe_scale * np.asarray(sigma, dtype=np.float64)
            probe = (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
            shaped_eps = eps.reshape(-1, *([1] * (y.ndim - 1)))
            outs = network(np.concatenate([y, (y128 + shaped_eps * probe).astype(y.dtype)]))
            f0, f1 = outs[:batch].astype(np.complex128), outs[batch:].astype(np.complex128)
            safe_eps = np.where(eps > 0, eps, 1.0)
            div = np.where(eps > 0, _inner(probe, f1 - f0, y.ndim - 1) / safe_eps, n)
            deltas.append(f0 - y128)
            lin_terms.append(var * (div - n))
        elif name == "baseline" and baseline is not None:
            out, div = baseline(y)
            deltas.append(out.astype(np.complex128) - y128)
            lin_terms.append(var * (np.asarray(div, dtype=np.float64) - n))
        else:
            deltas.append(np.zeros_like(y128))
            lin_terms.append(np.zeros(batch))
    axes = y.ndim - 1
    quad = np.empty((batch, 2, 2))
    for i in range(2):
        for j in range(i, 2):
            quad[:, i, j] = quad[:, j, i] = _inner(deltas[i], deltas[j], axes)
    weights = _simplex_minimum(quad, np.stack(lin_terms, axis=1))
    shape = (-1, *([1] * axes))
    x = y128 + weights[:, 0].reshape(shape) * deltas[0] + weights[:, 1].reshape(shape) * deltas[1]
    return x.astype(np.complex64), weights[:, 0], weights[:, 1]


def holdout_weight(residual: np.ndarray, delta: np.ndarray, dims: int) -> np.ndarray:
    """Weight ``a`` in ``[0, 1]`` minimising ``||residual + a delta||^2`` per component
    (module docstring).

    Both arrays complex ``(B, *grid)`` and already restricted to the held-out part (the
    rest zero): ``residual = c - y`` and ``delta = f - c`` at the validation level.
    Returns ``(B,)``; 0 where ``delta`` vanishes.
    """
    d = delta.astype(np.complex128)
    energy = _inner(d, d, dims)
    slope = _inner(d, residual.astype(np.complex128), dims)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(energy > 0, -slope / np.where(energy > 0, energy, 1), 0), 0, 1)


def consistency_step(x: np.ndarray, y: np.ndarray, sigma: np.ndarray,
                     operator: LinearOperator, options: SafetyOptions
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discrepancy check and projection (module docstring) for a batch.

    ``x`` complex ``(B, *grid_out)``, ``y`` complex ``(B, *grid_in)`` (the measured data,
    zero where not measured), ``sigma`` ``(B,)``. Returns the projected ``x``, a bool
    ``(B,)`` "projected" flag and the residual ratio ``(B,)`` after the step.
    """
    dims = operator.dims
    m = operator.measured_count(x.shape[1:])
    radius = np.sqrt(2.0 * m) * np.asarray(sigma, dtype=np.float64)
    peak = np.abs(y).reshape(y.shape[0], -1).max(axis=1)
    relative = np.where(peak > 0, np.asarray(sigma) / np.where(peak > 0, peak, 1), np.inf)
    eps = np.where(relative < options.keep_below, 0.0, options.tol * radius)
    shape = (-1, *([1] * dims))
    before = operator.residual_norm(x.astype(np.complex128), y.astype(np.complex128))
    before = before.reshape(-1)
    projected = before > eps * (1 + 1e-9)
    out = operator.project(x.astype(np.complex128), y.astype(np.complex128),
                           eps.reshape(shape)).astype(np.complex64)
    after = np.minimum(before, eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(radius > 0, np.where(projected, after, before) / radius, np.nan)
    return out, projected, ratio


def estimated_relative_noise(y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``sigma / (max|y| - sigma sqrt(2 ln N))`` per component of ``y`` ``(B, *grid)``
    (inf where the peak does not rise above the typical maximum of ``N`` noise
    magnitudes, whose per-part std is ``sigma``)."""
    peak = np.abs(y).reshape(y.shape[0], -1).max(axis=1).astype(np.float64)
    count = y[0].size
    signal = peak - np.asarray(sigma, dtype=np.float64) * np.sqrt(2 * np.log(max(count, 2)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(signal > 0, sigma / np.where(signal > 0, signal, 1), np.inf)
