"""Plain test helpers (no fixtures; those are in ``shared_fixtures.py``): tiny configs and runs, processes, damage.

Test files import what they share from here, never from each other (a test file
imported by another one is imported, and its module fixtures built, twice under
some import modes, and pytest collects every ``test_*`` name it imports).

* :func:`tiny_config`: a config that builds in a second on 2 CPU cores;
  :func:`train_config`: a few-step synthetic run of it.
* The tiny zoo model (:func:`export_tiny_zoo`): ONE small untrained model
  exported as a zoo folder, whose card numbers come from a real
  ``vlae_tf.evaluate``, never typed in. ``shared_fixtures.py`` builds it once per
  session (per xdist worker) as the fixtures ``zoo`` and ``m``.
* Running ``train.py`` (:func:`run_train_py`, :func:`run_until`) and reading a
  work directory back (:func:`read_metrics`, :func:`logged_steps`, :func:`checkpoint_values`).
* Damage: :func:`file_size_limit` (a full disk), :func:`edit_card`.
* Models: :func:`adam_step_fn` (a compiled training step), :func:`exact_log_px`
  (log p(x) by quadrature over a 1-D latent).
"""

import contextlib
import fcntl
import json
import math
import os
import resource
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

import vlae_tf
from vlae_tf import config as vconfig
from vlae_tf import workdir as vwork
from vlae_tf.pretrained import packaging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ configs
def tiny_config(context="stack", likelihood="bernoulli", image_shape=(4, 4, 1), latent_dim=3,
                prior="af", posterior="gaussian", **model_overrides):
  """A small variant of the ``mnist`` zoo config (or ``cifar10`` for RGB), by ``vlae_tf.config.shrink``."""
  rgb = image_shape[-1] == 3
  cfg = vlae_tf.zoo.get_config("cifar10" if rgb else "mnist")
  vconfig.shrink(cfg, {
      "data.dataset": "synthetic", "data.image_shape": tuple(image_shape),
      "model.likelihood": likelihood, "model.num_mixtures": 2, "model.latent_kind": "vector",
      "model.latent_dim": latent_dim, "model.latent_channels": 0,
      "model.num_resolution_changes": 0, "model.encoder_filters": 8, "model.encoder_blocks": 1,
      "model.cond_filters": 8, "model.cond_blocks": 1, "model.decoder_context": context,
      "model.decoder_layers": 2, "model.decoder_window": (3, 2), "model.decoder_filters": 8,
      "model.decoder_blocks": 1, "model.prior": prior, "model.prior_steps": 2,
      "model.prior_hidden": (16,), "model.posterior": posterior, "model.posterior_steps": 2,
      "model.posterior_hidden": (16,), "model.posterior_context": 4,
      "objective.free_bits": 0.0, "objective.free_bits_groups": 1, "train.batch_size": 8,
      **{f"model.{k}": v for k, v in model_overrides.items()}})
  return cfg


def train_config(steps=6, **train):
  """A tiny synthetic run: 4x4 binary images, batch 8, a few steps."""
  cfg = tiny_config()
  cfg.train.steps = steps
  cfg.train.warmup_steps = 2
  cfg.train.log_every = 1
  cfg.train.checkpoint_every = 3
  cfg.train.eval_every = 0
  cfg.eval.periodic_examples = 16
  cfg.eval.num_images = 2
  cfg.eval.batch_size = 16
  for k, v in train.items():
    setattr(cfg.train, k, v)
  return cfg


# ------------------------------------------------------------------ models
def adam_step_fn(model, lr=1e-2):
  """A compiled Adam step on ``model.training_loss``: ``step(x, seed) -> loss``."""
  opt = keras.optimizers.Adam(lr)

  @tf.function
  def step(x, seed):
    with tf.GradientTape() as tape:
      loss, _ = model.training_loss(x, 0, seed)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return step


def exact_log_px(model, x, lim=10.0, num=4001):
  """Trapezoid rule for log integral p(x|z) N(z) dz over a 1-D latent, per example (float64)."""
  g = np.linspace(-lim, lim, num).astype(np.float32)
  w = np.full(num, g[1] - g[0], np.float64)
  w[[0, -1]] /= 2
  out = []
  for xb in x:
    log_px_z = model.log_px_given_z(tf.constant(np.repeat(xb[None], num, 0)),
                                    tf.constant(g[:, None])).numpy().astype(np.float64)
    lj = log_px_z - 0.5 * g.astype(np.float64) ** 2 - 0.5 * math.log(2 * math.pi) + np.log(w)
    m = lj.max()
    out.append(m + math.log(np.exp(lj - m).sum()))
  return np.array(out)


