"""The objective: ELBO = -distortion - rate, with beta, free bits and KL warm-up.

For one sample ``z ~ q(z|x)``::

    distortion = -log p(x|z)
    rate       = log q(z|x) - log p(z)            (a one-sample estimate of KL)
    ELBO       = -distortion - rate  <=  log p(x)

The training loss moves the rate-distortion trade-off (Alemi et al. 2018):

    loss = E_x[distortion] + beta_t * sum_g max(E_x[rate_g], lambda)

* ``rate_g`` is the rate of latent group ``g`` (the latent dimensions split
  into ``G`` contiguous groups); ``E_x`` is the minibatch mean. This is the
  free-bits rule of openai/iaf (``kl_min``): while a group's batch-mean KL is
  below ``lambda`` nats, its rate gets no gradient, so the encoder is free to
  put information there.
* ``beta_t = beta * min(1, step / warmup_steps)``: KL warm-up from 0.

Evaluation always reports the true ELBO (beta = 1, no free bits).
"""

from __future__ import annotations

import math

import tensorflow as tf


def kl_weight(step, beta=1.0, warmup_steps=0):
  """``beta * min(1, step / warmup_steps)`` (``beta`` when ``warmup_steps == 0``)."""
  if not warmup_steps:
    return tf.constant(float(beta))
  frac = tf.minimum(1.0, tf.cast(step, tf.float32) / float(warmup_steps))
  return float(beta) * frac


def group_rates(rate_per_dim, num_groups):
  """Sums a ``[B, D]`` per-dimension rate into ``[B, G]`` contiguous groups."""
  d = rate_per_dim.shape[-1]
  if num_groups < 1 or d % num_groups:
    raise ValueError(f"free_bits_groups={num_groups} must divide the latent size {d}")
  b = tf.shape(rate_per_dim)[0]
  return tf.reduce_sum(tf.reshape(rate_per_dim, [b, num_groups, d // num_groups]), -1)


def free_bits_rate(rate_groups, free_bits):
  """``sum_g max(mean_batch(rate_g), lambda)``: the rate term with free bits."""
  mean = tf.reduce_mean(rate_groups, axis=0)
  if free_bits <= 0:
    return tf.reduce_sum(mean)      # plain rate: a negative one-sample estimate keeps its gradient
  return tf.reduce_sum(tf.maximum(mean, float(free_bits)))


def training_loss(distortion, rate_per_dim, beta_t, free_bits=0.0, num_groups=1):
  """The scalar to minimise for one minibatch (mean over its examples).

  Args:
    distortion: ``[B]`` -log p(x|z), nats.
    rate_per_dim: ``[B, D]`` per-dimension split of log q(z|x) - log p(z).
    beta_t: the current rate weight.
    free_bits: lambda, nats per group (0 disables free bits).
    num_groups: G.
  """
  rate = free_bits_rate(group_rates(rate_per_dim, num_groups), free_bits)
  return tf.reduce_mean(distortion) + beta_t * rate


def nats_to_bits_per_dim(nats, num_dims):
  return nats / (float(num_dims) * math.log(2.0))
