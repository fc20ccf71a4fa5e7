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
# # Finding and repairing corrupted calibration positions
#
# A calibration scan takes hours, and the scanner does not stay perfectly still: the
# background signal can drift for a while, interference can hit single frames. Such
# positions disagree with their neighbours in all frequency components at once. Here we
# corrupt a contiguous run of positions of the OpenMPI 3D calibration (or its
# simulated stand-in) with a slowly drifting offset, find them with
# `pympisr.detect_corrupted`, refill them with the shipped 3D inpainting network
# (`pympisr.restore(path, task="inpaint", mask="auto")`, and with the known mask),
# compare with biharmonic inpainting and look at the reconstructions of the resolution
# phantom. Figures and tables go to `$PYMPISR_NOTEBOOK_OUT` (default
# `notebook_output/`).

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
from pympisr.restoration.detect import plot_detection
from pympisr.restoration.noise_level import component_noise
from pympisr.simulation.corruptions import corrupt_system_matrix
from pympisr.tasks import get_task

out = Path(os.environ.get("PYMPISR_NOTEBOOK_OUT", "notebook_output"))
out.mkdir(parents=True, exist_ok=True)
written: list[Path] = []

# %% [markdown]
# ## The calibration

# %%
files = openmpi_data("resolution")
print("stand-in data:" if files.standin else "real OpenMPI data:", files.source)
sm = pympisr.load_system_matrix(files.calibration, bg_correction=True, tf_correction=False)
level = component_noise(sm)
print(f"{sm.num_channels} x {sm.num_frequencies} components on a {sm.grid} grid; noise "
      f"level from {level.source}")

# %% [markdown]
# ## A drifting block of positions
#
# `corrupt_system_matrix` with one `"drift"` event: 3 % of the positions, consecutive
# along the robot path (raster order, x fastest), get an offset of 20 times each
# component's noise level with one random phase per component and a slowly varying
# envelope (0.7 to 1.3), as a drifting background would produce. The corrupted SM is
# saved as its own MDF file.

# %%
corrupted = corrupt_system_matrix(sm, level.std, np.random.default_rng(7),
                                  counts={"drift": 1}, drift_fraction=0.03,
                                  drift_strength=20.0)
truth_valid = corrupted.valid
corrupted_path = pympisr.save_system_matrix(corrupted.sm, out / "05_calibration_corrupted.mdf",
                                            template=files.calibration, overwrite=True)
written.append(corrupted_path)
print(f"{int((~truth_valid).sum())} of {truth_valid.size} positions corrupted "
      f"-> {corrupted_path.name}")

# %% [markdown]
# ## Detection
#
# `detect_corrupted` predicts every position from its neighbours (nearby ones, and ones
# measured long before or after along the robot path, so a drifting block is not
# compared with itself) in up to 256 components and turns the disagreement into a
# robust z-score per position; positions above the threshold (6) are flagged.

# %%
detection = pympisr.detect_corrupted(corrupted.sm)
detection_png = out / "05_detection.png"
plot_detection(detection, detection_png, overwrite=True)
written.append(detection_png)
flagged, bad = ~detection.valid, ~truth_valid
hits = int((flagged & bad).sum())
quality = {"flagged": int(flagged.sum()), "corrupted": int(bad.sum()), "true_positives": hits,
           "precision": hits / max(int(flagged.sum()), 1), "recall": hits / int(bad.sum())}
print(quality)

# %% [markdown]
# The score along the acquisition order, with the truly corrupted block shaded:

# %%
steps = np.arange(detection.order.size)
along = detection.score.reshape(-1)[detection.order]
in_block = bad.reshape(-1)[detection.order]
fig = Figure(figsize=(8, 3), layout="constrained")
FigureCanvasAgg(fig)
ax = fig.add_subplot()
ax.fill_between(steps, 0, along.max() * 1.05, where=in_block, color="orange", alpha=0.3,
                step="mid", label="corrupted (truth)")
ax.plot(steps, along, lw=0.8, color="0.2", label="score")
ax.scatter(steps[flagged.reshape(-1)[detection.order]],
           along[flagged.reshape(-1)[detection.order]], s=10, color="crimson",
           label="flagged", zorder=3)
ax.axhline(detection.threshold, color="crimson", ls="--", lw=0.8, label="threshold")
ax.set_xlabel("acquisition step")
ax.set_ylabel("robust z-score")
ax.set_title(f"precision {quality['precision']:.2f}, recall {quality['recall']:.2f}")
ax.legend(fontsize=8, loc="upper right")
timeline_png = out / "05_detection_vs_truth.png"
fig.savefig(timeline_png, dpi=100)
written.append(timeline_png)

# %% [markdown]
# ## Repair
#
# `pympisr.restore` with `mask="auto"` runs the same detector on the file and refills
# the flagged positions; with the known mask it refills exactly the corrupted ones. The
# provenance of each file records the mask and where it came from. The classical
# alternative is biharmonic inpainting (the task's baseline), here with the known mask.
# All components are repaired: a component left out (`snr_thresh`) would keep its
# corrupted values, and the inpainting network is cheap (one pass per component).

# %%
auto_path = pympisr.restore(corrupted_path, task="inpaint", mask="auto",
                            out=out / "05_inpainted_auto.mdf", overwrite=True)
known_path = pympisr.restore(corrupted_path, task="inpaint", mask=truth_valid,
                             out=out / "05_inpainted_known_mask.mdf", overwrite=True)