# ------------------------------------------------------------------ the tiny zoo model
NAME = "tiny"
IMAGE_SHAPE = (6, 6, 1)


class TinyZoo:
  """``root``: zoo folder; ``dir``: model folder; ``model``/``config``: the Keras original."""

  def __init__(self, root, model, config, eval_results, examples):
    self.root, self.model, self.config = root, model, config
    self.dir = root / NAME
    self.saved_model_dir = self.dir / "1"
    self.eval_results, self.examples = eval_results, examples


def binary_images(n, seed=0, shape=IMAGE_SHAPE):
  return (np.random.default_rng(seed).random((n,) + tuple(shape)) < 0.4).astype(np.uint8)


def export_tiny_zoo(root):
  """Builds the tiny model (seeded: the same weights every time), evaluates it, exports it under ``root``."""
  config = tiny_config(image_shape=IMAGE_SHAPE, latent_dim=3)
  keras.utils.set_random_seed(0)       # the same weights every session: no flaky tolerances
  model = vlae_tf.build_model(config)
  x = binary_images(8, seed=1)
  eval_results = vlae_tf.evaluate(model, x, num_samples=8, batch_size=8, seed=0)
  examples = binary_images(6, seed=2)
  packaging.export_model(model, config, root / NAME / "1", name=NAME,
                         eval_results=eval_results, command="pytest (tiny untrained model)",
                         hardware="CI CPU", wall_time_hours=0.0, steps=0, examples=examples)
  return TinyZoo(root, model, config, eval_results, examples)


def edit_card(d, fn):
  """Rewrites ``d/card.json`` as ``fn(card)`` (``card.sha256`` is left as it was)."""
  card = json.loads((d / "card.json").read_text())
  card = fn(card)
  (d / "card.json").write_text(json.dumps(card))


# ------------------------------------------------------------------ work directories
def read_metrics(workdir):
  """The records of ``metrics.jsonl``, one dict per logged step."""
  with open(os.path.join(workdir, vwork.METRICS_FILE)) as f:
    return [json.loads(line) for line in f]


def logged_steps(workdir):
  """The steps logged in ``metrics.jsonl``, in order (a step logged twice shows twice)."""
  return [r["step"] for r in read_metrics(workdir)]


def file_contents(d):
  """``{name: bytes}`` of the plain files directly in ``d``."""
  return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))
          if os.path.isfile(os.path.join(d, f))}


def checkpoint_values(path):
  """Every saved variable, less the object graph and the save counter (a count of saves)."""
  reader = tf.train.load_checkpoint(path)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if not k.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}


def config_file_of(workdir, tmp_path):
  """A config file for train.py that returns the config stored in ``workdir``."""
  path = tmp_path / "stored_config.py"
  path.write_text("from vlae_tf import workdir\n\n\ndef get_config():\n"
                  f"  return workdir.read_workdir_config({str(workdir)!r})\n")
  return path


# ------------------------------------------------------------------ processes
def run_train_py(*args, env=None):
  """``python train.py ARGS`` in the repository root: ``(returncode, stdout, stderr)``."""
  p = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True,
                     text=True, timeout=300, env=dict(os.environ, **(env or {})))
  return p.returncode, p.stdout, p.stderr


def run_until(args, marker, sig, env=None):
  """Runs ``python ARGS`` (in ``env``, default ours), sends ``sig`` once ``marker`` is printed;
  returns (rc, output).

  stdout is an unbuffered 4 KiB pipe read line by line, so the child (which
  prints a ~190-byte progress line per step) cannot run more than ~22 steps
  past ``marker`` before we signal it.
  """
  p = subprocess.Popen([sys.executable] + args, cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, bufsize=0, env=env)
  fcntl.fcntl(p.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
  seen = []
  while True:
    line = p.stdout.readline().decode()
    if not line:
      break
    seen.append(line)
    if marker in line:
      p.send_signal(sig)
      break
  rest = p.communicate(timeout=240)[0]
  return p.returncode, "".join(seen) + (rest or b"").decode()


@contextlib.contextmanager
def file_size_limit(nbytes):
  """Writes that would grow any file past ``nbytes`` fail with OSError(EFBIG), like a full disk.

  (Python ignores SIGXFSZ, so the write returns the error instead of killing us.)
  """
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
  try:
    yield
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
