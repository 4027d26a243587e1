"""A training work directory: its stored config, its checkpoints, and evaluating one.

Layout::

  <workdir>/
    config.json      the resolved config (JSON form of vlae_tf.config); a rerun must agree
                     on everything but the keys in RESUMABLE_KEYS
    checkpoints/     tf.train.Checkpoint(model=, optimizer=, ema=, step=, skipped=); the data
                     position is the step
    tensorboard/     summaries
    metrics.jsonl    one JSON line per log step (the interval means, full precision; chief only;
                     heldout_split: the periodic evaluation's split, vlae_tf.data.heldout_split)
    eval.json        the test-set evaluation of the latest checkpoint (EMA weights)

:func:`load_model_from_workdir` restores the model (EMA weights by default)
from the latest checkpoint; :func:`evaluate_workdir` writes ``eval.json``.
"""

from __future__ import annotations

import json
import os
import time

import tensorflow as tf

from vlae_tf import atomic, checkpoints
from vlae_tf import config as vconfig
from vlae_tf import data as vdata
from vlae_tf import evaluation
from vlae_tf.model import build_model
from vlae_tf.optimizer import EMA

# Keys that may change between runs in one work directory (extending or re-scheduling logging).
RESUMABLE_KEYS = ("name", "description", "paper_nll", "paper_bits_per_dim", "train.steps",
                  "train.checkpoint_every", "train.keep_checkpoints", "train.log_every",
                  "train.eval_every", "train.max_consecutive_skips", "train.shuffle_buffer",
                  "data.data_dir", "data.source", "data.tfds_data_dir", "eval",
                  "train.precision")
CONFIG_FILE = "config.json"
EVAL_FILE = "eval.json"
METRICS_FILE = "metrics.jsonl"


# ==================================================================== config.json
def _resumable(key):
  return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def config_differences(stored, new):
  """``[(key, stored, new)]`` for every non-resumable key whose value differs."""
  a, b = vconfig.flatten(stored), vconfig.flatten(new)
  return [(k, a.get(k, "<missing>"), b.get(k, "<missing>"))
          for k in sorted(set(a) | set(b)) if not _resumable(k) and a.get(k) != b.get(k)]


def read_workdir_config(workdir):
  """The ``ConfigDict`` stored in ``<workdir>/config.json`` (lists back to tuples).

  Keys added to the schema after the run was made take their defaults (which
  are what such runs used), so an old run resumes, evaluates and exports.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir!r} is not a training work directory "
                            f"(train with --workdir={workdir} first)")
  try:
    with open(path) as f:
      stored = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"work directory {workdir!r}: {path} is not valid JSON ({e}); restore it "
                     "from a backup or use a new --workdir") from None
  if not isinstance(stored, dict) or not stored:
    raise ValueError(f"work directory {workdir!r}: {path} does not hold a config (a JSON "
                     f"object), got {type(stored).__name__} {str(stored)[:40]}")
  return vconfig.from_json(vconfig.jsonable(vconfig.with_defaults(stored)))


class ConfigMismatch(ValueError):
  """The work directory was created by another config (the message lists every difference)."""


def check_config(config, workdir):
  """Validates ``config`` and checks it against the one stored in ``workdir`` (if any).

  Raises ``ValueError`` naming every bad value, or :class:`ConfigMismatch` listing
  every differing key when the work directory was created by a different config (only
  :data:`RESUMABLE_KEYS` may change).
  """
  vconfig.validate_config(config)
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    return
  diffs = config_differences(read_workdir_config(workdir), config)
  if diffs:
    lines = "\n  ".join(f"{k}: stored {a!r}, now {b!r}" for k, a, b in diffs)
    hint = ("\n(The CIFAR-10 zoo configs carve a validation split out of train now; a run "
            "started before resumes with --config.data.valid_split='', on all its training "
            "images.)" if any(k == "data.valid_split" and a == "" for k, a, _ in diffs) else "")
    raise ConfigMismatch(f"work directory {workdir!r} was created by a different config; "
                     f"differences:\n  {lines}\nUse a new --workdir, or the same config "
                     f"(only {', '.join(RESUMABLE_KEYS)} may change between runs).{hint}")


def write_config(config, workdir):
  """Stores ``config`` (checked with :func:`check_config` first) as ``<workdir>/config.json``."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  atomic.write_json(path, vconfig.jsonable(config))


# ==================================================================== checkpoints
def checkpoint_dir(workdir):
  return os.path.join(workdir, "checkpoints")


