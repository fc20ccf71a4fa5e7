""":class:`FitResult`: fitted simulator parameters, their uncertainties, diagnostics,
a figure and export of the fitted simulation as an MDF file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..simulation.parameters import SimulationParameters
from .model import Nominal

__all__ = ["FIT_PROVENANCE", "FitResult"]

FIT_PROVENANCE = "/_pympisr/fit"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


@dataclass
class FitResult:
    """Outcome of :func:`pympisr.fitting.fit`.

    Attributes
    ----------
    parameters:
        Fitted :class:`SimulationParameters` on the file's grid.
    values, uncertainties:
        Physical values (gradient T/m, drive_amplitude T, center m as (3,) arrays;
        diameter m, anisotropy J/m^3, gamma or easy_axis; fluid) and their standard
        deviations (same keys, no ``fluid``).
    names, vector, covariance:
        Parameter names, fitted vector and its covariance (:mod:`.model` units).
    gauge_invariants:
        Quantities the data determine without the gauge convention
        (:meth:`.model.ParameterSpace.gauge_invariants`).
    costs:
        Final robust cost per particle state tried (``"fluid"``, ``"immobilised"``).
    channels, frequency_indices:
        ``(J,)`` receive channel and rfft bin of the fitted components.
    relative_residual:
        ``(J,)`` ``||y - a s|| / ||y||`` on the voxels used.
    scales:
        ``(J,)`` complex factors ``a_j``.
    example_measured, example_fitted:
        ``(E, Ny, Nx)`` the strongest components on the full (central z) slice, and the
        scaled fitted simulation of them.
    nominal:
        The file's stated geometry.
    source_frequency_indices:
        rfft bins of every row of the fitted system matrix (for :meth:`to_mdf`).
    noise_source, evaluations, elapsed, source, message:
        Noise-level rule, simulator calls, seconds, input path (or None), solver message.
    options:
        The fit's settings that shape the estimate: ``model_error``,
        ``min_significance`` and ``geometry_tolerance`` (None: no prior).
    """

    parameters: SimulationParameters
    values: dict[str, Any]
    uncertainties: dict[str, Any]
    names: list[str]
    vector: np.ndarray
    covariance: np.ndarray
    gauge_invariants: dict[str, np.ndarray]
    costs: dict[str, float]
    channels: np.ndarray
    frequency_indices: np.ndarray
    relative_residual: np.ndarray
    scales: np.ndarray
    example_measured: np.ndarray
    example_fitted: np.ndarray
    nominal: Nominal
    source_frequency_indices: np.ndarray
    noise_source: str
    evaluations: int
    elapsed: float
    source: str | None
    message: str
    options: dict[str, Any]

    @property
    def fluid(self) -> bool:
        return bool(self.values["fluid"])

    def summary(self) -> str:
        """Human-readable table of nominal and fitted values with uncertainties."""
        d = self.nominal.dims
        rows = [f"particle state: {'fluid' if self.fluid else 'immobilised'} "
                f"(costs {', '.join(f'{k} {v:.4g}' for k, v in self.costs.items())})"]
        for name, nominal, unit, factor in (
                ("gradient", self.nominal.gradient, "T/m", 1.0),
                ("drive_amplitude", self.nominal.drive_amplitude, "mT", 1e3),
                ("center", self.nominal.center, "mm", 1e3)):
            for a in range(d):
                rows.append(f"{name}[{'xyz'[a]}]: nominal {nominal[a] * factor:+.5g} {unit}, "
                            f"fitted {self.values[name][a] * factor:+.5g} "
                            f"+- {self.uncertainties[name][a] * factor:.2g} {unit}")
        rows.append(f"diameter: {self.values['diameter'] * 1e9:.3f} "
                    f"+- {self.uncertainties['diameter'] * 1e9:.2g} nm")
        rows.append(f"anisotropy: {self.values['anisotropy']:.1f} "
                    f"+- {self.uncertainties['anisotropy']:.2g} J/m^3")
        if self.fluid:
            rows.append(f"gamma: {self.values['gamma']:.3f} +- {self.uncertainties['gamma']:.2g}")
        else:
            rows.append(f"easy axis: {np.round(self.values['easy_axis'], 4).tolist()}")
        rows.append(f"relative residual per component: median "
                    f"{np.median(self.relative_residual):.4f}, max "
                    f"{np.max(self.relative_residual):.4f} ({self.relative_residual.size} "
                    f"components)")
        rows.append(f"{self.evaluations} simulations in {self.elapsed:.1f} s")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible record of the fit (no images)."""
        return _jsonable({
            "values": self.values, "uncertainties": self.uncertainties, "names": self.names,
            "vector": self.vector, "gauge_invariants": self.gauge_invariants,
            "costs": self.costs, "channels": self.channels,
            "frequency_indices": self.frequency_indices,
            "relative_residual": self.relative_residual, "noise_source": self.noise_source,
            "evaluations": self.evaluations, "elapsed_s": self.elapsed, "source": self.source,
            "message": self.message, "options": self.options,
            "gauge": "geometric mean of the drive amplitudes held at the nominal value"})

    def plot(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """PNG: relative residual per component (against frequency), and for the
        strongest components measured vs fitted real part (atomic write)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from ..atomic import atomic_output

        count = self.example_measured.shape[0]
        fig = Figure(figsize=(2.6 * max(count, 2), 8.0), layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(3, max(count, 2))
        ax = fig.add_subplot(grid[0, :])
        for ch in np.unique(self.channels):
            sel = self.channels == ch
            ax.semilogy(self.frequency_indices[sel], self.relative_residual[sel], "o",
                        label=f"channel {'xyz'[ch] if ch < 3 else ch}")
        ax.set_xlabel("rfft bin")
        ax.set_ylabel("relative residual")
        ax.set_title("fit residual per component")
        ax.legend(fontsize=8)
        for i in range(count):
            measured, fitted = self.example_measured[i], self.example_fitted[i]
            # one phase for both panels: the measured peak's, so the peak shows as real
            rotate = np.exp(-1j * np.angle(measured.flat[np.argmax(np.abs(measured))]))
            limit = float(np.abs(measured).max()) or 1.0
            for row, (image, label) in enumerate(((measured, "measured"), (fitted, "fitted")),
                                                  start=1):
                panel = fig.add_subplot(grid[row, i])
                panel.imshow((image * rotate).real, cmap="RdBu_r", vmin=-limit, vmax=limit,
                             origin="lower")
                panel.set_axis_off()
                panel.set_title(f"{label} ch {self.channels[i]} k={self.frequency_indices[i]}",
                                fontsize=8)
        with atomic_output(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        return Path(path)

    def to_mdf(self, path: str | os.PathLike[str], *, frequencies: np.ndarray | None = None,
               overwrite: bool = False) -> Path:
        """Write the fitted simulation as an MDF file (``/experiment/isSimulation`` 1,
        every simulation parameter under ``/_pympisr/simulation/`` and the fit's record
        under ``/_pympisr/fit/``). The data is the simulator's own scale (the per-
        component factors of the fitted components are stored as ``componentScale``).

        ``frequencies``: rfft bins to simulate (default: those of the fitted file);
        refuses to replace an existing file unless ``overwrite``.
        """
        from ..atomic import check_output_path
        from ..mdf.writer import save_system_matrix
        from ..simulation.system_matrix import simulate_system_matrix

        target = check_output_path(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target}: exists; pass overwrite=True to replace it")
        bins = self.source_frequency_indices if frequencies is None else frequencies
        sm = simulate_system_matrix(self.parameters, frequencies=np.asarray(bins))
        meta = dict(sm.metadata)
        meta.update({
            "/experiment/name": "pympisr fitted simulation",
            f"{FIT_PROVENANCE}/record": json.dumps(self.to_dict()),
            f"{FIT_PROVENANCE}/source": "" if self.source is None else self.source,
            f"{FIT_PROVENANCE}/channels": self.channels.astype(np.int64),
            f"{FIT_PROVENANCE}/frequencyIndices": self.frequency_indices.astype(np.int64),
            f"{FIT_PROVENANCE}/relativeResidual": self.relative_residual.astype(np.float64),
            f"{FIT_PROVENANCE}/componentScale": np.stack(
                [self.scales.real, self.scales.imag], axis=-1).astype(np.float64),
        })
        return save_system_matrix(sm.replace(metadata=meta), target, overwrite=overwrite)
