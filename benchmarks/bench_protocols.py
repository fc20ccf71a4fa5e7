"""Benchmark: the realistic evaluation protocols (DESIGN section 12) for the classical
methods of a task and a pympisr model.

    python benchmarks/bench_protocols.py [--task denoise|upsample|accelerate|inpaint]
                                         [--scale 2] [--num-sms N] [--cal-sms 12]
                                         [--img-sms 24] [--seed 0] [--model NAME]
                                         [--no-model] [--snr-mode mpifiles]
                                         [--skip calibration|image] [--dims 2|3]

* calibration protocol (:mod:`pympisr.calibration_protocol`): ``--cal-sms`` simulated 2D
  SMs (samples per FWHM 4-12 and 12-60 in turn, grids 12-44; ``--dims 3``: 3D SMs,
  grids 10-19 per axis, the 3D models, the image protocol skipped), measured as the task
  would (coarse calibration, 10 % corrupted block), one absolute white noise floor per
  SM (1e-4 .. 1e-2 x max|S|), PSNR / SSIM against the clean fine SM per relative-noise
  bin; the DCT-F variants (DCT-F, DCT-F+bicubic, biharmonic+DCT-F) with the true sigma
  and the per-bin oracle threshold factor;
* image protocol (:mod:`pympisr.image_protocol`): ``--img-sms`` SMs x 3 phantoms (snake,
  resolution, spiral), SNR thresholds 2 / 3 / 5, normalised lambda 0 / 1e-3 / 1e-2 / 1e-1;
  correlation, PSNR, SSIM; worst correlation drop against the base SM (noisy for
  denoising, the task's baseline otherwise); the DCT-F variants use the per-bin factors
  the calibration protocol tuned (when it is skipped:
  ``pympisr.calibration_protocol.TUNED_DCT_FACTORS``).

``--num-sms N`` sets both counts (a quick run). ``--no-model`` runs the classical methods
only (e.g. to time a task no model is trained for yet). Prints the markdown tables of
both protocols and the wall and CPU time of each, in all and per SM.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("denoise", "upsample", "accelerate", "inpaint"),
                        default="denoise")
    parser.add_argument("--scale", type=int, default=None,
                        help="upsample/accelerate: scale factor (default 2)")
    parser.add_argument("--num-sms", type=int, default=None, help="SMs for both protocols")
    parser.add_argument("--cal-sms", type=int, default=12, help="SMs, calibration protocol")
    parser.add_argument("--img-sms", type=int, default=24, help="SMs, image protocol")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="manifest name or .onnx path "
                        "(default: the manifest's first model of the task, dims and scale)")
    parser.add_argument("--no-model", action="store_true", help="classical methods only")
    parser.add_argument("--snr-mode", choices=("mpifiles", "true"), default="mpifiles")
    parser.add_argument("--skip", choices=("calibration", "image"), default=None)
    parser.add_argument("--dims", type=int, choices=(2, 3), default=2,
                        help="calibration protocol: 2D or 3D SMs (the image protocol is 2D "
                             "only and is skipped for 3)")
    args = parser.parse_args()
    if args.dims == 3 and args.skip == "calibration":
        parser.error("--dims 3 runs only the calibration protocol; do not skip it")

    from pympisr import calibration_protocol as cal
    from pympisr import image_protocol as img

    task = cal.protocol_task(args.task, args.scale, args.dims)
    cal_sms = args.num_sms or args.cal_sms
    img_sms = args.num_sms or args.img_sms
    methods = cal.default_methods(() if args.no_model else (args.model,), task=task)
    print(f"task {task!r}; methods {list(methods)}; restore_system_matrix receives noise=: "
          f"{cal.restore_accepts_noise()}\n")
    dct_factor: object = None  # image protocol default: cal.TUNED_DCT_FACTORS
    if args.skip != "calibration":
        tic, cpu = time.perf_counter(), time.process_time()
        result = cal.evaluate_calibration(cal_sms, seed=args.seed, methods=methods, task=task)
        seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu
        print(cal.markdown_tables(result))
        dct_factor = result.dct_factor  # the image protocol's DCT-F uses the tuned factors
        print(f"calibration protocol ({task.name}, {args.dims}D): {cal_sms} SMs, "
              f"{len({(r['sm'], r['channel'], r['frequency_index']) for r in result.records})} "
              f"components, {seconds:.1f} s wall ({seconds / cal_sms:.1f} s per SM), "
              f"{cpu:.1f} s CPU\n")
    if args.skip != "image" and args.dims == 2:
        tic, cpu = time.perf_counter(), time.process_time()
        result = img.evaluate_images(img_sms, seed=args.seed, methods=methods, task=task,
                                     snr_mode=args.snr_mode, dct_factor=dct_factor)
        seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu
        print(img.markdown_tables(result))
        print(f"image protocol ({task.name}): {img_sms} SMs x {len(img.PHANTOM_NAMES)} "
              f"phantoms, {seconds:.1f} s wall ({seconds / img_sms:.1f} s per SM), "
              f"{cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
