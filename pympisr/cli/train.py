"""``pympisr train CONFIG.toml [--resume]``: train a restoration network.

Under ``torchrun`` (``torchrun --nproc_per_node N -m pympisr train CONFIG.toml``) the N
processes train one model data-parallel (:mod:`pympisr.training.distributed`).
"""

from __future__ import annotations

from pathlib import Path

import click

from ._parsing import FiniteFloat


@click.command(name="train")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="Continue from OUTPUT_DIR/last.pt.")
@click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path),
              help="Override [data] root (dataset folder).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Override [experiment] output_dir.")
@click.option("--steps", type=click.IntRange(min=1), help="Override [train] steps.")
@click.option("--max-minutes", type=FiniteFloat(min=0.0),
              help="Override [train] max_minutes (stop and checkpoint after this time).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(config: Path, resume: bool, data_root: Path | None, output_dir: Path | None,
            steps: int | None, max_minutes: float | None, quiet: bool) -> None:
    """Train the network described by the TOML experiment CONFIG.

    Writes OUTPUT_DIR/last.pt, best.pt (lowest validation loss, EMA weights),
    history.json and loss.png. Export a checkpoint with `pympisr export`.
    Launched by torchrun, the processes train data-parallel (train.batch_size is the
    global batch; rank 0 writes the files).
    """
    from ..training import Trainer, load_config
    from ..training.distributed import DistributedContext, process_group
    from ..training.precision import select_device

    cfg = load_config(config)
    if data_root is not None:
        cfg.data.root = str(data_root)
    if output_dir is not None:
        cfg.experiment.output_dir = str(output_dir)
    if steps is not None:
        cfg.train.steps = steps
    if max_minutes is not None:
        cfg.train.max_minutes = max_minutes
    cfg.validate(str(config))
    last = Path(cfg.experiment.output_dir) / "last.pt"
    if last.exists() and not resume:
        raise click.ClickException(f"{last} exists: pass --resume to continue that run, "
                                   "or choose another --output-dir")
    context = DistributedContext.from_environment()
    with process_group(context, select_device(cfg.train.device, context.local_rank)):
        trainer = Trainer(cfg, progress=not quiet, distributed=context)
        result = trainer.fit(resume=resume)
    if not context.is_main:
        return
    if result.steps_run == 0 and result.finished:
        click.echo(f"{cfg.experiment.name}: already finished at step {result.step} "
                   f"(train.steps = {cfg.train.steps}); nothing to train. Raise --steps to "
                   "continue training.")
    state = "finished" if result.finished else "stopped at the time limit (use --resume)"
    loss = "noise-weighted L1" if cfg.loss.noise_floor > 0 else "L1"
    click.echo(f"{cfg.experiment.name}: {state} at step {result.step} after "
               f"{result.elapsed_s / 60:.1f} min; train {loss} {result.train_loss:.4f}, "
               f"val {loss} {result.val_loss:.4f} (best {result.best_val_loss:.4f}, "
               f"noisy input {result.val_identity_loss:.4f})")
    click.echo(f"checkpoints: {result.last_checkpoint}, {result.best_checkpoint}")
