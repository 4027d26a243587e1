#!/usr/bin/env bash
# The equal-compute study at the full budget (issue 19 item 3): the sweep's winners, 60 CPU-minutes
# each, one after another, 1,000 evenly spaced test images, IWAE k = 1,000 for the VAEs (exact NLL for
# tfd.PixelCNN). Settings chosen from /work/runs/sweep (bench/README.md section 11):
#   VLAE (gated, bf16): Adamax at the best lr, decoder_filters 16, cosine over the steps the budget buys
#     if the schedule cell beat the constant one; the full-context and factorized VAEs get the same
#     recipe and width (same size, same training), so the seed table can reuse them (--reuse_trained);
#   tfd.PixelCNN: 16 filters, Adam 3e-3, cosine if its schedule cell won;
#   today's mnist_cpu VLAE (masked 3x3 stack): its zoo recipe, in bfloat16.
# Resumable: rerun the same script (each contender resumes from its checkpoints).
set -u
while pgrep -f "bash /work/runs/sweep3.sh" > /dev/null; do sleep 20; done
S=/work/runs/sweep
W=/work/runs/peers
export VLAE_DATA_DIR=/work/shared/data
cd /work/wt_train
pick() { python - "$@" <<'PY'
import json, sys
S = "/work/runs/sweep/"
nll = lambda n: sum(json.load(open(S + n + ".json"))["contenders"][0]["per_image_nll"])
steps = lambda n: json.load(open(S + n + ".json"))["contenders"][0]["steps"]
const, cos = sys.argv[1], sys.argv[2]
# the schedule cell wins if its mean NLL is lower; its steps x (3600 - 20) / (600 - 20) for 60 min
print(round(steps(const) * 3580 / 580) if nll(cos) < nll(const) else 0)
PY
}
LR=8e-3
VSTEPS=$(pick vlae_gated_lr${LR}_f16 vlae_gated_lr${LR}_f16_cos)
PSTEPS=$(pick pcnn_f16_lr3e-3_here pcnn_f16_lr3e-3_cos)
SET="--set train.precision=bfloat16 --set train.learning_rate=$LR --set model.decoder_filters=16"
[ "$VSTEPS" != 0 ] && SET="$SET --set train.steps=$VSTEPS"
echo "VAE settings: $SET; PixelCNN schedule steps: $PSTEPS"
python -m experiments.peers --workdir=$W --contenders=vlae_gated,pixelcnn,vae_full,vae_factorized \
  $SET --pixelcnn_filters=16 --pixelcnn_lr=3e-3 --pixelcnn_schedule_steps=$PSTEPS
python -m experiments.peers --workdir=$W --contenders=vlae --set train.precision=bfloat16
