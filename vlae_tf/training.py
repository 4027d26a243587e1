"""Training, evaluation and export of a VLAE from a config and a work directory.

One optimisation step at global step ``t`` with global batch ``G`` split over
``R`` replicas (per-replica batch ``B = G / R``):

1. Replica ``r`` takes stream positions ``[t G + r B, t G + (r + 1) B)`` of the
   resumable data stream (:mod:`vlae_tf.data`) and rows ``[r B, (r + 1) B)``
   of the global posterior noise ``eps_t ~ N(0, I)`` of shape ``[G, D]``
   drawn statelessly from ``(config.seed, t)``; so every example gets the same
   data and noise whatever ``R`` is.
2. It computes ``model.training_loss`` (mean over its ``B`` examples, with
   beta, KL warm-up and free bits computed on the replica's batch) and the
   gradient of ``loss_r * B / G``; gradients are summed over replicas, giving
   the gradient of the global-batch mean (exactly so when free bits are off).
3. If the loss or the gradient global norm is not finite, the update is
   skipped: weights, optimizer and EMA are untouched, ``skipped_steps`` is
   counted. ``train.max_consecutive_skips`` skips in a row stop the run with an
   error and no new checkpoint.
4. Otherwise the gradient is clipped to global norm ``train.grad_clip_norm``
   (0 disables), the optimizer (Adamax / Adam) applies it with the learning
   rate ``lr(t)``, and the EMA weights move:
   ``w_ema <- d_n w_ema + (1 - d_n) w``, ``d_n = min(decay, (1 + n) / (10 + n))``
   with ``n`` the number of applied updates (TF's ``num_updates`` warm-up, so
   early EMA weights are not dominated by the initialisation).

Learning rate: linear warm-up ``lr * (t + 1) / W`` for ``t < W``, then with
``u = (t - W) / (T - W)`` in [0, 1]:
  cosine      ``m + (lr - m) (1 + cos(pi u)) / 2``
  exponential ``lr (m / lr) ** u``
  constant    ``lr``
(``W`` = train.warmup_steps, ``T`` = train.steps, ``m`` = train.min_learning_rate).

The work directory holds ``config.json`` (the resolved config; a rerun must
agree on everything but the keys in :data:`RESUMABLE_KEYS`), ``checkpoints/``
(model, optimizer, EMA, step, skip counter; the data position is the step),
``tensorboard/``, ``metrics.jsonl`` (the logged interval means, full
precision) and ``eval.json``. Eval and export use the EMA weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import time

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from vlae_tf import data as vdata
from vlae_tf import distribute as vdist
from vlae_tf import evaluation, objective, summaries
from vlae_tf.model import build_model, config_to_dict

OPTIMIZERS = ("adamax", "adam")
DECAYS = ("cosine", "exponential", "constant")
SECTIONS = ("data", "model", "objective", "train", "eval")
# Keys that may change between runs in one work directory (extending or re-scheduling logging).
RESUMABLE_KEYS = ("name", "description", "paper_nll", "paper_bits_per_dim", "train.steps",
                  "train.checkpoint_every", "train.keep_checkpoints", "train.log_every",
                  "train.eval_every", "train.max_consecutive_skips", "train.shuffle_buffer",
                  "data.data_dir", "data.source", "data.tfds_data_dir", "eval")
_NOISE_TAG = 303
CONFIG_FILE = "config.json"
EVAL_FILE = "eval.json"
METRICS_FILE = "metrics.jsonl"  # one JSON line per log step (interval means), chief only


class TrainingError(RuntimeError):
  """The run cannot continue (e.g. too many non-finite steps in a row)."""


# ==================================================================== config
def _reference_config():
  from vlae_tf import zoo
  return zoo.get_config("mnist")


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, key + "."))
    else:
      out[key] = list(v) if isinstance(v, tuple) else v
  return out


def validate_config(config):
  """Raises ``ValueError`` naming every unknown key and bad value of a run config."""
  ref = config_to_dict(_reference_config())
  cfg = config_to_dict(config)
  errors = []
  for key in sorted(set(cfg) - set(ref)):
    errors.append(f"unknown top-level key {key!r}")
  for section in SECTIONS:
    if not isinstance(cfg.get(section), dict):
      errors.append(f"missing section {section!r}")
      continue
    for key in sorted(set(cfg[section]) - set(ref[section])):
      errors.append(f"unknown key {section}.{key} (known: {', '.join(sorted(ref[section]))})")
  if errors:
    raise ValueError("invalid config:\n  " + "\n  ".join(errors))
  d, t, e, m = cfg["data"], cfg["train"], cfg["eval"], cfg["model"]

  def need(cond, msg):
    if not cond:
      errors.append(msg)

  def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

  need(is_int(cfg.get("seed")), f"seed must be an int, got {cfg.get('seed')!r}")
  need(d["dataset"] in vdata.DATASETS, f"data.dataset must be one of {vdata.DATASETS}, "
       f"got {d['dataset']!r}")
  need(d["source"] in vdata.SOURCES, f"data.source must be one of {vdata.SOURCES}, "
       f"got {d['source']!r}")
  need(d["binarization"] in vdata.BINARIZATIONS, f"data.binarization must be one of "
       f"{vdata.BINARIZATIONS}, got {d['binarization']!r}")
  shape = tuple(d["image_shape"]) if isinstance(d["image_shape"], (list, tuple)) else ()
  need(len(shape) == 3 and all(is_int(v) and v > 0 for v in shape),
       f"data.image_shape must be 3 positive ints (H, W, C), got {d['image_shape']!r}")
  native = vdata._NATIVE_SHAPE.get(d["dataset"])
  need(native is None or shape == native, f"data.image_shape {shape} does not match "
       f"dataset {d['dataset']!r} ({native})")
  need(bool(d["train_split"]) and bool(d["test_split"]),
       "data.train_split and data.test_split must be non-empty")
  binary = m["likelihood"] == "bernoulli"
  need(not binary or d["binarization"] != "none", "a bernoulli likelihood needs binary data: "
       "data.binarization must be static, dynamic or threshold, not 'none'")
  need(binary or d["binarization"] == "none", f"likelihood {m['likelihood']!r} models 8-bit "
       f"pixels: data.binarization must be 'none', got {d['binarization']!r}")
  for key in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every",
              "max_consecutive_skips"):
    need(is_int(t[key]) and t[key] >= 1, f"train.{key} must be an int >= 1, got {t[key]!r}")
  for key in ("warmup_steps", "eval_every"):
    need(is_int(t[key]) and t[key] >= 0, f"train.{key} must be an int >= 0, got {t[key]!r}")
  need(t["optimizer"] in OPTIMIZERS, f"train.optimizer must be one of {OPTIMIZERS}, "
       f"got {t['optimizer']!r}")
  need(t["decay"] in DECAYS, f"train.decay must be one of {DECAYS}, got {t['decay']!r}")
  lr, min_lr = t["learning_rate"], t["min_learning_rate"]
  need(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
       f"train.learning_rate must be > 0, got {lr!r}")
  need(isinstance(min_lr, (int, float)) and 0 <= min_lr <= (lr if lr > 0 else 0),
       f"train.min_learning_rate must be in [0, learning_rate], got {min_lr!r}")
  need(t["decay"] != "exponential" or (isinstance(min_lr, (int, float)) and min_lr > 0),
       "train.decay='exponential' needs train.min_learning_rate > 0")
  need(isinstance(t["grad_clip_norm"], (int, float)) and t["grad_clip_norm"] >= 0,
       f"train.grad_clip_norm must be >= 0 (0: no clipping), got {t['grad_clip_norm']!r}")
  need(isinstance(t["ema_decay"], (int, float)) and 0 <= t["ema_decay"] < 1,
       f"train.ema_decay must be in [0, 1), got {t['ema_decay']!r}")
  need(is_int(e["iwae_samples"]) and 1 <= e["iwae_samples"] <= 65536,
       f"eval.iwae_samples must be in [1, 65536], got {e['iwae_samples']!r}")
  need(is_int(e["batch_size"]) and e["batch_size"] >= 1,
       f"eval.batch_size must be >= 1, got {e['batch_size']!r}")
  need(is_int(e["num_examples"]) and (e["num_examples"] == -1 or e["num_examples"] >= 1),
       f"eval.num_examples must be -1 (all) or >= 1, got {e['num_examples']!r}")
  for key in ("periodic_examples", "num_images"):
    need(is_int(e[key]) and e[key] >= 0, f"eval.{key} must be an int >= 0, got {e[key]!r}")
  if errors:
    raise ValueError("invalid config:\n  " + "\n  ".join(errors))


def _resumable(key):
  return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def config_differences(stored, new):
  """``[(key, stored, new)]`` for every non-resumable key whose value differs."""
  a, b = _flatten(config_to_dict(stored)), _flatten(config_to_dict(new))
  return [(k, a.get(k, "<missing>"), b.get(k, "<missing>"))
          for k in sorted(set(a) | set(b)) if not _resumable(k) and a.get(k) != b.get(k)]


def _jsonable(config):
  return json.loads(ml_collections.ConfigDict(config_to_dict(config)).to_json())


def _tuplify(v):
  if isinstance(v, dict):
    return {k: _tuplify(x) for k, x in v.items()}
  if isinstance(v, list):
    return tuple(_tuplify(x) for x in v)
  return v


def read_workdir_config(workdir):
  """The ``ConfigDict`` stored in ``<workdir>/config.json`` (lists back to tuples)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir!r} is not a training work directory "
                            f"(train with --workdir={workdir} first)")
  with open(path) as f:
    return ml_collections.ConfigDict(_tuplify(json.load(f)))


