"""``pympisr export CHECKPOINT --out NAME.onnx``: end-to-end ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._parsing import json_object_file


@click.command(name="export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output .onnx file; golden .npy pairs are written beside it.")
@click.option("--metrics", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file of test metrics to store in the model's metadata.")
@click.option("--description", help="Training-data description for the metadata.")
@click.option("--register", "register_name",
              help="Add the model to the manifest.json in the output folder under this "
                   "name (replacing an entry of the same name).")
@click.option("--live-weights", is_flag=True, help="Export the live instead of the EMA "
              "weights.")
@click.option("--data-consistency", type=click.Choice(["stride", "block"]),
              help="Add TranSMS' data-consistency projection (no weights) to a "
                   "super-resolution network trained without it.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(checkpoint: Path, out: Path, metrics: Path | None, description: str | None,
            register_name: str | None, live_weights: bool, data_consistency: str | None,
            overwrite: bool) -> None:
    """Export a training CHECKPOINT to a self-contained ONNX graph (DESIGN section 8).

    The export is checked against PyTorch at two grid shapes and fails otherwise. The
    sha256 sidecar OUT.sha256 written beside the model vouches for it when it is used
    with --model outside a manifest folder.
    """
    from ..atomic import check_output_path
    from ..export import export_checkpoint

    if out.suffix != ".onnx":
        raise click.BadParameter("must end in .onnx", param_hint="--out")
    check_output_path(out)
    test_metrics = None if metrics is None else json_object_file(metrics, "--metrics")
    result = export_checkpoint(checkpoint, out, test_metrics=test_metrics,
                               description=description, ema=not live_weights,
                               data_consistency=data_consistency, overwrite=overwrite)
    report_export(result, f"ONNX vs PyTorch max relative difference "
                          f"{result.parity_error:.1e}", register_name)


def report_export(result: Any, detail: str, register_name: str | None) -> None:
    """Print the files an export (:class:`pympisr.export.ExportResult`) wrote and
    ``detail``; register the model in the manifest of its folder under
    ``register_name`` if given."""
    click.echo(f"wrote {result.path} ({result.path.stat().st_size / 1e6:.2f} MB), "
               f"{result.golden_input.name}, {result.golden_output.name}, "
               f"{result.sidecar.name if result.sidecar else ''}; {detail}")
    if register_name:
        from ..model_zoo import manifest_entry, register_model
        manifest = register_model(manifest_entry(register_name, result), result.path.parent)
        click.echo(f"registered {register_name!r} in {manifest}")
