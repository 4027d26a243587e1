"""p(x|z) for entropy coding: the decoder one pixel at a time, probabilities as NumPy arrays.

Used by :mod:`vlae_tf.codec` on both sides of a code. The receiver must see
the probabilities of pixel ``p`` before it knows pixel ``p``, so it runs the
decoder step by step; the sender runs *the same* steps (teacher forced with
the known pixels) instead of one parallel pass, because a parallel convolution
and the step-by-step matmuls sum in different orders and would give
probabilities that differ in the last float bits, and an entropy decoder fed
other probabilities than its encoder decodes garbage.

:class:`PixelWalker` is the cached sampler of :mod:`vlae_tf.sampling` (same
tap tables, same per-pixel algebra, see its module docstring) cut into one
``tf.function`` call per pixel, with the caches held in ``tf.Variable`` s of a
fixed batch shape ``[G]`` so that every call of a code, on either side, runs
the same kernels on the same shapes:

* ``prepare(z)``: the conditioning features ``g(z)`` and each layer's
  z-dependent per-pixel term, once per group of images;
* ``step(p, x_{p-1})``: stores the previous pixel in the input cache and
  returns the raw likelihood parameters of pixel ``p`` ``[G, P]``.

:func:`channel_models` turns the raw parameters of one pixel into the
distribution of each of its sub-pixels in coding order (float64 NumPy, one
fixed code path): a Bernoulli ``p(x = 1) = sigmoid(l)``, or for the
discretized logistic mixture the 256-way categorical of sub-pixel ``c``
given the earlier sub-pixels of the pixel::

    P(x_c = v | x_<c) = sum_k w_k DL_kc(v | x_<c),
    w_k ∝ pi_k prod_{c' < c} DL_kc'(x_c' | x_<c')

(the mixture posterior over components given the sub-pixels already coded,
times each component's discretized logistic with the channel-wise linear mean
of :mod:`vlae_tf.likelihoods`). Their product over c is exactly the pixel's
probability under :meth:`DiscretizedLogisticMixture.log_prob`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf import sampling
from vlae_tf.gated_decoder import GatedDecoder, gate
from vlae_tf.likelihoods import MIN_LOG_SCALE, Bernoulli, DiscretizedLogisticMixture


class _VariableCache:
  """A slot cache in a ``tf.Variable`` ``[H W + 1, G, F]``, read like the sampler's TensorArray."""

  def __init__(self, var):
    self.var = var

  def gather(self, idx):
    return tf.gather(self.var, idx)

  def write(self, slot, value):
    self.var.scatter_nd_update([[slot]], value[None])
    return self

  def scatter(self, slots, values):
    self.var.scatter_nd_update(slots[:, None], values)
    return self


