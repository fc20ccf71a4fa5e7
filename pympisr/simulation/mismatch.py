"""Test-data helpers for physics-in-the-loop methods: a stated (nominal) geometry with
realistic errors, and effects the equilibrium simulator does not model.

* :func:`state_geometry`: a copy of a simulated SM whose metadata states the scanner
  geometry with errors (gradient and drive amplitude of a few percent, a FOV-centre
  offset), as a measured file does; the true parameters under ``/_pympisr/simulation``
  are removed.
* :func:`simulate_relaxed`: relaxation, which the equilibrium model lacks: the moment
  follows the equilibrium moment with a first-order (Debye) lag whose time constant
  shrinks in strong fields, ``dm/dt = (m_eq(t) - m) / tau(t)``,
  ``tau(t) = tau0 (1 - 0.8 |m_eq(t)|)`` (field-dependent relaxation, as Neel and
  Brownian times fall with the field; cf. Croft et al. 2012). Being field dependent it
  is not a per-frequency factor: it delays and blurs the signal along the trajectory
  differently in every voxel, so a per-component complex scale cannot absorb it.
* :func:`simulate_nonlinear_gradient`: a selection field that is not linear, as real
  gradient coils are not: each axis' field grows with the cube of the distance from the
  isocentre, ``B_a(r) = G_a r_a (1 + kappa (r_a / R_a)^2)`` with ``R_a`` half the FOV,
  so at the FOV edge it is ``kappa`` (e.g. 5-10 %) stronger than the linear gradient
  the simulator assumes. Component images are compressed towards the edges, which no
  choice of a linear gradient, drive amplitude or centre reproduces.
"""

from __future__ import annotations

import numpy as np

from ..physics import fields
from ..system_matrix import SystemMatrix
from .parameters import SimulationParameters
from .system_matrix import _moment_chunks, simulate_system_matrix

__all__ = ["relaxed_moments", "simulate_nonlinear_gradient", "simulate_relaxed",
           "state_geometry"]


def state_geometry(sm: SystemMatrix, rng: np.random.Generator, *,
                   gradient_error: float = 0.03, drive_error: float = 0.03,
                   center_error: float = 0.02) -> tuple[SystemMatrix, dict[str, np.ndarray]]:
    """``sm`` (simulated) with a stated geometry off by uniform relative errors up to
    ``gradient_error``/``drive_error`` per axis and a centre offset up to
    ``center_error`` of the FOV per axis (the file's centre differs from the true one).

    Returns the SM and the errors ``{"gradient", "drive", "center"}`` (stated = true /
    (1 + error) for gradient and drive; stated centre = true + error * FOV).
    """
    meta = {k: v for k, v in sm.metadata.items() if not k.startswith("/_pympisr/simulation")}
    dims = sm.dims
    gradient = np.diag(np.asarray(sm.metadata["/acquisition/gradient"],
                                  dtype=np.float64).reshape(-1, 3, 3)[0])
    drive = np.asarray(sm.metadata["/acquisition/drivefield/strength"],
                       dtype=np.float64).reshape(-1)[:3]
    errors = {"gradient": rng.uniform(-gradient_error, gradient_error, 3),
              "drive": rng.uniform(-drive_error, drive_error, 3),
              "center": rng.uniform(-center_error, center_error, 3)}
    errors["center"][dims:] = 0.0
    meta["/acquisition/gradient"] = np.diag(gradient / (1 + errors["gradient"]))[None, None]
    meta["/acquisition/drivefield/strength"] = (drive / (1 + errors["drive"])).reshape(1, 3, 1)
    center = sm.center + errors["center"] * sm.fov
    return sm.replace(center=center, metadata=meta), errors


def relaxed_moments(params: SimulationParameters, tau0: float, periods: int = 3
                    ) -> np.ndarray:
    """Relaxed moments over one full period, float64 ``(N_voxels, 3, V)``.

    ``tau0`` in sampling intervals (``1 / 2.5 MHz``). The exponential integrator
    ``m_{n+1} = m_eq,n + (m_n - m_eq,n) exp(-1 / tau_n)`` runs ``periods`` periods from
    ``m_eq`` so that the last one is the periodic steady state.
    """
    if tau0 <= 0:
        raise ValueError(f"tau0 must be positive, got {tau0}")
    v_len = fields.period_samples(params.dims)
    half = v_len // 2
    eq = np.empty((int(np.prod(params.grid)), 3, v_len))
    for sel, moments in _moment_chunks(params, None):
        eq[sel, :, : half + 1] = moments
        eq[sel, :, half + 1:] = moments[:, :, 1:half][:, :, ::-1]  # m(V - n) = m(n)
    decay = np.exp(-1.0 / (tau0 * (1.0 - 0.8 * np.linalg.norm(eq, axis=1))))  # (Nv, V)
    m = eq[:, :, 0].copy()
    out = np.empty_like(eq)
    for _ in range(periods):
        for n in range(v_len):
            m = eq[:, :, n] + (m - eq[:, :, n]) * decay[:, None, n]
            out[:, :, n] = m
    return out


def simulate_relaxed(params: SimulationParameters, tau0: float, *,
                     frequencies: np.ndarray | None = None) -> SystemMatrix:
    """Like :func:`.system_matrix.simulate_system_matrix` (same metadata and scale) with
    the relaxation of the module docstring (``tau0`` in sampling intervals)."""
    sm = simulate_system_matrix(params, frequencies=frequencies)
    v_len = fields.period_samples(params.dims)
    spec = np.fft.rfft(relaxed_moments(params, tau0), axis=-1)[:, :, sm.frequency_indices]
    spec = spec * (2j * np.pi * sm.frequency_indices / v_len)
    nx, ny, nz = params.grid
    data = np.transpose(spec, (1, 2, 0)).reshape(3, -1, nz, ny, nx)
    meta = dict(sm.metadata)
    meta["/_pympisr/simulation/relaxation_tau0"] = float(tau0)
    return sm.replace(data=data.astype(np.complex64), metadata=meta)


def simulate_nonlinear_gradient(params: SimulationParameters, kappa: float, *,
                                frequencies: np.ndarray | None = None) -> SystemMatrix:
    """Like :func:`.system_matrix.simulate_system_matrix` (same metadata and scale) with
    the cubic selection-field non-linearity ``kappa`` of the module docstring
    (relative field excess at the FOV edge; 0 is the linear scanner)."""
    if not np.isfinite(kappa) or kappa <= -1:
        raise ValueError(f"kappa must be a finite number > -1, got {kappa}")
    half_fov = np.maximum(np.asarray(params.fov, np.float64) / 2, np.finfo(float).tiny)

    def warp(positions: np.ndarray) -> np.ndarray:
        return positions * (1.0 + kappa * (positions / half_fov) ** 2)

    sm = simulate_system_matrix(params, frequencies=frequencies, selection_warp=warp)
    meta = dict(sm.metadata)
    meta["/_pympisr/simulation/gradient_nonlinearity"] = float(kappa)
    return sm.replace(metadata=meta)
