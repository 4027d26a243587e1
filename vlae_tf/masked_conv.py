"""Masked convolutions: the only way pixels reach the decoder.

Every autoregressive context in this package is built from one primitive, a
convolution whose kernel is multiplied by a fixed binary mask. A mask is a
``(kh, kw)`` array together with an *anchor* ``(ai, aj)``: the kernel tap that
lines up with the output pixel. Tap ``(u, v)`` of the kernel reads input pixel
``(i + u - ai, j + v - aj)`` when computing output pixel ``(i, j)``, so the set
of *offsets* a layer reads is ``{(u - ai, v - aj) : mask[u, v] = 1}``.

The input is zero padded by ``ai`` rows above, ``kh - 1 - ai`` below, ``aj``
columns left and ``kw - 1 - aj`` right, and the convolution is VALID, so output
pixel ``(i, j)`` reads exactly those offsets and nothing else.

Masks used by the paper's decoders (rows grow downwards, columns rightwards;
"earlier" means raster order):

* ``mask_a(k)``: a ``k x k`` kernel reading rows above the centre and, in the
  centre row, columns strictly left of it. The first PixelCNN layer.
* ``mask_b(k)``: ``mask_a`` plus the centre tap. Later PixelCNN layers.
* ``window_mask(A, B)``: the exact ``A x B`` local window (see
  :func:`window_mask`). Used once, followed by 1x1 layers, it gives a decoder
  whose receptive field is exactly that window.

Sub-pixels of RGB images are *not* masked here: all channels of the current
pixel are hidden from the network, and the dependence of G on R and of B on
(R, G) enters through the likelihood's linear coefficients (PixelCNN++).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def mask_a(kernel_size: int) -> tuple[np.ndarray, tuple[int, int]]:
  """PixelCNN mask A: rows above the centre and the centre row's left half."""
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
  k, c = kernel_size, kernel_size // 2
  m = np.zeros((k, k), np.float32)
  m[:c, :] = 1.0
  m[c, :c] = 1.0
  return m, (c, c)


def mask_b(kernel_size: int) -> tuple[np.ndarray, tuple[int, int]]:
  """PixelCNN mask B: mask A plus the centre tap."""
  m, anchor = mask_a(kernel_size)
  m[anchor] = 1.0
  return m, anchor


def window_mask(width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
  """The exact ``A x B`` window (A = ``width``, B = ``height``).

  Output pixel ``(i, j)`` reads rows ``i-B .. i-1`` in columns
  ``j-floor((A-1)/2) .. j+floor(A/2)``, and in row ``i`` the columns
  ``j-floor((A-1)/2) .. j-1``. Nothing else. The kernel is ``(B+1) x A`` with
  anchor ``(B, floor((A-1)/2))``.
  """
  if width < 1 or height < 0:
    raise ValueError(f"window must have width >= 1 and height >= 0, got {width}x{height}")
  left = (width - 1) // 2
  m = np.zeros((height + 1, width), np.float32)
  m[:height, :] = 1.0
  m[height, :left] = 1.0
  if m.sum() == 0:
    raise ValueError(f"window {width}x{height} reads no pixel at all")
  return m, (height, left)


def identity_mask() -> tuple[np.ndarray, tuple[int, int]]:
  """A 1x1 kernel: reads only the output pixel's own position."""
  return np.ones((1, 1), np.float32), (0, 0)


def mask_offsets(mask: np.ndarray, anchor: tuple[int, int]) -> set[tuple[int, int]]:
  """The set of ``(di, dj)`` offsets a masked kernel reads."""
  us, vs = np.nonzero(mask)
  return {(int(u) - anchor[0], int(v) - anchor[1]) for u, v in zip(us, vs)}


@keras.saving.register_keras_serializable(package="vlae_tf")
class MaskedConv2D(keras.layers.Layer):
  """A 2-D convolution whose kernel is multiplied by a fixed ``mask``.

  Args:
    filters: output channels.
    mask: ``(kh, kw)`` 0/1 array, shared by all input/output channel pairs.
    anchor: the kernel tap aligned with the output pixel.
    use_bias: add a bias.
  """

  def __init__(self, filters, mask, anchor, use_bias=True,
               kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.mask = np.asarray(mask, np.float32)
    self.anchor = (int(anchor[0]), int(anchor[1]))
    self.use_bias = use_bias
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    kh, kw = self.mask.shape
    ai, aj = self.anchor
    self._paddings = [[0, 0], [ai, kh - 1 - ai], [aj, kw - 1 - aj], [0, 0]]

  def build(self, input_shape):
    kh, kw = self.mask.shape
    cin = int(input_shape[-1])
    self.kernel = self.add_weight(
        name="kernel", shape=(kh, kw, cin, self.filters),
        initializer=self.kernel_initializer)
    self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                 if self.use_bias else None)

  def call(self, x):
    kernel = self.kernel * tf.constant(self.mask[:, :, None, None], dtype=self.kernel.dtype)
    if self.mask.shape == (1, 1):
      y = tf.einsum("bhwc,cd->bhwd", x, kernel[0, 0])
    else:
      y = tf.nn.conv2d(tf.pad(x, self._paddings), kernel, strides=1, padding="VALID")
    if self.bias is not None:
      y = y + self.bias
    return y

  def get_config(self):
    cfg = super().get_config()
    cfg.update(filters=self.filters, mask=self.mask.tolist(), anchor=list(self.anchor),
               use_bias=self.use_bias,
               kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
    return cfg
