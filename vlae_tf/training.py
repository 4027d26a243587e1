"""The training loop of a VLAE: train state, the distributed step, periodic eval, checkpoints.

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
   rate ``lr(t)`` and the EMA weights move (schedule and EMA:
   :mod:`vlae_tf.optimizer`).

The work directory (``config.json``, ``checkpoints/``, ``tensorboard/``,
``metrics.jsonl``, ``eval.json``) is described in :mod:`vlae_tf.workdir`.
Every ``train.eval_every`` steps the chief evaluates the EMA weights on a few
held-out images (:func:`periodic_eval`) of the validation split, or of the test
split where the config names none; the log and every ``metrics.jsonl`` line
say which (``heldout_split``, e.g. ``"valid (5,000 images carved from train)"``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import keras
import numpy as np
import tensorflow as tf

from vlae_tf import checkpoints
from vlae_tf import data as vdata
from vlae_tf import distribute as vdist
from vlae_tf import evaluation, objective, sampling, summaries
from vlae_tf import workdir as vwork
from vlae_tf.images import image_grid
from vlae_tf.model import build_model
from vlae_tf.optimizer import EMA, learning_rate, make_optimizer
from vlae_tf.pretrained import keras_weights as zoo_keras

class TrainingError(RuntimeError):
  """The run cannot continue (e.g. too many non-finite steps in a row)."""


# ==================================================================== state
class TrainState:
  """Model, optimizer, EMA, counters and checkpoint of one run, built in ``strategy.scope()``."""

  def __init__(self, config, strategy=None):
    self.config = config
    self.strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(int(config.seed))  # same initial weights for every strategy
    with self.strategy.scope():
      self.model = build_model(config, config.train.get("precision", "float32"))
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                              aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps",
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.optimizer = make_optimizer(config.train, self.step)
      self.optimizer.build(self.model.trainable_variables)
      self.ema = EMA(self.model.trainable_variables, config.train.ema_decay)
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          ema=self.ema, step=self.step, skipped=self.skipped)


# ==================================================================== the step
def make_train_step(state):
  """A ``tf.function(dist_batch, poison) -> metrics`` doing one global step (module doc)."""
  model, strategy, cfg = state.model, state.strategy, state.config
  global_batch = int(cfg.train.batch_size)
  clip = float(cfg.train.grad_clip_norm)
  groups = int(cfg.objective.free_bits_groups)
  seed = vdata.stream_seed(cfg.seed, "posterior_noise")   # one table of stream seeds
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


# ==================================================================== periodic eval
def periodic_eval(state, x_eval, step, writer, seed=0):
  """EMA-weight ELBO terms, active units, I(x; z) and image grids on a few held-out images."""
  model, cfg = state.model, state.config
  out = {}
  with state.ema.swapped():
    if len(x_eval):
      per = evaluation.elbo_per_example(model, x_eval, int(cfg.eval.batch_size), seed)
      out = {k: float(per[k].mean()) for k in ("elbo", "rate", "distortion")}
      out["bits_per_dim"] = objective.nats_to_bits_per_dim(-out["elbo"], model.num_dims)
      sub = evaluation.iwae_subset(len(x_eval), evaluation.MUTUAL_INFORMATION_EXAMPLES)
      mu, sigma = per["mu"][sub], per["sigma"][sub]
      out["active_units"] = evaluation.active_units(mu)[0]
      out["mutual_information"] = evaluation.mutual_information(mu, sigma, seed)
    n = min(int(cfg.eval.num_images), len(x_eval)) if len(x_eval) else int(cfg.eval.num_images)
    images = {}
    if n:
      z = model.sample_prior(n, seed=tf.constant([seed, 1], tf.int64))
      images["samples"] = sampling.sample_x_given_z(model, z, seed=tf.constant([seed, 2], tf.int64))
      if len(x_eval):
        xr = x_eval[:n]
        mu, sigma, ctx = model.encode(model.check_inputs(xr))
        z, _ = model.posterior_from_noise(mu, sigma, ctx, tf.zeros_like(mu))
        rec = sampling.sample_x_given_z(model, z, seed=tf.constant([seed, 3], tf.int64))
        images["reconstructions"] = np.concatenate([xr.astype(np.float32), rec.numpy()], 0)
  with writer.as_default(step=step):
    for k, v in out.items():
      summaries.scalar(f"eval/{k}", v)
    for k, v in images.items():
      grid = image_grid(np.asarray(v, np.float32) / (model.num_levels - 1), ncol=max(n, 1), pad=0,
                        pad_value=0.0)
      summaries.image(f"eval/{k}", grid[None])
  writer.flush()
  return out


def _periodic_eval_images(config, chief):
  """``(images, heldout)``: the held-out images of :func:`periodic_eval` and their split in words.

  Evenly spaced, not a prefix: test sets like binarized MNIST's are sorted by
  class. ``heldout`` is :func:`vlae_tf.data.heldout_split`, e.g. ``"valid
  (5,000 images carved from train)"`` or ``"test (10,000 images)"``; no images
  and ``""`` on other workers than the chief, or without a periodic evaluation.
  """
  if not (chief and config.eval.periodic_examples):
    return np.zeros((0,) + tuple(config.data.image_shape), np.uint8), ""
  x_all = vdata.load_split(config, vdata.eval_split_name(config, "valid"))
  x = x_all[evaluation.iwae_subset(len(x_all), int(config.eval.periodic_examples))]
  return x, vdata.heldout_split(config, len(x_all))


# ==================================================================== logging
def _format_duration(s):
  s = int(max(s, 0))
  h, m = divmod(s, 3600)
  m, s = divmod(m, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _log(msg):
  print(msg, flush=True)


class _Progress:
  """Interval means of the step metrics, the skip counter, and their log lines and summaries."""

  def __init__(self, state, workdir, writer, chief, start, heldout=""):
    self.state, self.workdir, self.writer, self.chief = state, workdir, writer, chief
    self.heldout = heldout     # the periodic evaluation's split in words, on every metrics line
    cfg = state.config.train
    self.start, self.total, self.batch = start, int(cfg.steps), int(cfg.batch_size)
    self.max_skips = int(cfg.max_consecutive_skips)
    self.acc, self.acc_n, self.interval, self.consecutive = {}, 0, 0, 0
    self.t_log = self.t_start = time.time()

  def skipped(self):
    return int(self.state.skipped.numpy())

  def record(self, m, step, last_checkpoint):
    """Accumulates a finite step; logs a skipped one (:class:`TrainingError` after too many)."""
    self.interval += 1
    if bool(m["finite"].numpy()):
      self.consecutive = 0
      for k in ("loss", "elbo", "rate", "distortion", "grad_norm"):
        self.acc[k] = self.acc.get(k, 0.0) + float(m[k].numpy())
      self.acc_n += 1
      return
    self.consecutive += 1
    _log(f"step {step}: non-finite loss or gradient (loss {float(m['loss'].numpy())}, "
         f"grad norm {float(m['grad_norm'].numpy())}); update skipped "
         f"({self.consecutive} in a row, {self.skipped()} in total)")
    if self.consecutive >= self.max_skips:
      raise TrainingError(
          f"{self.consecutive} consecutive non-finite steps (train.max_consecutive_skips="
          f"{self.max_skips}) at step {step}; stopping. The last good checkpoint "
          f"{last_checkpoint} is intact; lower train.learning_rate or check the data.")

  def log(self, m, step):
    """Logs the interval means: stdout, TensorBoard and (chief) ``metrics.jsonl``."""
    now = time.time()
    ex_s = self.batch * self.interval / max(now - self.t_log, 1e-9)
    mean = {k: v / max(self.acc_n, 1) for k, v in self.acc.items()}
    eta = (self.total - step) * (now - self.t_start) / max(step - self.start, 1)
    bpd = objective.nats_to_bits_per_dim(-mean.get("elbo", float("nan")),
                                         self.state.model.num_dims)
    lr = float(m["learning_rate"].numpy())
    f = lambda k: mean.get(k, float("nan"))  # noqa: E731
    _log(f"step {step}/{self.total} ({100.0 * step / self.total:.1f}%) | loss {f('loss'):.3f} | "
         f"elbo {f('elbo'):.3f} | rate {f('rate'):.3f} | distortion {f('distortion'):.3f} | "
         f"bits/dim {bpd:.4f} | grad {f('grad_norm'):.2f} | lr {lr:.2e} | {ex_s:.1f} ex/s | "
         f"ETA {_format_duration(eta)} | skipped {self.skipped()}")
    with self.writer.as_default(step=step):
      for k, v in mean.items():
        summaries.scalar(f"train/{k}", v)
      summaries.scalar("train/bits_per_dim", bpd)
      summaries.scalar("train/learning_rate", lr)
      summaries.scalar("train/skipped_steps", self.skipped())
      summaries.scalar("train/examples_per_second", ex_s)
      kl = m["kl_per_group"].numpy()
      summaries.histogram("train/kl_per_group", kl)
      if kl.size <= 64:
        for g, v in enumerate(kl):
          summaries.scalar(f"train_kl_per_group/{g:03d}", float(v))
    if self.chief:
      record = dict(mean, step=step, bits_per_dim=bpd, learning_rate=lr,
                    examples_per_second=ex_s, skipped_steps=self.skipped())
      if self.heldout:
        record["heldout_split"] = self.heldout
      with open(os.path.join(self.workdir, vwork.METRICS_FILE), "a") as fh:
        fh.write(json.dumps(record) + "\n")
    self.acc, self.acc_n, self.interval, self.t_log = {}, 0, 0, time.time()

  def done(self, step):
    wall = time.time() - self.t_start
    _log(f"done: step {step}, {step - self.start} steps in {_format_duration(wall)} "
         f"({self.batch * (step - self.start) / max(wall, 1e-9):.1f} ex/s), "
         f"skipped {self.skipped()}")
    return {"step": step, "skipped_steps": self.skipped(), "trained_steps": step - self.start,
            "wall_time_s": wall}


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


def _checkpoint_manager(state, workdir, chief):
  """Restores the latest checkpoint of ``workdir`` (if any); the manager that saves new ones.

  Non-chief workers save into a private folder removed at the end (every worker must save).
  """
  ckpt_dir = vwork.checkpoint_dir(workdir)
  if not chief:
    _, task_id = vdist.task_info(state.strategy)
    ckpt_dir = os.path.join(workdir, f".worker_{task_id}_tmp", "checkpoints")
  restore_from = checkpoints.restore(state.checkpoint, vwork.checkpoint_dir(workdir), _log, chief)
  if restore_from:
    _log(f"resumed from {restore_from} at step {int(state.step.numpy())}")
    if chief:   # the steps after the checkpoint are trained again: drop their old lines
      checkpoints.rewind_jsonl(os.path.join(workdir, vwork.METRICS_FILE), int(state.step.numpy()))
  return tf.train.CheckpointManager(state.checkpoint, ckpt_dir,
                                    max_to_keep=int(state.config.train.keep_checkpoints))


def train(config, workdir, strategy=None, fault_hook=None, init_from=None, init_skip=()):
  """Trains (or resumes) a run in ``workdir``; returns a dict of final counters.

  Args:
    config: the run config (validated and checked against ``workdir`` first).
    workdir: the work directory (see :mod:`vlae_tf.workdir`).
    strategy: a ``tf.distribute.Strategy`` (default: the default strategy).
    fault_hook: test hook ``step -> bool``; True poisons that step's loss with
      NaN (after input validation) to exercise the non-finite-update path.
    init_from: ``"zoo:<name>"``: a new run starts from that zoo model's Keras weights
      (fine-tuning; same architecture, see
      :func:`vlae_tf.pretrained.keras_weights.initialize_from_zoo`).
    init_skip: parts not taken from ``init_from`` (``("decoder",)``: a new decoder).
  """
  strategy = strategy or tf.distribute.get_strategy()
  vwork.check_config(config, workdir)
  batch, replicas = int(config.train.batch_size), strategy.num_replicas_in_sync
  if batch % replicas:
    raise ValueError(f"train.batch_size={batch} must be divisible by the "
                     f"{replicas} replicas of the strategy")
  chief, total = vdist.is_chief(strategy), int(config.train.steps)
  state = TrainState(config, strategy)
  if chief:
    vwork.write_config(config, workdir)
  resumed = vwork.latest_checkpoint(workdir) is not None
  manager = _checkpoint_manager(state, workdir, chief)
  if init_from and not resumed:
    zoo_keras.initialize_from_zoo(state.model, init_from, shadows=state.ema.shadow,
                                  skip=tuple(init_skip))
    _log(f"initialized the weights (and their EMA) from {init_from}"
         + (f", except the {', '.join(init_skip)}" if init_skip else ""))
  start = int(state.step.numpy())
  if start >= total:
    _log(f"already at step {start} >= train.steps={total}; nothing to do")
    return {"step": start, "skipped_steps": int(state.skipped.numpy()), "trained_steps": 0}
  writer = (tf.summary.create_file_writer(os.path.join(workdir, "tensorboard")) if chief
            else tf.summary.create_noop_writer())
  batches = iter(vdata.distributed_train_dataset(strategy, config, start))
  x_eval, heldout = _periodic_eval_images(config, chief)
  train_step = make_train_step(state)
  progress = _Progress(state, workdir, writer, chief, start, heldout)
  t = config.train
  log_every, ckpt_every, eval_every = int(t.log_every), int(t.checkpoint_every), int(t.eval_every)
  one, nan = tf.constant(1.0), tf.constant(float("nan"))
  _log(f"training {config.get('name', '?')} on {config.data.dataset} from step {start} to "
       f"{total}: global batch {batch} over {replicas} replica(s), workdir {workdir}")
  if heldout:
    _log(f"held-out evaluation: {len(x_eval)} evenly spaced images of {heldout}")
  with _Preempted() as preempted:
    step = start
    while step < total:
      m = train_step(next(batches), nan if fault_hook is not None and fault_hook(step) else one)
      step += 1
      progress.record(m, step, manager.latest_checkpoint)
      if step % log_every == 0 or step == total:
        progress.log(m, step)
      if preempted.flag:
        checkpoints.save(manager, step)
        _log(f"SIGTERM: saved checkpoint at step {step}; exiting")
        raise Preempted()
      if step % ckpt_every == 0 or step == total:
        checkpoints.save(manager, step)
      if chief and ((eval_every and step % eval_every == 0) or step == total):
        ev = periodic_eval(state, x_eval, step, writer, seed=int(config.seed))
        if ev:
          _log(f"eval @ {step} on {heldout}, {len(x_eval)} evenly spaced, EMA: elbo "
               f"{ev['elbo']:.3f} | rate {ev['rate']:.3f} | distortion {ev['distortion']:.3f} | "
               f"active units {ev['active_units']}/{state.model.latent_size}")
  writer.flush()
  if not chief:
    shutil.rmtree(os.path.dirname(manager.directory), ignore_errors=True)
  return progress.done(step)


__all__ = ["TrainState", "make_train_step", "periodic_eval", "train", "TrainingError",
           "Preempted"]
