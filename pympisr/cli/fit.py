"""``pympisr fit FILE``: fit the simulator's geometry and particle model to a measured SM."""

from __future__ import annotations

import math
from pathlib import Path

import click

from ..fitting.solver import GEOMETRY_TOLERANCE, MIN_SIGNIFICANCE
from ._parsing import FiniteFloat, comma_separated


def _tolerance(value: str) -> tuple[float, float, float] | None:
    """``--geometry-tolerance``: three positive finite numbers, or ``none``."""
    if value.strip().lower() == "none":
        return None
    items = comma_separated(value, float, "numbers")
    if len(items) != 3 or not all(math.isfinite(t) and t > 0 for t in items):
        raise click.BadParameter(f"{value!r}: give three positive numbers (gradient, drive, "
                                 "centre) or 'none'", param_hint="--geometry-tolerance")
    return (items[0], items[1], items[2])


@click.command("fit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the fitted simulation as an MDF file (isSimulation, provenance "
              "under /_pympisr/fit).")
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG: residual per component, measured vs fitted components.")
@click.option("--components", "-n", type=click.IntRange(min=3), default=None,
              help="Strongest components used (default 40).")
@click.option("--state", type=click.Choice(["both", "fluid", "immobilised"]), default="both",
              show_default=True, help="Particle states fitted; with both, the one with "
              "the lower robust cost is kept.")
@click.option("--min-significance", type=FiniteFloat(min=0.0), default=MIN_SIGNIFICANCE,
              show_default=True, help="Components take part only if their energy exceeds "
              "the noise's by this many stds of the noise energy; lower it for a very "
              "noisy file (weak components make the fit less stable).")
@click.option("--model-error", type=FiniteFloat(min=0.0), default=0.01, show_default=True,
              help="Relative model-error floor of the residual weights: strong components "
              "are trusted to this fraction of their rms, not beyond.")
@click.option("--geometry-tolerance", default=",".join(f"{t:g}" for t in GEOMETRY_TOLERANCE),
              show_default=True, help="Prior widths of the file's stated geometry: relative "
              "gradient, relative drive, centre in FOV units, comma separated; 'none' fits "
              "without the prior.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(file: Path, out: Path | None, plot: Path | None, components: int | None,
            state: str, min_significance: float, model_error: float,
            geometry_tolerance: str, overwrite: bool) -> None:
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
    states = {"both": (True, False), "fluid": (True,), "immobilised": (False,)}[state]
    result = fit(file, components=components, states=states,
                 min_significance=min_significance, model_error=model_error,
                 geometry_tolerance=_tolerance(geometry_tolerance))
    click.echo(result.summary())
    if out is not None:
        click.echo(f"fitted simulation written to {result.to_mdf(out, overwrite=overwrite)}")
    if plot is not None:
        click.echo(f"figure written to {result.plot(plot, overwrite=overwrite)}")
