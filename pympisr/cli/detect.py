"""``pympisr detect FILE``: find corrupted calibration positions of a system matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._parsing import FiniteFloat

if TYPE_CHECKING:
    from ..restoration.detect import DetectionResult

__all__ = ["command"]


@click.command("detect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--threshold", type=FiniteFloat(min=0.0), default=None,
              help="Robust z-score above which a position is flagged "
                   "[default: pympisr.restoration.detect.DEFAULT_THRESHOLD].")
@click.option("--components", type=click.IntRange(min=1), default=256, show_default=True,
              help="Number of frequency components to compare positions in.")
@click.option("--meander", is_flag=True,
              help="The robot path was a meander (x reversed on every other row).")
@click.option("--plot", "plot", type=click.Path(dir_okay=False), default=None,
              help="Write the score maps and the score along acquisition order to this PNG.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the mask (bool (Nz, Ny, Nx), True = valid) to this .npy file.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the highest-scoring flagged positions to list.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(file: str, threshold: float | None, components: int, meander: bool,
            plot: str | None, out: str | None, top: int, overwrite: bool) -> None:
    """Flag calibration positions of the MDF system matrix FILE whose data disagree
    with their neighbours in many frequency components (spikes, drifting runs of
    frames, lost frames). Prints a summary; the mask can feed inpainting."""
    import numpy as np

    from .. import load_system_matrix
    from ..atomic import atomic_output, check_output_path
    from ..errors import InvalidInputError
    from ..restoration.detect import DEFAULT_THRESHOLD, detect_corrupted

    for path in (plot, out):
        if path is not None:
            check_output_path(path)
            if not overwrite and _exists(path):
                raise FileExistsError(f"{path}: exists; pass --overwrite to replace it")
    if out is not None and not out.endswith(".npy"):
        raise InvalidInputError(f"--out {out}: the mask is written as NumPy .npy; give a "
                                "file name ending in .npy")
    sm = load_system_matrix(file)
    result = detect_corrupted(sm, threshold=DEFAULT_THRESHOLD if threshold is None
                              else threshold, components=components, meander=meander)
    nx, ny, nz = sm.grid
    click.echo(f"{file}: grid {nx} x {ny} x {nz} (x, y, z), {result.valid.size} positions, "
               f"{len(result.components)} components compared")
    click.echo(f"flagged {result.num_flagged} positions ({100 * result.fraction_flagged:.2f} %)"
               f" at threshold {result.threshold:g}")
    for (z, y, x), score in result.strongest(top):
        click.echo(f"  x={x:3d} y={y:3d} z={z:3d}  step {_step(result, (z, y, x)):6d}  "
                   f"score {score:8.1f}")
    if out is not None:
        with atomic_output(out, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, result.valid)
        click.echo(f"wrote {out}")
    if plot is not None:
        result.plot(plot, title=f"{file}: {result.num_flagged} of {result.valid.size} "
                                f"positions flagged", overwrite=overwrite)
        click.echo(f"wrote {plot}")


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).exists()


def _step(result: DetectionResult, position: tuple[int, int, int]) -> int:
    """Acquisition step at which ``position`` (z, y, x) was measured."""
    import numpy as np

    flat = int(np.ravel_multi_index(position, result.valid.shape))
    return int(np.flatnonzero(result.order == flat)[0])
