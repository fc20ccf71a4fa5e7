"""``pympisr evaluate``: compare restoration models with the classical baselines.

Three protocols (DESIGN section 12): ``papers`` (default; degraded noisy copies of a
simulated test split's components at fixed relative noise levels, for every task:
``--task denoise|upsample|accelerate|inpaint``, :mod:`pympisr.evaluation`),
``calibration`` (one absolute noise floor per simulated SM, scores per relative-noise
bin, :mod:`pympisr.calibration_protocol`; 2D SMs, or 3D with ``--dims 3``) and ``image``
(phantom reconstructions with noisy / DCT-F / restored / clean SMs, 2D only,
:mod:`pympisr.image_protocol`). The last two simulate their own SMs and need no
``--data``.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from ._parsing import FiniteFloat, comma_separated, parse_range


def _parse_sigmas(ctx: click.Context, param: click.Parameter, value: str | None
                  ) -> list[float] | None:
    if value is None:
        return None
    sigmas = comma_separated(value, float, "numbers")
    if not sigmas or any(not math.isfinite(s) or s < 0 for s in sigmas):
        raise click.BadParameter(f"{value!r}: give at least one noise level, all finite "
                                 "and >= 0")
    return sigmas


def _parse_scales(ctx: click.Context, param: click.Parameter, value: str | None
                  ) -> list[int] | None:
    if value is None:
        return None
    scales = comma_separated(value, int, "integers")
    if not scales or any(s < 1 for s in scales) or len(set(scales)) != len(scales):
        raise click.BadParameter(f"{value!r}: give distinct scale factors >= 1")
    return scales


def _parse_names(ctx: click.Context, param: click.Parameter, value: str | None
                 ) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@click.command(name="evaluate")
@click.option("--protocol", type=click.Choice(["papers", "calibration", "image"]),
              default="papers", show_default=True,
              help="papers: fixed relative noise on a test split (needs --data); calibration: "
                   "one absolute noise floor per simulated SM, scores per relative-noise bin; "
                   "image: phantom reconstructions with noisy/DCT-F/restored/clean SMs.")
@click.option("--task", "task_name", type=click.Choice(["denoise", "upsample", "accelerate",
              "inpaint"]), default="denoise", show_default=True,
              help="The restoration task evaluated (all protocols).")
@click.option("--scale", "scales", default=None, callback=_parse_scales,
              help="upsample/accelerate: scale factor(s), comma separated (default 2); "
                   "several write OUT/x<s>/ each and OUT/nrmse_table.md (TranSMS Table III).")
@click.option("--models", "model_list", default=None, callback=_parse_names,
              help="Comma-separated shipped model names or .onnx paths (adds to --model).")
@click.option("--baselines", default=None, callback=_parse_names,
              help="papers, tasks other than denoise: classical methods, comma separated, "
                   "of task (the task's baseline), strided (TranSMS' strided bicubic, "
                   "upsample), cs-random (CS from a random sample), cs (CS with the task's "
                   "operator), or none; default: task[,strided],cs-random for upsample/"
                   "accelerate, task otherwise.")
@click.option("--cs-iterations", type=click.IntRange(min=1), default=None,
              help="ADMM iterations of the CS baselines (default 300).")
@click.option("--data", "data", default=None, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Dataset folder written by `pympisr dataset` (papers).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--model", "models", multiple=True,
              help="Shipped model name or path to an .onnx file (repeatable).")
@click.option("--trust-model", is_flag=True,
              help="Run --model files that no manifest or sha256 sidecar vouches for.")
@click.option("--sigmas", default=None, callback=_parse_sigmas,
              help="Noise levels (std of real and imag parts, relative to unit-max components); "
                   "default 0,0.06,0.1,0.2,0.3 (denoise, inpaint), 0,0.06,0.1 (upsample, "
                   "accelerate).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: papers writes per_component.csv, summary.csv, table.md, "
                   "examples.png, metrics.json; calibration writes calibration_*.csv/md/png "
                   "and metrics.json; image writes image_*.csv/md/png and metrics.json.")
@click.option("--max-components", type=click.IntRange(min=1), default=None,
              help="papers: evaluate at most N components, spread evenly over the split; "
                   "calibration: keep at most the N strongest components per simulated SM "
                   "(default 400 in 2D, 300 in 3D).")
@click.option("--dims", type=click.IntRange(2, 3), default=None,
              help="calibration: simulate 2D (default) or 3D SMs and use the task's 2D or 3D "
                   "models. The image protocol is 2D only; papers takes it from --data.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Noise seed (calibration/image: also of the simulated SMs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--no-dct", is_flag=True, help="Leave out the DCT-F baseline.")
@click.option("--dct-threshold", type=FiniteFloat(min=0.0), default=None,
              help="DCT-F soft threshold in units of sigma (default: papers: the tuned "
                   "value; calibration: tuned per relative-noise bin on the data; image: "
                   "the per-bin factors of pympisr.calibration_protocol.TUNED_DCT_FACTORS); "
                   "calibration/image: also of DCT-F+bicubic and biharmonic+DCT-F.")
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
def command(protocol: str, task_name: str, scales: list[int] | None,
            model_list: list[str] | None, baselines: list[str] | None,
            cs_iterations: int | None, data: Path | None, split: str, models: tuple[str, ...],
            trust_model: bool, sigmas: list[float] | None, out_dir: Path,
            max_components: int | None, seed: int, batch_size: int, no_dct: bool,
            dct_threshold: float | None, num_sms: int | None,
            spf_range: tuple[float, float] | None, noise_file: Path | None, snr_mode: str,
            dims: int | None, overwrite: bool) -> None:
    """Evaluate the classical baselines and MODELs (PSNR, SSIM, nRMSE; correlation for
    images).

    papers: degraded noisy copies of a split's components for TASK; prints the papers'
    markdown tables (denoise: rows noise level, columns method; other tasks: rows method,
    columns grid-size bin x noise level; inpaint also in the masked region) and writes
    per-component and summary CSV files, the table, a figure of examples and
    metrics.json to OUT (OUT/x<s>/ per scale when several are given). calibration /
    image: simulate NUM_SMS SMs, print the protocol's tables and write its CSV files,
    table, figure and metrics.json to OUT. Without --model these two use the default
    shipped model.
    """
    models = tuple(models) + tuple(model_list or ())
    if dims is not None and protocol == "papers":
        raise click.UsageError("--protocol papers takes the dimensionality from the dataset "
                               "(--data); --dims is for --protocol calibration")
    if dims == 3 and protocol == "image":
        raise click.UsageError("--protocol image simulates 2D SMs only; --dims 3 is for "
                               "--protocol calibration")
    if protocol != "papers":
        _simulated_protocol(protocol, task_name=task_name, scales=scales, models=models,
                            trust_model=trust_model, out_dir=out_dir,
                            seed=seed, no_dct=no_dct, dct_threshold=dct_threshold,
                            num_sms=num_sms, spf_range=spf_range, noise_file=noise_file,
                            snr_mode=snr_mode, dims=dims or 2,
                            max_components=max_components, overwrite=overwrite)
        return
    if data is None:
        raise click.UsageError("--protocol papers needs --data (a dataset folder written by "
                               "`pympisr dataset`)")
    _papers_protocol(task_name, scales, models, baselines, cs_iterations, data=data,
                     split=split, trust_model=trust_model, sigmas=sigmas, out_dir=out_dir,
                     max_components=max_components, seed=seed, batch_size=batch_size,
                     no_dct=no_dct, dct_threshold=dct_threshold, overwrite=overwrite)


def _papers_protocol(task_name: str, scales: list[int] | None, models: tuple[str, ...],
                     baselines: list[str] | None, cs_iterations: int | None, *, data: Path,
                     split: str, trust_model: bool, sigmas: list[float] | None,
                     out_dir: Path, max_components: int | None, seed: int, batch_size: int,
                     no_dct: bool, dct_threshold: float | None, overwrite: bool) -> None:
    """Run the papers' protocol for one task and every scale (see :func:`command`)."""
    from ..atomic import check_output_path
    from ..datasets import ComponentStore
    from ..errors import InvalidInputError, PympisrError
    from ..evaluation import (baseline_methods, dct_method, evaluate, evaluation_task,
                              markdown_tables, model_method, nrmse_table, output_paths,
                              store_dims, write_results)
    from ..model_zoo import resolve_model
    from ..restoration import OnnxRestorer

    super_resolution = task_name in ("upsample", "accelerate")
    if scales is not None and not super_resolution:
        raise click.BadParameter(f"--task {task_name} keeps the grid; it takes no --scale",
                                 param_hint="--scale")
    scales = scales or ([2] if super_resolution else [1])
    if super_resolution and min(scales) < 2:
        raise click.BadParameter("super-resolution scale factors must be >= 2",
                                 param_hint="--scale")
    if baselines is not None and task_name == "denoise":
        raise click.BadParameter("denoise uses DCT-F (--no-dct, --dct-threshold)",
                                 param_hint="--baselines")
    check_output_path(out_dir, directory=True)
    folders = {s: out_dir if len(scales) == 1 else out_dir / f"x{s}" for s in scales}
    for folder in folders.values():
        output_paths(folder, overwrite=overwrite)
    table_path = out_dir / "nrmse_table.md"
    if super_resolution and table_path.exists() and not overwrite:
        raise FileExistsError(f"{table_path}: exists; pass --overwrite to replace")
    store = ComponentStore(data, split)
    dims = store_dims(store)
    by_scale: dict[int, list[object]] = {s: [] for s in scales}
    for model in models:
        try:
            # resolved here so --trust-model reaches the model loader
            resolved = resolve_model(model, trust=trust_model)
            scale = OnnxRestorer(resolved).scale_factor if super_resolution else 1
            if scale not in by_scale:
                raise ValueError(f"a x{scale} model; evaluated scales: "
                                 f"{', '.join(map(str, scales))}")
            by_scale[scale] += [  # network + safety step (as restore), the network alone
                model_method(resolved, task=task_name, scale_factor=scale),
                model_method(resolved, safety=None, task=task_name, scale_factor=scale)]
        except PympisrError:
            raise  # the message names the model file
        except ValueError as exc:  # the model is not one of this task (or scale)
            raise InvalidInputError(f"model {model!r}: {exc}") from exc
    results = {}
    for scale in scales:
        task = evaluation_task(task_name, dims, scale if super_resolution else None)
        if task_name == "denoise":
            methods = [] if no_dct else [dct_method() if dct_threshold is None
                                         else dct_method(dct_threshold)]
        else:
            names = None if baselines is None else [b for b in baselines if b != "none"]
            methods = baseline_methods(task, names, cs_iterations=cs_iterations)
        methods += by_scale[scale]
        names_used = [m.name for m in methods]
        if len(set(names_used)) != len(names_used):
            raise click.BadParameter(f"two methods share a name: {names_used}",
                                     param_hint="--model")
        result = evaluate(store, methods, sigmas, task=task, seed=seed,
                          max_components=max_components, batch_size=batch_size)
        click.echo(markdown_tables(result))
        for path in write_results(result, folders[scale], overwrite=overwrite).values():
            click.echo(f"wrote {path}")
        results[scale] = result
    if super_resolution:
        from ..atomic import atomic_output

        table = nrmse_table(results)
        click.echo(table)
        with atomic_output(table_path, overwrite=overwrite) as tmp:
            tmp.write_text(table)
        click.echo(f"wrote {table_path}")


