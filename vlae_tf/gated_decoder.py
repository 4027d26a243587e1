"""A PixelCNN++-style local decoder p(x|z): gated vertical and horizontal stacks, bounded window.

The ``stack`` decoder of :mod:`vlae_tf.local_decoder` is the 2016 PixelCNN
(masked 3x3 layers, blind spot included). This one is built from the parts of
Gated PixelCNN (van den Oord et al. 2016) and PixelCNN++ (Salimans et al.
2017), without the down/up-sampling passes, so its receptive field is an
exact, bounded window:

* a *vertical* stream ``v`` that sees only rows above the current pixel, grown
  by down-shifted 2x3 convolutions (one row up and one column each side per
  layer);
* a *horizontal* stream ``h`` that sees the current row to the left, grown by
  down-right-shifted 2x2 convolutions, and reads ``v`` at its own position
  through a 1x1 link (``v`` there sees only earlier rows);
* gated residual blocks ``s + a * sigmoid(b)``, ``[a, b] = conv(elu(s)) +
  proj(c)``, with the z-conditioning features ``c = g(z)`` entering *every*
  block of both streams (all projections of ``c`` are one dense layer).

With ``n = num_layers`` (the first layer reads x, the ``n - 1`` others are
gated blocks)::

    v_0 = conv_{row i-1, cols j-1..j+1}(x) + P_v0 c
    h_0 = conv_{(i, j-1)}(x) + L_0 elu(v_0) + P_h0 c
    v_k = v_{k-1} + gate(conv_2x3(elu(v_{k-1})) + P_vk c)                 k = 1 .. n-1
    h_k = h_{k-1} + gate(conv_2x2(elu(h_{k-1})) + L_k elu(v_k) + P_hk c)
    then ``num_blocks`` pointwise gated blocks on h, and ``params = W elu(h)``.

Context ``gated``: pixel (i, j) sees exactly the window of width ``A = 2n + 1``
and height ``B = n`` of :func:`vlae_tf.masked_conv.window_mask` (rows
``i-n .. i-1`` in columns ``j-n .. j+n``, and row i in columns ``j-n .. j-1``),
with no blind spot. Context ``gated_full``: the first layer's kernels cover
every row above and the whole row to the left, so every earlier pixel is seen;
the rest of the network is the same (the strong full-context baseline of the
same family). RGB sub-pixels are handled as in ``local_decoder``: the current
pixel is hidden, the likelihood's linear coefficients order R -> G -> B.

The geometry is data (:func:`gated_geometry`, a list of nodes with the
``(source, mask, anchor)`` of every input); the network is built from it, the
cached sampler and the codec evaluate it one pixel at a time
(:class:`vlae_tf.sampling.GatedPixelProgram`), and :func:`vlae_tf.receptive_field.expected_receptive_field`
propagates offsets through it. The residual connections read offset (0, 0),
which every block's mask already contains, so they add nothing to the graph.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from vlae_tf import masked_conv as mc
from vlae_tf.config import GATED_DECODER_CONTEXTS as CONTEXTS, check_choice


def _ones(kh, kw):
  return np.ones((kh, kw), np.float32)


def first_masks(context, image_hw):
  """The ``(mask, anchor)`` of the two x-reading kernels: vertical, horizontal."""
  check_choice("model.decoder_context", context, CONTEXTS)
  h, w = image_hw
  if context == "gated":
    return (np.array([[1, 1, 1], [0, 0, 0]], np.float32), (1, 1)), \
           (np.array([[1, 0]], np.float32), (0, 1))
  vert = np.zeros((h, 2 * w - 1), np.float32)                      # "gated_full"
  vert[:h - 1, :] = 1.0
  horiz = np.zeros((1, w), np.float32)
  horiz[0, :w - 1] = 1.0
  if vert.sum() == 0 and horiz.sum() == 0:
    raise ValueError(f"a {h}x{w} image has no earlier pixels to read")
  return (vert, (h - 1, w - 1)), (horiz, (0, w - 1))


VERTICAL = (_ones(2, 3), (1, 1))      # rows i-1, i of v_{k-1}; columns j-1 .. j+1
HORIZONTAL = (_ones(2, 2), (1, 1))    # (i-1, j-1), (i-1, j), (i, j-1), (i, j) of h_{k-1}


def gated_geometry(context, image_hw, num_layers):
  """The decoder's graph as data: ``[(node, [(source, mask, anchor), ...]), ...]``.

  Nodes in evaluation order; ``source`` is ``"x"`` or an earlier node. The
  output is the last node (``h_{n-1}``; the pointwise blocks after it read
  only offset (0, 0)).
  """
  if num_layers < 1:
    raise ValueError(f"a gated decoder needs num_layers >= 1, got {num_layers}")
  vert, horiz = first_masks(context, image_hw)
  one = mc.identity_mask()
  nodes = [("v0", [("x",) + vert]), ("h0", [("x",) + horiz, ("v0",) + one])]
  for k in range(1, num_layers):
    nodes.append((f"v{k}", [(f"v{k - 1}",) + VERTICAL]))
    nodes.append((f"h{k}", [(f"h{k - 1}",) + HORIZONTAL, (f"v{k}",) + one]))
  return nodes


@keras.saving.register_keras_serializable(package="vlae_tf")
class GatedDecoder(keras.layers.Layer):
  """Maps (normalized x, conditioning features) to per-pixel likelihood parameters."""

  def __init__(self, context, image_shape, num_params, filters=64, num_layers=6,
               num_blocks=1, **kwargs):
    super().__init__(**kwargs)
    check_choice("model.decoder_context", context, CONTEXTS)
    self.context = context
    self.image_shape = tuple(int(v) for v in image_shape)
    self.num_params = int(num_params)
    self.filters = f = int(filters)
    self.num_layers = n = int(num_layers)
    self.num_blocks = int(num_blocks)
    self.geometry = gated_geometry(context, self.image_shape[:2], n)
    (vm, va), (hm, ha) = first_masks(context, self.image_shape[:2])
    self.v_in = mc.MaskedConv2D(f, vm, va, name="v_in")
    self.h_in = mc.MaskedConv2D(f, hm, ha, name="h_in")
    self.h_in_link = keras.layers.Dense(f, use_bias=False, name="h_in_link")
    self.v_convs = [mc.MaskedConv2D(2 * f, *VERTICAL, name=f"v_conv_{k}") for k in range(1, n)]
    self.h_convs = [mc.MaskedConv2D(2 * f, *HORIZONTAL, name=f"h_conv_{k}") for k in range(1, n)]
    self.h_links = [keras.layers.Dense(2 * f, use_bias=False, name=f"h_link_{k}")
                    for k in range(1, n)]
    self.pointwise = [keras.layers.Dense(2 * f, name=f"pointwise_{b}")
                      for b in range(self.num_blocks)]
    # Every projection of the conditioning features, in one matmul (see proj_sizes).
    self.cond_proj = keras.layers.Dense(sum(self.proj_sizes()), use_bias=False, name="cond_proj")
    self.out = keras.layers.Dense(self.num_params, name="params", dtype="float32",
                                  kernel_initializer=keras.initializers.VarianceScaling(0.1))

  def proj_sizes(self):
    """Channels of each slice of ``cond_proj``: v_0, h_0, (v_k, h_k) for k >= 1, pointwise."""
    f = self.filters
    return [f, f] + [2 * f, 2 * f] * (self.num_layers - 1) + [2 * f] * self.num_blocks

  def projections(self, cond):
    """``cond_proj(cond)`` split into the per-block terms of :meth:`proj_sizes`."""
    return tf.split(self.cond_proj(cond), self.proj_sizes(), axis=-1)

  def context_input(self, x_normalized):
    return x_normalized

  def call(self, x_normalized, cond):
    p = self.projections(cond)
    v = self.v_in(x_normalized) + p[0]
    h = self.h_in(x_normalized) + self.h_in_link(tf.nn.elu(v)) + p[1]
    for k in range(self.num_layers - 1):
      v = gate(v, self.v_convs[k](tf.nn.elu(v)) + p[2 + 2 * k])
      h = gate(h, self.h_convs[k](tf.nn.elu(h)) + self.h_links[k](tf.nn.elu(v)) + p[3 + 2 * k])
    for b, layer in enumerate(self.pointwise):
      h = gate(h, layer(tf.nn.elu(h)) + p[2 * self.num_layers + b])
    return self.out(tf.nn.elu(h))

  def get_config(self):
    return {**super().get_config(), "context": self.context, "image_shape": list(self.image_shape),
            "num_params": self.num_params, "filters": self.filters,
            "num_layers": self.num_layers, "num_blocks": self.num_blocks}


def gate(s, conv_out):
  """The gated residual update ``s + a * sigmoid(b)``, ``[a, b] = conv_out`` (every gated block)."""
  a, b = tf.split(conv_out, 2, axis=-1)
  return s + a * tf.sigmoid(b)