def prepare_workdir(config, workdir, write=True):
  """Checks ``config`` against the one stored in ``workdir`` (if any) and stores it.

  Raises ``ValueError`` listing every differing key when the work directory
  was created by a different config (only :data:`RESUMABLE_KEYS` may change).
  """
  validate_config(config)
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    stored = read_workdir_config(workdir)
    diffs = config_differences(stored, config)
    if diffs:
      lines = "\n  ".join(f"{k}: stored {a!r}, now {b!r}" for k, a, b in diffs)
      raise ValueError(f"work directory {workdir!r} was created by a different config; "
                       f"differences:\n  {lines}\nUse a new --workdir, or the same config "
                       f"(only {', '.join(RESUMABLE_KEYS)} may change between runs).")
  if write:
    os.makedirs(workdir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(_jsonable(config), f, indent=2, sort_keys=True)
    os.replace(tmp, path)


# ==================================================================== optimisation
def learning_rate(step, train_cfg):
  """``lr(t)`` of the module docstring, a float32 scalar tensor."""
  t = tf.cast(step, tf.float32)
  lr, m = float(train_cfg.learning_rate), float(train_cfg.min_learning_rate)
  warm, total = float(train_cfg.warmup_steps), float(train_cfg.steps)
  u = tf.clip_by_value((t - warm) / max(total - warm, 1.0), 0.0, 1.0)
  if train_cfg.decay == "cosine":
    rate = m + (lr - m) * 0.5 * (1.0 + tf.cos(math.pi * u))
  elif train_cfg.decay == "exponential":
    rate = lr * tf.pow(m / lr, u)
  else:
    rate = tf.constant(lr)
  if warm > 0:
    rate = tf.where(t < warm, lr * (t + 1.0) / warm, rate)
  return rate


def make_optimizer(train_cfg, step):
  """Adamax / Adam whose learning rate follows ``lr(step)`` of the step variable."""
  cls = {"adamax": keras.optimizers.Adamax, "adam": keras.optimizers.Adam}[train_cfg.optimizer]
  return cls(learning_rate=lambda: learning_rate(step, train_cfg))


class EMA(tf.Module):
  """Exponential moving average (shadow copies) of a model's weights."""

  def __init__(self, variables, decay, name="ema"):
    super().__init__(name=name)
    self.decay = float(decay)
    self._variables = list(variables)
    self.shadow = [tf.Variable(tf.convert_to_tensor(v), trainable=False, name=f"ema_{i}")
                   for i, v in enumerate(self._variables)]

  def update(self, num_updates):
    n = tf.cast(num_updates, tf.float32)
    d = tf.minimum(self.decay, (1.0 + n) / (10.0 + n))
    for s, v in zip(self.shadow, self._variables):
      s.assign(d * s + (1.0 - d) * tf.convert_to_tensor(v))

  def copy_to_model(self):
    for s, v in zip(self.shadow, self._variables):
      v.assign(s)

  @contextlib.contextmanager
  def swapped(self):
    """Temporarily puts the EMA weights into the model (restored exactly afterwards)."""
    backup = [v.numpy() for v in self._variables]
    self.copy_to_model()
    try:
      yield
    finally:
      for v, b in zip(self._variables, backup):
        v.assign(b)


# ==================================================================== state
class TrainState:
  """Model, optimizer, EMA, counters and checkpoint of one run, built in ``strategy.scope()``."""

  def __init__(self, config, strategy=None):
    self.config = config
    self.strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(int(config.seed))  # same initial weights for every strategy
    with self.strategy.scope():
      self.model = build_model(config)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                              aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps",
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.optimizer = make_optimizer(config.train, self.step)
      self.optimizer.build(self.model.trainable_variables)
      self.ema = EMA(self.model.trainable_variables, config.train.ema_decay)
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          ema=self.ema, step=self.step, skipped=self.skipped)


