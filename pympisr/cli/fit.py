"""``pympisr fit FILE``: fit the simulator's geometry and particle model to a measured SM."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("fit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the fitted simulation as an MDF file (isSimulation, provenance "
              "under /_pympisr/fit).")
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG: residual per component, measured vs fitted components.")
@click.option("--components", "-n", type=click.IntRange(min=3), default=None,
              help="Strongest components used (default 40).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(file: Path, out: Path | None, plot: Path | None, components: int | None,
            overwrite: bool) -> None:
    """Fit gradient, drive amplitudes, FOV centre and particle parameters of the
    simulator to the system matrix in FILE and print them with uncertainties.

    The drive amplitudes' geometric mean is held at the file's value: the data
    determine the geometry only up to one common field scale traded against the
    particle size (see pympisr.fitting.model).
    """
    from ..atomic import check_output_path
    from ..fitting import fit

    for target in (out, plot):
        if target is not None:
            check_output_path(target)
            if target.exists() and not overwrite:
                raise FileExistsError(f"{target}: exists; pass --overwrite to replace it")
    result = fit(file, components=components)
    click.echo(result.summary())
    if out is not None:
        click.echo(f"fitted simulation written to {result.to_mdf(out, overwrite=overwrite)}")
    if plot is not None:
        click.echo(f"figure written to {result.plot(plot, overwrite=overwrite)}")
