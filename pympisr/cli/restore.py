"""``pympisr restore FILE.mdf``: restore a measured system matrix with an ONNX model."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--task", type=click.Choice(["denoise"]), default="denoise", show_default=True,
              help="Restoration task.")
@click.option("--model", help="Model name from onnx_models/manifest.json or an .onnx path "
              "(default: the manifest's first model for the task and the file's dims).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output MDF file (default: <stem>_restored.mdf next to PATH).")
@click.option("--snr-thresh", type=float, help="Restore only components with "
              "/calibration/snr >= this value (the others are copied).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def command(path: Path, task: str, model: str | None, out: Path | None,
            snr_thresh: float | None, overwrite: bool) -> None:
    """Restore the system matrix in PATH and write it to a new MDF file.

    The input file is never modified; the output records the model and its sha256 under
    /_pympisr/restoration.
    """
    from ..restoration import restore

    written = restore(path, task=task, model=model, out=out, snr_thresh=snr_thresh,
                      overwrite=overwrite)
    click.echo(f"restored system matrix written to {written}")
