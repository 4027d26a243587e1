#!/usr/bin/env bash
# Short-budget tuning sweep for the equal-compute study (issue 19 item 3): 10 CPU-minutes per cell,
# 500 evenly spaced test images; tfd.PixelCNN over filters x lr, the gated VLAE over lr (bf16).
# Resumable: a finished cell's JSON is kept; rerun the same script. Runs from a worktree of main
# (/work/wt_train) so that edits in the main checkout do not change a running study.
set -u
cd /work/wt_train
export VLAE_DATA_DIR=/work/shared/data
cell() {  # name, then peers flags
  n=$1; shift
  [ -f /work/runs/sweep/$n.json ] && grep -q '"paired"' /work/runs/sweep/$n.json && return
  python -m experiments.peers --workdir=/work/runs/sweep/$n --cpu_minutes=10 \
    --eval_examples=500 --iwae_samples=100 --out=/work/runs/sweep/$n.json "$@" > /work/runs/sweep/$n.log 2>&1
}
# lr 1e-2 at 16 filters was far behind (94.24 vs 80.69 nats): the 32-filter cells skip it.
for lr in 3e-3 1e-3; do cell pcnn_f32_lr$lr --contenders=pixelcnn --pixelcnn_filters=32 --pixelcnn_lr=$lr; done
for lr in 1e-3 2e-3 4e-3; do
  cell vlae_gated_lr$lr --contenders=vlae_gated --set train.precision=bfloat16 --set train.learning_rate=$lr
done
