"""Simulation parameters of one system matrix and their random sampler.

The sampler follows the seed paper (``sm-restoration-simulated-training``, section 3.1,
Table 1) and DESIGN section 5. Parameters come in three groups:

Particle
    temperature 293 K and core saturation M_S = 474 kA/m (fixed); core diameter D with
    D^3 uniform between (15 nm)^3 and (25 nm)^3; anisotropy constant K log-uniform in
    [10, 5000] J/m^3 (paper: log-uniform, bounds lost; DESIGN: 0 to 5000); fluid or
    immobilised with probability 1/2 each; immobilised: easy axis uniform on the unit
    sphere; fluid: spatial modulation gamma ~ U(0.3, 1.3) (the range printed in the
    paper's text; DESIGN's guess U(1, 3) was made where the paper's numbers were lost).
Scanner
    drive amplitudes A ~ U(5, 14) mT per axis; selection-field gradients
    G_x, G_y ~ U(0.1, 1.5) T/m and G_z = -(G_x + G_y) (Gauss's law); drive frequencies
    fixed (see :mod:`pympisr.physics.fields`); 2D trajectories drive x and y only.
Calibration
    drive-field FOV per axis ``2 A / |G|``; calibration FOV = ``u * DF FOV`` with
    ``u ~ U(0.8, 1.2)`` per axis; centre uniform within the margins
    ``+- |DF FOV - FOV| / 2``; grid size per axis from the FWHM of the 1D Langevin PSF
    (Knopp et al. 2010: ``FWHM = 4.16 / (beta |G|)``)::

        N = clip(round(s * FOV / FWHM), 12, 30),   s ~ U(4, 12) (one draw per SM)

    ``s`` (samples per FWHM) is our choice: with the paper's ranges ``FOV / FWHM`` lies
    between about 0.5 and 6.5, so s ~ U(4, 12) spreads grid sizes over the paper's three
    test bins (12, 18], (18, 24], (24, 30]. 2D grids have ``Nz = 1`` with a z extent of
    one mean in-plane voxel size at z = 0.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..physics.moments import field_parameter
from ..datasets.store import json_default

__all__ = ["SAMPLER_RANGES", "SimulationParameters", "reference_parameters", "sample_parameters",
           "sampler_ranges"]

# every range the sampler uses (units: m, J/m^3, T, T/m)
SAMPLER_RANGES: dict[str, tuple[float, float]] = {
    "diameter": (15e-9, 25e-9),
    "anisotropy": (10.0, 5000.0),
    "gamma": (0.3, 1.3),
    "drive_amplitude": (5e-3, 14e-3),
    "gradient": (0.1, 1.5),
    "fov_fraction": (0.8, 1.2),
    "samples_per_fwhm": (4.0, 12.0),
    "grid": (12, 30),
}

FWHM_FACTOR = 4.16  # FWHM of the Langevin derivative in units of xi (Knopp 2010)


@dataclass
class SimulationParameters:
    """Every parameter of one simulated system matrix (SI units, x/y/z order).

    Attributes
    ----------
    dims: 2 or 3 (trajectory and grid dimensionality).
    grid: (Nx, Ny, Nz) calibration grid (Nz = 1 in 2D).
    fov, center: (3,) calibration field of view and its centre, m.
    model: "langevin" or "anisotropy".
    diameter: particle core diameter, m.
    anisotropy: anisotropy constant K, J/m^3 (maximum over the grid for fluid particles).
    easy_axis: (3,) unit vector for immobilised particles (ignored when fluid).
    fluid: fluid particles (easy axis along the local selection field, K modulated).
    gamma: spatial modulation exponent of K for fluid particles.
    drive_amplitude: (3,) drive-field amplitudes, T (z ignored in 2D).
    gradient: (3,) selection-field gradient diagonal, T/m.
    temperature: K.  saturation: core saturation magnetisation, A/m.
    transfer_function: None, a path to a transfer-function HDF5 file
        (``frequencies``, ``transferFunction`` (C, L, 2)), or a complex array (C, K)
        on the simulated frequencies.
    seed: the seed the sampler used (None if all parameters were given).
    """

    dims: int
    grid: tuple[int, int, int]
    fov: np.ndarray
    center: np.ndarray
    model: str
    diameter: float
    anisotropy: float
    easy_axis: np.ndarray
    fluid: bool
    gamma: float
    drive_amplitude: np.ndarray
    gradient: np.ndarray
    temperature: float = 293.0
    saturation: float = 474e3
    transfer_function: Any = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims!r}")
        self.grid = tuple(int(g) for g in self.grid)  # type: ignore[assignment]
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ValueError(f"grid must be 3 positive sizes (Nx, Ny, Nz), got {self.grid}")
        if self.dims == 2 and self.grid[2] != 1:
            raise ValueError(f"a 2D grid needs Nz = 1, got {self.grid}")
        for name in ("fov", "center", "easy_axis", "drive_amplitude", "gradient"):
            value = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if value.size != 3:
                raise ValueError(f"{name} must have 3 entries, got {getattr(self, name)!r}")
            setattr(self, name, value)
        if np.any(self.fov <= 0):
            raise ValueError(f"fov must be positive, got {self.fov}")
        if self.model not in ("langevin", "anisotropy"):
            raise ValueError(f"model must be 'langevin' or 'anisotropy', got {self.model!r}")
        if self.diameter <= 0 or self.temperature <= 0 or self.saturation <= 0:
            raise ValueError("diameter, temperature and saturation must be positive")
        if self.anisotropy < 0:
            raise ValueError(f"anisotropy must be >= 0, got {self.anisotropy}")
        norm = np.linalg.norm(self.easy_axis)
        if norm == 0:
            raise ValueError("easy_axis must not be the zero vector")
        self.easy_axis = self.easy_axis / norm
        self.fluid = bool(self.fluid)
        self.diameter = float(self.diameter)
        self.anisotropy = float(self.anisotropy)
        self.gamma = float(self.gamma)

    @property
    def beta(self) -> float:
        """``M_S V_c / (k_B T)`` in 1/T."""
        return field_parameter(self.diameter, self.temperature, self.saturation)

    def replace(self, **changes: Any) -> SimulationParameters:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (arrays as lists; an array transfer function as "array")."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "transfer_function" and value is not None:
                is_path = isinstance(value, (str, bytes)) or hasattr(value, "__fspath__")
                value = os.fsdecode(value) if is_path else "array"
            elif isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return json.loads(json.dumps(out, default=json_default))


def sampler_ranges(overrides: Mapping[str, Sequence[float]] | None = None
                   ) -> dict[str, tuple[float, float]]:
    """:data:`SAMPLER_RANGES` with some ranges replaced, validated.

    ``overrides`` maps range names (keys of :data:`SAMPLER_RANGES`) to ``(low, high)``;
    e.g. ``{"samples_per_fwhm": (4, 60), "grid": (12, 44)}`` for a training distribution
    that covers real calibrations (finely sampled small particles, 44 x 44 grids).
    """
    ranges = dict(SAMPLER_RANGES)
    for name, value in (overrides or {}).items():
        if name not in SAMPLER_RANGES:
            raise ValueError(f"unknown sampler range {name!r}; known: {sorted(SAMPLER_RANGES)}")
        low, high = (float(v) for v in value)
        if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
            raise ValueError(f"sampler range {name} must satisfy 0 < low <= high, got "
                             f"{tuple(value)}")
        ranges[name] = (int(low), int(high)) if name == "grid" else (low, high)
    return ranges


def sample_parameters(seed: int | np.random.SeedSequence | None = None, *, dims: int = 2,
                      model: str = "anisotropy",
                      ranges: Mapping[str, Sequence[float]] | None = None
                      ) -> SimulationParameters:
    """Draw all parameters of one system matrix, reproducibly from ``seed`` (module doc).

    ``ranges`` overrides some of :data:`SAMPLER_RANGES` (see :func:`sampler_ranges`).
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    limits = sampler_ranges(ranges)

    def _uniform(name: str, size: int | None = None) -> Any:
        low, high = limits[name]
        return rng.uniform(low, high, size)

    rng = np.random.default_rng(seed)
    d_low, d_high = limits["diameter"]
    diameter = rng.uniform(d_low**3, d_high**3) ** (1.0 / 3.0)
    k_low, k_high = limits["anisotropy"]
    anisotropy = float(np.exp(rng.uniform(np.log(k_low), np.log(k_high))))
    fluid = bool(rng.random() < 0.5)
    axis = rng.normal(size=3)
    easy_axis = axis / np.linalg.norm(axis)
    gamma = float(_uniform("gamma"))
    amplitude = _uniform("drive_amplitude", 3)
    gxy = _uniform("gradient", 2)
    gradient = np.array([gxy[0], gxy[1], -(gxy[0] + gxy[1])])
    fraction = _uniform("fov_fraction", 3)
    offset_unit = rng.uniform(-1.0, 1.0, 3)
    samples_per_fwhm = float(_uniform("samples_per_fwhm"))

    df_fov = 2.0 * amplitude / np.abs(gradient)
    fov = fraction * df_fov
    center = offset_unit * np.abs(df_fov - fov) / 2.0
    beta = field_parameter(diameter)
    fwhm = FWHM_FACTOR / (beta * np.abs(gradient))
    g_low, g_high = limits["grid"]
    grid = np.clip(np.round(samples_per_fwhm * fov / fwhm), g_low, g_high).astype(int)
    if dims == 2:
        grid[2] = 1
        fov[2] = float(np.mean(fov[:2] / grid[:2]))
        center[2] = 0.0
        amplitude[2] = 0.0
    seed_value = int(seed) if isinstance(seed, (int, np.integer)) else None
    return SimulationParameters(
        dims=dims, grid=tuple(int(g) for g in grid), fov=fov, center=center, model=model,
        diameter=float(diameter), anisotropy=anisotropy, easy_axis=easy_axis, fluid=fluid,
        gamma=gamma, drive_amplitude=amplitude, gradient=gradient, seed=seed_value,
        extra={"samples_per_fwhm": samples_per_fwhm, "drive_fov": df_fov.tolist()})


