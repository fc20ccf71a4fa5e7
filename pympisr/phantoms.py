"""Test objects of the seed paper as analytic shapes, rasterised on a calibration grid.

Shapes are defined in metres around the phantom centre (placed at the FOV centre) and
rasterised with supersampling, so a voxel's value is the fraction of its volume (area
for 2D grids) inside the object: a concentration map in ``[0, 1]``, float32
``(Nz, Ny, Nx)``. For 2D grids (``Nz = 1``) the shapes are cut at the phantom's
``z = 0`` plane.

Objects (seed paper, section 4, "Real data"; numbers the conversion lost are our
choice and marked ~):

* ``snake``: five rods of 2.5 x 2.5 mm cross-section, lengths 20, 17.5, 15, 8.75 and
  5 mm, joined end to end in a meandering pattern in the xy-plane (~ the turn order);
* ``resolution``: five tubes (~1 mm radius, ~12 mm long) from a common point: two in
  the xy-plane (~20 and ~50 degrees from x), two in the xz-plane (~20 and ~50 degrees),
  one along z;
* ``spiral``: an Archimedean spiral with two full windings (~2 to 12 mm radius, ~1.5 mm
  wide) in the xy-plane;
* ``rectangles``: four nested square frames (~8, 14, 20, 26 mm sides, ~1.5 mm wall,
  ~2.5 mm high) in the xy-plane;
* ``dots``: small spheres (default five of 1.5 mm radius at spread positions).

With ``fit=True`` (default) a shape is scaled, aspect preserved, so that its bounding
box spans 80 % of the field of view along the limiting axis (x and y for 2D grids):
any simulated system matrix then sees the whole object. ``fit=False`` keeps the
physical sizes above (for measured system matrices of the paper's scanners).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .system_matrix import SystemMatrix

__all__ = ["PHANTOMS", "Shape", "dots", "make_phantom", "rasterize", "rectangles",
           "resolution", "snake", "spiral"]

MM = 1e-3
_FILL = 0.8


@dataclass(frozen=True)
class Shape:
    """An analytic object: ``contains(points)`` for points ``(..., 3)`` in metres.

    ``half_extent`` ``(3,)`` bounds the object around its centre (metres).
    """

    name: str
    contains: Callable[[np.ndarray], np.ndarray]
    half_extent: np.ndarray


def _bar(points: np.ndarray, start: np.ndarray, end: np.ndarray, half_width: float,
         half_height: float) -> np.ndarray:
    """Rod with square cross-section from ``start`` to ``end`` in the xy-plane."""
    direction = end - start
    length = float(np.linalg.norm(direction))
    unit = direction / length
    normal = np.array([-unit[1], unit[0], 0.0])
    rel = points - start
    along = rel @ unit
    across = rel @ normal
    return ((along >= -half_width) & (along <= length + half_width)
            & (np.abs(across) <= half_width) & (np.abs(points[..., 2]) <= half_height))


def _tube(points: np.ndarray, start: np.ndarray, direction: np.ndarray, length: float,
          radius: float) -> np.ndarray:
    """Cylinder of ``radius`` from ``start`` along unit ``direction``."""
    rel = points - start
    along = rel @ direction
    radial = rel - along[..., None] * direction
    return (along >= 0) & (along <= length) & (np.sum(radial**2, axis=-1) <= radius**2)


def snake() -> Shape:
    """Five rods (2.5 mm square section; 20, 17.5, 15, 8.75, 5 mm) in a meander."""
    w = 2.5 * MM
    vertices = np.array([[-10.0, 10.0], [10.0, 10.0], [10.0, -7.5], [-5.0, -7.5],
                         [-5.0, 1.25], [0.0, 1.25]]) * MM
    vertices = np.column_stack([vertices, np.zeros(len(vertices))])
    vertices -= (vertices.max(axis=0) + vertices.min(axis=0)) / 2

    def contains(points: np.ndarray) -> np.ndarray:
        inside = np.zeros(points.shape[:-1], dtype=bool)
        for a, b in zip(vertices[:-1], vertices[1:]):
            inside |= _bar(points, a, b, w / 2, w / 2)
        return inside

    half = (vertices.max(axis=0) - vertices.min(axis=0)) / 2 + w / 2
    return Shape("snake", contains, half)


def resolution() -> Shape:
    """Five tubes from a common point: two in xy, two in xz, one along z."""
    length, radius = 12 * MM, 1.0 * MM
    angles = np.deg2rad([20.0, 50.0])
    directions = ([np.array([np.cos(a), np.sin(a), 0.0]) for a in angles]
                  + [np.array([np.cos(a), 0.0, np.sin(a)]) for a in angles]
                  + [np.array([0.0, 0.0, 1.0])])
    ends = np.array([length * d for d in directions] + [np.zeros(3)])
    origin = -(ends.max(axis=0) + ends.min(axis=0)) / 2

    def contains(points: np.ndarray) -> np.ndarray:
        inside = np.zeros(points.shape[:-1], dtype=bool)
        for d in directions:
            inside |= _tube(points, origin, d, length, radius)
        return inside

    half = (ends.max(axis=0) - ends.min(axis=0)) / 2 + radius
    return Shape("resolution", contains, half)


def spiral() -> Shape:
    """Archimedean spiral, two full windings from 2 to 12 mm radius, 1.5 mm wide."""
    r0, r1, turns, w = 2.0 * MM, 12.0 * MM, 2, 1.5 * MM
    growth = (r1 - r0) / (2 * np.pi * turns)

    def contains(points: np.ndarray) -> np.ndarray:
        r = np.hypot(points[..., 0], points[..., 1])
        phi = np.mod(np.arctan2(points[..., 1], points[..., 0]), 2 * np.pi)
        inside = np.zeros(r.shape, dtype=bool)
        for k in range(turns + 1):
            t = phi + 2 * np.pi * k
            on_curve = t <= 2 * np.pi * turns
            inside |= on_curve & (np.abs(r - (r0 + growth * t)) <= w / 2)
        return inside & (np.abs(points[..., 2]) <= w / 2)

    half = np.array([r1 + w / 2, r1 + w / 2, w / 2])
    return Shape("spiral", contains, half)


def rectangles() -> Shape:
    """Four nested square frames in the xy-plane (8, 14, 20, 26 mm; 1.5 mm wall)."""
    sides = np.array([8.0, 14.0, 20.0, 26.0]) * MM
    wall, height = 1.5 * MM, 2.5 * MM

    def contains(points: np.ndarray) -> np.ndarray:
        cheb = np.maximum(np.abs(points[..., 0]), np.abs(points[..., 1]))
        inside = np.zeros(cheb.shape, dtype=bool)
        for side in sides:
            inside |= (cheb <= side / 2) & (cheb >= side / 2 - wall)
        return inside & (np.abs(points[..., 2]) <= height / 2)

    half = np.array([sides[-1] / 2, sides[-1] / 2, height / 2])
    return Shape("rectangles", contains, half)


def dots(positions: Sequence[Sequence[float]] | np.ndarray | None = None,
         radius: float = 1.5 * MM) -> Shape:
    """Spheres of ``radius`` (m) at ``positions`` ``(n, 3)`` (m, relative to the centre).

    The default places five dots at spread positions within a 20 mm box, including
    two close neighbours (a resolution check).
    """
    if positions is None:
        positions = np.array([[-7.0, -7.0, 0.0], [6.0, -5.0, 0.0], [0.0, 0.0, 0.0],
                              [-6.0, 6.0, 0.0], [4.0, 7.0, 0.0]]) * MM
    centres = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")

    def contains(points: np.ndarray) -> np.ndarray:
        inside = np.zeros(points.shape[:-1], dtype=bool)
        for c in centres:
            inside |= np.sum((points - c) ** 2, axis=-1) <= radius**2
        return inside

    half = np.max(np.abs(centres), axis=0) + radius
    return Shape("dots", contains, half)


PHANTOMS: dict[str, Callable[[], Shape]] = {
    "snake": snake, "resolution": resolution, "spiral": spiral,
    "rectangles": rectangles, "dots": dots,
}


def _grid_geometry(sm_or_grid: SystemMatrix | Sequence[int], fov: Sequence[float] | None
                   ) -> tuple[tuple[int, int, int], np.ndarray]:
    if isinstance(sm_or_grid, SystemMatrix):
        return sm_or_grid.grid, np.asarray(sm_or_grid.fov, dtype=np.float64)
    grid = tuple(int(g) for g in sm_or_grid)
    if len(grid) == 2:
        grid = (*grid, 1)
    if len(grid) != 3 or min(grid) < 1:
        raise ValueError(f"grid must be (Nx, Ny[, Nz]) positive sizes, got {sm_or_grid!r}")
    if fov is None:
        raise ValueError("fov (m, x y z) is required with a plain grid")
    fov_arr = np.asarray(fov, dtype=np.float64).reshape(-1)
    if fov_arr.size == 2:
        fov_arr = np.append(fov_arr, 0.0)
    if fov_arr.size != 3:
        raise ValueError(f"fov must have 2 or 3 entries, got {fov!r}")
    return grid, fov_arr  # type: ignore[return-value]


def rasterize(shape: Shape, sm_or_grid: SystemMatrix | Sequence[int],
              fov: Sequence[float] | None = None, *, fit: bool = True,
              supersample: int | None = None) -> np.ndarray:
    """Volume fraction of ``shape`` in every voxel, float32 ``(Nz, Ny, Nx)``.

    Parameters
    ----------
    shape:
        A :class:`Shape` (e.g. ``snake()``).
    sm_or_grid:
        A SystemMatrix (its grid and FOV are used) or a grid ``(Nx, Ny[, Nz])``.
    fov:
        Field of view in metres ``(x, y[, z])`` for a plain grid.
    fit:
        Scale the shape to span 80 % of the FOV (module docstring).
    supersample:
        Sub-samples per voxel and axis (default 4 for 2D grids, 3 for 3D).
    """
    grid, fov_arr = _grid_geometry(sm_or_grid, fov)
    planar = grid[2] == 1
    axes = [0, 1] if planar else [0, 1, 2]
    scale = 1.0
    if fit:
        extent = 2 * shape.half_extent[axes]
        if np.any(fov_arr[axes] <= 0):
            raise ValueError(f"fov {fov_arr.tolist()} must be positive along x, y"
                             + ("" if planar else ", z"))
        scale = float(np.min(_FILL * fov_arr[axes] / np.maximum(extent, 1e-12)))
    ss = supersample or (4 if planar else 3)
    if ss < 1:
        raise ValueError(f"supersample must be >= 1, got {ss}")
    offsets = (np.arange(ss) + 0.5) / ss - 0.5
    coords = []
    for a, n in enumerate(grid):
        if a == 2 and planar:
            coords.append(np.zeros(1))
            continue
        step = fov_arr[a] / n
        centres = -fov_arr[a] / 2 + (np.arange(n) + 0.5) * step
        coords.append((centres[:, None] + offsets[None, :] * step).reshape(-1))
    z, y, x = np.meshgrid(coords[2], coords[1], coords[0], indexing="ij")
    points = np.stack([x, y, z], axis=-1) / scale
    inside = shape.contains(points).astype(np.float32)
    nx, ny, nz = grid
    sz = 1 if planar else ss
    inside = inside.reshape(nz, sz, ny, ss, nx, ss)
    return inside.mean(axis=(1, 3, 5), dtype=np.float32)


def make_phantom(name: str, sm_or_grid: SystemMatrix | Sequence[int],
                 fov: Sequence[float] | None = None, *, fit: bool = True,
                 supersample: int | None = None) -> np.ndarray:
    """Rasterise the phantom ``name`` (a key of :data:`PHANTOMS`) on a grid.

    Returns float32 ``(Nz, Ny, Nx)`` volume fractions in ``[0, 1]``.
    """
    if name not in PHANTOMS:
        raise ValueError(f"unknown phantom {name!r}; choose from {sorted(PHANTOMS)}")
    return rasterize(PHANTOMS[name](), sm_or_grid, fov, fit=fit, supersample=supersample)
