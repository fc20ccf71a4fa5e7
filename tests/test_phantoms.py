"""Phantoms: rasterised analytic test objects of the seed paper."""

from __future__ import annotations

import numpy as np
import pytest

from pympisr import SystemMatrix
from pympisr.phantoms import PHANTOMS, dots, make_phantom, rasterize

MM = 1e-3


@pytest.mark.parametrize("name", sorted(PHANTOMS))
@pytest.mark.parametrize("grid", [(24, 20), (14, 12, 10)])
def test_every_phantom_fits_the_grid(name: str, grid: tuple[int, ...]) -> None:
    fov = (30 * MM, 26 * MM, 20 * MM)[:len(grid)]
    img = make_phantom(name, grid, fov=fov)
    nz = grid[2] if len(grid) == 3 else 1
    assert img.shape == (nz, grid[1], grid[0]) and img.dtype == np.float32
    # thin objects on coarse 3D grids fill a voxel only partly
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.max() > 0.1
    # fit=True: the object spans 80 % of the FOV, so the outermost voxels are empty
    assert img[..., 0].max() == 0 and img[..., -1].max() == 0
    assert img[..., 0, :].max() == 0 and img[..., -1, :].max() == 0


def test_snake_area_matches_the_paper_geometry() -> None:
    # five 2.5 mm wide rods of 20, 17.5, 15, 8.75, 5 mm joined end to end: the union of
    # the rods (each extended by half a width at both ends) is sum((L + w) w) minus the
    # four w x w corner overlaps
    w = 2.5
    lengths = [20, 17.5, 15, 8.75, 5]
    area = sum((length + w) * w for length in lengths) - 4 * w * w
    img = make_phantom("snake", (68, 60), fov=(34 * MM, 30 * MM), fit=False)
    voxel_area = 0.5 * 0.5
    assert img.sum() * voxel_area == pytest.approx(area, rel=0.02)


def test_dots_volume_and_positions() -> None:
    radius = 2 * MM
    centres = np.array([[-5, 0, 0], [5, 3, 2]]) * MM
    img = rasterize(dots(centres, radius), (40, 40, 40), fov=(24 * MM,) * 3, fit=False)
    voxel = (24 / 40) ** 3
    assert img.sum() * voxel == pytest.approx(2 * 4 / 3 * np.pi * 2**3, rel=0.03)
    # centre of mass of the right half (x > 0) sits at the second dot
    z, y, x = np.meshgrid(*[(np.arange(40) + 0.5) * 0.6 - 12] * 3, indexing="ij")
    right = img * (x > 0)
    com = [float((right * c).sum() / right.sum()) for c in (x, y, z)]
    assert com == pytest.approx([5, 3, 2], abs=0.05)


def test_spiral_has_two_windings() -> None:
    # r = 2 mm + 10 mm * t / (4 pi), t in [0, 4 pi]: the ray from the centre along -x
    # (phi = pi) meets it at t = pi and 3 pi, i.e. r = 4.5 mm and 9.5 mm
    img = make_phantom("spiral", (101, 101), fov=(30.3 * MM, 30.3 * MM), fit=False)[0]
    ray = img[50, :51][::-1] > 0.5            # voxel 50 is the centre, 0.3 mm voxels
    runs = np.flatnonzero(np.diff(ray.astype(int)) == 1) + 1
    ends = np.flatnonzero(np.diff(ray.astype(int)) == -1)
    assert len(runs) == 2
    mid_radius = (runs + ends) / 2 * 0.3
    assert mid_radius == pytest.approx([4.5, 9.5], abs=0.3)


def test_rectangles_are_nested_frames() -> None:
    img = make_phantom("rectangles", (91, 91), fov=(30 * MM, 30 * MM), fit=False)[0]
    profile = img[45, 45:] > 0.5        # from the centre outwards
    rises = np.flatnonzero(np.diff(profile.astype(int)) == 1)
    assert len(rises) == 4
    assert img[45, 45] == 0             # hollow centre


def test_resolution_phantom_tubes_meet_in_one_point() -> None:
    img = make_phantom("resolution", (30, 30, 30), fov=(24 * MM,) * 3)
    assert img.sum() > 0
    # five tubes from one corner point: the occupied voxels form one connected object
    from scipy import ndimage

    _, count = ndimage.label(img > 0.3)
    assert count == 1


def test_system_matrix_geometry_is_used() -> None:
    data = np.zeros((1, 1, 1, 16, 20), dtype=np.complex64)
    sm = SystemMatrix(data=data, frequencies=[1.0], grid=(20, 16, 1), fov=(20 * MM, 16 * MM, 0))
    img = make_phantom("dots", sm)
    assert np.array_equal(img, make_phantom("dots", (20, 16), fov=(20 * MM, 16 * MM)))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown phantom"):
        make_phantom("cat", (10, 10), fov=(1e-2, 1e-2))
    with pytest.raises(ValueError, match="fov"):
        make_phantom("snake", (10, 10))
    with pytest.raises(ValueError, match="positive"):
        make_phantom("snake", (10, 10, 10), fov=(1e-2, 1e-2, 0.0))
