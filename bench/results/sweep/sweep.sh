#!/usr/bin/env bash
# Short-budget tuning sweep for the equal-compute study (issue 19 item 3): 10 CPU-minutes per cell,
# 500 evenly spaced test images; tfd.PixelCNN over filters x lr, the gated VLAE over lr (bf16).
# Resumable: a finished cell's JSON is kept; rerun the same script.
set -u
cd /work/wt_train
export VLAE_DATA_DIR=/work/shared/data
for f in 16 32; do for lr in 1e-3 3e-3 1e-2; do
  n=pcnn_f${f}_lr${lr}
  [ -f /work/runs/sweep/$n.json ] && grep -q '"paired"' /work/runs/sweep/$n.json && continue
  python bench/peers.py --workdir=/work/runs/sweep/$n --contenders=pixelcnn --cpu_minutes=10 \
    --eval_examples=500 --iwae_samples=100 --pixelcnn_filters=$f --pixelcnn_lr=$lr \
    --out=/work/runs/sweep/$n.json > /work/runs/sweep/$n.log 2>&1
done; done
for lr in 1e-3 2e-3 4e-3; do
  n=vlae_gated_lr${lr}
  [ -f /work/runs/sweep/$n.json ] && grep -q '"paired"' /work/runs/sweep/$n.json && continue
  python bench/peers.py --workdir=/work/runs/sweep/$n --contenders=vlae_gated --cpu_minutes=10 \
    --eval_examples=500 --iwae_samples=100 --set train.precision=bfloat16 --set train.learning_rate=$lr \
    --out=/work/runs/sweep/$n.json > /work/runs/sweep/$n.log 2>&1
done
