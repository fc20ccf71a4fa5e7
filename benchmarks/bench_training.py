"""Benchmark: training throughput (samples/s) of every registered network size.

    python benchmarks/bench_training.py [--models NAME ...] [--dims 2 3] [--paper]
        [--batch 32] [--threads 2] [--steps 20] [--warmup 3] [--repeats 3] [--device auto]

For each network of ``pympisr.models.available_models()`` (paper sizes, i.e. names
without ``-small``/``-tiny``, only on a GPU or with ``--paper``) and each of 2D/3D that
the network supports, two loops with the same model, batch, threads and device run in
turn ``--repeats`` times:

* trainer: :meth:`pympisr.training.Trainer.fit` on a small simulated dataset (samples
  made on the fly by the task, EMA, schedule, loss check, progress bookkeeping);
  throughput from ``TrainResult.train_time_s`` of a continued ``fit`` after ``--warmup``
  steps, so validation and checkpoint writing are not counted;
* bare loop: forward, task loss, backward and Adam step on precomputed batches in memory.

The task follows the network: inpainting for networks that take a mask, upsampling for
networks with a scale factor > 1, denoising otherwise. Prints a markdown table with the
medians over the repeats and the ratio trainer / bare loop (target >= 0.9, issue 15). On
a shared machine run it a few times and compare medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

PATCH = {2: 32, 3: 16}


def is_cpu_size(name: str) -> bool:
    """Small variants meant for CPU training (DESIGN.md section 6)."""
    return name.endswith(("-small", "-tiny"))


def task_for(net) -> str:
    if getattr(net, "takes_mask", False):
        return "inpaint"
    return "upsample" if getattr(net, "scale_factor", 1) > 1 else "denoise"


def make_config(name: str, dims: int, task: str, scale: int, root: Path, out: Path,
                args: argparse.Namespace):
    from pympisr.training import TrainingConfig

    return TrainingConfig.from_dict({
        "experiment": {"name": f"bench-{name}-{dims}d", "task": task, "scale_factor": scale,
                       "seed": 0, "output_dir": str(out)},
        "data": {"root": str(root), "dims": dims, "patch_size": PATCH[dims],
                 "val_components": 8},
        "model": {"name": name},
        "ema": {"enabled": True, "decay": 0.999},
        "train": {"steps": args.warmup, "batch_size": args.batch, "log_every": 25,
                  "val_every": 10**9, "checkpoint_every": 10**9, "threads": args.threads,
                  "device": args.device, "amp": True},
    })


def trainer_rate(config, args: argparse.Namespace) -> tuple[float, str]:
    """Samples/s of Trainer.fit after the warm-up steps, and the precision used."""
    from pympisr.training import Trainer

    trainer = Trainer(config, progress=False)
    trainer.fit()  # warm-up (ends with one validation and checkpoint, not timed below)
    config.train.steps = args.warmup + args.steps
    result = trainer.fit()
    return result.steps_run * args.batch / result.train_time_s, trainer.precision.name


def bare_rate(config, args: argparse.Namespace) -> float:
    """Samples/s of a plain PyTorch loop on precomputed batches (same model and batch)."""
    import torch
    from torch.utils.data import default_collate

    from pympisr.models import build_model, model_spec
    from pympisr.models.conditioning import run_network
    from pympisr.training import Trainer

    probe = Trainer(config, progress=False)  # same device, precision, task and data
    task, data, device = probe.task, probe.train_set, probe.device
    torch.manual_seed(0)
    options = {**model_spec(config.model.name).defaults, "dims": config.data.dims}
    model = build_model(config.model.name, **options).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batches = []
    for b in range(4):
        keys = [(i % len(data), 1000 * b + i) for i in range(args.batch)]
        batch = default_collate([data[k] for k in keys])
        batches.append({k: v.to(device) for k, v in batch.items()})

    def step(batch) -> None:
        with probe.autocast():
            pred = run_network(model, batch["input"], batch.get("sigma"), batch.get("mask"))
        loss = task.loss(pred.float(), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(args.warmup):
        step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(args.steps):
        step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return args.steps * args.batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="registry names "
                        "(default: all; paper sizes only on a GPU or with --paper)")
    parser.add_argument("--dims", nargs="*", type=int, default=[2, 3], choices=[2, 3])
    parser.add_argument("--paper", action="store_true", help="include paper sizes on a CPU")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    args = parser.parse_args()

    from pympisr.models import available_models, build_model
    from pympisr.simulation.generate import generate_dataset
    from pympisr.training.precision import select_device

    device = select_device(args.device)
    names = args.models or [n for n in available_models()
                            if is_cpu_size(n) or args.paper or device.type == "cuda"]
    work = Path(tempfile.mkdtemp(prefix="pympisr-bench-training-"))
    roots = {}
    print(f"device {device}, threads {args.threads}, batch {args.batch}, "
          f"{args.steps} timed steps x {args.repeats} repeats\n")
    print("| network | dims | task | parameters | precision | trainer samples/s "
          "| bare loop samples/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        for dims in args.dims:
            try:
                net = build_model(name, dims=dims)
            except (ValueError, TypeError):
                continue  # the network does not support this dimensionality
            if dims not in roots:  # small simulated dataset, made once per dims
                roots[dims] = work / f"data{dims}d"
                generate_dataset(roots[dims], dims=dims, splits={"train": 4, "val": 1},
                                 seed=0, workers=1, grid_max=PATCH[dims] - 4,
                                 progress=False)
            task, scale = task_for(net), int(getattr(net, "scale_factor", 1))
            params = sum(p.numel() for p in net.parameters())
            trainer, bare, ratios, precision = [], [], [], "?"
            try:
                for repeat in range(args.repeats):
                    out = work / f"run-{name}-{dims}d-{repeat}"
                    config = make_config(name, dims, task, scale, roots[dims], out, args)
                    rate, precision = trainer_rate(config, args)
                    trainer.append(rate)
                    bare.append(bare_rate(config, args))
                    ratios.append(trainer[-1] / bare[-1])
            except (ValueError, RuntimeError) as exc:  # report and go on with the others
                print(f"| {name} | {dims}D | {task} | {params:,} | failed: "
                      f"{type(exc).__name__}: {exc} | | | |", flush=True)
                continue
            print(f"| {name} | {dims}D | {task} | {params:,} | {precision} "
                  f"| {statistics.median(trainer):.1f} | {statistics.median(bare):.1f} "
                  f"| {statistics.median(ratios):.2f} |", flush=True)
    print(f"\n(scratch data and runs in {work})")


if __name__ == "__main__":
    main()