def checkpoint_dir(workdir):
  return os.path.join(workdir, "checkpoints")


def latest_checkpoint(workdir):
  return tf.train.latest_checkpoint(checkpoint_dir(workdir))


def load_model_from_workdir(workdir, use_ema=True, config=None):
  """``(model, config, step)`` from the latest checkpoint of a work directory.

  The model holds the EMA weights when ``use_ema`` (what eval and export use).
  """
  if config is None:
    config = read_workdir_config(workdir)
  path = latest_checkpoint(workdir)
  if path is None:
    raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}: train first")
  model = build_model(config)
  ema = EMA(model.trainable_variables, config.train.ema_decay)
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(model=model, ema=ema, step=step).restore(path).expect_partial()
  if use_ema:
    ema.copy_to_model()
  return model, config, int(step.numpy())


# ==================================================================== the step
def make_train_step(state):
  """A ``tf.function(dist_batch, poison) -> metrics`` doing one global step (module doc)."""
  model, strategy, cfg = state.model, state.strategy, state.config
  global_batch = int(cfg.train.batch_size)
  clip = float(cfg.train.grad_clip_norm)
  groups = int(cfg.objective.free_bits_groups)
  seed = tf.constant([int(cfg.seed), _NOISE_TAG], tf.int64)
  variables = model.trainable_variables

  def replica_step(x, step, poison):
    ctx = tf.distribute.get_replica_context()
    b = tf.shape(x)[0]
    eps = tf.random.stateless_normal([global_batch, model.latent_size],
                                     tf.random.experimental.stateless_fold_in(seed, step))
    r = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    eps = eps[r * b:(r + 1) * b]
    share = tf.cast(b, tf.float32) / global_batch
    with tf.GradientTape() as tape:
      loss, m = model.training_loss(x, step, eps=eps)
      loss = loss * poison
      scaled = loss * share
    grads = tape.gradient(scaled, variables)
    sums = {"loss": scaled,
            "elbo": tf.reduce_sum(m["elbo"]) / global_batch,
            "rate": tf.reduce_sum(m["rate"]) / global_batch,
            "distortion": tf.reduce_sum(m["distortion"]) / global_batch,
            "kl_per_group": tf.reduce_sum(objective.group_rates(m["rate_per_dim"], groups),
                                          0) / global_batch}
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, (grads, sums))

  @tf.function
  def train_step(dist_x, poison):
    step = state.step.read_value()
    grads, sums = strategy.run(replica_step, (dist_x, step, poison))
    grads = strategy.experimental_local_results(grads)[0]
    sums = strategy.experimental_local_results(sums)[0]
    norm = tf.linalg.global_norm(grads)
    ok = tf.math.is_finite(norm) & tf.math.is_finite(sums["loss"])

    def apply():
      g = tf.clip_by_global_norm(grads, clip, use_norm=norm)[0] if clip > 0 else grads
      state.optimizer.apply_gradients(zip(g, variables))
      state.ema.update(state.optimizer.iterations)
      return tf.constant(0, tf.int64)

    skipped = tf.cond(ok, apply, lambda: tf.constant(1, tf.int64))
    state.skipped.assign_add(skipped)
    state.step.assign_add(1)
    sums = dict(sums, grad_norm=norm, finite=ok, learning_rate=learning_rate(step, cfg.train))
    return sums

  return train_step


