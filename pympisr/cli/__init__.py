"""The ``pympisr`` command line (click).

Each command lives in its own module ``pympisr.cli.<name>`` as a click command named
``command``; modules are imported only when their command runs, so ``pympisr --help`` is
fast and never imports torch.
"""

from __future__ import annotations

import importlib

import click

# command name -> module defining `command`
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("pympisr.cli.info", "Summarise an MDF file."),
    "validate": ("pympisr.cli.validate", "Check an MDF file against the specification."),
    "demo": ("pympisr.cli.demo", "Run the whole pipeline on a small built-in example."),
    "dataset": ("pympisr.cli.dataset", "Generate a simulated system-matrix dataset."),
    "plot": ("pympisr.cli.plot", "Plot the strongest frequency components of a system matrix."),
    "reconstruct": ("pympisr.cli.reconstruct", "Reconstruct an image with Kaczmarz."),
    "train": ("pympisr.cli.train", "Train a restoration network from a TOML config."),
    "restore": ("pympisr.cli.restore", "Restore a measured system matrix with a model."),
    "evaluate": ("pympisr.cli.evaluate", "Compare models and baselines on a test split."),
    "export": ("pympisr.cli.export", "Export a trained checkpoint to ONNX."),
    "noise-switch": ("pympisr.cli.noise_switch",
                     "Combine two exported models into one, chosen by noise level."),
    "detect": ("pympisr.cli.detect", "Find corrupted calibration positions of a system matrix."),
    "fit": ("pympisr.cli.fit", "Fit the simulator's geometry and particles to an SM."),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that report a problem with the user's input, not a bug: pympisr's own
    (:class:`pympisr.errors.PympisrError`, raised for bad files, models, options and
    output paths) and missing or already existing files the user named. Anything else
    (e.g. a plain ValueError from deep inside numpy) is a bug and keeps its traceback."""
    from ..errors import PympisrError

    return (PympisrError, FileExistsError, FileNotFoundError)


class _LazyGroup(click.Group):
    """Loads command modules on demand and reports problems with the user's input
    (:func:`_user_errors`) as ``Error: <message>`` with exit status 1 instead of a
    traceback; click reports its own usage errors with exit status 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except _user_errors() as exc:
            raise click.ClickException(str(exc)) from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pympisr")
def main() -> None:
    """pympisr: restore MPI system matrices with networks trained on simulations."""
