"""``pympisr demo``: simulate -> degrade -> restore -> reconstruct on a small example."""

from __future__ import annotations

import time

import click

from ._parsing import FiniteFloat


@click.command("demo")
@click.option("--out", "out_dir", default="pympisr_demo", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the files the demo writes.")
@click.option("--grid", type=click.IntRange(min=4), default=32, show_default=True,
              help="Grid points per axis (2D).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the calibration and measurement noise.")
@click.option("--noise", type=FiniteFloat(min=0.0), default=0.002, show_default=True,
              help="Noise std relative to the system matrix's largest magnitude.")
@click.option("--snr-thresh", type=FiniteFloat(), default=2.0, show_default=True,
              help="Components with SNR >= this are restored and used for reconstruction.")
@click.option("--model", default=None, help="Model name or ONNX path (default: shipped denoiser).")
@click.option("--trust-model", is_flag=True,
              help="Run a --model file that no manifest or sha256 sidecar vouches for.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier demo run.")
def command(out_dir: str, grid: int, seed: int, noise: float, snr_thresh: float,
            model: str | None, trust_model: bool, overwrite: bool) -> None:
    """Run the whole pipeline on a small built-in example and print image quality."""
    from pympisr.demo import format_table, run_demo

    start = time.perf_counter()
    result = run_demo(out_dir, grid=grid, seed=seed, noise=noise, snr_thresh=snr_thresh,
                      model=model, overwrite=overwrite, trust_model=trust_model)
    click.echo("")
    click.echo(format_table(result.rows))
    click.echo("")
    for name, path in result.files.items():
        click.echo(f"{name:>12}: {path}")
    click.echo(f"done in {time.perf_counter() - start:.1f} s")
