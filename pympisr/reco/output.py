"""Writing reconstructed images: HDF5 with an MDF ``/reconstruction`` group, and a PNG.

File layout (MDF v2.1.0 section "Reconstruction Results"; h5py shapes):

* ``/reconstruction/data`` float32 ``(Q, P, 1)``: Q frames, P voxels in MDF order (x
  fastest, then y, then z), one (non-multispectral) channel;
* ``/reconstruction/size`` int64 ``(3,)`` = (Nx, Ny, Nz); ``fieldOfView``,
  ``fieldOfViewCenter`` float64 ``(3,)`` in m; ``order`` = ``"xyz"``; ``positions``
  float64 ``(P, 3)`` voxel centres in m;
* ``/version`` (``"2.1.0"``), ``/uuid``, ``/time``;
* ``/_pympisr/reconstruction/...``: the parameters (snr_thresh, lambd, ...), the used
  rows ``rows`` ``(M, 2)`` (0-based channel, frequency position) and their rfft bins
  ``frequencyIndices``, and ``/_pympisr/version``.

The file holds only the reconstruction (no ``/measurement``), so it is an MDF
reconstruction record rather than a complete MDF file; MPIFiles' ``recoData`` reads
the same group. The PNG shows the central slices of the first frame: one image for 2D
grids, the xy, xz and yz planes through the centre for 3D grids.
"""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_output
from .reconstruct import Reconstruction

__all__ = ["read_image", "write_image", "write_png"]

MDF_VERSION = "2.1.0"


def _positions(grid: tuple[int, int, int], fov: np.ndarray, center: np.ndarray
               ) -> np.ndarray:
    axes = [center[a] - fov[a] / 2 + (np.arange(n) + 0.5) * fov[a] / n
            for a, n in enumerate(grid)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def write_image(reco: Reconstruction, path: str | os.PathLike[str], *,
                overwrite: bool = False, png: bool = True) -> list[Path]:
    """Write ``reco`` to ``path`` (HDF5, layout above) and ``path`` + ``.png``.

    Returns the written paths. Both files are written atomically; an existing file is
    only replaced with ``overwrite=True``.
    """
    target = Path(path)
    png_path = target.with_name(target.name + ".png")
    if not overwrite:
        for p in (target, png_path) if png else (target,):
            if p.exists():
                raise FileExistsError(f"{p}: exists; pass overwrite=True to replace it")
    from .. import __version__

    frames = reco.image.shape[0]
    data = reco.image.reshape(frames, -1, 1).astype(np.float32)
    with atomic_output(target, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5["/version"] = MDF_VERSION
            h5["/uuid"] = str(uuid.uuid4())
            h5["/time"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            h5.create_dataset("/reconstruction/data", data=data)
            h5["/reconstruction/size"] = np.asarray(reco.grid, dtype=np.int64)
            h5["/reconstruction/fieldOfView"] = np.asarray(reco.fov, dtype=np.float64)
            h5["/reconstruction/fieldOfViewCenter"] = np.asarray(reco.center,
                                                                 dtype=np.float64)
            h5["/reconstruction/order"] = "xyz"
            h5["/reconstruction/positions"] = _positions(reco.grid, reco.fov, reco.center)
            group = h5.create_group("/_pympisr/reconstruction")
            for key, value in reco.parameters.items():
                group[key] = "none" if value is None else (
                    value if isinstance(value, (int, float, str)) else str(value))
            group["rows"] = reco.rows.astype(np.int64)
            if reco.frequency_indices is not None:
                group["frequencyIndices"] = reco.frequency_indices.astype(np.int64)
            h5["/_pympisr/version"] = __version__
    written = [target]
    if png:
        write_png(reco.image, png_path, overwrite=overwrite)
        written.append(png_path)
    return written


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The image of a file written by :func:`write_image`, float32 ``(Q, Nz, Ny, Nx)``."""
    with h5py.File(path, "r") as h5:
        data = np.asarray(h5["/reconstruction/data"], dtype=np.float32)
        nx, ny, nz = (int(v) for v in h5["/reconstruction/size"][()])
    return data.reshape(data.shape[0], nz, ny, nx)


def write_png(image: np.ndarray, path: str | os.PathLike[str], *,
              overwrite: bool = False, title: str | None = None) -> Path:
    """Central slices of frame 0 of ``image`` ``(F, Nz, Ny, Nx)`` as a PNG (y up)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    vol = np.asarray(image, dtype=np.float32)[0]
    nz, ny, nx = vol.shape
    if nz == 1:
        panels = [("xy", vol[0])]
    else:
        panels = [(f"xy (z={nz // 2})", vol[nz // 2]),
                  (f"xz (y={ny // 2})", vol[:, ny // 2, :]),
                  (f"yz (x={nx // 2})", vol[:, :, nx // 2])]
    vmax = max(float(vol.max()), 1e-30)
    # object API with the Agg canvas: no pyplot, no global backend change
    fig = Figure(figsize=(3.2 * len(panels), 3.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (label, img) in zip(axes[0], panels):
        shown = ax.imshow(img, origin="lower", cmap="gray", vmin=0.0, vmax=vmax,
                          interpolation="nearest")
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title)
    target = Path(path)
    with atomic_output(target, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return target
