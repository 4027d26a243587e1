"""The AF prior p(z) and the IAF posterior option (the paper's Section 2.2 / 4.1 ablation).

AF prior (MAF direction)
  ``z = f(eps)``, ``eps ~ N(0, I)``, with ``f`` a stack of
  ``tfb.MaskedAutoregressiveFlow`` steps, each ``z_d = eps_d exp(s_d(z_<d)) +
  m_d(z_<d)`` and the order reversed between steps. The density needs only the
  inverse, which is one parallel MADE pass per step::

      log p(z) = log N(f^{-1}(z); 0, I) - sum_steps sum_d s_d

  while sampling is sequential over the D dimensions. This is what VLAE uses:
  an autoregressive prior makes the rate cheaper for the same posterior.

IAF posterior
  ``z = g(z0)``, ``z0 ~ N(mu(x), sigma(x))``, each step ``z_d <- z_d exp(s_d) +
  m_d`` with ``(m, s)`` a MADE of the *input* of the step (parallel sampling)::

      log q(z|x) = log N(z0; mu, sigma) - sum_steps sum_d s_d

Both are built from :class:`vlae_tf.made.MADE` (Keras 3). Log-scales are soft
clamped to ``(-3, 3)`` per step for stability.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vlae_tf.made import MADE

tfb = tfp.bijectors
tfd = tfp.distributions

_LOG_SCALE_CLAMP = 3.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _soft_clamp(s):
  return _LOG_SCALE_CLAMP * tf.tanh(s / _LOG_SCALE_CLAMP)


def std_normal_log_prob(x):
  return -0.5 * tf.square(x) - _HALF_LOG_2PI


@keras.saving.register_keras_serializable(package="vlae_tf")
class StandardNormalPrior(keras.layers.Layer):
  """p(z) = N(0, I) over a flat ``[B, D]`` latent."""

  def __init__(self, event_size, **kwargs):
    super().__init__(**kwargs)
    self.event_size = int(event_size)

  def log_prob_per_dim(self, z):
    return std_normal_log_prob(z)

  def log_prob(self, z):
    return tf.reduce_sum(std_normal_log_prob(z), -1)

  def sample_from_noise(self, eps):
    return eps

  def distribution(self):
    return tfd.MultivariateNormalDiag(loc=tf.zeros([self.event_size]))

  def get_config(self):
    return {**super().get_config(), "event_size": self.event_size}


@keras.saving.register_keras_serializable(package="vlae_tf")
class AFPrior(keras.layers.Layer):
  """Autoregressive-flow prior: a stack of MAF steps over N(0, I)."""

  def __init__(self, event_size, num_steps=2, hidden_units=(256, 256), **kwargs):
    super().__init__(**kwargs)
    self.event_size = int(event_size)
    self.num_steps = int(num_steps)
    self.hidden_units = tuple(int(h) for h in hidden_units)
    self.mades = [MADE(self.event_size, self.hidden_units, params=2, name=f"made_{i}")
                  for i in range(self.num_steps)]
    self._reverse = np.arange(self.event_size)[::-1].copy()

  def build(self, input_shape):
    for m in self.mades:
      m.build((None, self.event_size))

  def _shift_and_log_scale_fn(self, made):
    def fn(y):
      out = made(y)
      return out[..., 0], _soft_clamp(out[..., 1])
    return fn

  def bijector(self):
    """``f``: eps -> z. Chain applies the last listed bijector first."""
    steps = []
    for i, made in enumerate(self.mades):
      if i > 0:
        steps.append(tfb.Permute(self._reverse))
      steps.append(tfb.MaskedAutoregressiveFlow(
          shift_and_log_scale_fn=self._shift_and_log_scale_fn(made)))
    return tfb.Chain(steps[::-1])

  def distribution(self):
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([self.event_size]))
    return tfd.TransformedDistribution(base, self.bijector())

  def log_prob(self, z):
    return self.distribution().log_prob(z)

  def log_prob_per_dim(self, z):
    """A per-dimension split of ``log p(z)`` that sums to it exactly.

    Runs the parallel inverse pass by hand and credits each ``-s_d`` term and
    each base term to the latent dimension ``z_d`` it came from after undoing
    the reversals. (Only the sum is a density; the split is for reporting KL
    per dimension and for free bits on groups of dimensions.)
    """
    y = z
    perm = np.arange(self.event_size)        # position p of y holds original dim perm[p]
    terms = tf.zeros_like(z)
    for i in reversed(range(self.num_steps)):
      out = self.mades[i](y)
      shift, log_scale = out[..., 0], _soft_clamp(out[..., 1])
      y = (y - shift) * tf.exp(-log_scale)
      terms = terms + tf.gather(-log_scale, np.argsort(perm), axis=-1)
      if i > 0:
        y = tf.gather(y, self._reverse, axis=-1)   # inverse of Permute(reverse)
        perm = perm[self._reverse]
    return terms + tf.gather(std_normal_log_prob(y), np.argsort(perm), axis=-1)

  def sample_from_noise(self, eps):
    """Sequential sampling: ``z = f(eps)`` (D MADE passes per step)."""
    return self.bijector().forward(eps)

  def get_config(self):
    return {**super().get_config(), "event_size": self.event_size,
            "num_steps": self.num_steps, "hidden_units": list(self.hidden_units)}


@keras.saving.register_keras_serializable(package="vlae_tf")
class IAFPosterior(keras.layers.Layer):
  """IAF on top of the diagonal Gaussian q0(z|x), conditioned on encoder context."""

  def __init__(self, event_size, num_steps=2, hidden_units=(256, 256), context_size=0, **kwargs):
    super().__init__(**kwargs)
    self.event_size = int(event_size)
    self.num_steps = int(num_steps)
    self.hidden_units = tuple(int(h) for h in hidden_units)
    self.context_size = int(context_size)
    self.mades = [MADE(self.event_size, self.hidden_units, params=2,
                       context_size=self.context_size, name=f"made_{i}")
                  for i in range(self.num_steps)]
    self._reverse = np.arange(self.event_size)[::-1].copy()

  def build(self, input_shape):
    for m in self.mades:
      m.build((None, self.event_size))

  def forward(self, z0, context=None):
    """Returns ``z = g(z0)`` and the per-dimension ``log|dz/dz0|`` credited to z0's dims."""
    z = z0
    perm = np.arange(self.event_size)
    ldj = tf.zeros_like(z0)
    for i, made in enumerate(self.mades):
      if i > 0:
        z = tf.gather(z, self._reverse, axis=-1)
        perm = perm[self._reverse]
      out = made(z, context=context if self.context_size else None)
      shift, log_scale = out[..., 0], _soft_clamp(out[..., 1])
      z = z * tf.exp(log_scale) + shift
      ldj = ldj + tf.gather(log_scale, np.argsort(perm), axis=-1)
    if self.num_steps > 1 and (self.num_steps - 1) % 2 == 1:
      z = tf.gather(z, self._reverse, axis=-1)   # back to the original order
    return z, ldj

  def get_config(self):
    return {**super().get_config(), "event_size": self.event_size,
            "num_steps": self.num_steps, "hidden_units": list(self.hidden_units),
            "context_size": self.context_size}