class PixelWalker:
  """Step-by-step decoder of a :class:`vlae_tf.model.VLAE` for a fixed batch of ``G`` images."""

  def __init__(self, model, group_size):
    self.model = model
    self.g = g = int(group_size)
    dec = model.decoder
    h, w, c = model.image_shape
    self.num_pixels = n = h * w
    self.channels = c
    zeros = lambda *shape: tf.Variable(tf.zeros(shape), trainable=False)
    self.none = dec.context == "none"
    self.gated = isinstance(dec, GatedDecoder)
    if self.gated:
      self.program = sampling.GatedPixelProgram(dec, (h, w))
      self.x_cache = zeros(n + 1, g, self.program.x_channels)
      sizes = dec.proj_sizes()
      self.pre_all = zeros(n, g, sum(sizes))
      k = self.program.num_streams
      self.v_streams = [zeros(n + 1, g, dec.filters) for _ in range(k)]
      self.h_streams = [zeros(n + 1, g, dec.filters) for _ in range(k)]
      self.h_terms = [zeros(w, g, sizes[2 * i + 1]) for i in range(dec.num_layers)]
    elif self.none:
      self.raw_all = zeros(n, g, model.likelihood.num_params())
    else:
      self.first = sampling.TapLayer(dec.first, (h, w))
      self.x_cache = zeros(n + 1, g, self.first.cin)
      self.pre_first = zeros(n, g, dec.filters)
      self.masked, self.pointwise = [], []
      for block in dec.blocks:
        pre = zeros(n, g, 2 * dec.filters)
        if block.conv.mask.shape == (1, 1):
          kernel = tf.convert_to_tensor(block.conv.kernel)[0, 0] * float(block.conv.mask[0, 0])
          self.pointwise.append((block, kernel, pre))
        else:
          self.masked.append((block, sampling.TapLayer(block.conv, (h, w)), pre,
                              zeros(n + 1, g, dec.filters)))
      self.out_kernel = tf.convert_to_tensor(dec.out.kernel)
      self.out_bias = tf.convert_to_tensor(dec.out.bias)
    d = model.latent_size
    self.prepare = tf.function(self._prepare, autograph=False,
                               input_signature=[tf.TensorSpec([g, d], tf.float32)])
    self._step = tf.function(self._step_fn, autograph=False, input_signature=[
        tf.TensorSpec([], tf.int32), tf.TensorSpec([g, c], tf.float32)])

  def _prepare(self, z):
    model, dec = self.model, self.model.decoder
    cond = model.conditioning_features(z)
    if self.none:
      h, w, c = model.image_shape
      self.raw_all.assign(sampling.per_pixel(dec(model.normalize(tf.zeros([self.g, h, w, c])),
                                                  cond)))
      return tf.constant(0)
    self.x_cache.assign(tf.zeros_like(self.x_cache))
    if self.gated:
      self.pre_all.assign(self.program.prepare(cond))
      for cache in self.v_streams + self.h_streams:
        cache.assign(tf.zeros_like(cache))
      return tf.constant(0)
    self.pre_first.assign(sampling.per_pixel(dec.first_proj(cond) + dec.first.bias))
    for block, _, pre, cache in self.masked:
      pre.assign(sampling.per_pixel(block.proj(cond) + block.conv.bias))
      cache.assign(tf.zeros_like(cache))
    for block, _, pre in self.pointwise:
      pre.assign(sampling.per_pixel(block.proj(cond) + block.conv.bias))
    return tf.constant(0)

  def _step_fn(self, p, prev):
    if self.none:
      return self.raw_all[p]
    model, dec = self.model, self.model.decoder
    val = dec.context_input(model.normalize(prev))
    val = tf.where(p > 0, val, tf.zeros_like(val))          # slot 0 stays the zero padding
    self.x_cache.scatter_nd_update([[p]], val[None])        # slot p holds pixel p - 1
    if self.gated:
      w = self.program.width
      j = p % w

      def new_row():   # the vertical stream of this row, once its first pixel is reached
        terms, _ = self.program.row(p, self.pre_all, _VariableCache(self.x_cache),
                                    [_VariableCache(v) for v in self.v_streams])
        for var, t in zip(self.h_terms, terms):
          var.assign(t)
        return tf.constant(0)

      with tf.control_dependencies([tf.cond(tf.equal(j, 0), new_row, lambda: tf.constant(0))]):
        h_terms = [tf.identity(v) for v in self.h_terms]
      raw, _ = self.program.step(p, j, self.pre_all[p], h_terms, _VariableCache(self.x_cache),
                                 [_VariableCache(v) for v in self.h_streams])
      return raw

    hid = self.pre_first[p] + self.first(_VariableCache(self.x_cache), p)
    for _, layer, pre, cache in self.masked:
      cache.scatter_nd_update([[p + 1]], tf.nn.elu(hid)[None])
      hid = gate(hid, layer(_VariableCache(cache), p) + pre[p])
    for _, kernel, pre in self.pointwise:
      hid = gate(hid, tf.matmul(tf.nn.elu(hid), kernel) + pre[p])
    return tf.matmul(tf.nn.elu(hid), self.out_kernel) + self.out_bias

  def walk(self, z, choose, progress=None):
    """Runs the decoder over every pixel of the group in raster order.

    ``z``: ``[G, D]`` float32 latents. ``choose(p, raw)`` gets pixel ``p``'s
    raw parameters ``[G, P]`` (float32 NumPy) and returns its values ``[G, C]``
    (the known pixels on the sender's side, decoded ones on the receiver's).
    Returns the ``[G, H W, C]`` values chosen.
    """
    self.prepare(tf.constant(z, tf.float32))
    prev = np.zeros((self.g, self.channels), np.float32)
    out = np.zeros((self.g, self.num_pixels, self.channels), np.int64)
    for p in range(self.num_pixels):
      raw = self._step(tf.constant(p, tf.int32), tf.constant(prev)).numpy()
      pix = np.asarray(choose(p, raw), np.int64)
      out[:, p] = pix
      prev = pix.astype(np.float32)
      if progress is not None:
        progress(p)
    return out


