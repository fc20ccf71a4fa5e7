# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fitting the simulator to a measured calibration
#
# pympisr's simulator (equilibrium magnetisation with uniaxial anisotropy on a 3D
# Lissajous trajectory) can produce a system matrix for any scanner geometry and particle
# parameters. Matching it to a measured calibration gives a noise-free model of that
# scanner: a check of the geometry the file states, a prior for restoration, a starting
# point for training data. Here we simulate the OpenMPI 3D calibration from the
# geometry in its file, fit geometry and particle parameters with `pympisr.fit`
# (robust least squares with a free complex factor per component, variable projection),
# look at the fitted values with their uncertainties and at the residual per component,
# write the fitted simulation as an MDF file, and use it as a prior to restore the
# calibration (`method="prior"`). Figures and tables go to `$PYMPISR_NOTEBOOK_OUT`
# (default `notebook_output/`).

# %%
import json
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import pympisr
from pympisr.fitting import nominal_geometry
from pympisr.metrics import psnr
from pympisr.openmpi import openmpi_data
from pympisr.restoration.prior import prior_restore
from pympisr.restoration.safety import ACTIONS
from pympisr.simulation.parameters import reference_parameters

out = Path(os.environ.get("PYMPISR_NOTEBOOK_OUT", "notebook_output"))
out.mkdir(parents=True, exist_ok=True)
written: list[Path] = []

# %% [markdown]
# ## The measured calibration and the geometry it states
#
# We work on the frequencies where at least one receive channel has a calibration SNR
# of 5 or more: the others are mostly noise and carry little information about the
# parameters. Only those rows are read from the file (background corrected, transfer
# function not divided out: the free factor per component absorbs it).

# %%
FIT_SNR = 5.0
files = openmpi_data("resolution")
print("stand-in data:" if files.standin else "real OpenMPI data:", files.source)
header = pympisr.load_system_matrix(files.calibration, bg_correction=True, tf_correction=False)
bins = header.frequency_indices[(header.snr >= FIT_SNR).any(axis=0)]
sm = pympisr.load_system_matrix(files.calibration, frequencies=bins, bg_correction=True,
                                tf_correction=False)
del header
nominal = nominal_geometry(sm)
print(f"{sm.num_frequencies} frequencies; grid {nominal.grid}, FOV "
      f"{np.round(nominal.fov * 1e3, 1)} mm, drive {np.round(nominal.drive_amplitude * 1e3, 2)}"
      f" mT, gradient {nominal.gradient} T/m")

# %% [markdown]
# ## A simulation from the stated geometry
#
# The simulator with the file's geometry and the particle parameters the MPI group fitted
# to Bruker data (19 nm cores, fluid, anisotropy 3500 J/m^3). How well does each
# component match, allowing one complex factor per component (the receive chain's
# transfer function and gain)? The relative residual `||y - a s|| / ||y||` with the
# least-squares factor `a = <s, y> / <s, s>`.

# %%
params = reference_parameters(3, fluid=True, grid=nominal.grid).replace(
    fov=nominal.fov, center=nominal.center, drive_amplitude=nominal.drive_amplitude,
    gradient=nominal.gradient)
simulated = pympisr.simulate_system_matrix(params, frequencies=sm.frequency_indices)


