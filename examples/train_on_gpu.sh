#!/usr/bin/env bash
# Generate a simulated 2D dataset and train the paper-size DnCNN (17 layers x 64
# features, pympisr/configs/denoise_dncnn_2d.toml) within a wall-clock budget, on every
# GPU of this machine (torchrun, one process per GPU) or on the CPU when there is none.
#
#   MAX_MINUTES=120 bash examples/train_on_gpu.sh
#
# Environment (all optional):
#   MAX_MINUTES  whole budget in minutes, data generation included       [120]
#   CONFIG       experiment config                   [pympisr/configs/denoise_dncnn_2d.toml]
#   DATA         dataset folder                                          [data/sim2d]
#   RUN          training output folder                                  [runs/denoise_dncnn_2d_gpu]
#   TRAIN/VAL/TEST  dataset split sizes (the paper's 2D sizes)          [1000/300/300]
#   SCHEDULER    dask scheduler address (or "local") for the dataset     [unset: local processes]
# Rerunning the script resumes both the dataset and the training run.
set -euo pipefail
MAX_MINUTES=${MAX_MINUTES:-120}
CONFIG=${CONFIG:-pympisr/configs/denoise_dncnn_2d.toml}
DATA=${DATA:-data/sim2d}
RUN=${RUN:-runs/denoise_dncnn_2d_gpu}
start=$(date +%s)

dataset_args=(--dims 2 --train "${TRAIN:-1000}" --val "${VAL:-300}" --test "${TEST:-300}"
              --seed 0 --out "$DATA")
if [[ -n "${SCHEDULER:-}" ]]; then dataset_args+=(--scheduler "$SCHEDULER"); fi
pympisr dataset "${dataset_args[@]}"

left=$(python - "$MAX_MINUTES" "$start" <<'PY'
import sys, time
budget, start = float(sys.argv[1]), float(sys.argv[2])
print(f"{max(budget - (time.time() - start) / 60 - 2, 1):.1f}")  # 2 min for the export
PY
)
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
batch=$(python -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['train']['batch_size'])" "$CONFIG")
procs=$gpus
while (( procs > 1 && batch % procs != 0 )); do procs=$((procs - 1)); done  # global batch splits evenly

train_args=("$CONFIG" --data "$DATA" --output-dir "$RUN" --max-minutes "$left")
if [[ -f "$RUN/last.pt" ]]; then train_args+=(--resume); fi
echo "training on $procs GPU process(es) (of $gpus GPUs) for at most $left min"
if (( procs > 1 )); then
    torchrun --standalone --nproc_per_node "$procs" -m pympisr train "${train_args[@]}"
else
    pympisr train "${train_args[@]}"
fi
pympisr export "$RUN/best.pt" --out "$RUN/model.onnx" --overwrite
echo "model: $RUN/model.onnx ($(( ($(date +%s) - start) / 60 )) min in all)"
