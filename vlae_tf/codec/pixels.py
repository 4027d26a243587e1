"""p(x|z) for entropy coding: the cached decoder walking a group, one coder call per sub-pixel.

Used by :mod:`vlae_tf.codec` on both sides of a code. The receiver must see
the probabilities of pixel ``p`` before it knows pixel ``p``, so it runs the
decoder step by step; the sender runs *the same* steps (teacher forced with
the known pixels) instead of one parallel pass, because a parallel convolution
and the step-by-step matmuls sum in different orders and would give
probabilities that differ in the last float bits, and an entropy decoder fed
other probabilities than its encoder decodes garbage.

:class:`PixelWalker` *is* the cached sampler of :mod:`vlae_tf.sampling`
(:func:`vlae_tf.sampling.cached_pixels`: same tap tables, same per-pixel
algebra, one ``tf.while_loop`` over the pixels, see its module docstring) with
the noise draw replaced by the coder: at each sub-pixel the graph computes its
distribution and hands it to a Python chooser (``tf.numpy_function``), which
pops the value from the ANS stack (receiver). The sender, who knows every
pixel, runs the same graph ops with the known values in place of the chooser
and gets every distribution back at the end of the walk
(:meth:`PixelWalker.distributions`): the same bits, with no Python call per
sub-pixel. One graph call per group on either side.

The batch ``G`` is the group's own size: sender and receiver run every group
at the same size, which the file records, so they run the same kernels on the
same shapes.

The sub-pixel distributions are computed in TensorFlow by the likelihood's
own maths (one definition, :mod:`vlae_tf.likelihoods`): a Bernoulli
``p(x = 1) = sigmoid(l)`` in float64, or for the discretized logistic mixture
the 256-way categorical of sub-pixel ``c`` given the earlier sub-pixels of
the pixel::

    P(x_c = v | x_<c) = sum_k w_k DL_kc(v | x_<c),
    w_k ∝ pi_k prod_{c' < c} DL_kc'(x_c' | x_<c')

(the mixture posterior over components given the sub-pixels already coded,
times each component's discretized logistic with the channel-wise linear mean,
``DiscretizedLogisticMixture.unpack`` / ``log_bin_prob`` in float64 for the
weights, updated once per channel (:class:`PixelDistributions`); the n levels'
masses are differences of the mixture's CDF at the bin edges, whose
``K (n - 1)`` sigmoids run in float32, :func:`mixture_pmf`). Their product
over c is the pixel's probability under
:meth:`DiscretizedLogisticMixture.log_prob` up to float rounding (absolute
errors ~1e-7 in the masses, below what constriction's 24-bit masses see).
Each is computed at the shape ``[G, ...]`` of one pixel on both sides
(element-wise kernels may take another path for another array length), and
constriction quantizes it to integers.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf import sampling
from vlae_tf.gated_decoder import GatedDecoder, gate
from vlae_tf.likelihoods import Bernoulli, DiscretizedLogisticMixture


class Chooser:
  """A Python function called from inside a TensorFlow graph: the entropy coder's side of a walk.

  :meth:`op` puts ``tf.numpy_function`` calls into a graph that run ``self.fn`` on NumPy
  arrays and return its int64 values ``[G]``; :meth:`run` runs a graph with ``fn`` in
  place. An exception in ``fn`` (a :class:`vlae_tf.codec.file_format.CodecError`, a constriction
  panic) stops further calls and is raised by :meth:`run` once the graph returns, as itself
  (inside the graph TensorFlow would turn it into one of its own errors).
  """

  def __init__(self):
    self.fn, self.error = None, None

  def op(self, inputs, bind):
    """Values ``[G]`` int64 of ``fn(*bind(*arrays))``, ``arrays`` the NumPy values of ``inputs``
    (the last one has the batch axis ``G`` first)."""
    def call(*arrays):
      if self.error is None:
        try:
          return np.asarray(self.fn(*bind(*arrays)), np.int64)
        except BaseException as e:      # noqa: B036  (constriction's PanicException is one)
          self.error = e
      return np.zeros(len(arrays[-1]), np.int64)

    values = tf.numpy_function(call, list(inputs), tf.int64, stateful=True)
    values.set_shape(inputs[-1].shape[:1])
    return values

  def run(self, fn, graph_fn, *args):
    self.fn, self.error = fn, None
    try:
      out = graph_fn(*args)
    finally:
      self.fn = None
    if self.error is not None:
      error, self.error = self.error, None
      raise error
    return out


class PixelWalker:
  """The cached decoder of a :class:`vlae_tf.model.VLAE` walking a group's pixels with a chooser."""

  def __init__(self, model):
    self.model = model
    h, w, c = model.image_shape
    self.num_pixels, self.channels = h * w, c
    self.lik = lik = model.likelihood
    if not isinstance(lik, (Bernoulli, DiscretizedLogisticMixture)):
      raise TypeError(f"no entropy model for likelihood {type(lik).__name__}")
    self.kind = "bernoulli" if isinstance(lik, Bernoulli) else "categorical"
    self._chooser = Chooser()
    z_spec = tf.TensorSpec([None, model.latent_size], tf.float32)
    self._walk = tf.function(self._walk_fn, autograph=False, input_signature=[z_spec])
    self._teach = tf.function(self._teach_fn, autograph=False, input_signature=[
        z_spec, tf.TensorSpec([None, h * w, c], tf.int64)])

  def _walk_fn(self, z):
    cond = self.model.conditioning_features(z)
    return tf.cast(sampling.cached_pixels(self.model, cond, self._draw), tf.int64)

  def _teach_fn(self, z, known):
    cond = self.model.conditioning_features(z)
    known = tf.transpose(known, [1, 0, 2])                              # [H W, G, C]
    return sampling.cached_pixels(self.model, cond, lambda p, raw: self._draw(p, raw, known[p]),
                                  record_dtype=tf.float64)[1]

  def _draw(self, p, raw, known=None):
    """Pixel ``p``'s values ``[G, C]``: each sub-pixel's distribution, then the chooser (or the
    ``known`` values ``[G, C]``, and then the distributions ``[C, G(, n)]`` too)."""
    dist = PixelDistributions(self.lik, raw)
    values, params = [], []
    for c in range(self.channels):
      params.append(dist.channel(c, values))
      if known is None:
        v = self._chooser.op([p, params[-1]],
                             lambda p, params, c=c: (int(p), c, self.kind, params))
      else:
        v = known[:, c]
      values.append(tf.cast(v, tf.float64))
    pix = tf.cast(tf.stack(values, -1), tf.float32)
    return pix if known is None else (pix, tf.stack(params))

  def walk(self, z, choose):
    """Runs the decoder over every pixel of a group in raster order, sub-pixels in order.

    ``z``: ``[G, D]`` float32 latents. ``choose(p, c, kind, params)`` gets
    sub-pixel ``(p, c)``'s distribution, ``("bernoulli", p(x = 1) [G])`` or
    ``("categorical", pmf [G, n])`` (float64 NumPy), and returns its values
    ``[G]`` (decoded ones on the receiver's side). Returns the ``[G, H W, C]``
    values chosen.
    """
    x = self._chooser.run(choose, self._walk, tf.constant(z, tf.float32)).numpy()
    return x.reshape(len(z), self.num_pixels, self.channels)

  def distributions(self, z, x):
    """The sender's walk: the same steps as :meth:`walk` with every value known (no coder
    calls). ``x``: ``[G, H W, C]`` ints. Returns every sub-pixel's distribution, the same bits
    :meth:`walk` hands its chooser, ``[H W, C, G]`` (Bernoulli) or ``[H W, C, G, n]``."""
    return self._teach(tf.constant(z, tf.float32), tf.constant(x, tf.int64)).numpy()


