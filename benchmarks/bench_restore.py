"""Benchmark: restore a 2D 44 x 44 system matrix (3 x 817 components) with a shipped model,
and compare onnxruntime with PyTorch eager on the same batch.

    python benchmarks/bench_restore.py [--model NAME] [--threads N] [--repeats R]

Prints markdown tables. The data is complex Gaussian noise of the right shape: run time
does not depend on the values. The PyTorch side is the same end-to-end module
(:class:`pympisr.export.EndToEnd`) around the architecture and options named in the ONNX
model's metadata (weights do not affect timing), in eval mode under
``torch.inference_mode``.
Targets (issue 5): whole system matrix <= 30 s (stretch 10 s); onnxruntime / PyTorch <= 1.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="manifest name or .onnx path "
                        "(default: the manifest's first 2D denoising model)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: "
                        "pympisr.restoration.runtime.default_threads())")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128, help="components per batch")
    args = parser.parse_args()

    import torch

    from pympisr import SystemMatrix
    from pympisr.export import EndToEnd
    from pympisr.model_zoo import resolve_model
    from pympisr.models import build_model
    from pympisr.restoration import OnnxRestorer, restore_system_matrix
    from pympisr.restoration.runtime import default_threads

    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    resolved = resolve_model(args.model, task="denoise", dims=2)
    restorer = OnnxRestorer(resolved, threads=threads, batch_size=args.batch)
    rng = np.random.default_rng(0)
    shape = (3, 817, 1, 44, 44)
    data = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    sm = SystemMatrix(data=data, frequencies=np.arange(817) * 2.5e6 / 1632, grid=(44, 44, 1),
                      fov=np.array([0.02, 0.02, 0.001]), frequency_indices=np.arange(817))

    whole = best_of(lambda: restore_system_matrix(sm, model=restorer, progress=False),
                    args.repeats)
    meta = restorer.metadata
    print(f"model: {restorer.name} ({meta.get('model_name')}, "
          f"{meta.get('parameters')} parameters), threads: {threads}\n")
    print("| task | components | grid | time (s) | per component (ms) |")
    print("|---|---|---|---|---|")
    print(f"| restore_system_matrix, onnxruntime batch {args.batch} | 2451 | 44 x 44 | "
          f"{whole:.2f} | {1e3 * whole / 2451:.2f} |\n")

    batch = data[0, :args.batch, 0]
    feeds = {"sm": np.stack([batch.real, batch.imag], axis=1).astype(np.float32)}
    t_ort = best_of(lambda: restorer.session.run(["restored"], feeds), args.repeats + 1)
    net = build_model(meta["model_name"], **json.loads(meta["model_options"]))
    wrapper = EndToEnd(net.eval(), min_size=int(meta.get("min_size", 1))).eval()
    x = torch.from_numpy(feeds["sm"])
    with torch.inference_mode():
        wrapper(x[:8])
        t_torch = best_of(lambda: wrapper(x), args.repeats + 1)
    print(f"| runtime (same batch of {args.batch} components, 44 x 44) | time (s) | "
          "ratio to PyTorch |")
    print("|---|---|---|")
    print(f"| PyTorch eager {torch.__version__} | {t_torch:.3f} | 1.00 |")
    import onnxruntime
    print(f"| onnxruntime {onnxruntime.__version__} CPU | {t_ort:.3f} | "
          f"{t_ort / t_torch:.2f} |")


if __name__ == "__main__":
    main()