# ==================================================================== summaries
def _image_grid(x, num_levels, cols=8):
  """``[N, H, W, C]`` data-scale images -> one ``[1, rows H, cols W, C]`` float grid in [0, 1]."""
  x = np.asarray(x, np.float32) / float(num_levels - 1)
  n, h, w, c = x.shape
  rows = -(-n // cols)
  grid = np.zeros((rows * h, cols * w, c), np.float32)
  for k in range(n):
    i, j = divmod(k, cols)
    grid[i * h:(i + 1) * h, j * w:(j + 1) * w] = x[k]
  return grid[None]


def sample_images(model, z_flat, seed):
  """x ~ p(x | z) with the fastest available sampler ("cached", else "naive")."""
  from vlae_tf import sampling
  for method in ("cached", "naive"):
    try:
      return sampling.sample_x_given_z(model, z_flat, seed=seed, method=method)
    except ValueError as e:
      if "method" not in str(e):
        raise
  raise RuntimeError("no sampler available")


def periodic_eval(state, x_eval, step, writer, seed=0):
  """EMA-weight ELBO terms, active units, I(x; z) and image grids on a few held-out images."""
  model, cfg = state.model, state.config
  out = {}
  with state.ema.swapped():
    if len(x_eval):
      terms = {k: [] for k in ("elbo", "rate", "distortion")}
      bs = int(cfg.eval.batch_size)
      for i in range(0, len(x_eval), bs):
        t = model.elbo_terms(x_eval[i:i + bs], seed=tf.constant([seed, i], tf.int64))
        for k in terms:
          terms[k].append(t[k].numpy())
      out = {k: float(np.concatenate(v).mean()) for k, v in terms.items()}
      out["bits_per_dim"] = -out["elbo"] / (model.num_dims * math.log(2.0))
      mu, sigma = evaluation.posterior_stats(model, x_eval[:1000])
      out["active_units"] = evaluation.active_units(mu)[0]
      out["mutual_information"] = evaluation.mutual_information(mu, sigma, seed)
    n = min(int(cfg.eval.num_images), len(x_eval)) if len(x_eval) else int(cfg.eval.num_images)
    images = {}
    if n:
      z = model.sample_prior(n, seed=tf.constant([seed, 1], tf.int64))
      images["samples"] = sample_images(model, z, tf.constant([seed, 2], tf.int64))
      if len(x_eval):
        xr = x_eval[:n]
        mu, sigma, ctx = model.encode(model.check_inputs(xr))
        z, _ = model.posterior_from_noise(mu, sigma, ctx, tf.zeros_like(mu))
        rec = sample_images(model, z, tf.constant([seed, 3], tf.int64))
        images["reconstructions"] = np.concatenate([xr.astype(np.float32), rec.numpy()], 0)
  with writer.as_default(step=step):
    for k, v in out.items():
      summaries.scalar(f"eval/{k}", v)
    for k, v in images.items():
      summaries.image(f"eval/{k}", _image_grid(v, model.num_levels, cols=max(n, 1)))
  writer.flush()
  return out


def _format_duration(s):
  s = int(max(s, 0))
  h, m = divmod(s, 3600)
  m, s = divmod(m, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _log(msg):
  print(msg, flush=True)


# ==================================================================== the loop
class _Preempted:
  """SIGTERM flag: the loop checkpoints and exits at the next step boundary."""

  def __init__(self):
    self.flag = False
    self._old = None

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread
      self._old = None
    return self

  def _handle(self, signum, frame):
    self.flag = True

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


class Preempted(SystemExit):
  """Raised after SIGTERM once the checkpoint is saved (exit status 143)."""

  def __init__(self):
    super().__init__(143)


def train(config, workdir, strategy=None, fault_hook=None):
  """Trains (or resumes) a run in ``workdir``; returns a dict of final counters.

  Args:
    config: the run config (validated and checked against ``workdir`` first).
    workdir: the work directory (see module doc).
    strategy: a ``tf.distribute.Strategy`` (default: the default strategy).
    fault_hook: test hook ``step -> bool``; True poisons that step's loss with
      NaN (after input validation) to exercise the non-finite-update path.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = vdist.is_chief(strategy)
  prepare_workdir(config, workdir, write=False)
  replicas = strategy.num_replicas_in_sync
  global_batch = int(config.train.batch_size)
  if global_batch % replicas:
    raise ValueError(f"train.batch_size={global_batch} must be divisible by the "
                     f"{replicas} replicas of the strategy")
  total = int(config.train.steps)
  state = TrainState(config, strategy)
  if chief:
    prepare_workdir(config, workdir, write=True)
  ckpt_dir = checkpoint_dir(workdir)
  if not chief:
    _, task_id = vdist.task_info(strategy)
    ckpt_dir = os.path.join(workdir, f".worker_{task_id}_tmp", "checkpoints")
  manager = tf.train.CheckpointManager(state.checkpoint, ckpt_dir,
                                       max_to_keep=int(config.train.keep_checkpoints))
  restore_from = latest_checkpoint(workdir)
  if restore_from:
    state.checkpoint.restore(restore_from).assert_existing_objects_matched()
    _log(f"resumed from {restore_from} at step {int(state.step.numpy())}")
  start = int(state.step.numpy())
  writer = (tf.summary.create_file_writer(os.path.join(workdir, "tensorboard")) if chief
            else tf.summary.create_noop_writer())
  if start >= total:
    _log(f"already at step {start} >= train.steps={total}; nothing to do")
    return {"step": start, "skipped_steps": int(state.skipped.numpy()), "trained_steps": 0}

  dist_ds = vdata.distributed_train_dataset(strategy, config, start)
  x_eval = np.zeros((0,) + tuple(config.data.image_shape), np.uint8)
  if chief and config.eval.periodic_examples:
    # Evenly spaced, not a prefix: test sets like binarized MNIST's are sorted by class.
    x_all = vdata.load_split(config, vdata.eval_split_name(config, "valid"))
    x_eval = x_all[evaluation.iwae_subset(len(x_all), int(config.eval.periodic_examples))]
  train_step = make_train_step(state)
  it = iter(dist_ds)
  log_every, ckpt_every = int(config.train.log_every), int(config.train.checkpoint_every)
  eval_every, max_skips = int(config.train.eval_every), int(config.train.max_consecutive_skips)
  acc, acc_n, interval, consecutive = {}, 0, 0, 0
  t_log, t_start = time.time(), time.time()
  one, nan = tf.constant(1.0), tf.constant(float("nan"))
  _log(f"training {config.get('name', '?')} on {config.data.dataset} from step {start} to "
       f"{total}: global batch {global_batch} over {replicas} replica(s), workdir {workdir}")

  def save(step):
    manager.save(checkpoint_number=step)

  with _Preempted() as preempted:
    step = start
    while step < total:
      poison = nan if (fault_hook is not None and fault_hook(step)) else one
      m = train_step(next(it), poison)
      step += 1
      finite = bool(m["finite"].numpy())
      if finite:
        consecutive = 0
        for k in ("loss", "elbo", "rate", "distortion", "grad_norm"):
          acc[k] = acc.get(k, 0.0) + float(m[k].numpy())
        acc_n += 1
      else:
        consecutive += 1
        _log(f"step {step}: non-finite loss or gradient (loss {float(m['loss'].numpy())}, "
             f"grad norm {float(m['grad_norm'].numpy())}); update skipped "
             f"({consecutive} in a row, {int(state.skipped.numpy())} in total)")
        if consecutive >= max_skips:
          raise TrainingError(
              f"{consecutive} consecutive non-finite steps (train.max_consecutive_skips="
              f"{max_skips}) at step {step}; stopping. The last good checkpoint "
              f"{manager.latest_checkpoint} is intact; lower train.learning_rate or check the data.")
      interval += 1
      if step % log_every == 0 or step == total:
        now = time.time()
        ex_s = global_batch * interval / max(now - t_log, 1e-9)
        mean = {k: v / max(acc_n, 1) for k, v in acc.items()}
        eta = (total - step) * (now - t_start) / max(step - start, 1)
        bpd = -mean.get("elbo", float("nan")) / (state.model.num_dims * math.log(2.0))
        lr = float(m["learning_rate"].numpy())
        f = lambda k: mean.get(k, float("nan"))  # noqa: E731
        _log(f"step {step}/{total} ({100.0 * step / total:.1f}%) | loss {f('loss'):.3f} | "
             f"elbo {f('elbo'):.3f} | rate {f('rate'):.3f} | distortion {f('distortion'):.3f} | "
             f"bits/dim {bpd:.4f} | grad {f('grad_norm'):.2f} | lr {lr:.2e} | {ex_s:.1f} ex/s | "
             f"ETA {_format_duration(eta)} | skipped {int(state.skipped.numpy())}")
        with writer.as_default(step=step):
          for k, v in mean.items():
            summaries.scalar(f"train/{k}", v)
          summaries.scalar("train/bits_per_dim", bpd)
          summaries.scalar("train/learning_rate", lr)
          summaries.scalar("train/skipped_steps", int(state.skipped.numpy()))
          summaries.scalar("train/examples_per_second", ex_s)
          kl = m["kl_per_group"].numpy()
          summaries.histogram("train/kl_per_group", kl)
          if kl.size <= 64:
            for g, v in enumerate(kl):
              summaries.scalar(f"train_kl_per_group/{g:03d}", float(v))
        if chief:
          record = dict(mean, step=step, bits_per_dim=bpd, learning_rate=lr,
                        examples_per_second=ex_s, skipped_steps=int(state.skipped.numpy()))
          with open(os.path.join(workdir, METRICS_FILE), "a") as fh:
            fh.write(json.dumps(record) + "\n")
        acc, acc_n, interval, t_log = {}, 0, 0, time.time()
      if preempted.flag:
        save(step)
        _log(f"SIGTERM: saved checkpoint at step {step}; exiting")
        raise Preempted()
      if step % ckpt_every == 0 or step == total:
        save(step)
      if chief and ((eval_every and step % eval_every == 0) or step == total):
        ev = periodic_eval(state, x_eval, step, writer, seed=int(config.seed))
        if ev:
          _log(f"eval @ {step} (EMA, {len(x_eval)} examples): elbo {ev['elbo']:.3f} | rate "
               f"{ev['rate']:.3f} | distortion {ev['distortion']:.3f} | active units "
               f"{ev['active_units']}/{state.model.latent_size}")
  writer.flush()
  if not chief:
    shutil.rmtree(os.path.dirname(ckpt_dir), ignore_errors=True)
  wall = time.time() - t_start
  _log(f"done: step {step}, {step - start} steps in {_format_duration(wall)} "
       f"({global_batch * (step - start) / max(wall, 1e-9):.1f} ex/s), "
       f"skipped {int(state.skipped.numpy())}")
  return {"step": step, "skipped_steps": int(state.skipped.numpy()),
          "trained_steps": step - start, "wall_time_s": wall}


# ==================================================================== eval / export
def evaluate_workdir(workdir, config=None, iwae_samples=None, num_examples=None, seed=0,
                     write=True, iwae_examples=None):
  """Test-set ELBO, IWAE NLL, bits/dim, active units and I(x; z) -> ``<workdir>/eval.json``.

  Args:
    workdir: a training work directory.
    config: optional config; must agree with the stored one (see ``prepare_workdir``).
    iwae_samples: k of the IWAE bound (default ``config.eval.iwae_samples``).
    num_examples: first n test examples (default ``config.eval.num_examples``; -1 all).
    iwae_examples: compute the IWAE bound on an evenly spaced subset of this many of
      those examples (default ``config.eval.iwae_examples``; -1 all); the ELBO
      always uses all of them.
  """
  if config is not None:
    prepare_workdir(config, workdir, write=False)
  stored = read_workdir_config(workdir)
  cfg = config or stored
  k = int(iwae_samples or cfg.eval.iwae_samples)
  n = int(num_examples or cfg.eval.num_examples)
  t0 = time.time()
  model, cfg, step = load_model_from_workdir(workdir, use_ema=True, config=cfg)
  split = cfg.data.test_split
  x = vdata.load_split(cfg, split, n)
  m = int(iwae_examples or cfg.eval.get("iwae_examples", -1))
  result = evaluation.evaluate(model, x, num_samples=k, batch_size=int(cfg.eval.batch_size),
                               seed=seed, iwae_examples=m)
  result.update({"step": step, "checkpoint": latest_checkpoint(workdir), "weights": "ema",
                 "dataset": cfg.data.dataset, "split": split, "binarization": cfg.data.binarization,
                 "num_examples_requested": n, "iwae_samples_requested": k, "seed": seed,
                 "config_name": cfg.get("name", ""), "wall_time_s": time.time() - t0,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
  if write:
    path = os.path.join(workdir, EVAL_FILE)
    with open(path + ".tmp", "w") as f:
      json.dump(result, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
  return result


def export_workdir(workdir, export_dir, config=None):
  """Exports the EMA model of ``workdir`` with ``vlae_tf.export.export_saved_model``."""
  try:
    from vlae_tf import export
    fn = export.export_saved_model
  except (ImportError, AttributeError) as e:
    raise RuntimeError(f"export not available: vlae_tf.export.export_saved_model is missing "
                       f"({e})") from e
  if config is not None:
    prepare_workdir(config, workdir, write=False)
  model, cfg, step = load_model_from_workdir(workdir, use_ema=True)
  info = {"step": step, "workdir": os.path.abspath(workdir), "weights": "ema"}
  return fn(model, cfg, export_dir, **info)


__all__ = ["validate_config", "config_differences", "prepare_workdir", "read_workdir_config",
           "learning_rate", "make_optimizer", "EMA", "TrainState", "make_train_step", "train",
           "load_model_from_workdir", "evaluate_workdir", "export_workdir", "TrainingError",
           "Preempted", "RESUMABLE_KEYS"]