def _simulated_protocol(protocol: str, *, task_name: str, scales: list[int] | None,
                        models: tuple[str, ...], trust_model: bool,
                        out_dir: Path, seed: int, no_dct: bool, dct_threshold: float | None,
                        num_sms: int | None, spf_range: tuple[float, float] | None,
                        noise_file: Path | None, snr_mode: str, dims: int,
                        max_components: int | None, overwrite: bool) -> None:
    """Run the calibration or image protocol for one task and write its files (see
    :func:`command`): the task's classical methods (``--no-dct`` drops the DCT-F ones)
    and the models, ``dims``-D models of the task (and scale); ``max_components``: kept
    components per SM (calibration)."""
    from .. import calibration_protocol as cal
    from .. import image_protocol as img
    from ..atomic import check_output_path
    from ..errors import InvalidInputError, PympisrError
    from ..model_zoo import resolve_model
    from ..restoration import OnnxRestorer

    super_resolution = task_name in ("upsample", "accelerate")
    if scales is not None and (not super_resolution or len(scales) != 1 or scales[0] < 2):
        raise click.BadParameter(
            f"--protocol {protocol} takes one scale factor >= 2, for upsample or accelerate"
            if super_resolution else f"--task {task_name} keeps the grid; it takes no --scale",
            param_hint="--scale")
    scale = (scales or [2])[0] if super_resolution else None
    check_output_path(out_dir, directory=True)
    if protocol == "calibration":
        cal.calibration_output_paths(out_dir, overwrite=overwrite)
    else:
        img.image_output_paths(out_dir, overwrite=overwrite)
    task = cal.protocol_task(task_name, scale, dims)
    methods = cal.default_methods((), dct=not no_dct, task=task)
    for name, method in list(methods.items()):  # one fixed factor instead of the tuning
        make = cal.dct_variant(name, method)
        if dct_threshold is not None and make is not None:
            methods[name] = make(dct_threshold)
    wanted = task_name + ("" if scale is None else f" x{scale}")
    for model in (models or (None,)):
        try:
            restorer = OnnxRestorer(resolve_model(model, task=task_name, dims=dims,
                                                  trust=trust_model, scale=scale))
        except PympisrError:
            raise  # the message names the model file
        except ValueError as exc:
            raise InvalidInputError(f"model {model!r}: {exc}") from exc
        if (restorer.task != task_name or restorer.dims != dims
                or (scale is not None and restorer.scale_factor != scale)):
            found = restorer.task + ("" if scale is None else f" x{restorer.scale_factor}")
            raise InvalidInputError(f"model {model!r}: a {restorer.dims}D {found!r} model; "
                                    f"--task {task_name} needs a {dims}D {wanted!r} model")
        label = "pympisr:" + (restorer.entry["name"] if restorer.entry else restorer.path.stem)
        if label in methods:
            raise click.BadParameter(f"two methods share the name {label!r}",
                                     param_hint="--model")
        methods[label] = cal.pympisr_method(restorer, task=task_name, scale=scale)
    floor = cal.NoiseFloor() if noise_file is None else cal.NoiseFloor.from_file(noise_file)
    spf_ranges = cal.DEFAULT_SPF_RANGES if spf_range is None else (spf_range,)
    if protocol == "calibration":
        result = cal.evaluate_calibration(
            num_sms or 12, seed=seed, methods=methods, spf_ranges=spf_ranges, floor=floor,
            dct_factors=cal.DCT_FACTORS if dct_threshold is None else None, task=task,
            dims=dims, max_components=max_components)
        click.echo(cal.markdown_tables(result))
        paths = cal.write_calibration_results(result, out_dir, overwrite=overwrite)
    else:
        result = img.evaluate_images(
            num_sms or 24, seed=seed, methods=methods, spf_ranges=spf_ranges, floor=floor,
            snr_mode=snr_mode, task=task,
            dct_factor=dct_threshold)  # None: the per-bin factors TUNED_DCT_FACTORS
        click.echo(img.markdown_tables(result))
        paths = img.write_image_results(result, out_dir, overwrite=overwrite)
    for path in paths.values():
        click.echo(f"wrote {path}")