def reference_parameters(dims: int = 2, *, fluid: bool = True,
                         grid: tuple[int, int, int] | None = None) -> SimulationParameters:
    """Parameters the MPI group fitted to measured Bruker data (DESIGN section 5).

    D = 19 nm; fluid: K = 3500 J/m^3, gamma = 2; immobilised: K = 1400 J/m^3 with the
    easy axis at 135 degrees in the xy plane; drive 12 mT; gradient (-1, -1, 2) T/m
    scaled by 1.15 in x and y. The FOV is the drive-field FOV ``2 A / |G|`` centred at
    the origin; default grid 44 x 44 (x 44 in 3D), as the MDF v2 example calibration.
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    amplitude = np.array([12e-3, 12e-3, 12e-3 if dims == 3 else 0.0])
    gradient = np.array([-1.15, -1.15, 2.0])
    fov = 2 * 12e-3 / np.abs(gradient)
    if grid is None:
        grid = (44, 44, 44 if dims == 3 else 1)
    if dims == 2:
        fov[2] = float(np.mean(fov[:2] / np.asarray(grid[:2])))
    angle = np.deg2rad(135.0)
    return SimulationParameters(
        dims=dims, grid=grid, fov=fov, center=np.zeros(3), model="anisotropy",
        diameter=19e-9, anisotropy=3500.0 if fluid else 1400.0,
        easy_axis=np.array([np.cos(angle), np.sin(angle), 0.0]), fluid=fluid, gamma=2.0,
        drive_amplitude=amplitude, gradient=gradient)
