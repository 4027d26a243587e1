#!/usr/bin/env bash
# The tuning sweep of the equal-compute study (issue 19 item 3), part 2 of 2 (part 1: sweep.sh, the
# tfd.PixelCNN cells at 16 filters x lr {1e-3, 3e-3, 1e-2} and 32 filters x lr 3e-3). 10 CPU-minutes
# per cell, 500 evenly spaced test images, k = 100 for the VAEs; one JSON per cell in /work/runs/sweep.
#  1. the gated VLAE (bf16) x Adamax lr {1e-3, 2e-3, 4e-3, 8e-3} (8e-3 added when 4e-3 was best);
#  2. the best 16-filter tfd.PixelCNN cell again on this machine (part 1 ran partly on another CPU);
#  3. the VLAE's width: its best lr with decoder_filters 16 (a cheaper step, more steps);
#  4. the schedule, both sides (the VLAE at its better width): their best constant-lr cell again with the zoo recipe (200 warm-up
#     steps, cosine to 1e-5) over the number of steps that cell reached, so the rate is low at the end.
# Resumable: a finished cell's JSON is kept; rerun the same script. Runs from a worktree of main.
set -u
while pgrep -f "experiments.peers --workdir=/work/runs/sweep/" > /dev/null; do sleep 20; done
cd /work/wt_train
export VLAE_DATA_DIR=/work/shared/data
S=/work/runs/sweep
cell() {  # name, then peers flags
  n=$1; shift
  [ -f $S/$n.json ] && grep -q '"paired"' $S/$n.json && return
  python -m experiments.peers --workdir=$S/$n --cpu_minutes=10 \
    --eval_examples=500 --iwae_samples=100 --out=$S/$n.json "$@" > $S/$n.log 2>&1
}
field() { python -c "import json,sys; print(json.load(open(sys.argv[1]))['contenders'][0][sys.argv[2]])" $1 $2; }
VLAE="--contenders=vlae_gated --set train.precision=bfloat16"
for lr in 1e-3 2e-3 4e-3 8e-3; do cell vlae_gated_lr$lr $VLAE --set train.learning_rate=$lr; done
cell pcnn_f16_lr3e-3_here --contenders=pixelcnn --pixelcnn_filters=16 --pixelcnn_lr=3e-3
lr=$(python -c "
import json
r=[(json.load(open('$S/vlae_gated_lr%s.json' % l))['contenders'][0]['nll'], l) for l in ('1e-3','2e-3','4e-3','8e-3')]
print(min(r)[1])")
cell vlae_gated_lr${lr}_f16 $VLAE --set train.learning_rate=$lr --set model.decoder_filters=16
cell pcnn_f16_lr3e-3_cos --contenders=pixelcnn --pixelcnn_filters=16 --pixelcnn_lr=3e-3 \
  --pixelcnn_schedule_steps=$(field $S/pcnn_f16_lr3e-3_here.json steps)
# the VLAE's schedule cell on its better width (16 filters won at 10 minutes: 82.19 vs 82.86)
cell vlae_gated_lr${lr}_f16_cos $VLAE --set train.learning_rate=$lr --set model.decoder_filters=16 \
  --set train.steps=$(field $S/vlae_gated_lr${lr}_f16.json steps)
