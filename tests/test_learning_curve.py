"""experiments/learning_curve.py: training hours from the logged throughput, and the last-doubling gain."""

import json
import os
import sys

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from experiments import learning_curve  # noqa: E402
from helpers import tiny_config  # noqa: E402
from vlae_tf import summaries  # noqa: E402
from vlae_tf import workdir as vwork  # noqa: E402


def _fake_run(path, batch=8, heldout=None):
  """A work directory as the loop writes it: 8 log lines at 2 examples/s, evals at 2, 4, 6, 8."""
  cfg = tiny_config()
  cfg.train.batch_size = batch
  vwork.write_config(cfg, str(path))
  with open(path / vwork.METRICS_FILE, "w") as f:
    for step in range(1, 9):
      line = {"step": step, "examples_per_second": 2.0}
      f.write(json.dumps(dict(line, heldout_split=heldout) if heldout else line) + "\n")
    f.write(json.dumps({"step": 4, "examples_per_second": 2.0}) + "\n")  # a resumed piece's repeat
  writer = tf.summary.create_file_writer(str(path / "tensorboard"))
  for step, elbo in ((2, -100.0), (4, -90.0), (6, -86.0), (8, -85.0)):
    with writer.as_default(step=step):
      summaries.scalar("eval/elbo", elbo)
  writer.flush()


def test_hours_and_last_doubling(tmp_path):
  _fake_run(tmp_path)
  c = learning_curve.curve(str(tmp_path))
  assert c["steps"] == [2, 4, 6, 8]
  # Each step is 8 examples at 2 examples/s = 4 s; the repeated line is not counted twice.
  np.testing.assert_allclose(np.array(c["hours"]) * 3600.0, [8.0, 16.0, 24.0, 32.0])
  # Half of 32 s is 16 s, the evaluation at step 4: the last doubling gained -85 - (-90) = 5 nats.
  assert c["last_doubling_gain_nats"] == 5.0
  assert c["unit"] == "nats"
  out = tmp_path / "curve.png"
  learning_curve.plot(c, str(out), "tiny")
  assert out.stat().st_size > 1000


def test_the_curve_says_which_split_it_was_measured_on(tmp_path):
  # Runs of today's code record it on every metrics.jsonl line ...
  _fake_run(tmp_path / "new", heldout="valid (5,000 images carved from train)")
  c = learning_curve.curve(str(tmp_path / "new"))
  assert c["heldout_split"] == "valid (5,000 images carved from train)"
  out = tmp_path / "curve.png"
  learning_curve.plot(c, str(out), "tiny")
  assert out.stat().st_size > 1000
  # ... older runs' curves come from their config: a validation split of its own, or the test split
  _fake_run(tmp_path / "old")
  assert learning_curve.curve(str(tmp_path / "old"))["heldout_split"] == "valid"
  cfg = vwork.read_workdir_config(str(tmp_path / "old"))
  cfg.data.valid_split = ""          # the shipped cifar10 v4 run's setting
  assert learning_curve.heldout_split(str(tmp_path / "old"), cfg) == "test"
