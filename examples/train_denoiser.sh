#!/usr/bin/env bash
# Train, export and evaluate a 2D denoising model from scratch (the shipped model's recipe).
# Sizes are for a laptop-class CPU; the paper-size configs (pympisr/configs/*_2d.toml
# without "small") are meant for a GPU.
set -euo pipefail
DATA=${DATA:-data/sim2d}
pympisr dataset --dims 2 --train 600 --val 60 --test 60 --out "$DATA" --seed 0
pympisr train pympisr/configs/denoise_dncnn_small_2d.toml --data "$DATA"
pympisr export runs/denoise_dncnn_small_2d/best.pt --out runs/denoise_dncnn_small_2d/model.onnx
pympisr evaluate --data "$DATA" --split test --model runs/denoise_dncnn_small_2d/model.onnx \
    --out runs/denoise_dncnn_small_2d/eval --max-components 2000
