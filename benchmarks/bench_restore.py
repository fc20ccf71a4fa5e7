"""Benchmark: restore a 2D 44 x 44 system matrix (3 x 817 components) with a shipped model.

    python benchmarks/bench_restore.py [--model NAME] [--threads N] [--repeats R]

The system matrix is the reference scanner's (``reference_parameters(2)``, 44 x 44, the
MDF v2 example calibration's grid) restricted to the first 817 frequency bins, with one
absolute noise floor (``--floor`` times the SM's maximum, per part), as a real calibration
has. Timed: ``restore_system_matrix`` with the safety step (network on the components
and on their SURE probes, SURE-tuned DCT-F, the data-consistency step) and without it
(the raw network), and the runtime alone (onnxruntime vs PyTorch eager on one batch).
Prints markdown tables. Target (issue 10): the whole SM with the safety step <= 10 s on
2 cores.
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
    parser.add_argument("--floor", type=float, default=1e-3,
                        help="noise std per part relative to the SM's maximum magnitude")
    args = parser.parse_args()

    import torch

    from pympisr.export import EndToEnd
    from pympisr.model_zoo import resolve_model
    from pympisr.models import build_model
    from pympisr.restoration import OnnxRestorer, restore_system_matrix
    from pympisr.restoration.runtime import default_threads
    from pympisr.simulation.parameters import reference_parameters
    from pympisr.simulation.system_matrix import simulate_system_matrix

    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    resolved = resolve_model(args.model, task="denoise", dims=2)
    restorer = OnnxRestorer(resolved, threads=threads, batch_size=args.batch)
    clean = simulate_system_matrix(reference_parameters(2), frequencies=np.arange(817))
    rng = np.random.default_rng(0)
    sigma = args.floor * float(np.abs(clean.data).max())
    noise = sigma * (rng.standard_normal(clean.data.shape)
                     + 1j * rng.standard_normal(clean.data.shape))
    sm = clean.replace(data=(clean.data + noise).astype(np.complex64))
    count = sm.data.shape[0] * sm.data.shape[1]

    safe = best_of(lambda: restore_system_matrix(sm, model=restorer, noise=sigma,
                                                 progress=False), args.repeats)
    raw = best_of(lambda: restore_system_matrix(sm, model=restorer, noise=sigma, safety=None,
                                                progress=False), args.repeats)
    meta = restorer.metadata
    print(f"model: {restorer.name} ({meta.get('model_name')}, "
          f"{meta.get('parameters')} parameters), threads: {threads}, noise floor "
          f"{args.floor:g} x max|S|\n")
    print("| restore_system_matrix (44 x 44) | components | time (s) | per component (ms) |")
    print("|---|---|---|---|")
    for label, t in (("with the safety step", safe), ("raw network (safety=None)", raw)):
        print(f"| {label}, batch {args.batch} | {count} | {t:.2f} | {1e3 * t / count:.2f} |")
    print()

    batch = sm.data[0, :args.batch, 0]
    feeds = {"sm": np.stack([batch.real, batch.imag], axis=1).astype(np.float32)}
    if restorer.takes_noise_level:
        feeds["sigma"] = np.full((batch.shape[0], 1), sigma, dtype=np.float32)
    t_ort = best_of(lambda: restorer.session.run(["restored"], feeds), args.repeats + 1)
    net = build_model(meta["model_name"], **json.loads(meta["model_options"]))
    wrapper = EndToEnd(net.eval(), min_size=int(meta.get("min_size", 1))).eval()
    inputs = [torch.from_numpy(feeds[name]) for name in wrapper.input_names]
    with torch.inference_mode():
        wrapper(*(x[:8] for x in inputs))
        t_torch = best_of(lambda: wrapper(*inputs), args.repeats + 1)
    print(f"| runtime (same batch of {args.batch} components, 44 x 44) | time (s) | "
          "ratio to PyTorch |")
    print("|---|---|---|")
    print(f"| PyTorch eager {torch.__version__} | {t_torch:.3f} | 1.00 |")
    import onnxruntime
    print(f"| onnxruntime {onnxruntime.__version__} CPU | {t_ort:.3f} | "
          f"{t_ort / t_torch:.2f} |")


if __name__ == "__main__":
    main()
