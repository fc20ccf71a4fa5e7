"""``pympisr evaluate``: compare denoising models with DCT-F on a simulated test split."""

from __future__ import annotations

from pathlib import Path

import click

from ._parsing import comma_separated


def _parse_sigmas(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    sigmas = comma_separated(value, float, "numbers")
    if not sigmas or any(s < 0 for s in sigmas):
        raise click.BadParameter(f"{value!r}: give at least one noise level, all >= 0")
    return sigmas


@click.command(name="evaluate")
@click.option("--data", "data", required=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Dataset folder written by `pympisr dataset`.")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--model", "models", multiple=True,
              help="Shipped model name or path to an .onnx file (repeatable).")
@click.option("--sigmas", default="0,0.06,0.10,0.20,0.30", show_default=True,
              callback=_parse_sigmas,
              help="Noise levels (std of real and imag parts, relative to unit-max components).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for per_component.csv, summary.csv, table.md, examples.png, metrics.json.")
@click.option("--max-components", type=click.IntRange(min=1), default=None,
              help="Evaluate at most N components, spread evenly over the split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--no-dct", is_flag=True, help="Leave out the DCT-F baseline.")
@click.option("--dct-threshold", type=click.FloatRange(min=0), default=None,
              help="DCT-F soft threshold in units of sigma (default: the tuned value).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(data: Path, split: str, models: tuple[str, ...], sigmas: list[float], out_dir: Path,
            max_components: int | None, seed: int, batch_size: int, no_dct: bool,
            dct_threshold: float | None, overwrite: bool) -> None:
    """Evaluate DCT-F and MODELs on noisy copies of a split's components (PSNR, SSIM, nRMSE).

    Prints a markdown table (rows: noise level, columns: method) and writes the
    per-component and summary CSV files, the table and a figure of examples to OUT.
    """
    from ..datasets import ComponentStore
    from ..evaluation import dct_method, evaluate_denoising, markdown_tables, model_method
    from ..evaluation import output_paths, write_results

    try:
        output_paths(out_dir, overwrite=overwrite)
        store = ComponentStore(data, split)
    except (FileExistsError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    methods = []
    if not no_dct:
        methods.append(dct_method() if dct_threshold is None else dct_method(dct_threshold))
    for model in models:
        try:
            methods.append(model_method(model))
        except (OSError, LookupError, ValueError, RuntimeError) as exc:
            raise click.ClickException(f"model {model!r}: {exc}") from exc
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise click.ClickException(f"two methods share a name: {names}")
    result = evaluate_denoising(store, methods, sigmas, seed=seed,
                                max_components=max_components, batch_size=batch_size)
    click.echo(markdown_tables(result))
    try:
        paths = write_results(result, out_dir, overwrite=overwrite)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in paths.values():
        click.echo(f"wrote {path}")
