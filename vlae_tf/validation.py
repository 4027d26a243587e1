"""Input checks for every public entry point: clear errors that name the problem.

Static problems (rank, image size, dtype) raise ``ValueError`` / ``TypeError``
at trace time; value problems (pixel range, non-integer levels) raise
``tf.errors.InvalidArgumentError`` at run time, eagerly or inside a graph, so
the same checks guard the exported signatures.
"""

from __future__ import annotations

import tensorflow as tf

_ACCEPTED = (tf.uint8, tf.int32, tf.int64, tf.float16, tf.float32, tf.float64)


def check_images(x, image_shape, num_levels, name="x"):
  """Validates an NHWC batch of pixels and returns it as float32 in data scale.

  Args:
    x: array-like of shape ``[N, H, W, C]``.
    image_shape: the expected ``(H, W, C)``.
    num_levels: 2 for binary images (values {0, 1}), 256 for 8-bit
      (values 0..255), ``2**num_bits`` in general.
  """
  h, w, c = image_shape
  expected = ("binary values {0, 1}" if num_levels == 2
              else f"integer values in [0, {num_levels - 1}]")
  if not tf.is_tensor(x):
    try:
      x = tf.convert_to_tensor(x)
    except (TypeError, ValueError) as e:
      raise TypeError(f"{name} must be a numeric array of images, got {type(x).__name__}: {e}")
  if x.dtype not in _ACCEPTED:
    raise TypeError(f"{name} has dtype {x.dtype.name}; expected uint8 or float pixels "
                    f"({expected}) of shape [N, {h}, {w}, {c}]")
  shape = x.shape
  if shape.rank is not None and shape.rank != 4:
    raise ValueError(f"{name} must be a rank-4 NHWC batch of shape [N, {h}, {w}, {c}], "
                     f"got shape {shape}")
  if shape.rank == 4 and any(
      got is not None and got != want for got, want in zip(shape[1:], (h, w, c))):
    raise ValueError(f"{name} has images of shape {tuple(shape[1:])}; this model expects "
                     f"[N, {h}, {w}, {c}]")
  xf = tf.cast(x, tf.float32)
  checks = [
      tf.debugging.assert_greater(
          tf.shape(x)[0], 0,
          message=f"{name} is an empty batch; expected at least one image of shape [{h}, {w}, {c}]"),
      tf.debugging.assert_equal(
          tf.reduce_all(tf.math.is_finite(xf)), True,
          message=f"{name} has NaN or infinite pixel values; expected {expected}"),
      tf.debugging.assert_equal(
          tf.reduce_all((xf >= 0.0) & (xf <= float(num_levels - 1))), True,
          message=f"{name} has pixel values outside [0, {num_levels - 1}]; expected {expected}"),
      tf.debugging.assert_equal(
          tf.reduce_all(tf.equal(xf, tf.round(xf))), True,
          message=f"{name} has non-integer pixel values; expected {expected}"),
  ]
  with tf.control_dependencies(checks):
    return tf.identity(xf)
