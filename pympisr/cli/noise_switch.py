"""``pympisr noise-switch LOW HIGH --level L --out NAME.onnx``: two exported networks of
one task in one graph, chosen per component by its noise level."""

from __future__ import annotations

from pathlib import Path

import click

from ._parsing import FiniteFloat, json_object_file
from .export import report_export


@click.command(name="noise-switch")
@click.argument("low")
@click.argument("high")
@click.option("--level", required=True, type=FiniteFloat(min=0.0),
              help="Relative noise level (noise std / the component's maximum magnitude) "
                   "at and below which LOW's network is used; HIGH's above it.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output .onnx file; golden .npy files are written beside it.")
@click.option("--metrics", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file of test metrics to store in the model's metadata.")
@click.option("--register", "register_name",
              help="Add the switch to the manifest.json in the output folder under this "
                   "name (replacing an entry of the same name).")
@click.option("--trust-model", is_flag=True,
              help="Use LOW/HIGH files that neither a manifest nor a sidecar vouches for.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(low: str, high: str, level: float, out: Path, metrics: Path | None,
            register_name: str | None, trust_model: bool, overwrite: bool) -> None:
    """Compose the exported models LOW and HIGH (manifest names or .onnx files) into a
    noise switch (pympisr.export.noise_switch): LOW's network restores the components
    whose relative noise is at most --level, HIGH's the others.

    Typical use: LOW trained with the noise-level-weighted loss (most accurate at low
    noise), HIGH with the plain loss. The switch is checked against its parts at
    export. Both parts run on every component.
    """
    from ..atomic import check_output_path
    from ..export.noise_switch import compose_noise_switch
    from ..model_zoo import resolve_model, verify_model

    if out.suffix != ".onnx":
        raise click.BadParameter("must end in .onnx", param_hint="--out")
    check_output_path(out)
    test_metrics = None if metrics is None else json_object_file(metrics, "--metrics")
    parts = [resolve_model(name, trust=trust_model) for name in (low, high)]
    for part in parts:
        verify_model(part)
    result = compose_noise_switch(parts[0].path, parts[1].path, out, level=level,
                                  test_metrics=test_metrics, overwrite=overwrite)
    report_export(result, f"{parts[0].path.name} at relative noise <= {level:g}, "
                          f"{parts[1].path.name} above; max relative difference from "
                          f"the parts {result.parity_error:.1e}", register_name)
