"""What ``train.py --deterministic`` costs: training examples/s with and without, side by side.

Run (about 5 minutes on 2 busy CPU cores with the defaults)::

    VLAE_DATA_DIR=/work/shared/data python bench/determinism.py
    python bench/determinism.py --synthetic --steps 150       # no data files needed

Trains the ``mnist_cpu`` model (batch 64) for ``--steps`` steps in fresh
``train.py`` processes, alternating plain / ``--deterministic`` runs
(``--rounds`` pairs; round 2 runs them in the opposite order so a drift in the
machine's load does not favour one). ``--deterministic`` turns on
``tf.config.experimental.enable_op_determinism()`` and starts TensorFlow with
``TF_ENABLE_ONEDNN_OPTS=0`` (oneDNN's CPU kernels are not bitwise
reproducible). Throughput is the mean ``examples_per_second`` that the runs
log in ``metrics.jsonl`` over every log interval but the first (which holds
the tf.function tracing). With 2 rounds it also checks whether the two runs
of each kind end with bitwise-identical weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_info import header  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(workdir, steps, log_every, synthetic, deterministic):
  """One train.py process; returns (mean examples/s after the first interval, final weights)."""
  args = [sys.executable, "train.py", "--config=zoo/mnist_cpu.py", f"--workdir={workdir}",
          "--config.train.batch_size=64", f"--config.train.steps={steps}",
          f"--config.train.log_every={log_every}",
          f"--config.train.checkpoint_every={steps}", "--config.train.eval_every=0",
          "--config.eval.periodic_examples=0", "--config.eval.num_images=0"]
  if synthetic:
    args.append("--config.data.dataset=synthetic")
  if deterministic:
    args.append("--deterministic")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("TF_ENABLE_ONEDNN_OPTS", None)             # the default, unless the flag sets it
  p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
  if p.returncode:
    raise RuntimeError(f"{' '.join(args)} failed:\n{p.stderr[-3000:]}")
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rates = [json.loads(line)["examples_per_second"] for line in f][1:]
  reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", f"ckpt-{steps}"))
  weights = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if k.startswith(("model/", "ema/", "optimizer/"))}
  return float(np.mean(rates)), weights


def identical(a, b):
  return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--steps", type=int, default=250)
  p.add_argument("--log_every", type=int, default=50)
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--synthetic", action="store_true", help="synthetic 28x28 data, no files")
  a = p.parse_args()
  print(header("train.py --deterministic vs plain, mnist_cpu, batch 64"))
  if not a.synthetic and not os.environ.get("VLAE_DATA_DIR"):
    print("VLAE_DATA_DIR is not set: using --synthetic data")
    a.synthetic = True
  rates = {False: [], True: []}
  weights = {False: [], True: []}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(a.rounds):
      for det in ((False, True) if r % 2 == 0 else (True, False)):
        name = f"{'deterministic' if det else 'plain'}_{r}"
        rate, w = run(os.path.join(tmp, name), a.steps, a.log_every, a.synthetic, det)
        rates[det].append(rate)
        weights[det].append(w)
        print(f"round {r}: {name:<16} {rate:7.1f} examples/s", flush=True)
  plain, det = np.mean(rates[False]), np.mean(rates[True])
  print(f"\nplain {plain:.1f} examples/s, --deterministic {det:.1f} examples/s: "
        f"ratio deterministic / plain = {det / plain:.2f}")
  if a.rounds >= 2:
    for d in (False, True):
      same = identical(weights[d][0], weights[d][1])
      print(f"two {'--deterministic' if d else 'plain'} runs of {a.steps} steps end with "
            f"{'bitwise-identical' if same else 'DIFFERENT'} weights")


if __name__ == "__main__":
  main()
