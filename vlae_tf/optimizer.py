"""How the weights move: the optimizer, its learning-rate schedule and the EMA of the weights.

Learning rate: linear warm-up ``lr * (t + 1) / W`` for ``t < W``, then with
``u = (t - W) / (T - W)`` in [0, 1]:
  cosine      ``m + (lr - m) (1 + cos(pi u)) / 2``
  exponential ``lr (m / lr) ** u``
  constant    ``lr``
(``W`` = train.warmup_steps, ``T`` = train.steps, ``m`` = train.min_learning_rate).

EMA: after every applied update ``w_ema <- d_n w_ema + (1 - d_n) w`` with
``d_n = min(decay, (1 + n) / (10 + n))`` and ``n`` the number of applied
updates (TF's ``num_updates`` warm-up, so early EMA weights are not dominated
by the initialisation). Eval and export use the EMA weights.
"""

from __future__ import annotations

import contextlib
import math

import keras
import tensorflow as tf


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


__all__ = ["learning_rate", "make_optimizer", "EMA"]
