"""The built-in end-to-end example behind ``pympisr demo``.

1. simulate a 2D Lissajous system matrix (equilibrium model with anisotropy, with the
   particle and scanner parameters fitted to a Bruker scanner, DESIGN section 5), save
   it as MDF, read it back and check the round trip;
2. make a noisy calibration from it: complex white noise of one standard deviation for
   every (channel, frequency) (``noise`` times the strongest component's peak), plus
   background frames of the same noise, from which the per-component SNR is estimated
   as MPI scanners do;
3. restore the noisy MDF file with the shipped denoising model (``pympisr.restore``) and,
   for comparison, with the classical DCT-F baseline;
4. simulate a phantom measurement with the clean system matrix and reconstruct it with
   the noisy, the DCT-F, the restored and the clean system matrix (Kaczmarz);
5. print system-matrix quality (PSNR/SSIM against the clean components, DESIGN
   section 7) and image quality (Pearson correlation and PSNR after least-squares
   scaling against the phantom, :func:`pympisr.image_protocol.image_metrics`, as in the
   image protocol of DESIGN section 12), and save a figure.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .simulation.noise import with_white_noise
from .system_matrix import SystemMatrix

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    """Outputs of :func:`run_demo`: files written and the quality table rows."""

    files: dict[str, Path]
    rows: list[dict[str, float | str]]


def _dct_restored(noisy: SystemMatrix, rows: np.ndarray) -> SystemMatrix:
    """DCT-F (sigma from the background frames) on the given (channel, frequency) rows."""
    from .baselines import dct_denoise

    data = noisy.data.copy()
    comps = data[rows[:, 0], rows[:, 1], 0]
    bg = noisy.background[:, rows[:, 0], rows[:, 1]]
    data[rows[:, 0], rows[:, 1], 0] = dct_denoise(comps, background=bg, dims=2)
    return noisy.replace(data=data)


def _component_quality(sm: SystemMatrix, clean: SystemMatrix, rows: np.ndarray) -> tuple[float, float]:
    from .metrics import psnr, ssim

    pairs = [(sm.data[c, k, 0], clean.data[c, k, 0]) for c, k in rows]
    return (float(np.mean([psnr(x, ref) for x, ref in pairs])),
            float(np.mean([ssim(x, ref) for x, ref in pairs])))


def run_demo(out_dir: str | os.PathLike[str] = "pympisr_demo", *, grid: int = 32, seed: int = 0,
             noise: float = 0.002, snr_thresh: float = 2.0, model: str | None = None,
             overwrite: bool = False, progress: bool = True,
             trust_model: bool = False) -> DemoResult:
    """Run the demo, writing its files into ``out_dir``; see the module docstring.

    ``noise`` is the noise standard deviation (real and imaginary part each) relative to
    the largest magnitude in the system matrix; ``snr_thresh`` selects the components
    that are restored and used in reconstruction (a low threshold keeps many weak
    components: the regime where denoising pays off). ``model``: a manifest name or an
    ONNX path (default: the shipped denoiser); ``trust_model`` allows a file that no
    manifest or sha256 sidecar vouches for.

    Raises :class:`~pympisr.errors.InvalidInputError` for a bad ``grid``, ``noise`` or
    ``snr_thresh`` and :class:`~pympisr.errors.OutputPathError` for an unusable
    ``out_dir``, before anything is computed.
    """
    import pympisr
    from pympisr.simulation.parameters import reference_parameters

    from .atomic import ensure_directory
    from .errors import InvalidInputError
    from .image_protocol import image_metrics
    from .mdf.summary import describe, format_summary

    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 4:
        raise InvalidInputError(f"grid must be an integer >= 4, got {grid!r}")
    if not math.isfinite(noise) or noise < 0:
        raise InvalidInputError(f"noise must be a finite number >= 0, got {noise!r}")
    if not math.isfinite(snr_thresh):
        raise InvalidInputError(f"snr_thresh must be a finite number, got {snr_thresh!r}")
    restorer = None
    if model is not None:  # load (and verify) the model before the long computations
        from .restoration import OnnxRestorer

        restorer = OnnxRestorer(model, trust=trust_model)
    out = ensure_directory(out_dir, purpose="demo output folder")
    files = {name: out / f"{name}.mdf" for name in ("clean", "noisy", "measurement")}
    files["restored"] = out / "restored.mdf"
    files["figure"] = out / "demo.png"
    if not overwrite:
        existing = [str(p) for p in files.values() if p.exists()]
        if existing:
            raise FileExistsError(f"{', '.join(existing)}: exist; pass overwrite=True "
                                  "(--overwrite) or choose another --out folder")
    for path in files.values():
        path.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)

    clean = pympisr.simulate_system_matrix(reference_parameters(2, grid=(grid, grid, 1)))
    pympisr.save_system_matrix(clean, files["clean"])
    reloaded = pympisr.load_system_matrix(files["clean"], bg_correction=False)
    if not np.array_equal(reloaded.data, clean.data):
        raise RuntimeError(f"{files['clean']}: MDF round trip changed the system matrix")
    print(format_summary(describe(files["clean"])))

    noisy = with_white_noise(clean, noise * float(np.abs(clean.data).max()),
                             background_frames=50, rng=rng)
    pympisr.save_system_matrix(noisy, files["noisy"])
    pympisr.restore(files["noisy"], model=restorer if restorer is not None else model,
                    out=files["restored"], snr_thresh=snr_thresh, progress=progress)
    restored = pympisr.load_system_matrix(files["restored"])

    rows = pympisr.reco.select_frequencies(noisy, snr_thresh=snr_thresh, min_freq=80e3)
    # every version is reconstructed with the same rows: those the noisy calibration's SNR selects
    versions = {"noisy": noisy, "DCT-F": _dct_restored(noisy, rows),
                "restored": restored.replace(snr=noisy.snr), "clean": clean.replace(snr=noisy.snr)}

    phantom = pympisr.phantoms.make_phantom("snake", clean)
    meas = pympisr.simulate_measurement(clean, phantom, noise=0.0005, seed=seed,
                                        path=files["measurement"])
    table, images = [], {}
    for name, sm in versions.items():
        image = pympisr.reconstruct(sm, meas, snr_thresh=snr_thresh, min_freq=80e3,
                                    iterations=10, lambd=1e-3, bg_correction=False)[0]
        images[name] = image
        sm_psnr, sm_ssim = _component_quality(sm, clean, rows)
        quality = image_metrics(image, phantom)
        table.append({"system matrix": name, "SM PSNR (dB)": sm_psnr, "SM SSIM": sm_ssim,
                      "image correlation": quality["corr"],
                      "image PSNR (dB)": quality["psnr"]})
    _save_figure(files["figure"], versions, rows, phantom, images)
    return DemoResult(files=files, rows=table)


def _save_figure(path: Path, versions: dict[str, SystemMatrix], rows: np.ndarray,
                 phantom: np.ndarray, images: dict[str, np.ndarray]) -> None:
    """Top row: one weak selected component (magnitude) per system matrix; bottom row:
    the phantom and the reconstructions with each system matrix."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .atomic import atomic_output

    clean = versions["clean"]
    energy = np.array([np.abs(clean.data[c, k]).max() for c, k in rows])
    c, k = rows[np.argsort(energy)[len(energy) // 4]]  # a weak-ish component
    # object API with the Agg canvas: no pyplot, no global backend change
    fig = Figure(figsize=(3 * (len(versions) + 1), 6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(versions) + 1)
    axes[0, 0].axis("off")
    axes[0, 0].text(0.0, 0.5, f"component\nchannel {c}\n{clean.frequencies[k] / 1e3:.1f} kHz",
                    fontsize=12, va="center")
    vmax = float(np.abs(clean.data[c, k, 0]).max())
    for ax, (name, sm) in zip(axes[0, 1:], versions.items()):
        ax.imshow(np.abs(sm.data[c, k, 0]), origin="lower", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(f"{name} |S|")
    axes[1, 0].imshow(phantom[0], origin="lower", cmap="gray")
    axes[1, 0].set_title("phantom")
    for ax, (name, image) in zip(axes[1, 1:], images.items()):
        ax.imshow(image[0], origin="lower", cmap="gray")
        ax.set_title(f"reco, {name} SM")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def format_table(rows: list[dict[str, float | str]]) -> str:
    """Markdown table of the demo's quality rows."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
