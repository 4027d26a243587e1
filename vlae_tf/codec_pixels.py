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
pops the value from the ANS stack (receiver) or records the distribution and
returns the known value (sender). Both sides run the same traced graph, one
call per group, so there is no per-pixel Python dispatch beyond the chooser.

The batch ``G`` is the group's own size: sender and receiver run every group
at the same size, which the file records, so they run the same kernels on the
same shapes.

The sub-pixel distributions are computed in TensorFlow, in float64, by the
likelihood's own maths (one definition, :mod:`vlae_tf.likelihoods`): a
Bernoulli ``p(x = 1) = sigmoid(l)``, or for the discretized logistic mixture
the 256-way categorical of sub-pixel ``c`` given the earlier sub-pixels of
the pixel::

    P(x_c = v | x_<c) = sum_k w_k DL_kc(v | x_<c),
    w_k ∝ pi_k prod_{c' < c} DL_kc'(x_c' | x_<c')

(the mixture posterior over components given the sub-pixels already coded,
times each component's discretized logistic with the channel-wise linear mean,
``DiscretizedLogisticMixture.unpack`` / ``adjusted_means`` / ``log_bin_prob``
for the weights, ``bin_probs`` for the n levels). Their product over c is the
pixel's probability under :meth:`DiscretizedLogisticMixture.log_prob` (up to
float rounding in the far tails, below what constriction's 24-bit masses see).
Each is computed at the shape
``[G, ...]`` of one pixel on both sides (element-wise kernels may take another
path for another array length), and constriction quantizes it to integers.
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
  place. An exception in ``fn`` (a :class:`vlae_tf.codec_format.CodecError`, a constriction
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
    self._walk = tf.function(self._walk_fn, autograph=False, input_signature=[
        tf.TensorSpec([None, model.latent_size], tf.float32)])

  def _walk_fn(self, z):
    cond = self.model.conditioning_features(z)
    return tf.cast(sampling.cached_pixels(self.model, cond, self._draw), tf.int64)

  def _draw(self, p, raw):
    """Pixel ``p``'s values ``[G, C]``: each sub-pixel's distribution, then the chooser."""
    values = []
    for c in range(self.channels):
      x = tf.stack(values + [tf.zeros_like(raw[:, 0], tf.float64)] * (self.channels - c), -1)
      params = sub_pixel_distribution(self.lik, raw, x, c)
      v = self._chooser.op([p, params], lambda p, params, c=c: (int(p), c, self.kind, params))
      values.append(tf.cast(v, tf.float64))
    return tf.cast(tf.stack(values, -1), tf.float32)

  def walk(self, z, choose):
    """Runs the decoder over every pixel of a group in raster order, sub-pixels in order.

    ``z``: ``[G, D]`` float32 latents. ``choose(p, c, kind, params)`` gets
    sub-pixel ``(p, c)``'s distribution, ``("bernoulli", p(x = 1) [G])`` or
    ``("categorical", pmf [G, n])`` (float64 NumPy), and returns its values
    ``[G]`` (the known pixels on the sender's side, decoded ones on the
    receiver's). Returns the ``[G, H W, C]`` values chosen.
    """
    x = self._chooser.run(choose, self._walk, tf.constant(z, tf.float32)).numpy()
    return x.reshape(len(z), self.num_pixels, self.channels)


def sub_pixel_distribution(lik, raw, x, c):
  """The distribution of sub-pixel ``c`` (module doc), float64: ``p(x_c = 1)`` ``[G]`` for a
  Bernoulli, ``P(x_c = v | x_<c)`` ``[G, n]`` for the logistic mixture. ``raw``: the pixel's raw
  parameters ``[G, P]``; ``x`` ``[G, C]`` float64: its values (the channels before ``c`` are
  read)."""
  if isinstance(lik, Bernoulli):
    return tf.sigmoid(tf.cast(raw[:, c], tf.float64))
  logits, means, log_scales, coeffs = lik.unpack(tf.cast(raw, tf.float64))
  n1 = float(lik.num_levels - 1)
  m = lik.adjusted_means(means, coeffs, 2.0 * x / n1 - 1.0)            # [G, C, K]
  log_w = tf.nn.log_softmax(logits, axis=-1)                           # [G, K]
  for cp in range(c):
    v = x[:, cp:cp + 1]
    log_w += lik.log_bin_prob(v, 2.0 * v / n1 - 1.0, m[:, cp], log_scales[:, cp])
  probs = lik.bin_probs(m[:, c], log_scales[:, c])                    # [G, K, n]
  return tf.reduce_sum(tf.nn.softmax(log_w, axis=-1)[..., None] * probs, axis=1)


def channel_models(lik, raw, choose_channel):
  """One pixel's sub-pixels outside a walk (e.g. teacher forced over many pixels at once).

  ``raw``: ``[G, P]`` raw parameters. ``choose_channel(c, kind, params)`` gets
  ``("bernoulli", p1 [G])`` or ``("categorical", pmf [G, n])`` (float64 NumPy, as the walk's
  chooser) and returns the sub-pixel's values ``[G]`` ints. Returns ``[G, C]`` values.
  """
  if not isinstance(lik, (Bernoulli, DiscretizedLogisticMixture)):
    raise TypeError(f"no entropy model for likelihood {type(lik).__name__}")
  kind = "bernoulli" if isinstance(lik, Bernoulli) else "categorical"
  raw = tf.constant(raw, tf.float32)
  values = np.zeros((raw.shape[0], lik.channels), np.int64)
  for c in range(lik.channels):
    params = sub_pixel_distribution(lik, raw, tf.constant(values, tf.float64), c).numpy()
    values[:, c] = choose_channel(c, kind, params)
  return values
