#!/usr/bin/env bash
# The recipe of the shipped noise-level-conditioned 2D denoiser
# onnx_models/denoise_dncnn_small_nl_2d.onnx (issue 10): a training distribution that
# covers real calibrations (samples per FWHM 4-60, grids 12-44, relative noise 0.002-2),
# a warm start from the first shipped DnCNN, two training phases, export, and the three
# evaluation protocols (papers, calibration, image). Sizes are for a 2-core CPU.
set -euo pipefail
DATA=${DATA:-data/sim2d_wide}
RUN1=runs/denoise_dncnn_small_nl_2d
RUN2=runs/denoise_dncnn_small_nl_2d_phase2
pympisr dataset --dims 2 --train 800 --val 40 --test 60 --seed 1 --spf-range 4,60 \
    --grid-range 12,44 --out "$DATA"
pympisr train pympisr/configs/denoise_dncnn_small_nl_2d.toml --data "$DATA" --output-dir "$RUN1"
pympisr export "$RUN1/best.pt" --out "$RUN1/phase1.onnx"
pympisr train pympisr/configs/denoise_dncnn_small_nl_2d_phase2.toml --data "$DATA" \
    --output-dir "$RUN2"
pympisr export "$RUN2/best.pt" --out "$RUN2/model.onnx"
pympisr evaluate --data "$DATA" --split test --model "$RUN2/model.onnx" --out "$RUN2/eval" \
    --max-components 600
pympisr evaluate --protocol calibration --model "$RUN2/model.onnx" --out "$RUN2/eval_calibration"
pympisr evaluate --protocol image --model "$RUN2/model.onnx" --out "$RUN2/eval_image"
