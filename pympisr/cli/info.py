"""``pympisr info FILE``: human summary of an MDF file."""

from __future__ import annotations

import click


@click.command("info")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def command(file: str) -> None:
    """Summarise the MDF FILE: kind, version, grid, FOV, channels, frequencies, frames,
    background frames, layout flags and size on disk (the data itself is not read)."""
    from ..mdf.summary import describe, format_summary

    click.echo(format_summary(describe(file)))
