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
# # Accelerated calibration: measure every 2nd position, restore the rest
#
# A 3D calibration scan is slow: the robot visits every grid position and the scanner
# averages many drive-field cycles at each. Measuring only every 2nd position along
# each axis visits about 1/8 of the positions; pympisr's `accelerate` task then restores
# the full grid (the measured positions are a subset of it) with a network trained on
# simulations, followed by a safety step that keeps the measured positions consistent
# with the data.
#
# We make such an accelerated calibration from the OpenMPI 3D calibration (or its
# simulated stand-in), save it as its own MDF file, restore it with
# `pympisr.restore(path, task="accelerate", scale=2)` and compare it with the full
# calibration and with tricubic interpolation, component by component and in
# reconstructions of the resolution phantom. Figures and tables go to
# `$PYMPISR_NOTEBOOK_OUT` (default `notebook_output/`).

# %%
import json
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import pympisr
from pympisr.metrics import nrmse, psnr
from pympisr.openmpi import RECONSTRUCTION_SETTINGS, openmpi_data
from pympisr.plotting import plot_central_slices
from pympisr.restoration.noise_level import component_noise
from pympisr.tasks import get_task

out = Path(os.environ.get("PYMPISR_NOTEBOOK_OUT", "notebook_output"))
out.mkdir(parents=True, exist_ok=True)
written: list[Path] = []

# %% [markdown]
# ## The full calibration

# %%
files = openmpi_data("resolution")
print("stand-in data:" if files.standin else "real OpenMPI data:", files.source)
full = pympisr.load_system_matrix(files.calibration, bg_correction=True, tf_correction=False)
print(f"full grid {full.grid}: {full.num_voxels} positions, FOV "
      f"{np.round(full.fov * 1e3, 1)} mm")

# %% [markdown]
# ## An accelerated calibration
#
# The accelerate task's `degrade_system_matrix` keeps the positions with even indices
# along every axis (stride 2). They keep their physical coordinates, so the coarse grid
# has twice the voxel size; its FOV and centre are set accordingly, and the background
# frames (measured with the empty scanner, independent of the grid) are kept. We write
# it as an MDF file, as the scanner would have.

# %%
task = get_task("accelerate", dims=3, scale_factor=2)
coarse = task.degrade_system_matrix(full)
coarse_path = pympisr.save_system_matrix(coarse, out / "03_calibration_every2nd.mdf",
                                         template=files.calibration, overwrite=True)
written.append(coarse_path)
print(f"accelerated grid {coarse.grid}: {coarse.num_voxels} positions, FOV "
      f"{np.round(coarse.fov * 1e3, 1)} mm -> {coarse_path.name}")

# %% [markdown]
# ## Calibration time saved
#
# The scan time is proportional to the number of positions. Per position the scanner
# records `numAverages` drive-field cycles (the file's `/acquisition/numAverages` and
# `/acquisition/drivefield/cycle`); robot moves and settling add to that and are not in
# the file, so the times below are the signal-acquisition part only.

# %%
measured_share = coarse.num_voxels / full.num_voxels
cycle = full.metadata.get("/acquisition/drivefield/cycle")
averages = full.metadata.get("/acquisition/numAverages")
timing = {"positions_full": full.num_voxels, "positions_measured": coarse.num_voxels,
          "share_measured": measured_share, "time_saved_share": 1 - measured_share}
if cycle is not None and averages is not None:
    per_position = float(np.ravel(cycle)[0]) * float(np.ravel(averages)[0])
    timing.update(seconds_per_position=per_position,
                  hours_full=per_position * full.num_voxels / 3600,
                  hours_accelerated=per_position * coarse.num_voxels / 3600)
    print(f"{per_position:.2f} s of signal per position: full scan "
          f"{timing['hours_full']:.2f} h, accelerated {timing['hours_accelerated']:.2f} h")
print(f"{coarse.num_voxels} of {full.num_voxels} positions measured: "
      f"{100 * (1 - measured_share):.0f} % of the calibration time saved")

# %% [markdown]
# ## Restoring the full grid
#
# The network costs tens of milliseconds per component on a CPU; we restore the
# components with calibration SNR >= 5 (the ones the reconstruction leans on) and let
# pympisr fill the others with the task's classical baseline, tricubic interpolation.
# Lower `RESTORE_SNR` to send more components through the network.

# %%
RESTORE_SNR = 5.0
restored_path = pympisr.restore(coarse_path, task="accelerate", scale=2,
                                snr_thresh=RESTORE_SNR,
                                out=out / "03_calibration_restored.mdf", overwrite=True)
written.append(restored_path)
restored = pympisr.load_system_matrix(restored_path, bg_correction=True, tf_correction=False)
print(f"restored grid {restored.grid}, FOV {np.round(restored.fov * 1e3, 1)} mm, "
      f"model {restored.metadata['/_pympisr/restoration/model']}")

# %% [markdown]
# Tricubic interpolation of every component through the measured positions (the task's
# baseline, `task.baseline`), on the same output grid. If the full grid has an even
# size, the restored grid is one position shorter (the last measured position is the
# edge); we compare on the common part.

# %%
level = component_noise(coarse)
c_count, k_count = coarse.data.shape[:2]
flat = coarse.data.reshape(c_count * k_count, *coarse.data.shape[2:])
tricubic_data = task.baseline(flat, level.std.reshape(-1)).reshape(restored.data.shape)
tricubic = restored.replace(data=tricubic_data)
nz, ny, nx = restored.data.shape[2:]
reference = full.replace(data=full.data[:, :, :nz, :ny, :nx], grid=restored.grid)
truth = None
if files.standin:
    truth = pympisr.load_system_matrix(files.reference, bg_correction=False,
                                       tf_correction=False)
    truth = truth.replace(data=truth.data[:, :, :nz, :ny, :nx], grid=restored.grid)

