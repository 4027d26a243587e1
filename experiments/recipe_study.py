"""Recipe study: which training recipe gives the best held-out ELBO per CPU-hour?

Every variant trains at the same time on the same machine (so machine noise
hits all of them alike) until it has used the same CPU time (user + system
seconds of its process, read from /proc: concurrent TensorFlow processes do
not share the cores equally, so equal *wall* time would not be a fair
budget); it is then stopped with SIGTERM, which checkpoints. The EMA weights
of each are scored on the same evenly spaced held-out images. The winner's work directory is a real run: it is resumed, not
restarted, for the long training (``train.steps`` is set high up front).

  VLAE_DATA_DIR=../shared/data python -m experiments.recipe_study run --group=mnist \
      --root=../runs/study --cpu_minutes=12
  VLAE_DATA_DIR=../shared/data python -m experiments.recipe_study score --group=mnist --root=../runs/study

``score`` prints a markdown table: variant, overrides, steps reached, examples
seen, held-out ELBO (mean over the subset, +- standard error).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WIDE = ["--config.model.encoder_filters=64", "--config.model.cond_filters=64",
        "--config.model.decoder_filters=64"]
# name -> (config file, overrides). Long ``train.steps`` so the winner continues as the long run.
VARIANTS = {
    "mnist": {
        "m1_shipped": ("zoo/mnist_cpu.py", []),
        "m2_adamax_b32": ("zoo/mnist_cpu.py", ["--config.train.batch_size=32",
                                               "--config.train.optimizer=adamax",
                                               "--config.train.learning_rate=2e-3"]),
        "m3_wide_b32": ("zoo/mnist_cpu.py", WIDE + ["--config.train.batch_size=32"]),
    },
    "cifar10": {
        "c1_w74": ("zoo/cifar10_cpu.py", ["--config.model.decoder_window=(7, 4)"]),
        "c2_w74_wide_b16": ("zoo/cifar10_cpu.py", ["--config.model.decoder_window=(7, 4)",
                                                   "--config.train.batch_size=16"] + WIDE),
    },
}
COMMON = ["--config.train.steps=100000", "--config.eval.num_images=0"]

flags.DEFINE_enum("group", "mnist", list(VARIANTS), "Which dataset's variants.")
flags.DEFINE_string("root", "../runs/study", "Parent folder of the variants' work directories.")
flags.DEFINE_float("cpu_minutes", 12.0, "run: CPU time of every variant (they run concurrently).")
flags.DEFINE_integer("examples", 2000, "score: evenly spaced held-out images.")
FLAGS = flags.FLAGS


def command(name):
  cfg, extra = VARIANTS[FLAGS.group][name]
  return [sys.executable, os.path.join(ROOT, "train.py"), f"--config={os.path.join(ROOT, cfg)}",
          f"--workdir={os.path.join(FLAGS.root, name)}"] + COMMON + extra


def cpu_seconds(pid):
  """User + system CPU seconds of a running process (Linux /proc)."""
  with open(f"/proc/{pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run():
  os.makedirs(FLAGS.root, exist_ok=True)
  procs = {}
  for name in VARIANTS[FLAGS.group]:
    log = open(os.path.join(FLAGS.root, name + ".log"), "a")
    cmd = command(name)
    print(" ".join(cmd), flush=True)
    procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
  budget, stopped = FLAGS.cpu_minutes * 60.0, set()
  while any(p.poll() is None for p in procs.values()):
    for name, p in procs.items():
      if name not in stopped and p.poll() is None and cpu_seconds(p.pid) >= budget:
        p.send_signal(signal.SIGTERM)  # the trainer checkpoints at the next step and exits 143
        stopped.add(name)
        print(f"{name}: {budget:.0f} CPU seconds used; stopped", flush=True)
    time.sleep(2.0)


def score():
  from vlae_tf import data as vdata
  from vlae_tf import evaluation, objective
  from vlae_tf import workdir as vwork

  print("| variant | overrides | steps | examples seen | held-out ELBO (nats) | bits/dim |")
  print("| --- | --- | --- | --- | --- | --- |")
  for name, (cfg, extra) in VARIANTS[FLAGS.group].items():
    workdir = os.path.join(FLAGS.root, name)
    model, config, step = vwork.load_model_from_workdir(workdir)
    split = vdata.eval_split_name(config, "valid")
    x = vdata.load_split(config, split)
    x = x[evaluation.iwae_subset(len(x), FLAGS.examples)]
    elbo = evaluation.elbo_per_example(model, x, batch_size=100, seed=0)["elbo"]
    se = elbo.std(ddof=1) / math.sqrt(len(elbo))
    bpd = objective.nats_to_bits_per_dim(-elbo.mean(), model.num_dims)
    print(f"| {name} | {' '.join(extra) or '(none)'} | {step} | {step * config.train.batch_size} "
          f"| {elbo.mean():.2f} ± {se:.2f} ({split}, {len(x)}) | {bpd:.3f} |", flush=True)


def main(argv):
  if len(argv) != 2 or argv[1] not in ("run", "score"):
    raise app.UsageError("usage: recipe_study.py run|score --group=...")
  run() if argv[1] == "run" else score()


if __name__ == "__main__":
  app.run(main)
