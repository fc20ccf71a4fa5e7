"""Figures of system matrices (the strongest frequency components) and of reconstructed
volumes (central slices side by side).

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend
change) and writes PNG files atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .atomic import atomic_output

__all__ = ["plot_central_slices", "plot_strongest_components", "strongest_components"]


def strongest_components(source: Any, count: int) -> list[dict[str, Any]]:
    """The ``count`` strongest components (by energy ``sum |S|^2``) of an SM or item.

    ``source``: a :class:`~pympisr.SystemMatrix` or a
    :class:`~pympisr.datasets.DatasetItem`. Returns dicts with ``image`` (complex,
    ``(Nz, Ny, Nx)``), ``channel``, ``frequency_index`` (rfft bin or None) and
    ``frequency`` (Hz or None), strongest first.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if hasattr(source, "components"):  # dataset item
        stack = np.asarray(source.components)
        channel = np.asarray(source.channel)
        index = np.asarray(source.frequency_index)
        freq = None
    else:
        c, k = source.data.shape[:2]
        stack = source.data.reshape(c * k, *source.data.shape[2:])
        channel = np.repeat(np.arange(c), k)
        idx = (source.frequency_indices if source.frequency_indices is not None
               else np.full(k, -1))
        index = np.tile(idx, c)
        freq = np.tile(source.frequencies, c)
    energy = np.sum(np.abs(stack) ** 2, axis=tuple(range(1, stack.ndim)))
    order = np.argsort(energy, kind="stable")[::-1][:count]
    return [{"image": stack[i], "channel": int(channel[i]),
             "frequency_index": None if index[i] < 0 else int(index[i]),
             "frequency": None if freq is None else float(freq[i])} for i in order]


def plot_strongest_components(source: Any, path: str | os.PathLike[str], *,
                              components: int = 10, columns: int = 5, title: str | None = None,
                              overwrite: bool = False) -> None:
    """Plot magnitude and phase of the strongest components to a PNG (atomic write).

    Each component gets a magnitude panel (viridis, normalised to its maximum) above a
    phase panel (twilight, -pi..pi). 3D components show their central z slice.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    comps = strongest_components(source, components)
    cols = min(columns, len(comps))
    rows = int(np.ceil(len(comps) / cols))
    fig = Figure(figsize=(2.4 * cols, 4.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 * rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    channel_names = "xyz"
    for n, comp in enumerate(comps):
        r, c = divmod(n, cols)
        image = comp["image"]
        image = image[image.shape[0] // 2] if image.ndim == 3 else image
        peak = float(np.abs(image).max()) or 1.0
        mag_ax, phase_ax = axes[2 * r, c], axes[2 * r + 1, c]
        mag_ax.imshow(np.abs(image) / peak, cmap="viridis", vmin=0, vmax=1, origin="lower")
        phase_ax.imshow(np.angle(image), cmap="twilight", vmin=-np.pi, vmax=np.pi,
                        origin="lower")
        ch = comp["channel"]
        label = f"ch {channel_names[ch] if ch < 3 else ch}"
        if comp["frequency_index"] is not None:
            label += f", k={comp['frequency_index']}"
        if comp["frequency"] is not None:
            label += f"\n{comp['frequency'] / 1e3:.1f} kHz"
        mag_ax.set_title(label + " |S|", fontsize=8)
        phase_ax.set_title("phase", fontsize=8)
    if title:
        fig.suptitle(title)
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def plot_central_slices(volumes: Mapping[str, np.ndarray], path: str | os.PathLike[str], *,
                        title: str | None = None, overwrite: bool = False) -> None:
    """Plot the central slice of each volume side by side to a PNG (atomic write).

    ``volumes`` maps a panel title to an image ``(Nz, Ny, Nx)`` (the central z slice is
    shown; e.g. reconstructions from the measured, classical and restored SMs and the
    phantom) or ``(Ny, Nx)``; each panel is scaled to its own range (gray).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not volumes:
        raise ValueError("plot_central_slices needs at least one volume")
    fig = Figure(figsize=(2.8 * len(volumes), 3.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(volumes), squeeze=False)[0]
    for ax, (name, volume) in zip(axes, volumes.items()):
        image = np.asarray(volume)
        ax.imshow(image[image.shape[0] // 2] if image.ndim == 3 else image, origin="lower",
                  cmap="gray")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
