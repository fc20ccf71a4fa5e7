"""Benchmark: the realistic protocols (DESIGN section 12) for the simulation-prior method.

    python benchmarks/bench_prior_protocols.py {calibration,image} [--sms N]
        [--task denoise|upsample --scale S]

2D, ``evaluate_calibration`` or ``evaluate_images`` (seed 0) with the task's default
methods (denoise: noisy, DCT-F and the shipped network; upsample: bicubic,
DCT-F+bicubic and the default network of the scale) and ``pympisr.restore(...,
method="prior")`` (the simulator fitted to each simulated, measured SM, then the
subspace solve, the misfit correction and the safety step). Prints the protocol's
markdown tables; acceptance as the protocol states (calibration: >= the best
classical method - 0.3 dB per relative-noise bin; image: never more than 0.01
correlation below the measured SM).
"""

from __future__ import annotations

import argparse
import warnings


def main() -> None:
    from pympisr import calibration_protocol, image_protocol
    from pympisr.errors import FitWarning

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=("calibration", "image"))
    parser.add_argument("--sms", type=int, default=None,
                        help="simulated SMs (default: 4 calibration, 3 image)")
    parser.add_argument("--task", choices=("denoise", "upsample"), default="denoise")
    parser.add_argument("--scale", type=int, default=None,
                        help="upsampling factor (upsample only; default 2)")
    args = parser.parse_args()
    scale = (args.scale or 2) if args.task == "upsample" else None
    methods = dict(calibration_protocol.default_methods(task=args.task, scale=scale, dims=2))
    methods["pympisr:prior"] = calibration_protocol.pympisr_method(task=args.task,
                                                                   scale=scale, method="prior")
    common = {"methods": methods, "task": args.task, "scale": scale, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # weak fits are reported, not fatal
        if args.protocol == "calibration":
            result = calibration_protocol.evaluate_calibration(args.sms or 4, **common)
            print(calibration_protocol.markdown_tables(result))
        else:
            result = image_protocol.evaluate_images(args.sms or 3, **common)
            print(image_protocol.markdown_tables(result))


if __name__ == "__main__":
    main()
