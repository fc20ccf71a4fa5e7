"""``pympisr reconstruct``: Kaczmarz reconstruction of an MDF measurement."""

from __future__ import annotations

from pathlib import Path

import click

from ._parsing import FiniteFloat, index_list


def _parse_channels(ctx: click.Context, param: click.Parameter, value: str | None
                    ) -> list[int] | None:
    return None if value is None else index_list(value, "channel")


def _parse_frames(ctx: click.Context, param: click.Parameter, value: str | None
                  ) -> list[int] | None:
    return None if value is None else index_list(value, "frame")


@click.command(name="reconstruct")
@click.option("--sm", "sm_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="System matrix MDF file.")
@click.option("--meas", "meas_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Measurement MDF file.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output HDF5 file (MDF /reconstruction group); OUT.png gets the figure.")
@click.option("--snr-thresh", type=FiniteFloat(), default=-1.0, show_default=True,
              help="Keep frequency rows with SNR >= this (<= 0: no SNR filter).")
@click.option("--min-freq", type=FiniteFloat(), default=0.0, show_default=True, help="Hz.")
@click.option("--max-freq", type=FiniteFloat(), default=None,
              help="Hz (default: no limit).")
@click.option("--channels", callback=_parse_channels, default=None,
              help="0-based receive channels, comma separated (default: all).")
@click.option("--iterations", type=click.IntRange(min=1), default=3, show_default=True,
              help="Kaczmarz sweeps.")
@click.option("--lambd", type=FiniteFloat(min=0.0), default=0.0, show_default=True,
              help="Tikhonov parameter relative to ||S||_F^2 / N.")
@click.option("--frames", callback=_parse_frames, default=None,
              help="0-based foreground frames, comma separated (default: all).")
@click.option("--num-averages", type=click.IntRange(min=1), default=1, show_default=True,
              help="Average blocks of this many consecutive frames.")
@click.option("--weighting", type=click.Choice(["none", "row_norm", "background"]),
              default="none", show_default=True, help="Row weighting.")
@click.option("--no-bg-correction", is_flag=True, help="Do not subtract background.")
@click.option("--backend", type=click.Choice(["python", "julia"]), default="python",
              show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(sm_path: Path, meas_path: Path, out: Path, snr_thresh: float, min_freq: float,
            max_freq: float | None, channels: list[int] | None, iterations: int,
            lambd: float, frames: list[int] | None, num_averages: int, weighting: str,
            no_bg_correction: bool, backend: str, overwrite: bool) -> None:
    """Reconstruct the measurement MEAS with the system matrix SM (MPIReco's Kaczmarz).

    Writes OUT (HDF5 whose /reconstruction group follows MDF v2: data Q x P x 1 with
    voxels x fastest, size, fieldOfView, ...) and OUT.png (central slices).
    """
    from ..atomic import check_output_path
    from ..reco.output import write_image
    from ..reco.reconstruct import reconstruct_with_metadata

    kwargs = dict(snr_thresh=snr_thresh, min_freq=min_freq, max_freq=max_freq,
                  rec_channels=channels, iterations=iterations, lambd=lambd,
                  bg_correction=not no_bg_correction, frames=frames,
                  num_averages=num_averages,
                  weighting=None if weighting == "none" else weighting)
    for p in (out, out.with_name(out.name + ".png")):
        check_output_path(p)
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p}: exists; pass --overwrite to replace it")
    reco = reconstruct_with_metadata(sm_path, meas_path, backend=backend, **kwargs)
    written = write_image(reco, out, overwrite=overwrite)
    img = reco.image
    click.echo(f"{reco.rows.shape[0]} frequency rows, image {img.shape[0]} frame(s) of "
               f"{tuple(reco.grid)} voxels, max {float(img.max()):.4g}")
    for p in written:
        click.echo(f"wrote {p}")
