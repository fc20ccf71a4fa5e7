"""``pympisr evaluate``: compare denoising models with DCT-F.

Three protocols (DESIGN section 12): ``papers`` (default; noisy copies of a simulated
test split's components at fixed relative noise levels, :mod:`pympisr.evaluation`),
``calibration`` (one absolute noise floor per simulated SM, scores per relative-noise
bin, :mod:`pympisr.calibration_protocol`) and ``image`` (phantom reconstructions with
noisy / DCT-F / restored / clean SMs, :mod:`pympisr.image_protocol`). The last two
simulate their own SMs and need no ``--data``.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from ._parsing import FiniteFloat, comma_separated, parse_range


def _parse_sigmas(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    sigmas = comma_separated(value, float, "numbers")
    if not sigmas or any(not math.isfinite(s) or s < 0 for s in sigmas):
        raise click.BadParameter(f"{value!r}: give at least one noise level, all finite "
                                 "and >= 0")
    return sigmas


@click.command(name="evaluate")
@click.option("--protocol", type=click.Choice(["papers", "calibration", "image"]),
              default="papers", show_default=True,
              help="papers: fixed relative noise on a test split (needs --data); calibration: "
                   "one absolute noise floor per simulated SM, scores per relative-noise bin; "
                   "image: phantom reconstructions with noisy/DCT-F/restored/clean SMs.")
@click.option("--data", "data", default=None, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Dataset folder written by `pympisr dataset` (papers).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--model", "models", multiple=True,
              help="Shipped model name or path to an .onnx file (repeatable).")
@click.option("--trust-model", is_flag=True,
              help="Run --model files that no manifest or sha256 sidecar vouches for.")
@click.option("--sigmas", default="0,0.06,0.10,0.20,0.30", show_default=True,
              callback=_parse_sigmas,
              help="Noise levels (std of real and imag parts, relative to unit-max components).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: papers writes per_component.csv, summary.csv, table.md, "
                   "examples.png, metrics.json; calibration writes calibration_*.csv/md/png "
                   "and metrics.json; image writes image_*.csv/md/png and metrics.json.")
@click.option("--max-components", type=click.IntRange(min=1), default=None,
              help="Evaluate at most N components, spread evenly over the split.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Noise seed (calibration/image: also of the simulated SMs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--no-dct", is_flag=True, help="Leave out the DCT-F baseline.")
@click.option("--dct-threshold", type=FiniteFloat(min=0.0), default=None,
              help="DCT-F soft threshold in units of sigma (default: papers: the tuned "
                   "value; calibration: tuned per relative-noise bin on the data; image: "
                   "the per-bin factors of pympisr.calibration_protocol.TUNED_DCT_FACTORS).")
@click.option("--num-sms", type=click.IntRange(min=1), default=None,
              help="calibration/image: number of simulated SMs (default 12 / 24).")
@click.option("--spf-range", default=None, callback=parse_range,
              help="calibration/image: samples per FWHM 'lo,hi' for all SMs (default: "
                   "4,12 and 12,60 in turn, i.e. inside and beyond the training range).")
@click.option("--noise-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="calibration/image: shape the noise floor over frequency "
                                 "by the background std of this real MDF file.")
@click.option("--snr-mode", type=click.Choice(["mpifiles", "true"]), default="mpifiles",
              show_default=True, help="image: SNR for the thresholds, MPIFiles' rule on the "
                                      "noisy SM, or the known true SNR.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def command(protocol: str, data: Path | None, split: str, models: tuple[str, ...],
            trust_model: bool, sigmas: list[float], out_dir: Path,
            max_components: int | None, seed: int, batch_size: int, no_dct: bool,
            dct_threshold: float | None, num_sms: int | None,
            spf_range: tuple[float, float] | None, noise_file: Path | None, snr_mode: str,
            overwrite: bool) -> None:
    """Evaluate DCT-F and MODELs (PSNR, SSIM, nRMSE; correlation for images).

    papers: noisy copies of a split's components; prints a markdown table (rows: noise
    level, columns: method) and writes per-component and summary CSV files, the table, a
    figure of examples and metrics.json to OUT. calibration / image: simulate NUM_SMS
    SMs, print the protocol's tables and write its CSV files, table, figure and
    metrics.json to OUT. Without --model these two use the default shipped model.
    """
    if protocol != "papers":
        _simulated_protocol(protocol, models=models, trust_model=trust_model, out_dir=out_dir,
                            seed=seed, no_dct=no_dct, dct_threshold=dct_threshold,
                            num_sms=num_sms, spf_range=spf_range, noise_file=noise_file,
                            snr_mode=snr_mode, overwrite=overwrite)
        return
    if data is None:
        raise click.UsageError("--protocol papers needs --data (a dataset folder written by "
                               "`pympisr dataset`)")
    from ..atomic import check_output_path
    from ..datasets import ComponentStore
    from ..errors import InvalidInputError, PympisrError
    from ..evaluation import dct_method, evaluate_denoising, markdown_tables, model_method
    from ..evaluation import output_paths, write_results
    from ..model_zoo import resolve_model

    check_output_path(out_dir, directory=True)
    output_paths(out_dir, overwrite=overwrite)
    store = ComponentStore(data, split)
    methods = []
    if not no_dct:
        methods.append(dct_method() if dct_threshold is None else dct_method(dct_threshold))
    for model in models:
        try:
            # resolved here so --trust-model reaches the model loader
            resolved = resolve_model(model, trust=trust_model)
            methods.append(model_method(resolved))  # network + safety step (as restore)
            methods.append(model_method(resolved, safety=None))  # the network alone
        except PympisrError:
            raise  # the message names the model file
        except ValueError as exc:  # model_method: the model is not a denoising model
            raise InvalidInputError(f"model {model!r}: {exc}") from exc
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise click.BadParameter(f"two methods share a name: {names}", param_hint="--model")
    result = evaluate_denoising(store, methods, sigmas, seed=seed,
                                max_components=max_components, batch_size=batch_size)
    click.echo(markdown_tables(result))
    paths = write_results(result, out_dir, overwrite=overwrite)
    for path in paths.values():
        click.echo(f"wrote {path}")


def _simulated_protocol(protocol: str, *, models: tuple[str, ...], trust_model: bool,
                        out_dir: Path, seed: int, no_dct: bool, dct_threshold: float | None,
                        num_sms: int | None, spf_range: tuple[float, float] | None,
                        noise_file: Path | None, snr_mode: str, overwrite: bool) -> None:
    """Run the calibration or image protocol and write its files (see :func:`command`)."""
    from .. import calibration_protocol as cal
    from .. import image_protocol as img
    from ..atomic import check_output_path
    from ..errors import InvalidInputError, PympisrError
    from ..model_zoo import resolve_model
    from ..restoration import OnnxRestorer

    check_output_path(out_dir, directory=True)
    if protocol == "calibration":
        cal.calibration_output_paths(out_dir, overwrite=overwrite)
    else:
        img.image_output_paths(out_dir, overwrite=overwrite)
    methods: dict[str, cal.RestorationMethod] = {cal.NOISY: cal.noisy_method}
    if not no_dct:
        methods[cal.DCT] = cal.dct_method(cal.DEFAULT_DCT_FACTOR if dct_threshold is None
                                          else dct_threshold)
    for model in (models or (None,)):
        try:
            restorer = OnnxRestorer(resolve_model(model, task="denoise", dims=2,
                                                  trust=trust_model))
        except PympisrError:
            raise  # the message names the model file
        except ValueError as exc:
            raise InvalidInputError(f"model {model!r}: {exc}") from exc
        if restorer.task != "denoise" or restorer.dims != 2:
            raise InvalidInputError(f"model {model!r}: a {restorer.dims}D {restorer.task!r} "
                                    "model; the protocols need a 2D denoising model")
        label = "pympisr:" + (restorer.entry["name"] if restorer.entry else restorer.path.stem)
        if label in methods:
            raise click.BadParameter(f"two methods share the name {label!r}",
                                     param_hint="--model")
        methods[label] = cal.pympisr_method(restorer)
    floor = cal.NoiseFloor() if noise_file is None else cal.NoiseFloor.from_file(noise_file)
    spf_ranges = cal.DEFAULT_SPF_RANGES if spf_range is None else (spf_range,)
    if protocol == "calibration":
        result = cal.evaluate_calibration(
            num_sms or 12, seed=seed, methods=methods, spf_ranges=spf_ranges, floor=floor,
            dct_factors=cal.DCT_FACTORS if dct_threshold is None else None)
        click.echo(cal.markdown_tables(result))
        paths = cal.write_calibration_results(result, out_dir, overwrite=overwrite)
    else:
        result = img.evaluate_images(
            num_sms or 24, seed=seed, methods=methods, spf_ranges=spf_ranges, floor=floor,
            snr_mode=snr_mode,
            dct_factor=dct_threshold)  # None: the per-bin factors TUNED_DCT_FACTORS
        click.echo(img.markdown_tables(result))
        paths = img.write_image_results(result, out_dir, overwrite=overwrite)
    for path in paths.values():
        click.echo(f"wrote {path}")