# ------------------------------------------------------- sub-pixel distributions
def _softplus(x):
  return np.logaddexp(0.0, x)


def _log_bin_probs(lik, mean, log_scale):
  """``log DL(v; mean, scale)`` for every level v: ``[..., n]`` (as ``likelihoods._log_bin_prob``)."""
  n = lik.num_levels
  h = 1.0 / (n - 1)
  s = 2.0 * np.arange(n) / (n - 1) - 1.0
  inv = np.exp(-log_scale)[..., None]
  centered = s - mean[..., None]
  plus, minus = (centered + h) * inv, (centered - h) * inv
  log_cdf_plus = -_softplus(-plus)
  log_sf_minus = -_softplus(minus)
  width = 2.0 * h * inv
  log1m_exp = np.where(width < np.log(2.0), np.log(-np.expm1(-np.minimum(width, np.log(2.0)))),
                       np.log1p(-np.exp(-np.maximum(width, np.log(2.0)))))
  mid = log_cdf_plus + log_sf_minus + log1m_exp
  return np.concatenate([log_cdf_plus[..., :1], mid[..., 1:-1], log_sf_minus[..., -1:]], -1)


def _unpack_mixture(lik, raw):
  k, c = lik.num_mixtures, lik.channels
  g = raw.shape[0]
  logits = raw[:, :k]
  means = raw[:, k:k + c * k].reshape(g, c, k)
  log_scales = np.maximum(raw[:, k + c * k:k + 2 * c * k].reshape(g, c, k), MIN_LOG_SCALE)
  coeffs = np.tanh(raw[:, k + 2 * c * k:].reshape(g, lik.num_coeffs, k))
  return logits, means, log_scales, coeffs


def channel_models(lik, raw, choose_channel):
  """Codes one pixel: for each sub-pixel ``c`` in order, its distribution and its value.

  ``raw``: ``[G, P]`` raw parameters. ``choose_channel(c, kind, params)`` gets
  ``("bernoulli", p1 [G])`` or ``("categorical", pmf [G, n])`` (float64) and
  returns the sub-pixel's values ``[G]`` ints. Returns ``[G, C]`` values.
  """
  raw = np.asarray(raw, np.float64)
  if isinstance(lik, Bernoulli):
    p1 = 1.0 / (1.0 + np.exp(-raw))
    return np.stack([np.asarray(choose_channel(c, "bernoulli", p1[:, c]), np.int64)
                     for c in range(lik.channels)], -1)
  if not isinstance(lik, DiscretizedLogisticMixture):
    raise TypeError(f"no entropy model for likelihood {type(lik).__name__}")
  logits, means, log_scales, coeffs = _unpack_mixture(lik, raw)
  n1 = lik.num_levels - 1
  log_w = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)    # [G, K]
  values, scaled = [], []
  g = raw.shape[0]
  for c in range(lik.channels):
    m = means[:, c, :].copy()
    for cp in range(c):
      m = m + coeffs[:, c * (c - 1) // 2 + cp, :] * scaled[cp][:, None]
    log_dl = _log_bin_probs(lik, m, log_scales[:, c, :])                 # [G, K, n]
    post = np.exp(log_w - np.logaddexp.reduce(log_w, axis=-1, keepdims=True))
    pmf = np.einsum("gk,gkn->gn", post, np.exp(log_dl))
    v = np.asarray(choose_channel(c, "categorical", pmf), np.int64)
    log_w = log_w + log_dl[np.arange(g), :, v]
    values.append(v)
    scaled.append(2.0 * v / n1 - 1.0)
  return np.stack(values, -1)
