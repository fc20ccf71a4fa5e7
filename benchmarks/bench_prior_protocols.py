"""Benchmark: the realistic protocols (DESIGN section 12) for the simulation-prior method.

    python benchmarks/bench_prior_protocols.py {calibration,image} [--sms N]

2D denoising: ``evaluate_calibration`` or ``evaluate_images`` (seed 0) with the task's
default methods (noisy, DCT-F, the shipped network) and ``pympisr.restore(...,
method="prior")`` (the simulator fitted to each simulated SM, then the subspace solve
and the safety step). Prints the protocol's markdown tables; acceptance as the protocol
states (calibration: >= max(noisy, DCT-F) - 0.3 dB per relative-noise bin; image: never
more than 0.01 correlation below the measured SM).
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
    args = parser.parse_args()
    methods = dict(calibration_protocol.default_methods())
    methods["pympisr:prior"] = calibration_protocol.pympisr_method(task="denoise",
                                                                   method="prior")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # weak fits are reported, not fatal
        if args.protocol == "calibration":
            result = calibration_protocol.evaluate_calibration(
                args.sms or 4, methods=methods, progress=False)
            print(calibration_protocol.markdown_tables(result))
        else:
            result = image_protocol.evaluate_images(args.sms or 3, methods=methods,
                                                    progress=False)
            print(image_protocol.markdown_tables(result))


if __name__ == "__main__":
    main()
