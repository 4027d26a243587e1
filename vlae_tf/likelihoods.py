"""Per-pixel likelihoods p(x_ij | context, z): exact log-probabilities in nats.

Each likelihood maps the decoder's raw outputs at every pixel (last axis of size
:meth:`num_params`) to a distribution over that pixel's values, and offers

* ``log_prob(raw, x)``: per-example ``sum_ij log p(x_ij | ...)`` in nats;
* ``conditional_params(raw, x)``: a ``[B, H, W, C, P]`` tensor whose slice
  ``[..., c, :]`` fully determines the conditional of sub-pixel ``c`` given the
  earlier pixels and the earlier sub-pixels of the same pixel (used by
  :func:`vlae_tf.receptive_field`);
* ``sample(raw, noise)``: a deterministic function of pre-drawn uniform
  variates, so that two samplers given the same noise draw the same image.

Bernoulli (binary images)
  ``p(x = 1) = sigmoid(l)``; ``log p(x) = x l - softplus(l)``.

Discretized logistic mixture with channel-wise linear dependence (PixelCNN++,
Salimans et al. 2017)
  Values ``v in {0, ..., n-1}`` (``n = 2**num_bits``) are scaled to
  ``s = 2 v / (n - 1) - 1`` in ``[-1, 1]``; bin half-width ``h = 1 / (n - 1)``.
  With K components sharing one mixture weight per pixel::

      p(x) = sum_k pi_k prod_c DL(s_c; mu_kc + sum_{c'<c} a_kcc' s_c', sigma_kc)

      DL(s; m, sigma) = F((s + h - m)/sigma) - F((s - h - m)/sigma)

  with F the logistic CDF, and the outermost bins extended to -inf / +inf, so
  each factor sums to exactly 1 over the n values and so does p(x) over the
  n**C values of a pixel. R, G, B are autoregressive within the pixel through
  the coefficients ``a = tanh(.)``.
"""

from __future__ import annotations

import math

import tensorflow as tf

from vlae_tf.config import LIKELIHOODS, check_choice

MIN_LOG_SCALE = -7.0    # the discretized logistics' log-scales are clamped below at this (public:
                        # the codec's categoricals, vlae_tf.codec.pixels, use the same bound)
_UNIFORM_EPS = 1e-6


def uniform_noise(shape, seed=None, stateless_seed=None, dtype=tf.float32):
  """Uniform variates in ``(eps, 1 - eps)`` for inverse-CDF / Gumbel sampling."""
  if stateless_seed is not None:
    return tf.random.stateless_uniform(shape, stateless_seed, _UNIFORM_EPS, 1.0 - _UNIFORM_EPS, dtype)
  return tf.random.uniform(shape, _UNIFORM_EPS, 1.0 - _UNIFORM_EPS, dtype, seed=seed)


class Bernoulli:
  """Independent Bernoulli per sub-pixel, for binary images with values {0, 1}."""

  name = "bernoulli"

  def __init__(self, channels: int = 1):
    self.channels = channels
    self.num_levels = 2

  def num_params(self) -> int:
    return self.channels

  def noise_channels(self) -> int:
    return self.channels

  def normalize(self, x):
    """Data scale {0, 1} -> network input scale {-1, 1}."""
    return 2.0 * tf.cast(x, tf.float32) - 1.0

  def log_prob_per_pixel(self, raw, x):
    x = tf.cast(x, raw.dtype)
    return tf.reduce_sum(x * raw - tf.math.softplus(raw), axis=-1)

  def log_prob(self, raw, x):
    return tf.reduce_sum(self.log_prob_per_pixel(raw, x), axis=[1, 2])

  def conditional_params(self, raw, x):
    del x
    return raw[..., None]

  def sample(self, raw, noise):
    """``x = 1[u < sigmoid(l)]`` for uniform ``u``; returns float {0, 1}."""
    return tf.cast(noise < tf.sigmoid(raw), tf.float32)