written += [auto_path, known_path]
inpainted_auto = pympisr.load_system_matrix(auto_path, bg_correction=True, tf_correction=False)
inpainted_known = pympisr.load_system_matrix(known_path, bg_correction=True,
                                             tf_correction=False)
print("mask source:", inpainted_auto.metadata["/_pympisr/restoration/maskSource"])

# %%
task = get_task("inpaint", dims=3)
c_count, k_count = sm.data.shape[:2]
flat = (corrupted.sm.data * truth_valid).reshape(c_count * k_count, *sm.data.shape[2:])
biharmonic = sm.replace(data=task.baseline(flat, level.std.reshape(-1), truth_valid)
                        .reshape(sm.data.shape))

# %% [markdown]
# ## Errors at the corrupted positions
#
# PSNR (dB) and nRMSE of the corrupted positions against the calibration before
# corruption (itself noisy) and, for the stand-in, against the noise-free calibration,
# averaged over the components with SNR >= 5 (the weaker ones are mostly noise).

# %%
versions = {"corrupted": corrupted.sm, "inpainted (auto mask)": inpainted_auto,
            "inpainted (known mask)": inpainted_known, "biharmonic (known mask)": biharmonic}
references = {"before corruption": sm}
if files.standin:
    references["noise-free"] = pympisr.load_system_matrix(files.reference, bg_correction=False,
                                                          tf_correction=False)
channels, rows = np.nonzero(sm.snr >= 5.0)
lines = ["| SM | reference | PSNR (dB) | nRMSE |", "|---|---|---|---|"]
scores: dict[str, dict[str, float]] = {}
for name, version in versions.items():
    for ref_name, ref in references.items():
        p = np.mean([psnr(version.data[c, k][bad], ref.data[c, k][bad])
                     for c, k in zip(channels, rows)])
        e = np.mean([nrmse(version.data[c, k][bad], ref.data[c, k][bad])
                     for c, k in zip(channels, rows)])
        scores[f"{name} vs {ref_name}"] = {"psnr_db": float(p), "nrmse": float(e)}
        lines.append(f"| {name} | {ref_name} | {p:.2f} | {e:.4f} |")
errors_md = out / "05_component_errors.md"
errors_md.write_text(f"Corrupted positions only, mean over {channels.size} components.\n\n"
                     + "\n".join(lines) + "\n")
written.append(errors_md)
print("\n".join(lines))

# %% [markdown]
# ## Components
#
# Three components from the strongest to the weakest with SNR >= 5, on the z slice with
# the most corrupted positions (real part, dominant phase rotated to the real axis;
# corrupted positions marked x).

# %%
order = np.argsort(sm.snr[channels, rows])[::-1]
shown = order[np.linspace(0, order.size - 1, 3).round().astype(int)]
z = int(np.argmax(bad.sum(axis=(1, 2))))  # the z slice with most corrupted positions
panels = {"before corruption": sm, **versions}
fig = Figure(figsize=(2.3 * len(panels), 2.4 * len(shown)), layout="constrained")
FigureCanvasAgg(fig)
axes = fig.subplots(len(shown), len(panels), squeeze=False)
for i, index in enumerate(shown):
    c, k = channels[index], rows[index]
    ref = sm.data[c, k]
    rotate = np.exp(-1j * np.angle(ref.ravel()[np.abs(ref).argmax()]))
    limit = float(np.abs(ref).max())
    for j, (name, version) in enumerate(panels.items()):
        axes[i, j].imshow((version.data[c, k, z] * rotate).real, cmap="RdBu_r", vmin=-limit,
                          vmax=limit, origin="lower")
        ys, xs = np.nonzero(bad[z])
        axes[i, j].scatter(xs, ys, marker="x", s=12, color="k", linewidths=0.7)
        axes[i, j].set_axis_off()
        axes[i, j].set_title(f"{name}\nch {'xyz'[c]}, {sm.frequencies[k] / 1e3:.1f} kHz, "
                             f"z = {z}", fontsize=7)
components_png = out / "05_components.png"
fig.savefig(components_png, dpi=100)
written.append(components_png)

# %% [markdown]
# ## Reconstructions of the resolution phantom
#
# OpenMPI's MPIReco settings (SNR threshold 2, f >= 80 kHz, lambda = 0.001, 3 Kaczmarz
# sweeps) with each system matrix.

# %%
settings = RECONSTRUCTION_SETTINGS
volumes = {}
for name, version in panels.items():
    image = pympisr.reconstruct(version, files.measurement,
                                snr_thresh=settings["snr_thresh"], min_freq=settings["min_freq"],
                                lambd=settings["lambd"], iterations=settings["iterations"],
                                rec_channels=settings["rec_channels"])
    volumes[name] = image.mean(axis=0)
reco_png = out / "05_reconstructions.png"
title = "resolution phantom, central xy slice" + (" (stand-in data)" if files.standin
                                                       else "")
plot_central_slices(volumes, reco_png, title=title, overwrite=True)
written.append(reco_png)

# %%
table = {"standin": files.standin, "detection": quality, "component_scores": scores,
         "reconstruction_nrmse_vs_uncorrupted": {
             name: nrmse(volume, volumes["before corruption"])
             for name, volume in volumes.items() if name != "before corruption"}}
print(json.dumps(table, indent=2))
table_json = out / "05_table.json"
table_json.write_text(json.dumps(table, indent=2))
written.append(table_json)

# %%
# the list of files this notebook wrote (checked by tests/test_notebooks.py)
(out / "05_inpaint_3d.outputs.json").write_text(json.dumps([p.name for p in written]))