class PixelDistributions:
  """One pixel's sub-pixel distributions from its raw parameters ``[G, P]``, channel by channel
  (module doc): what is shared by the channels (the unpacked parameters, the mixture's log
  weights as the earlier sub-pixels are known) is computed once."""

  def __init__(self, lik, raw):
    self.lik, self.raw = lik, raw
    if isinstance(lik, Bernoulli):
      return
    logits, self.means, self.log_scales, self.coeffs = lik.unpack(tf.cast(raw, tf.float64))
    self.log_w = tf.nn.log_softmax(logits, axis=-1)                      # [G, K]
    self.n1 = float(lik.num_levels - 1)
    self.m, self.s, self.idx = [], [], 0

  def channel(self, c, values):
    """The distribution of sub-pixel ``c`` given ``values`` (float64 ``[G]``, channels ``< c``),
    float64: ``p(x_c = 1)`` ``[G]`` (Bernoulli) or ``P(x_c = v | x_<c)`` ``[G, n]``. Call with
    ``c = 0, 1, ...`` in order."""
    lik = self.lik
    if isinstance(lik, Bernoulli):
      return tf.sigmoid(tf.cast(self.raw[:, c], tf.float64))
    if c > 0:                                   # the mixture's weights given sub-pixel c - 1
      v = values[c - 1][:, None]
      self.s.append(2.0 * v / self.n1 - 1.0)
      self.log_w += lik.log_bin_prob(v, self.s[-1], self.m[-1], self.log_scales[:, c - 1])
    m = self.means[:, c]                       # lik.adjusted_means, one channel
    for cp in range(c):
      m = m + self.coeffs[:, self.idx] * self.s[cp]
      self.idx += 1
    self.m.append(m)
    w = tf.nn.softmax(self.log_w, axis=-1)
    return mixture_pmf(lik.num_levels, w, m, self.log_scales[:, c])


