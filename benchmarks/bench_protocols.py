"""Benchmark: the realistic evaluation protocols (DESIGN section 12) for noisy, DCT-F and a
shipped model.

    python benchmarks/bench_protocols.py [--num-sms N] [--cal-sms 12] [--img-sms 24]
                                         [--seed 0] [--model NAME] [--snr-mode mpifiles]

* calibration protocol (:mod:`pympisr.calibration_protocol`): ``--cal-sms`` simulated 2D
  SMs (samples per FWHM 4-12 and 12-60 in turn, grids 12-44), one absolute white noise
  floor per SM (1e-4 .. 1e-2 x max|S|), PSNR / SSIM per relative-noise bin; DCT-F with the
  true sigma and the per-bin oracle threshold factor;
* image protocol (:mod:`pympisr.image_protocol`): ``--img-sms`` SMs x 3 phantoms (snake,
  resolution, spiral), SNR thresholds 2 / 3 / 5, normalised lambda 0 / 1e-3 / 1e-2 / 1e-1;
  correlation, PSNR, SSIM; worst drop corr(restored) - corr(noisy); DCT-F uses the
  per-bin factors the calibration protocol tuned (when it is skipped:
  ``pympisr.calibration_protocol.TUNED_DCT_FACTORS``).

``--num-sms N`` sets both counts (a quick run). Prints the markdown tables of both
protocols and the wall time of each.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-sms", type=int, default=None, help="SMs for both protocols")
    parser.add_argument("--cal-sms", type=int, default=12, help="SMs, calibration protocol")
    parser.add_argument("--img-sms", type=int, default=24, help="SMs, image protocol")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="manifest name or .onnx path "
                        "(default: the manifest's first 2D denoising model)")
    parser.add_argument("--snr-mode", choices=("mpifiles", "true"), default="mpifiles")
    parser.add_argument("--skip", choices=("calibration", "image"), default=None)
    args = parser.parse_args()

    from pympisr import calibration_protocol as cal
    from pympisr import image_protocol as img

    cal_sms = args.num_sms or args.cal_sms
    img_sms = args.num_sms or args.img_sms
    methods = {cal.NOISY: cal.noisy_method, cal.DCT: cal.dct_method(cal.DEFAULT_DCT_FACTOR),
               cal.model_label(args.model): cal.pympisr_method(args.model)}
    print(f"restore_system_matrix receives noise=: {cal.restore_accepts_noise()}\n")
    dct_factor: object = None  # image protocol default: cal.TUNED_DCT_FACTORS
    if args.skip != "calibration":
        tic = time.perf_counter()
        result = cal.evaluate_calibration(cal_sms, seed=args.seed, methods=methods)
        seconds = time.perf_counter() - tic
        print(cal.markdown_tables(result))
        dct_factor = result.dct_factor  # the image protocol's DCT-F uses the tuned factors
        print(f"calibration protocol: {cal_sms} SMs, "
              f"{len({(r['sm'], r['channel'], r['frequency_index']) for r in result.records})} "
              f"components, {seconds:.1f} s\n")
    if args.skip != "image":
        tic = time.perf_counter()
        result = img.evaluate_images(img_sms, seed=args.seed, methods=methods,
                                     snr_mode=args.snr_mode, dct_factor=dct_factor)
        seconds = time.perf_counter() - tic
        print(img.markdown_tables(result))
        print(f"image protocol: {img_sms} SMs x {len(img.PHANTOM_NAMES)} phantoms, "
              f"{seconds:.1f} s")


if __name__ == "__main__":
    main()
