"""``pympisr restore FILE.mdf``: restore a measured system matrix with an ONNX model."""

from __future__ import annotations

from pathlib import Path

import click

from ._parsing import FiniteFloat


def _tasks() -> list[str]:
    from ..tasks import TASKS
    return list(TASKS)


@click.command(name="restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--task", type=click.Choice(_tasks()), default="denoise", show_default=True,
              help="Restoration task.")
@click.option("--model", help="Model name from onnx_models/manifest.json or an .onnx path "
              "(default: the manifest's first model for the task and the file's dims).")
@click.option("--trust-model", is_flag=True, help="Run a model file that no manifest or "
              "sha256 sidecar vouches for (recorded in the provenance).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output MDF file (default: <stem>_restored.mdf next to PATH).")
@click.option("--snr-thresh", type=FiniteFloat(), help="Restore only components with "
              "/calibration/snr >= this value (the others are copied).")
@click.option("--noise-source", type=click.Choice(["auto", "background", "snr", "blind"]),
              default="auto", show_default=True,
              help="Where each component's noise level comes from: background frames, "
              "/calibration/snr, or a blind estimate (auto: the first available).")
@click.option("--noise", type=FiniteFloat(min=0.0), default=None,
              help="One noise std (real and imaginary part, data units) for all components; "
              "overrides --noise-source.")
@click.option("--mask", help="Inpainting: a .npy bool array over the grid (True = valid "
              "position), or 'auto' to detect the corrupted positions (pympisr detect).")
@click.option("--method", type=click.Choice(["network", "prior"]), default="network",
              show_default=True, help="network: the task's ONNX model; prior: least squares "
              "on simulations of the simulator fitted to the file (pympisr fit).")
@click.option("--scale", type=click.IntRange(min=2), default=None,
              help="Super-resolution scale factor (default: the model's).")
@click.option("--no-safety", is_flag=True, help="Write the raw network output (no SURE "
              "combination or data-consistency step; the result may be worse than the input).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def command(path: Path, task: str, model: str | None, trust_model: bool, out: Path | None,
            snr_thresh: float | None, noise_source: str, noise: float | None,
            mask: str | None, method: str, scale: int | None, no_safety: bool,
            overwrite: bool) -> None:
    """Restore the system matrix in PATH and write it to a new MDF file.

    The input file is never modified; the output records the model, its sha256, the noise
    level and the action taken per component under /_pympisr/restoration.
    """
    from ..restoration import restore
    from ..restoration.safety import SafetyOptions

    if out is not None and not str(out):
        raise click.BadParameter("the output path is empty", param_hint="--out")
    if mask is not None and mask != "auto" and not Path(mask).is_file():
        raise click.BadParameter(f"{mask}: no such file (give a .npy mask or 'auto')",
                                 param_hint="--mask")
    written = restore(path, task=task, model=model, out=out, snr_thresh=snr_thresh,
                      noise=noise, noise_source=noise_source, mask=mask,
                      safety=None if no_safety else SafetyOptions(), trust=trust_model,
                      overwrite=overwrite, method=method, scale=scale)
    click.echo(f"restored system matrix written to {written}")
