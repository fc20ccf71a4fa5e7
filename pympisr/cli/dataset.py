"""``pympisr dataset``: generate a simulated system-matrix dataset."""

from __future__ import annotations

import click

from ._parsing import FiniteFloat, parse_range

__all__ = ["command"]


@click.command("dataset")
@click.option("--dims", type=click.Choice(["2", "3"]), default="2", show_default=True,
              help="2D or 3D Lissajous trajectories and grids.")
@click.option("--train", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Items in the train split.")
@click.option("--val", type=click.IntRange(min=0), default=300, show_default=True,
              help="Items in the validation split.")
@click.option("--test", type=click.IntRange(min=0), default=300, show_default=True,
              help="Items in the test split.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Dataset folder (created; an existing one is completed).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Dataset seed.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: CPU count]; with --scheduler local, the "
              "local dask cluster's worker processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS|local",
              help="Distribute the simulations over a dask.distributed cluster: a "
              "scheduler address (tcp://host:8786; start workers with `dask worker "
              "ADDRESS --nthreads 1`), or 'local' for a local cluster on 127.0.0.1. Items "
              "are written here, byte-identical to a run without it. Needs dask[distributed].")
@click.option("--grid-max", type=click.IntRange(min=2), default=None,
              help="Cap the sampled grid size per axis (faster data for CPU training).")
@click.option("--model", type=click.Choice(["anisotropy", "langevin"]), default="anisotropy",
              show_default=True, help="Particle model.")
@click.option("--max-components", type=click.IntRange(min=1), default=None,
              help="Components stored per SM [default: 400 (2D), 600 (3D)].")
@click.option("--threshold", type=FiniteFloat(min=0.0), default=1e-5, show_default=True,
              help="Keep components with energy >= threshold * strongest component energy.")
@click.option("--spf-range", default=None, callback=parse_range,
              help="lo,hi: samples per FWHM drawn per SM [default: 4,12]; 4,60 covers "
              "finely sampled real calibrations.")
@click.option("--grid-range", default=None, callback=parse_range,
              help="lo,hi: clip of the grid size per axis [default: 12,30].")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(dims: str, train: int, val: int, test: int, out: str, seed: int,
            workers: int | None, scheduler: str | None, grid_max: int | None, model: str,
            max_components: int | None, threshold: float,
            spf_range: tuple[float, float] | None, grid_range: tuple[float, float] | None,
            no_progress: bool) -> None:
    """Simulate system matrices into OUT (resumable, deterministic for a seed).

    Each item stores only the frequency components that carry signal (see
    pympisr.simulation.generate); rerunning after an interruption completes the dataset.
    With --scheduler the simulations run on a dask cluster (same items, byte for byte).
    """
    from ..atomic import check_output_path
    from ..simulation.generate import SelectionRule, default_rule, generate_dataset

    check_output_path(out, directory=True)

    d = int(dims)
    rule = default_rule(d)
    rule = SelectionRule(threshold=threshold,
                         max_components=max_components or rule.max_components)
    splits = {"train": train, "val": val, "test": test}
    ranges = {name: value for name, value in (("samples_per_fwhm", spf_range),
                                              ("grid", grid_range)) if value is not None}
    info = generate_dataset(out, dims=d, splits=splits, seed=seed, workers=workers,
                            grid_max=grid_max, model=model, rule=rule, ranges=ranges or None,
                            scheduler=scheduler, progress=not no_progress)
    click.echo(f"{out}: {sum(info['splits'].values())} system matrices "
               f"({', '.join(f'{k} {v}' for k, v in info['splits'].items())})")
