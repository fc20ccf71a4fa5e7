"""Benchmark: the papers' tables for super-resolution and inpainting (pympisr.evaluation).

    python benchmarks/bench_sr_tables.py --data DIR [--split test] [--task upsample]
        [--scales 2,4,8] [--models A.onnx,B] [--max-components 200] [--sigmas 0,0.06]
        [--baselines task,strided,cs-random] [--cs-iterations 300] [--seed 0]

For each scale factor (super-resolution) the classical baselines (the task's bicubic /
tricubic, TranSMS' strided bicubic and random-sample compressed sensing by default) and
every model of that scale (network + safety step, and the network alone) are evaluated
with the papers' protocol; prints the seed paper's Table 3/4-shaped tables (rows method,
columns grid-size bin x sigma), TranSMS' Table III (nRMSE % per scale, noiseless /
noisy) and the wall time per scale. ``--task inpaint`` prints Table 5 (masked region and
volume). Models are manifest names or ``.onnx`` paths (``--trust-model`` for files
without a sidecar); a model is used at its own scale factor only.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (pympisr dataset)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--task", choices=("upsample", "accelerate", "inpaint"),
                        default="upsample")
    parser.add_argument("--scales", default="2,4,8", help="comma-separated scale factors")
    parser.add_argument("--models", default="", help="comma-separated names or .onnx paths")
    parser.add_argument("--trust-model", action="store_true")
    parser.add_argument("--max-components", type=int, default=200)
    parser.add_argument("--sigmas", default=None, help="default: the task's TASK_SIGMAS")
    parser.add_argument("--baselines", default=None, help="comma-separated BASELINES")
    parser.add_argument("--cs-iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from pympisr.datasets import ComponentStore
    from pympisr.evaluation import (baseline_methods, evaluate, evaluation_task,
                                    markdown_tables, model_method, nrmse_table, store_dims)
    from pympisr.model_zoo import resolve_model
    from pympisr.restoration import OnnxRestorer

    store = ComponentStore(args.data, args.split)
    dims = store_dims(store)
    scales = [1] if args.task == "inpaint" else [int(s) for s in args.scales.split(",")]
    sigmas = None if args.sigmas is None else [float(s) for s in args.sigmas.split(",")]
    baselines = None if args.baselines is None else args.baselines.split(",")
    models = [resolve_model(m, trust=args.trust_model) for m in args.models.split(",") if m]
    model_scale = [OnnxRestorer(m).scale_factor for m in models]
    results = {}
    for scale in scales:
        task = evaluation_task(args.task, dims, None if args.task == "inpaint" else scale)
        methods = baseline_methods(task, baselines, cs_iterations=args.cs_iterations)
        for model, s in zip(models, model_scale):
            if s == task.scale_factor:
                methods += [model_method(model, task=args.task, scale_factor=s),
                            model_method(model, safety=None, task=args.task, scale_factor=s)]
        tic = time.perf_counter()
        results[scale] = evaluate(store, methods, sigmas, task=task, seed=args.seed,
                                  max_components=args.max_components)
        print(markdown_tables(results[scale]))
        print(f"{args.task} x{scale}: {time.perf_counter() - tic:.1f} s\n")
    if args.task != "inpaint":
        print(nrmse_table(results))


if __name__ == "__main__":
    main()