# %% [markdown]
# ## Components: full, every 2nd, tricubic, restored
#
# Four components from the strongest to the weakest restored one, on a measured z slice
# near each component's peak (real part, dominant phase rotated to the real axis; the
# every-2nd grid is drawn over the same extent).

# %%
selected = full.snr >= RESTORE_SNR
channels, rows = np.nonzero(selected)
by_snr = np.argsort(full.snr[channels, rows])[::-1]
shown = by_snr[np.linspace(0, by_snr.size - 1, 4).round().astype(int)]
versions = {"full": reference, "every 2nd": coarse, "tricubic": tricubic,
            "restored": restored}
fig = Figure(figsize=(2.3 * len(versions), 2.3 * len(shown)), layout="constrained")
FigureCanvasAgg(fig)
axes = fig.subplots(len(shown), len(versions), squeeze=False)
for i, index in enumerate(shown):
    c, k = channels[index], rows[index]
    ref = reference.data[c, k]
    peak = np.unravel_index(np.abs(ref).argmax(), ref.shape)
    rotate = np.exp(-1j * np.angle(ref[peak]))
    limit = float(np.abs(ref).max())
    z_fine = 2 * (peak[0] // 2)  # a z slice that was measured: even index
    for j, (name, version) in enumerate(versions.items()):
        component = version.data[c, k]
        z = z_fine // 2 if version is coarse else z_fine
        axes[i, j].imshow((component[z] * rotate).real, cmap="RdBu_r", vmin=-limit,
                          vmax=limit, origin="lower", extent=(0, 1, 0, 1))
        axes[i, j].set_axis_off()
        axes[i, j].set_title(f"{name} {component.shape[2]}x{component.shape[1]}\n"
                             f"ch {'xyz'[c]}, {full.frequencies[k] / 1e3:.1f} kHz, "
                             f"SNR {full.snr[c, k]:.0f}", fontsize=7)
components_png = out / "03_components.png"
fig.savefig(components_png, dpi=100)
written.append(components_png)

# %% [markdown]
# ## Component errors
#
# PSNR (dB) and nRMSE (`pympisr.metrics`) of the restored components against the full
# calibration, which is noisy itself: the numbers are bounded by its noise. For the
# stand-in we also score against the noise-free calibration.

# %%
references = {"full calibration": reference}
if truth is not None:
    references["noise-free"] = truth
lines = ["| method | reference | PSNR (dB) | nRMSE |", "|---|---|---|---|"]
scores: dict[str, dict[str, float]] = {}
for name in ("tricubic", "restored"):
    for ref_name, ref in references.items():
        p = np.mean([psnr(versions[name].data[c, k], ref.data[c, k])
                     for c, k in zip(channels, rows)])
        e = np.mean([nrmse(versions[name].data[c, k], ref.data[c, k])
                     for c, k in zip(channels, rows)])
        scores[f"{name} vs {ref_name}"] = {"psnr_db": float(p), "nrmse": float(e)}
        lines.append(f"| {name} | {ref_name} | {p:.2f} | {e:.4f} |")
errors_md = out / "03_component_errors.md"
errors_md.write_text(f"Mean over the {channels.size} components with SNR >= "
                     f"{RESTORE_SNR:g}.\n\n" + "\n".join(lines) + "\n")
written.append(errors_md)
print("\n".join(lines))

# %% [markdown]
# ## Reconstructions of the resolution phantom
#
# With OpenMPI's MPIReco settings (SNR threshold 2, f >= 80 kHz, lambda = 0.001,
# 3 Kaczmarz sweeps); the SNR of every SM is the full calibration's, stored in each file.

# %%
settings = RECONSTRUCTION_SETTINGS
volumes = {}
for name in ("full", "tricubic", "restored"):
    image = pympisr.reconstruct(versions[name], files.measurement,
                                snr_thresh=settings["snr_thresh"], min_freq=settings["min_freq"],
                                lambd=settings["lambd"], iterations=settings["iterations"],
                                rec_channels=settings["rec_channels"])
    volumes[name] = image.mean(axis=0)
reco_png = out / "03_reconstructions.png"
title = "resolution phantom, central xy slice" + (" (stand-in data)" if files.standin
                                                       else "")
plot_central_slices(volumes, reco_png, title=title, overwrite=True)
written.append(reco_png)

# %% [markdown]
# The reconstructions from the accelerated calibrations are compared with the one from
# the full calibration (nRMSE of the volumes) and, for the stand-in, with the true
# phantom (correlation).

# %%
table = {"standin": files.standin, "restore_snr": RESTORE_SNR, "timing": timing,
         "component_scores": scores,
         "reconstruction_nrmse_vs_full": {name: nrmse(volumes[name], volumes["full"])
                                          for name in ("tricubic", "restored")}}
if files.standin:
    phantom = np.asarray(pympisr.load_measurement(files.measurement)
                         .metadata["/_pympisr/phantom"], np.float64)[:nz, :ny, :nx]
    b = phantom.ravel() - phantom.mean()
    table["correlation_with_phantom"] = {
        name: float((v.ravel() - v.mean()) @ b / (np.linalg.norm(v.ravel() - v.mean())
                                                  * np.linalg.norm(b)))
        for name, v in volumes.items()}
print(json.dumps(table, indent=2))
table_json = out / "03_table.json"
table_json.write_text(json.dumps(table, indent=2))
written.append(table_json)

# %%
# the list of files this notebook wrote (checked by tests/test_notebooks.py)
(out / "03_accelerated_calibration_3d.outputs.json").write_text(
    json.dumps([p.name for p in written]))