class DiscretizedLogisticMixture:
  """PixelCNN++'s mixture of discretized logistics over ``2**num_bits`` levels."""

  name = "logistic_mixture"

  def __init__(self, channels: int = 3, num_mixtures: int = 10, num_bits: int = 8):
    self.channels = channels
    self.num_mixtures = num_mixtures
    self.num_bits = num_bits
    self.num_levels = 2 ** num_bits
    self.num_coeffs = channels * (channels - 1) // 2

  def num_params(self) -> int:
    k, c = self.num_mixtures, self.channels
    return k + 2 * c * k + self.num_coeffs * k

  def noise_channels(self) -> int:
    return self.num_mixtures + self.channels

  def normalize(self, x):
    """Data scale {0, ..., n-1} -> [-1, 1]."""
    return 2.0 * tf.cast(x, tf.float32) / (self.num_levels - 1) - 1.0

  def unpack(self, raw):
    """``(logits [..., K], means [..., C, K], log_scales [..., C, K] (clamped at
    :data:`MIN_LOG_SCALE`), coeffs [..., C(C-1)/2, K] (tanh))`` of raw parameters, in their
    dtype."""
    k, c = self.num_mixtures, self.channels
    shape = tf.shape(raw)[:-1]
    logits = raw[..., :k]
    means = tf.reshape(raw[..., k:k + c * k], tf.concat([shape, [c, k]], 0))
    log_scales = tf.reshape(raw[..., k + c * k:k + 2 * c * k], tf.concat([shape, [c, k]], 0))
    log_scales = tf.maximum(log_scales, MIN_LOG_SCALE)
    coeffs = tf.tanh(tf.reshape(raw[..., k + 2 * c * k:],
                                tf.concat([shape, [self.num_coeffs, k]], 0)))
    return logits, means, log_scales, coeffs

  def adjusted_means(self, means, coeffs, s):
    """mu_kc + sum_{c' < c} a_kcc' s_c'; ``s`` has shape [..., C]."""
    out, idx = [], 0
    for c in range(self.channels):
      m = means[..., c, :]
      for cp in range(c):
        m = m + coeffs[..., idx, :] * s[..., cp:cp + 1]
        idx += 1
      out.append(m)
    return tf.stack(out, axis=-2)

  def log_bin_prob(self, v, s, mean, log_scale):
    """log P(value v) under one discretized logistic; all shapes broadcast.

    For an inner bin with ``a = (s - m + h) / sigma > b = (s - m - h) / sigma``
    the identity ``F(a) - F(b) = F(a) F(-b) (1 - exp(b - a))`` gives::

        log P = log F(a) + log F(-b) + log(1 - exp(-2h / sigma))

    which is exact and stable in both tails (no cancellation of two nearly
    equal CDFs) and costs three transcendental evaluations. Any float dtype
    (the codec, :mod:`vlae_tf.codec.pixels`, evaluates it in float64).
    """
    h = 1.0 / (self.num_levels - 1)
    inv = tf.exp(-log_scale)
    centered = s - mean
    plus = (centered + h) * inv
    minus = (centered - h) * inv
    log_cdf_plus = -tf.math.softplus(-plus)           # log F(plus)
    log_sf_minus = -tf.math.softplus(minus)           # log (1 - F(minus))
    width = 2.0 * h * inv                             # plus - minus > 0
    log1m_exp = tf.where(width < math.log(2.0), tf.math.log(-tf.math.expm1(-width)),
                         tf.math.log1p(-tf.exp(-width)))
    mid = log_cdf_plus + log_sf_minus + log1m_exp
    last = float(self.num_levels - 1)
    return tf.where(v <= 0.0, log_cdf_plus, tf.where(v >= last, log_sf_minus, mid))

  def log_prob_per_pixel(self, raw, x):
    logits, means, log_scales, coeffs = self.unpack(raw)
    v = tf.cast(x, raw.dtype)
    s = 2.0 * v / (self.num_levels - 1) - 1.0
    m = self.adjusted_means(means, coeffs, s)                 # [..., C, K]
    lp = self.log_bin_prob(v[..., None], s[..., None], m, log_scales)
    lp = tf.reduce_sum(lp, axis=-2) + tf.nn.log_softmax(logits, axis=-1)   # [..., K]
    return tf.reduce_logsumexp(lp, axis=-1)

  def log_prob(self, raw, x):
    return tf.reduce_sum(self.log_prob_per_pixel(raw, x), axis=[1, 2])

  def conditional_params(self, raw, x):
    logits, means, log_scales, coeffs = self.unpack(raw)
    s = 2.0 * tf.cast(x, raw.dtype) / (self.num_levels - 1) - 1.0
    m = self.adjusted_means(means, coeffs, s)
    logits = tf.broadcast_to(logits[..., None, :], tf.shape(m))
    return tf.concat([logits, m, log_scales], axis=-1)

  def sample(self, raw, noise):
    """Exact sample: Gumbel-max for the component, inverse CDF per sub-pixel.

    ``noise[..., :K]`` picks the component, ``noise[..., K + c]`` draws
    sub-pixel ``c``. Later sub-pixels depend on the *discretized* earlier ones,
    exactly as in :meth:`log_prob`. Returns float values in {0, ..., n-1}.
    """
    k = self.num_mixtures
    logits, means, log_scales, coeffs = self.unpack(raw)
    gumbel = -tf.math.log(-tf.math.log(noise[..., :k]))
    onehot = tf.one_hot(tf.argmax(logits + gumbel, axis=-1), k, dtype=raw.dtype)
    n1 = float(self.num_levels - 1)
    values, scaled, idx = [], [], 0
    for c in range(self.channels):
      m = means[..., c, :]
      for cp in range(c):
        m = m + coeffs[..., idx, :] * scaled[cp][..., None]
        idx += 1
      m = tf.reduce_sum(m * onehot, -1)
      ls = tf.reduce_sum(log_scales[..., c, :] * onehot, -1)
      u = noise[..., k + c]
      cont = m + tf.exp(ls) * (tf.math.log(u) - tf.math.log1p(-u))
      v = tf.clip_by_value(tf.round((cont + 1.0) * 0.5 * n1), 0.0, n1)
      values.append(v)
      scaled.append(2.0 * v / n1 - 1.0)
    return tf.stack(values, axis=-1)


def make_likelihood(kind: str, channels: int, num_mixtures: int = 10, num_bits: int = 8):
  """The likelihood that ``model.likelihood = kind`` names (:data:`vlae_tf.config.LIKELIHOODS`)."""
  check_choice("model.likelihood", kind, LIKELIHOODS)
  if kind == "bernoulli":
    return Bernoulli(channels)
  return DiscretizedLogisticMixture(channels, num_mixtures, num_bits)