def mixture_pmf(n, weights, mean, log_scale):
  """``P(v)`` ``[G, n]`` float64 for each of ``n`` levels under a mixture of discretized logistics
  (``weights``, ``mean``, ``log_scale``: float64 ``[G, K]``): differences of the mixture's CDF at
  the ``n - 1`` inner bin edges (the outer bins extended to -inf / +inf; the edges and scales of
  :meth:`DiscretizedLogisticMixture.log_bin_prob`). The ``K (n - 1)`` sigmoids and
  the weighted sum over the components run in float32 (a few times faster than float64 here);
  the masses' absolute error, ~1e-7, is below the resolution of constriction's 24-bit masses."""
  edges = (2.0 * np.arange(1, n) / (n - 1) - 1.0 - 1.0 / (n - 1)).astype(np.float32)
  inv = tf.cast(tf.exp(-log_scale), tf.float32)
  cdf = tf.sigmoid((edges - tf.cast(mean, tf.float32)[..., None]) * inv[..., None])  # [G, K, n-1]
  cdf = tf.cast(tf.matmul(tf.cast(weights, tf.float32)[:, None, :], cdf)[:, 0], tf.float64)
  lower = tf.pad(cdf, [[0, 0], [1, 0]])                    # the CDF at each bin's lower edge
  upper = tf.pad(cdf, [[0, 0], [0, 1]], constant_values=1.0)
  return tf.maximum(upper - lower, 0.0)


def channel_models(lik, raw, choose_channel):
  """One pixel's sub-pixels outside a walk (e.g. teacher forced over many pixels at once).

  ``raw``: ``[G, P]`` raw parameters. ``choose_channel(c, kind, params)`` gets
  ``("bernoulli", p1 [G])`` or ``("categorical", pmf [G, n])`` (float64 NumPy, as the walk's
  chooser) and returns the sub-pixel's values ``[G]`` ints. Returns ``[G, C]`` values.
  """
  if not isinstance(lik, (Bernoulli, DiscretizedLogisticMixture)):
    raise TypeError(f"no entropy model for likelihood {type(lik).__name__}")
  kind = "bernoulli" if isinstance(lik, Bernoulli) else "categorical"
  dist = PixelDistributions(lik, tf.constant(raw, tf.float32))
  values = np.zeros((len(raw), lik.channels), np.int64)
  for c in range(lik.channels):
    params = dist.channel(c, [tf.constant(values[:, cp], tf.float64) for cp in range(c)])
    values[:, c] = choose_channel(c, kind, params.numpy())
  return values
