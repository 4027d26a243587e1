"""Learning curve of a training run: held-out ELBO against training hours and steps.

  python experiments/learning_curve.py --workdir=../runs/mnist --out=saved_models/mnist/learning_curve.png

Reads what the training loop already writes to its work directory:

* the periodic held-out evaluation (``eval/elbo``, EMA weights, the same
  ``eval.periodic_examples`` evenly spaced validation images every time; the
  test split where the config names no validation split) from the TensorBoard
  event files;
* which split that was, in words (``heldout_split``: ``"valid (5,000 images
  carved from train)"``, ``"test (10,000 images)"``): the last ``metrics.jsonl``
  line that records it, else (runs of older code) the run's config
  (:func:`vlae_tf.data.heldout_split`; the shipped cifar10 v4 curve: ``test``);
* ``metrics.jsonl`` for training time: every log line holds the mean
  examples/s of its interval, so the training hours up to step ``t`` are
  ``sum(batch * (t_i - t_{i-1}) / (examples/s)_i)`` over the log lines up to
  ``t``. Time spent between resumed pieces (or in evaluation) is not counted.

Writes the PNG (its title names the held-out split) and, beside it,
``<out>.json`` with the points, ``heldout_split`` and the
"last doubling" gain: the held-out ELBO at the last evaluation minus the ELBO
at the evaluation closest to half the training hours (the issue's criterion
for a flattened curve is a gain below 0.3 nats).
"""

from __future__ import annotations

import glob
import json
import os

from absl import app, flags
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vlae_tf import atomic  # noqa: E402
from vlae_tf import data as vdata  # noqa: E402
from vlae_tf import workdir as vwork  # noqa: E402
from vlae_tf.objective import nats_to_bits_per_dim  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
  """The script's flags (defined only when it runs, so tests can import its functions)."""
  flags.DEFINE_string("workdir", None, "Training work directory.", required=True)
  flags.DEFINE_string("out", None, "PNG to write (and <out>.json).", required=True)
  flags.DEFINE_string("title", "", "Plot title (default: the run's config name).")
  flags.DEFINE_string("note", "", "A second title line, e.g. where the run started from.")


def eval_points(workdir, tag="eval/elbo"):
  """``{step: value}`` of one scalar tag from the run's TensorBoard event files (last write wins)."""
  points = {}
  for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for v in event.summary.value:
        if v.tag == tag:
          points[int(event.step)] = float(tf.make_ndarray(v.tensor))
  return points


def _metrics(workdir):
  with open(os.path.join(workdir, vwork.METRICS_FILE)) as f:
    return [json.loads(line) for line in f]


def heldout_split(workdir, config):
  """The held-out split of the run's curve in words (see module doc)."""
  logged = [r["heldout_split"] for r in _metrics(workdir) if r.get("heldout_split")]
  return logged[-1] if logged else vdata.heldout_split(config)


def training_hours(workdir, batch_size):
  """``(steps, hours)``: cumulative training hours at every logged step (see module doc)."""
  steps, hours, prev, total = [0], [0.0], 0, 0.0
  seen = set()
  for r in _metrics(workdir):
    step = int(r["step"])
    if step in seen or step <= prev:  # a duplicated line from a resumed piece
      continue
    seen.add(step)
    total += batch_size * (step - prev) / max(float(r["examples_per_second"]), 1e-9) / 3600.0
    prev = step
    steps.append(step)
    hours.append(total)
  return np.array(steps), np.array(hours)


def curve(workdir):
  config = vwork.read_workdir_config(workdir)
  evals = eval_points(workdir)
  log_steps, log_hours = training_hours(workdir, int(config["train"]["batch_size"]))
  steps = np.array(sorted(evals))
  elbo = np.array([evals[s] for s in steps])
  hours = np.interp(steps, log_steps, log_hours)
  dims = int(np.prod(config["data"]["image_shape"]))
  gain = None
  if len(steps) >= 2:
    half = int(np.argmin(np.abs(hours - hours[-1] / 2.0)))
    if half < len(steps) - 1:
      gain = float(elbo[-1] - elbo[half])
  return {"config_name": config.get("name", ""), "dataset": config["data"]["dataset"],
          "examples": int(config["eval"]["periodic_examples"]),
          "heldout_split": heldout_split(workdir, config), "steps": steps.tolist(),
          "hours": hours.tolist(), "elbo": elbo.tolist(), "last_doubling_gain_nats": gain,
          "bits_per_dim": nats_to_bits_per_dim(-elbo, dims).tolist(),
          "unit": "nats" if config["model"]["likelihood"] == "bernoulli" else "bits/dim"}


def gain_text(c):
  gain = c["last_doubling_gain_nats"]
  if gain is None:
    return "n/a"
  if c["unit"] == "nats":
    return f"{gain:.2f} nats"
  return f"{gain:.1f} nats = {gain / c['elbo'][-1] * -c['bits_per_dim'][-1]:.3f} bits/dim"


def plot(c, out, title, note=""):
  nats = c["unit"] == "nats"
  y = np.array(c["elbo"] if nats else c["bits_per_dim"])
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
  for ax, x, label in ((axes[0], c["hours"], "training hours (wall time of the loop, shared 2-core CPU)"),
                       (axes[1], c["steps"], "training steps")):
    ax.plot(x, y, "o-", ms=3)
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel(f"held-out {'ELBO, nats' if nats else '-ELBO, bits/dim'} "
                     f"({c['examples']} images, EMA)")
  # Zoom on the later part of the curve: the first evaluations are far off the scale.
  best, worst = (y.max(), np.percentile(y, 10)) if nats else (y.min(), np.percentile(y, 90))
  pad = 0.15 * abs(best - worst) + 1e-3
  axes[0].set_ylim(*sorted((worst - pad if nats else worst + pad, best + pad if nats else best - pad)))
  heldout = c.get("heldout_split")  # absent from the JSON of older curves
  held = f"\nheld out: {c['examples']} evenly spaced images of {heldout}" if heldout else ""
  fig.suptitle(f"{title}: last doubling of hours gained {gain_text(c)}" + held
               + (f"\n{note}" if note else ""))
  fig.tight_layout()
  with atomic.open_for_writing(out) as f:
    fig.savefig(f, format="png", dpi=110)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not os.path.exists(os.path.join(FLAGS.workdir, vwork.METRICS_FILE)):
    raise app.UsageError(f"{FLAGS.workdir!r} has no metrics.jsonl: not a training work directory")
  c = curve(FLAGS.workdir)
  if not c["steps"]:
    raise app.UsageError(f"{FLAGS.workdir!r} holds no periodic evaluation (eval/elbo) yet")
  plot(c, FLAGS.out, FLAGS.title or c["config_name"], FLAGS.note)
  atomic.write_text(os.path.splitext(FLAGS.out)[0] + ".json", json.dumps(c, indent=1))
  print(f"{len(c['steps'])} evaluations on {c['heldout_split']}, last at step {c['steps'][-1]} "
        f"after {c['hours'][-1]:.2f} h: held-out ELBO {c['elbo'][-1]:.3f} "
        f"({c['bits_per_dim'][-1]:.4f} bits/dim); last doubling gained {gain_text(c)}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
