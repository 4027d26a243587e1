"""Sampling x ~ p(x|z) and x ~ p(x) from a VLAE.

Autoregressive sampling draws pixels in raster order; sub-pixels of a pixel in
R, G, B order inside the likelihood's ``sample``. All randomness comes from
pre-drawn uniform noise of shape ``[B, H, W, likelihood.noise_channels()]``,
so two samplers given the same z and noise must return the same images.

``method="naive"``: one full decoder pass per pixel (H * W passes). The
reference implementation, kept for testing faster samplers against.
"""

from __future__ import annotations

import tensorflow as tf

from vlae_tf.likelihoods import uniform_noise


def draw_noise(model, batch, seed=None):
  """Uniform noise for :func:`sample_x_given_z`; ``seed`` is a ``[2]`` int stateless seed."""
  h, w, _ = model.image_shape
  return uniform_noise([batch, h, w, model.likelihood.noise_channels()], stateless_seed=seed)


def naive_sample(model, cond, noise):
  """x ~ p(x | z) given conditioning features; H * W full decoder passes."""
  h, w, c = model.image_shape
  b = tf.shape(cond)[0]
  x = tf.zeros(tf.stack([b, h, w, c]), tf.float32)
  if model.decoder.context == "none":
    return model.likelihood.sample(model.decoder(model.normalize(x), cond), noise)

  def body(k, x):
    i, j = k // w, k % w
    raw = model.decoder(model.normalize(x), cond)[:, i, j]
    pix = model.likelihood.sample(raw, noise[:, i, j])                  # [B, C]
    onehot = tf.reshape(tf.one_hot(k, h * w), [1, h, w, 1])
    return k + 1, x + onehot * pix[:, None, None, :]

  _, x = tf.while_loop(lambda k, x: k < h * w, body, [tf.constant(0), x])
  return x


def sample_x_given_z(model, z_flat, noise=None, seed=None, method="naive"):
  """Images ``[B, H, W, C]`` (float, data scale) drawn from p(x | z)."""
  cond = model.conditioning_features(z_flat)
  if noise is None:
    noise = draw_noise(model, tf.shape(z_flat)[0], seed)
  if method == "naive":
    return naive_sample(model, cond, noise)
  raise ValueError(f"unknown sampling method {method!r}")
