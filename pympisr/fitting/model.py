"""The fit's parameter vector and its mapping to :class:`SimulationParameters`.

A measured system matrix states its scanner geometry (drive amplitudes, selection-field
gradient, calibration FOV and centre); :func:`nominal_geometry` reads it. The fit varies
that geometry and the particle model around it (DESIGN sections 5 and 13):

=====================  ================================================================
parameter              meaning (per fitted axis ``i`` of the trajectory, x, y[, z])
=====================  ================================================================
``log_gradient_i``     ``G_i = G_i,nominal * exp(p)``
``log_drive_j``        drive amplitudes ``A_i = A_i,nominal * exp((B p)_i)`` with ``B`` an
                       orthonormal basis of the zero-sum vectors (``dims - 1`` entries)
``center_i``           ``c_i = c_i,nominal + p * FOV_i`` (offset in units of the FOV)
``log_diameter``       ``D = 19 nm * exp(p)``
``anisotropy``         ``K = 1000 p`` J/m^3 (``p >= 0``; 0 is the Langevin model)
``gamma``              fluid particles: spatial modulation exponent of K
``azimuth, polar``     immobilised particles: easy axis
                       ``(sin polar cos azimuth, sin polar sin azimuth, cos polar)``
=====================  ================================================================

Gauge. The equilibrium moment depends on the field only through ``beta B`` and
``alpha = K V_c / (k_B T)`` (DESIGN section 5), and a per-component complex scale
absorbs the amplitude, so ``(A, G, D^3, K) -> (c A, c G, D^3 / c, c K)`` leaves every
normalised component unchanged: one direction of the parameter space is not
identifiable from the data. The fit removes it by keeping the geometric mean of the
drive amplitudes at its nominal value (drive amplitudes are the scanner quantity
measured most directly). What the data determine without that convention are the
drive-field FOV ``2 A_i / |G_i|``, the ratios between drive amplitudes, the centre and
``beta |G|``; :meth:`ParameterSpace.gauge_invariants` returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..physics import fields
from ..simulation.parameters import SimulationParameters
from ..system_matrix import SystemMatrix

__all__ = ["REFERENCE_DIAMETER", "Nominal", "ParameterSpace", "nominal_geometry"]

REFERENCE_DIAMETER = 19e-9  # m, the unit of log_diameter (DESIGN section 5 reference)
_K_UNIT = 1000.0  # J/m^3 per unit of the anisotropy parameter
_DRIVE_FIELD = "/acquisition/drivefield/strength"
_GRADIENT_FIELD = "/acquisition/gradient"
_DIVIDER_FIELD = "/acquisition/drivefield/divider"
_BASE_FIELD = "/acquisition/drivefield/baseFrequency"


@dataclass(frozen=True)
class Nominal:
    """Scanner geometry a file states (SI units, x/y/z order).

    Attributes
    ----------
    dims: 2 or 3.  grid: (Nx, Ny, Nz).
    fov, center: (3,) calibration FOV and centre, m.
    drive_amplitude: (3,) T (z is 0 for a 2D trajectory).
    gradient: (3,) diagonal of the selection-field gradient, T/m.
    """

    dims: int
    grid: tuple[int, int, int]
    fov: np.ndarray
    center: np.ndarray
    drive_amplitude: np.ndarray
    gradient: np.ndarray


def _array(sm: SystemMatrix, field: str) -> np.ndarray:
    if field not in sm.metadata:
        raise InvalidInputError(f"system matrix metadata: {field}: missing; the fit needs "
                                "the scanner geometry the file states")
    try:
        value = np.asarray(sm.metadata[field], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"system matrix metadata: {field}: not numeric "
                                f"({exc})") from exc
    if not np.all(np.isfinite(value)):
        raise InvalidInputError(f"system matrix metadata: {field}: non-finite values")
    return value


def _check_trajectory(sm: SystemMatrix, dims: int) -> None:
    """The simulator models 2.5 MHz sampling and dividers (102, 96[, 99])."""
    if _DIVIDER_FIELD in sm.metadata:
        divider = np.asarray(sm.metadata[_DIVIDER_FIELD]).reshape(-1)[:dims]
        if divider.size < dims or not np.array_equal(divider, fields.DIVIDERS[:dims]):
            raise InvalidInputError(
                f"system matrix metadata: {_DIVIDER_FIELD}: dividers {divider.tolist()} "
                f"differ from the simulated Lissajous trajectory {list(fields.DIVIDERS[:dims])}")
    if _BASE_FIELD in sm.metadata:
        base = float(np.asarray(sm.metadata[_BASE_FIELD]).reshape(-1)[0])
        if not np.isclose(base, fields.SAMPLING_RATE, rtol=1e-6):
            raise InvalidInputError(f"system matrix metadata: {_BASE_FIELD}: {base} Hz, the "
                                    f"simulator uses {fields.SAMPLING_RATE} Hz")


def nominal_geometry(sm: SystemMatrix) -> Nominal:
    """The geometry stated by ``sm``: drive strength ``(J, D, F)`` (first period and
    frequency), gradient ``(J, Y, 3, 3)`` (diagonal of the first entry), FOV and centre.

    Raises InvalidInputError naming the metadata field that is missing or malformed.
    """
    dims = sm.dims
    _check_trajectory(sm, dims)
    strength = _array(sm, _DRIVE_FIELD)
    if strength.ndim != 3 or strength.shape[1] < dims:
        raise InvalidInputError(f"system matrix metadata: {_DRIVE_FIELD}: expected shape "
                                f"(J, D, F) with D >= {dims}, got {strength.shape}")
    amplitude = np.zeros(3)
    amplitude[:dims] = np.abs(strength[0, :dims, 0])
    gradient_field = _array(sm, _GRADIENT_FIELD)
    if gradient_field.shape[-2:] != (3, 3):
        raise InvalidInputError(f"system matrix metadata: {_GRADIENT_FIELD}: expected shape "
                                f"(J, Y, 3, 3), got {gradient_field.shape}")
    gradient = np.diag(gradient_field.reshape(-1, 3, 3)[0]).copy()
    if np.any(amplitude[:dims] <= 0) or np.any(gradient[:dims] == 0):
        raise InvalidInputError(f"system matrix metadata: {_DRIVE_FIELD} / {_GRADIENT_FIELD}: "
                                f"drive {amplitude[:dims]} T and gradient {gradient[:dims]} "
                                "T/m must be non-zero on every trajectory axis")
    return Nominal(dims=dims, grid=tuple(sm.grid), fov=np.array(sm.fov, dtype=np.float64),
                   center=np.array(sm.center, dtype=np.float64), drive_amplitude=amplitude,
                   gradient=gradient)


def _zero_sum_basis(n: int) -> np.ndarray:
    """Orthonormal basis ``(n, n - 1)`` of the vectors in R^n whose entries sum to 0."""
    q, _ = np.linalg.qr(np.eye(n) - 1.0 / n)
    return q[:, : n - 1]


class ParameterSpace:
    """Parameter vector <-> :class:`SimulationParameters` for one particle state.

    Parameters
    ----------
    nominal:
        The file's geometry (start point of the geometry parameters).
    fluid:
        Fluid (easy axis along the local selection field) or immobilised particles.
    """

    def __init__(self, nominal: Nominal, fluid: bool) -> None:
        self.nominal, self.fluid, self.dims = nominal, bool(fluid), nominal.dims
        axes = "xyz"[: self.dims]
        self._basis = _zero_sum_basis(self.dims)
        self.names: list[str] = ([f"log_gradient_{a}" for a in axes]
                                 + [f"log_drive_{j}" for j in range(self.dims - 1)]
                                 + [f"center_{a}" for a in axes]
                                 + ["log_diameter", "anisotropy"]
                                 + (["gamma"] if self.fluid else ["azimuth", "polar"]))

    @property
    def size(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (geometry within +-20 %, D 9 to 30 nm, K 0 to
        5500 J/m^3 (inside the moment tables' alpha range at 30 nm), gamma 0.05 to 4;
        angles free)."""
        d = self.dims
        low = [np.log(0.8)] * d + [np.log(0.8)] * (d - 1) + [-0.2] * d + [np.log(9 / 19), 0.0]
        high = [np.log(1.2)] * d + [np.log(1.2)] * (d - 1) + [0.2] * d + [np.log(30 / 19), 5.5]
        if self.fluid:
            low, high = low + [0.05], high + [4.0]
        else:
            low, high = low + [-np.inf, -np.inf], high + [np.inf, np.inf]
        return np.array(low), np.array(high)

    def geometry_prior_weights(self, tolerance: tuple[float, float, float]) -> np.ndarray:
        """Inverse prior widths ``1 / tau`` of the geometry parameters (the first
        ``3 dims - 1`` entries of the vector: log gradients, log drive ratios, centre
        offsets in FOV units) for ``tolerance = (tau_gradient, tau_drive, tau_center)``."""
        tau = np.asarray(tolerance, dtype=np.float64)
        if tau.shape != (3,) or not np.all(np.isfinite(tau)) or np.any(tau <= 0):
            raise InvalidInputError(f"geometry tolerance must be 3 positive numbers "
                                    f"(gradient, drive, centre), got {tolerance!r}")
        d = self.dims
        return 1.0 / np.repeat(tau, [d, d - 1, d])

    def start(self, diameter: float = REFERENCE_DIAMETER, anisotropy: float = 1500.0,
              gamma: float = 1.0, azimuth: float = 0.75 * np.pi, polar: float = 0.5 * np.pi
              ) -> np.ndarray:
        """Vector at the nominal geometry with the given particle values."""
        x = np.zeros(self.size)
        x[self.index("log_diameter")] = np.log(diameter / REFERENCE_DIAMETER)
        x[self.index("anisotropy")] = anisotropy / _K_UNIT
        if self.fluid:
            x[self.index("gamma")] = gamma
        else:
            x[self.index("azimuth")], x[self.index("polar")] = azimuth, polar
        return x

    def vector_of(self, params: SimulationParameters) -> np.ndarray:
        """The vector of ``params`` (e.g. a simulation's truth) in the fit's gauge
        (module docstring): with ``c`` the geometric mean of ``A_true / A_nominal``,
        ``(A, G, D^3, K) -> (A / c, G / c, c D^3, K / c)``, which simulates the same
        normalised components."""
        if params.dims != self.dims or bool(params.fluid) != self.fluid:
            raise InvalidInputError(f"parameters of a {params.dims}D, fluid={params.fluid} "
                                    f"simulation do not fit this {self.dims}D, "
                                    f"fluid={self.fluid} parameter space")
        d, nom = self.dims, self.nominal
        drive = np.asarray(params.drive_amplitude, dtype=np.float64)[:d] / nom.drive_amplitude[:d]
        c = float(np.exp(np.mean(np.log(drive))))
        x = self.start(params.diameter * c ** (1.0 / 3.0), params.anisotropy / c,
                       gamma=params.gamma,
                       azimuth=float(np.arctan2(params.easy_axis[1], params.easy_axis[0])),
                       polar=float(np.arccos(np.clip(params.easy_axis[2], -1.0, 1.0))))
        x[:d] = np.log(np.asarray(params.gradient, dtype=np.float64)[:d] / c / nom.gradient[:d])
        x[d:2 * d - 1] = self._basis.T @ np.log(drive / c)
        x[2 * d - 1:3 * d - 1] = ((np.asarray(params.center, dtype=np.float64)[:d]
                                   - nom.center[:d]) / nom.fov[:d])
        return x

    def values(self, x: np.ndarray) -> dict[str, Any]:
        """Physical values of ``x``: gradient, drive_amplitude, center ((3,) arrays),
        diameter (m), anisotropy (J/m^3), fluid, gamma or easy_axis."""
        d, nom = self.dims, self.nominal
        x = np.asarray(x, dtype=np.float64)
        gradient = nom.gradient.copy()
        gradient[:d] *= np.exp(x[:d])
        drive = nom.drive_amplitude.copy()
        drive[:d] *= np.exp(self._basis @ x[d: 2 * d - 1])
        center = nom.center.copy()
        center[:d] += x[2 * d - 1: 3 * d - 1] * nom.fov[:d]
        out: dict[str, Any] = {
            "gradient": gradient, "drive_amplitude": drive, "center": center,
            "diameter": float(REFERENCE_DIAMETER * np.exp(x[self.index("log_diameter")])),
            "anisotropy": float(_K_UNIT * x[self.index("anisotropy")]), "fluid": self.fluid}
        if self.fluid:
            out["gamma"] = float(x[self.index("gamma")])
        else:
            az, po = x[self.index("azimuth")], x[self.index("polar")]
            out["easy_axis"] = np.array([np.sin(po) * np.cos(az), np.sin(po) * np.sin(az),
                                         np.cos(po)])
        return out

    def parameters(self, x: np.ndarray, grid: tuple[int, int, int] | None = None,
                   fov: np.ndarray | None = None, center_shift: np.ndarray | None = None
                   ) -> SimulationParameters:
        """:class:`SimulationParameters` of ``x`` on the file's grid, or on another
        ``grid``/``fov`` around the fitted centre (e.g. a task's output grid).
        ``center_shift`` (3,) m is added to the fitted centre."""
        v = self.values(x)
        center = v["center"] if center_shift is None else v["center"] + center_shift
        return SimulationParameters(
            dims=self.dims, grid=self.nominal.grid if grid is None else grid,
            fov=self.nominal.fov if fov is None else fov, center=center, model="anisotropy",
            diameter=v["diameter"], anisotropy=v["anisotropy"],
            easy_axis=v.get("easy_axis", np.array([0.0, 0.0, 1.0])), fluid=self.fluid,
            gamma=v.get("gamma", 1.0), drive_amplitude=v["drive_amplitude"],
            gradient=v["gradient"])

    def gauge_invariants(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Quantities the data determine whatever the gauge (module docstring):
        ``drive_fov`` ``2 A_i / |G_i|`` (m), ``drive_ratio`` ``A_i / A_x``, ``center`` (m)
        and ``beta_gradient`` ``beta |G_i|`` (1/m), each over the trajectory axes."""
        from ..physics.moments import field_parameter

        v, d = self.values(x), self.dims
        beta = field_parameter(v["diameter"])
        return {"drive_fov": 2 * v["drive_amplitude"][:d] / np.abs(v["gradient"][:d]),
                "drive_ratio": v["drive_amplitude"][:d] / v["drive_amplitude"][0],
                "center": v["center"][:d],
                "beta_gradient": beta * np.abs(v["gradient"][:d])}