def latest_checkpoint(workdir):
  """The newest checkpoint on disk, also without a usable index file (:mod:`vlae_tf.checkpoints`)."""
  return checkpoints.latest(checkpoint_dir(workdir))


def load_model_from_workdir(workdir, use_ema=True, config=None):
  """``(model, config, step)`` from the latest checkpoint of a work directory.

  The model holds the EMA weights when ``use_ema`` (what eval and export use).
  """
  if config is None:
    config = read_workdir_config(workdir)
  if latest_checkpoint(workdir) is None:
    raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}: train first")
  model = build_model(config)
  ema = EMA(model.trainable_variables, config.train.ema_decay)
  step = tf.Variable(0, dtype=tf.int64)
  checkpoints.restore(tf.train.Checkpoint(model=model, ema=ema, step=step),
                      checkpoint_dir(workdir), log=print, repair=False)
  if use_ema:
    ema.copy_to_model()
  return model, config, int(step.numpy())


# ==================================================================== eval.json
def evaluate_workdir(workdir, config=None, iwae_samples=None, num_examples=None, seed=0,
                     write=True, iwae_examples=None, log=None):
  """Test-set ELBO, IWAE NLL, bits/dim, active units and I(x; z) -> ``<workdir>/eval.json``.

  Args:
    workdir: a training work directory.
    config: optional config; must agree with the stored one (see :func:`check_config`).
    iwae_samples: k of the IWAE bound (default ``config.eval.iwae_samples``).
    num_examples: first n test examples (default ``config.eval.num_examples``; -1 all).
    seed: seed of the posterior samples.
    write: write ``eval.json`` (atomically).
    iwae_examples: compute the IWAE bound on an evenly spaced subset of this many of
      those examples (default ``config.eval.iwae_examples``; -1 all); the ELBO
      always uses all of them.
    log: e.g. ``print``: say what is computed, then progress with an ETA at least every
      half minute of a long evaluation (``train.py --mode=eval`` does); None: silent.
  """
  if config is not None:
    check_config(config, workdir)
  stored = read_workdir_config(workdir)
  cfg = config or stored
  k = int(iwae_samples or cfg.eval.iwae_samples)
  n = int(num_examples or cfg.eval.num_examples)
  t0 = time.time()
  model, cfg, step = load_model_from_workdir(workdir, use_ema=True, config=cfg)
  split = cfg.data.test_split
  x = vdata.load_split(cfg, split, n)
  m = int(iwae_examples or cfg.eval.get("iwae_examples", -1))
  if log is not None:
    log(describe_evaluation(workdir, step, split, len(x), k,
                            len(evaluation.iwae_subset(len(x), m))))
  result = evaluation.evaluate(model, x, num_samples=k, batch_size=int(cfg.eval.batch_size),
                               seed=seed, iwae_examples=m, log=log)
  result.update({"step": step, "checkpoint": latest_checkpoint(workdir), "weights": "ema",
                 "dataset": cfg.data.dataset, "split": split, "binarization": cfg.data.binarization,
                 "num_examples_requested": n, "iwae_samples_requested": k, "seed": seed,
                 "config_name": cfg.get("name", ""), "wall_time_s": time.time() - t0,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
  if write:
    path = os.path.join(workdir, EVAL_FILE)
    atomic.write_json(path, result)
  return result


def describe_evaluation(workdir, step, split, n, k, n_iwae):
  """The line ``--mode=eval`` starts with: what it computes, and how to ask for the full bound."""
  subset = f"all {n:,}" if n_iwae >= n else f"{n_iwae:,} evenly spaced ones"
  full = ("" if n_iwae >= n and k >= evaluation.MAX_IWAE_SAMPLES else
          f"; the full bound: --eval_iwae_samples={evaluation.MAX_IWAE_SAMPLES} "
          "--eval_iwae_examples=-1, hours on a CPU")
  return (f"evaluating {workdir} at step {step} (EMA weights): ELBO, rate and distortion on all "
          f"{n:,} images of the {split!r} split, IWAE NLL bound with k={k} on {subset} "
          f"(eval.iwae_samples, eval.iwae_examples{full})")


__all__ = ["RESUMABLE_KEYS", "CONFIG_FILE", "EVAL_FILE", "METRICS_FILE", "config_differences",
           "read_workdir_config", "check_config", "write_config",
           "checkpoint_dir", "latest_checkpoint", "load_model_from_workdir", "evaluate_workdir",
           "describe_evaluation"]