def relative_residuals(model: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """``||y - a s|| / ||y||`` per component, rows of ``(J, N)`` complex arrays."""
    scale = np.sum(np.conj(model) * measured, axis=1) / np.sum(np.abs(model) ** 2, axis=1)
    residual = measured - scale[:, None] * model
    return np.linalg.norm(residual, axis=1) / np.linalg.norm(measured, axis=1)


c_count, k_count = sm.data.shape[:2]
measured_rows = sm.data.reshape(c_count * k_count, -1).astype(np.complex128)
nominal_residual = relative_residuals(
    simulated.data.reshape(c_count * k_count, -1).astype(np.complex128), measured_rows)
strong = (sm.snr >= FIT_SNR).reshape(-1)
print(f"nominal simulation: median relative residual {np.median(nominal_residual[strong]):.3f} "
      f"over {int(strong.sum())} components with SNR >= {FIT_SNR:g}")

# %% [markdown]
# ## The fit
#
# `pympisr.fit` fits gradient, drive amplitudes, centre, core diameter, anisotropy and
# its spatial modulation (fluid particles) on the strongest components and a subset of
# voxels, with finite-difference Jacobians. We keep it quick: the calibration sample is a
# fluid tracer, so only the fluid state is tried (`states=(True,)`), on the 20 strongest
# components, 125 voxels and 6 solver iterations (each iteration simulates the subset
# once per parameter). The defaults (both particle states, 40 components, 250 voxels,
# 12 iterations) take minutes on a CPU and tighten the uncertainties.

# %%
result = pympisr.fit(sm, components=20, max_voxels=125, max_nfev=6, states=(True,))
print(result.summary())

# %% [markdown]
# Fitted values with their standard deviations (from the Jacobian at the solution), next
# to the file's nominal geometry and, for the stand-in, the parameters it was simulated
# with. The field enters the model only through `beta * B`, so gradient and drive
# amplitudes are determined relative to each other: the fit holds the geometric mean of
# the drive amplitudes at the nominal value (a gauge), and the gauge-free quantities
# such as the drive-field FOV `2 A / |G|` are what to compare across scans. The standard
# deviations are statistical (noise) only: model errors and the shortened solver run
# are not in them, so a fitted value can lie several of them from the truth.

# %%
truth = {}
if files.standin:
    reference_meta = pympisr.load_system_matrix(files.reference, frequencies=bins[:1]).metadata
    truth = {name: np.asarray(reference_meta[f"/_pympisr/simulation/{name}"], np.float64)
             for name in ("gradient", "drive_amplitude", "center", "diameter",
                          "anisotropy", "gamma")}
units = {"gradient": ("T/m", 1.0), "drive_amplitude": ("mT", 1e3), "center": ("mm", 1e3),
         "diameter": ("nm", 1e9), "anisotropy": ("J/m^3", 1.0), "gamma": ("", 1.0)}
nominal_values = {"gradient": nominal.gradient, "drive_amplitude": nominal.drive_amplitude,
                  "center": nominal.center}
lines = ["| parameter | unit | nominal | fitted | std | stand-in truth |",
         "|---|---|---|---|---|---|"]
for name, (unit, factor) in units.items():
    if name not in result.values:
        continue
    value = np.atleast_1d(result.values[name])
    std = np.atleast_1d(result.uncertainties[name])
    for i in range(value.size):
        label = f"{name}[{'xyz'[i]}]" if value.size > 1 else name
        nom = (f"{nominal_values[name][i] * factor:.4g}" if name in nominal_values else "")
        true = f"{np.atleast_1d(truth[name])[i] * factor:.4g}" if name in truth else ""
        lines.append(f"| {label} | {unit} | {nom} | {value[i] * factor:.5g} | "
                     f"{std[i] * factor:.2g} | {true} |")
fov_nominal = 2 * nominal.drive_amplitude / np.abs(nominal.gradient)
fov_fitted = 2 * np.asarray(result.values["drive_amplitude"]) / np.abs(
    np.asarray(result.values["gradient"]))
lines.append(f"| drive-field FOV 2A/abs(G) | mm | "
             f"{' / '.join(f'{v * 1e3:.3f}' for v in fov_nominal)} | "
             f"{' / '.join(f'{v * 1e3:.3f}' for v in fov_fitted)} | | |")
parameters_md = out / "06_parameters.md"
parameters_md.write_text("\n".join(lines) + "\n")
written.append(parameters_md)
print("\n".join(lines))

# %% [markdown]
# ## Residual per component
#
# `FitResult.plot`: the relative residual of every fitted component against its
# frequency, and measured vs fitted real part of the strongest components.

# %%
fit_png = result.plot(out / "06_fit_residuals.png", overwrite=True)
written.append(fit_png)

# %% [markdown]
# The magnitudes of the same strongest components, measured above fitted (central z
# slice; the fitted simulation times its complex factor `FitResult.scales`):

# %%
count = result.example_measured.shape[0]
fig = Figure(figsize=(2.3 * count, 4.6), layout="constrained")
FigureCanvasAgg(fig)
axes = fig.subplots(2, count, squeeze=False)
for i in range(count):
    limit = float(np.abs(result.example_measured[i]).max())
    for row, (label, image) in enumerate((("measured", result.example_measured[i]),
                                          ("fitted", result.example_fitted[i]))):
        axes[row, i].imshow(np.abs(image), cmap="viridis", vmin=0, vmax=limit, origin="lower")
        axes[row, i].set_axis_off()
        axes[row, i].set_title(f"{label}, ch {'xyz'[result.channels[i]]}, "
                               f"bin {result.frequency_indices[i]}", fontsize=7)
examples_png = out / "06_fit_examples.png"
fig.savefig(examples_png, dpi=100)
written.append(examples_png)

# %% [markdown]
# The same residual for all components with SNR >= 5, before (nominal simulation) and
# after the fit (fitted simulation, one complex factor per component):

# %%
fitted = pympisr.simulate_system_matrix(result.parameters, frequencies=sm.frequency_indices)
fitted_residual = relative_residuals(
    fitted.data.reshape(c_count * k_count, -1).astype(np.complex128), measured_rows)
snr = sm.snr.reshape(-1)
fig = Figure(figsize=(7, 3.5), layout="constrained")
FigureCanvasAgg(fig)
ax = fig.add_subplot()
ax.loglog(snr[strong], nominal_residual[strong], ".", ms=4, label="nominal simulation")
ax.loglog(snr[strong], fitted_residual[strong], ".", ms=4, label="fitted simulation")
ax.loglog(snr[strong], 1 / snr[strong], "k-", lw=0.6, label="noise level ~ 1 / SNR")
ax.set_xlabel("calibration SNR")
ax.set_ylabel("relative residual")
ax.legend(fontsize=8)
residual_png = out / "06_residual_vs_snr.png"
fig.savefig(residual_png, dpi=100)
written.append(residual_png)
print(f"median relative residual: nominal {np.median(nominal_residual[strong]):.3f}, "
      f"fitted {np.median(fitted_residual[strong]):.3f}")

# %% [markdown]
# ## The fitted simulation as an MDF file
#
# `FitResult.to_mdf` simulates the fitted parameters on the calibration grid and writes
# a calibration file (`/experiment/isSimulation = 1`, the parameters under
# `/_pympisr/simulation/`, the fit's record under `/_pympisr/fit/`) that any MDF reader,
# MPIReco included, can use. Here on the frequencies used above.

# %%
simulation_path = result.to_mdf(out / "06_fitted_simulation.mdf",
                                frequencies=sm.frequency_indices, overwrite=True)
written.append(simulation_path)
print(pympisr.load_system_matrix(simulation_path).data.shape, "->", simulation_path.name)

# %% [markdown]
# ## Restoration with the simulation prior
#
# `method="prior"` of `pympisr.restore` solves every component as regularised least
# squares on the span of 16 simulations around the fitted parameters (rank and
# regularisation chosen by SURE), followed by the same safety step as the networks.
# `pympisr.restore(path, method="prior")` fits first; with a fit at hand we pass it to
# `prior_restore` directly. Its record holds, per component, the chosen rank, the
# weights of prior and DCT-F, and the safety step's action (codes into
# `pympisr.restoration.safety.ACTIONS`).

# %%
prior_sm, prior_record = prior_restore(sm, "denoise", fit=result)
action_counts = {name: int(np.sum(prior_record.action == code))
                 for code, name in enumerate(ACTIONS)}
print("actions:", action_counts)
prior_scores = {}
if files.standin:
    clean = pympisr.load_system_matrix(files.reference, frequencies=bins, bg_correction=False,
                                       tf_correction=False)
    channels, rows = np.nonzero(sm.snr >= FIT_SNR)
    for name, version in (("measured", sm), ("prior", prior_sm)):
        prior_scores[name] = float(np.mean([psnr(version.data[c, k], clean.data[c, k])
                                            for c, k in zip(channels, rows)]))
    print("mean PSNR (dB) against the noise-free calibration:", prior_scores)

# %%
table = {"standin": files.standin, "frequencies": int(sm.num_frequencies),
         "fit": result.to_dict(),
         "median_relative_residual": {"nominal": float(np.median(nominal_residual[strong])),
                                      "fitted": float(np.median(fitted_residual[strong]))},
         "prior_actions": action_counts, "prior_psnr_vs_noise_free": prior_scores}
table_json = out / "06_table.json"
table_json.write_text(json.dumps(table, indent=2))
written.append(table_json)

# %%
# the list of files this notebook wrote (checked by tests/test_notebooks.py)
(out / "06_fit_simulation.outputs.json").write_text(json.dumps([p.name for p in written]))
