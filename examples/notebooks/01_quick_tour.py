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
# # Quick tour: an OpenMPI calibration, a phantom, a reconstruction
#
# We load the OpenMPI 3D Lissajous calibration (Bruker preclinical scanner, 19 x 19 x 19
# grid) and the resolution-phantom measurement, look at the system matrix's frequency
# components and SNR, and reconstruct the phantom with the settings of OpenMPI's
# MPIReco example (SNR threshold 2, f >= 80 kHz, lambda = 0.001, 3 Kaczmarz sweeps).
#
# Without the real files in the cache (`pympisr.openmpi.fetch_openmpi` downloads them)
# `openmpi_data` makes simulated stand-in files in the same layout and says so.
# Figures and a table go to `$PYMPISR_NOTEBOOK_OUT` (default `notebook_output/`);
# `$PYMPISR_STANDIN_GRID` chooses a smaller stand-in grid for quick runs.

# %%
import json
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import pympisr
from pympisr.image_protocol import image_metrics
from pympisr.mdf import describe
from pympisr.mdf.summary import format_summary
from pympisr.openmpi import RECONSTRUCTION_SETTINGS, openmpi_data
from pympisr.plotting import plot_strongest_components

out = Path(os.environ.get("PYMPISR_NOTEBOOK_OUT", "notebook_output"))
out.mkdir(parents=True, exist_ok=True)
written: list[Path] = []

# %% [markdown]
# ## The data

# %%
files = openmpi_data("resolution")
print("stand-in data:" if files.standin else "real OpenMPI data:", files.source)
print(format_summary(describe(files.calibration)))

# %% [markdown]
# The calibration is loaded as MPIReco does: background frames averaged and subtracted,
# divided by the receive chain's transfer function.

# %%
sm = pympisr.load_system_matrix(files.calibration)
print(f"{sm.num_channels} channels x {sm.num_frequencies} frequencies on a {sm.grid} grid, "
      f"FOV {np.round(sm.fov * 1e3, 1)} mm, {sm.background.shape[0]} background frames")

# %% [markdown]
# ## Frequency components
# The strongest components are the familiar Chebyshev-like patterns of a Lissajous
# trajectory (central z slice; magnitude above phase).

# %%
components_png = out / "01_components.png"
plot_strongest_components(sm, components_png, components=10,
                          title="strongest components (central z slice)", overwrite=True)
written.append(components_png)

# %% [markdown]
# ## SNR per component
# The SNR decides which rows enter the reconstruction.

# %%
fig = Figure(figsize=(7, 3.5), layout="constrained")
FigureCanvasAgg(fig)
ax = fig.add_subplot()
for c, name in enumerate("xyz"):
    ax.semilogy(sm.frequencies / 1e3, sm.snr[c], ".", ms=3, label=f"channel {name}")
ax.axhline(RECONSTRUCTION_SETTINGS["snr_thresh"], color="k", lw=0.8, ls="--",
           label="SNR threshold")
ax.axvline(RECONSTRUCTION_SETTINGS["min_freq"] / 1e3, color="gray", lw=0.8, ls=":")
ax.set_xlabel("frequency (kHz)")
ax.set_ylabel("SNR")
ax.legend(fontsize=8)
snr_png = out / "01_snr.png"
fig.savefig(snr_png, dpi=100)
written.append(snr_png)

# %% [markdown]
# ## Reconstruction with MPIReco's settings

# %%
settings = RECONSTRUCTION_SETTINGS
image = pympisr.reconstruct(files.calibration, files.measurement,
                            snr_thresh=settings["snr_thresh"], min_freq=settings["min_freq"],
                            lambd=settings["lambd"], iterations=settings["iterations"],
                            rec_channels=settings["rec_channels"])
volume = image.mean(axis=0)  # (Nz, Ny, Nx), averaged over the foreground frames
rows = pympisr.reco.select_frequencies(sm, snr_thresh=settings["snr_thresh"],
                                       min_freq=settings["min_freq"],
                                       rec_channels=settings["rec_channels"])
print(f"{len(rows)} of {sm.num_channels * sm.num_frequencies} rows used")

# %%
nz, ny, nx = volume.shape
fig = Figure(figsize=(9, 3.2), layout="constrained")
FigureCanvasAgg(fig)
axes = fig.subplots(1, 3)
views = {"xy (z centre)": volume[nz // 2], "xz (y centre)": volume[:, ny // 2],
         "yz (x centre)": volume[:, :, nx // 2]}
for ax, (title, view) in zip(axes, views.items()):
    ax.imshow(view, origin="lower", cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
fig.suptitle("resolution phantom" + (" (stand-in data)" if files.standin else ""))
reco_png = out / "01_reconstruction.png"
fig.savefig(reco_png, dpi=100)
written.append(reco_png)

# %% [markdown]
# For stand-in data the true phantom is stored in the measurement file, so the
# reconstruction can be scored.

# %%
table = {"standin": files.standin, "rows_used": int(len(rows)),
         "grid": list(sm.grid), **{k: v for k, v in settings.items() if k != "rec_channels"}}
if files.standin:
    meas = pympisr.load_measurement(files.measurement)
    phantom = np.asarray(meas.metadata["/_pympisr/phantom"], np.float64)
    table["correlation_with_phantom"] = image_metrics(volume, phantom)["corr"]
print(table)
table_json = out / "01_table.json"
table_json.write_text(json.dumps(table, indent=2))
written.append(table_json)

# %%
# the list of files this notebook wrote (checked by tests/test_notebooks.py)
(out / "01_quick_tour.outputs.json").write_text(json.dumps([p.name for p in written]))
