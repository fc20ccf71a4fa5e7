"""``pympisr validate FILE``: list departures from the MDF specification."""

from __future__ import annotations

import sys

import click


@click.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def command(file: str) -> None:
    """Check FILE against MDF v2; print one problem per line, exit status 1 if any."""
    from ..mdf.validate import validate

    problems = validate(file)
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{file}: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo(f"{file}: valid MDF")
