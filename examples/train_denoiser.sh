#!/usr/bin/env bash
# Train, export and evaluate a 2D denoising model from scratch: the recipe of the shipped
# model onnx_models/denoise_dncnn_small_2d.onnx. Sizes are for a laptop-class CPU; the
# paper-size configs (pympisr/configs/denoise_dncnn_2d.toml, ..._3d.toml) are meant for a GPU.
set -euo pipefail
DATA=${DATA:-data/sim2d}
RUN=runs/denoise_dncnn_small_2d
pympisr dataset --dims 2 --train 500 --val 40 --test 60 --out "$DATA" --seed 0
pympisr train pympisr/configs/denoise_dncnn_small_2d.toml --data "$DATA" --output-dir "$RUN"
pympisr export "$RUN/best.pt" --out "$RUN/model.onnx"
pympisr evaluate --data "$DATA" --split test --model "$RUN/model.onnx" --out "$RUN/eval" \
    --max-components 400
# store the test metrics inside the model and register it in a models folder's manifest
# (point PYMPISR_MODELS at that folder to use it by name):
pympisr export "$RUN/best.pt" --out "$RUN/zoo/my_denoiser.onnx" \
    --metrics "$RUN/eval/metrics.json" --register my_denoiser
