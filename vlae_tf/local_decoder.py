"""The local decoder p(x|z): a PixelCNN conditioned on z whose context is chosen by config.

VLAE's central idea: restrict what the autoregressive decoder can see of x, so
that global structure can only come through z. The context kinds:

``stack``  (n layers, kernel k)
  The original PixelCNN: one k x k mask-A convolution, then n-1 mask-B ones.
  Its receptive field is whatever that stack gives, blind spot included. The
  paper's MNIST decoder is n = 6, k = 3.
``window`` (A x B)
  Exactly the A x B window: pixel (i, j) sees rows i-B .. i-1 in columns
  j-floor((A-1)/2) .. j+floor(A/2), and in row i the columns
  j-floor((A-1)/2) .. j-1. Nothing else. Built as one window-masked
  convolution followed only by 1x1 layers. (Paper's CIFAR-10 decoders.)
``grayscale`` (A x B, RGB only)
  The same window, but the network reads only the grayscale
  ``0.299 R + 0.587 G + 0.114 B`` of those pixels: colour must come through z.
``full`` (n layers, kernel k)
  Every earlier pixel, no blind spot: a window covering the whole image
  (A = 2W - 1, B = H - 1), then n - 1 mask-B k x k gated layers. Those only
  mix features of pixels already visible, so the receptive field stays "every
  earlier pixel" while the network gets as deep as the ``stack`` decoder with
  the same n: the posterior-collapse baseline then differs from VLAE's decoder
  in its receptive field alone. n = 1 is a single full-context layer.
``none``
  A factorized decoder: p(x|z) = prod_ij p(x_ij | z). The plain VAE baseline.

After the context layer come ``num_blocks`` residual gated 1x1 blocks (and, for
``stack``, the mask-B layers are themselves gated residual blocks). z enters
*every* layer: each adds a 1x1 projection of the conditioning feature map.

For RGB images, all sub-pixels of the current pixel are hidden from the
network; the within-pixel order R -> G -> B comes from the likelihood's
channel-wise linear dependence (PixelCNN++). So the distribution of sub-pixel
(i, j, c) depends on the context above plus sub-pixels (i, j, c') with c' < c.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from vlae_tf import masked_conv as mc
from vlae_tf.config import LOCAL_DECODER_CONTEXTS as CONTEXTS, check_choice
from vlae_tf.gated_decoder import gate

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def context_layers(context, image_hw, num_layers=6, kernel_size=3, window=(3, 2)):
  """The (mask, anchor) of every x-reading layer, in order, for a context kind.

  This is the decoder's geometry as data; the decoder is built from it and
  the receptive-field tests recompute the geometry from it independently of
  autodiff.
  """
  check_choice("model.decoder_context", context, CONTEXTS)
  h, w = image_hw
  if context == "stack":
    if num_layers < 1:
      raise ValueError(f"a stack context needs num_layers >= 1, got {num_layers}")
    return [mc.mask_a(kernel_size)] + [mc.mask_b(kernel_size) for _ in range(num_layers - 1)]
  if context in ("window", "grayscale"):
    return [mc.window_mask(int(window[0]), int(window[1]))]
  if context == "full":
    if num_layers < 1:
      raise ValueError(f"a full context needs num_layers >= 1, got {num_layers}")
    return [mc.window_mask(2 * w - 1, h - 1)] + [mc.mask_b(kernel_size)
                                                 for _ in range(num_layers - 1)]
  return []                                                        # "none"


@keras.saving.register_keras_serializable(package="vlae_tf")
class GatedBlock(keras.layers.Layer):
  """``h + a * sigmoid(b)`` with ``[a, b] = masked_conv(elu(h)) + proj(c)``."""

  def __init__(self, filters, mask, anchor, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.conv = mc.MaskedConv2D(2 * filters, mask, anchor, name="conv")
    self.proj = keras.layers.Dense(2 * filters, name="proj")

  def call(self, h, cond):
    return gate(h, self.conv(tf.nn.elu(h)) + self.proj(cond))


@keras.saving.register_keras_serializable(package="vlae_tf")
class LocalDecoder(keras.layers.Layer):
  """Maps (normalized x, conditioning features) to per-pixel likelihood parameters."""

  def __init__(self, context, image_shape, num_params, filters=64, num_layers=6,
               kernel_size=3, window=(3, 2), num_blocks=2, **kwargs):
    super().__init__(**kwargs)
    check_choice("model.decoder_context", context, CONTEXTS)
    self.context = context
    self.image_shape = tuple(int(v) for v in image_shape)
    if context == "grayscale" and self.image_shape[-1] != 3:
      raise ValueError("the grayscale context needs RGB images (3 channels), "
                       f"got {self.image_shape[-1]}")
    self.num_params = int(num_params)
    self.filters = int(filters)
    self.num_layers = int(num_layers)
    self.kernel_size = int(kernel_size)
    self.window = tuple(int(v) for v in window)
    self.num_blocks = int(num_blocks)
    layers = context_layers(context, self.image_shape[:2], self.num_layers,
                            self.kernel_size, self.window)
    self.geometry = layers
    if layers:
      mask, anchor = layers[0]
      self.first = mc.MaskedConv2D(filters, mask, anchor, name="context_conv")
    else:
      self.first = None
    self.first_proj = keras.layers.Dense(filters, name="context_proj")
    self.blocks = [GatedBlock(filters, m, a, name=f"masked_{i}")
                   for i, (m, a) in enumerate(layers[1:])]
    one, anchor1 = mc.identity_mask()
    self.blocks += [GatedBlock(filters, one, anchor1, name=f"pointwise_{i}")
                    for i in range(self.num_blocks)]
    self.out = keras.layers.Dense(self.num_params, name="params", dtype="float32",
                                  kernel_initializer=keras.initializers.VarianceScaling(0.1))

  def context_input(self, x_normalized):
    """What the network reads of x: all channels, or the grayscale for ``grayscale``."""
    if self.context == "grayscale":
      w = tf.constant(np.array(GRAY_WEIGHTS, np.float32), dtype=x_normalized.dtype)
      return tf.reduce_sum(x_normalized * w, axis=-1, keepdims=True)
    return x_normalized

  def call(self, x_normalized, cond):
    h = self.first_proj(cond)
    if self.first is not None:
      h = h + self.first(self.context_input(x_normalized))
    for block in self.blocks:
      h = block(h, cond)
    return self.out(tf.nn.elu(h))
