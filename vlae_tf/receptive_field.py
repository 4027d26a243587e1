"""Receptive fields of the decoder, measured by autodiff.

``receptive_field(model, pixel=(i, j[, c]))`` answers: which input pixels does
the decoder's conditional distribution at that (sub-)pixel depend on, for a
fixed z? It differentiates random projections of the conditional's parameters
(see ``Likelihood.conditional_params``) with respect to the input image at a
random point and returns where the gradient is non-zero. All decoder activations are ELU /
tanh / sigmoid, whose derivatives never vanish, so a zero means "not
connected", not "not active here".

``expected_receptive_field`` computes the same set from the decoder's geometry
(the masks of its layers) by propagating offsets, without autodiff.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf import masked_conv as mc


def _pixel(model, pixel):
  h, w, c = model.image_shape
  if not isinstance(pixel, (tuple, list, np.ndarray)) or not all(
      isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in pixel):
    raise TypeError(f"pixel must be a tuple of ints (i, j) or (i, j, c), got {pixel!r}")
  if len(pixel) not in (2, 3):
    raise ValueError(f"pixel must be (i, j) or (i, j, c), got {pixel!r}")
  if len(pixel) == 2:
    i, j = pixel
    ch = None
  else:
    i, j, ch = pixel
    if not 0 <= ch < c:
      raise ValueError(f"pixel {tuple(pixel)!r}: channel {ch} out of range for {c}-channel images")
  if not (0 <= i < h and 0 <= j < w):
    raise ValueError(f"pixel {pixel!r} is outside the {h}x{w} image")
  return int(i), int(j), ch


def receptive_field(model, pixel, seed=0):
  """Bool array ``(H, W)`` (or ``(H, W, C)`` for C > 1) of input pixels the
  decoder's distribution at ``pixel`` depends on, given z.

  For RGB, ``pixel=(i, j, c)`` asks about sub-pixel c; ``(i, j)`` gives the
  union over the pixel's sub-pixels.
  """
  i, j, ch = _pixel(model, pixel)
  h, w, c = model.image_shape
  rng = np.random.default_rng(seed)
  x = tf.constant(rng.uniform(0, model.num_levels - 1, (1, h, w, c)).astype(np.float32))
  z = tf.constant(rng.standard_normal((1, model.latent_size)).astype(np.float32))
  dep = np.zeros((h, w, c), bool)
  # Gradients of two random projections of the parameters: a cancellation to an
  # exact zero would need a measure-zero coincidence, so non-zero <=> connected.
  for k in range(2):
    with tf.GradientTape() as tape:
      tape.watch(x)
      raw = model.decoder_raw(x, z)
      params = model.likelihood.conditional_params(raw, x)[0, i, j]   # [C, P]
      if ch is not None:
        params = params[ch]
      proj = tf.constant(rng.standard_normal(params.shape).astype(np.float32))
      target = tf.reduce_sum(params * proj)
    # A decoder that reads no pixels (context "none") leaves x unconnected: zero, not None.
    grad = tape.gradient(target, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    dep |= np.abs(grad.numpy()[0]) > 0
  return dep[..., 0] if c == 1 else dep


def _graph_field(geometry, image_hw, i, j):
  """Input positions the last node at ``(i, j)`` reads, through a graph geometry.

  ``geometry``: ``[(node, [(source, mask, anchor), ...]), ...]`` in evaluation
  order (see :func:`vlae_tf.gated_decoder.gated_geometry`); ``"x"`` is the input.
  """
  h, w = image_hw
  inputs = dict(geometry)
  pending = {geometry[-1][0]: {(i, j)}}
  seen = set()
  for node, _ in reversed(geometry):      # evaluation order is a topological order
    for a, b in pending.pop(node, ()):
      for source, mask, anchor in inputs[node]:
        for u, v in mc.mask_offsets(mask, anchor):
          if 0 <= a + u < h and 0 <= b + v < w:
            if source == "x":
              seen.add((a + u, b + v))
            else:
              pending.setdefault(source, set()).add((a + u, b + v))
  return seen


def expected_receptive_field(geometry, image_shape, pixel, channel_dependence=False):
  """The receptive field implied by the decoder's geometry, without autodiff.

  The output at ``p`` of the last layer depends on positions ``p + o`` for the
  offsets ``o`` of that layer's mask; recursing through the layers gives the
  input positions. Positions outside the image are dropped (zero padding).

  Args:
    geometry: the decoder's ``geometry``: a chain ``[(mask, anchor), ...]``
      (first layer first; :mod:`vlae_tf.local_decoder`) or a graph
      ``[(node, [(source, mask, anchor), ...]), ...]`` (:mod:`vlae_tf.gated_decoder`).
    image_shape: ``(H, W, C)``.
    pixel: ``(i, j)`` or ``(i, j, c)``.
    channel_dependence: whether sub-pixel c also sees sub-pixels c' < c of its
      own pixel (true for the RGB logistic mixture).
  """
  h, w, c = image_shape
  i, j = pixel[0], pixel[1]
  ch = pixel[2] if len(pixel) == 3 else None
  if geometry and isinstance(geometry[0][0], str):
    current = _graph_field(geometry, (h, w), i, j)
  else:
    current = {(i, j)}
    for mask, anchor in reversed(geometry):
      offs = mc.mask_offsets(mask, anchor)
      current = {(a + u, b + v) for (a, b) in current for (u, v) in offs
                 if 0 <= a + u < h and 0 <= b + v < w}
    if not geometry:
      current = set()
  out = np.zeros((h, w, c), bool)
  for a, b in current:
    out[a, b, :] = True
  if channel_dependence and c > 1:
    last = (c - 1) if ch is None else ch
    out[i, j, :last] = True
  return out[..., 0] if c == 1 else out
