"""``pympisr plot``: the strongest frequency components of a system matrix."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


def _is_dataset_item(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "components" in f and "params_json" in f
    except OSError:
        return False


@click.command("plot")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--components", "-n", type=click.IntRange(min=1), default=10, show_default=True,
              help="Number of strongest components to show.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="Output PNG file.")
@click.option("--columns", type=click.IntRange(min=1), default=5, show_default=True,
              help="Components per figure row.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def command(file: str, components: int, out: str, columns: int, overwrite: bool) -> None:
    """Plot magnitude and phase of the strongest components of FILE.

    FILE is an MDF system matrix (measured or simulated) or a dataset item (.h5) written
    by `pympisr dataset`.
    """
    from ..atomic import check_output_path
    from ..plotting import plot_strongest_components

    check_output_path(out)
    path = Path(file)
    if _is_dataset_item(path):
        from ..datasets import read_item

        source = read_item(path)
    else:
        from .. import load_system_matrix

        source = load_system_matrix(path)
    plot_strongest_components(source, out, components=components, columns=columns,
                              title=path.name, overwrite=overwrite)
    click.echo(f"wrote {out}")
