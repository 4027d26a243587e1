"""The one check of an image batch: NumPy only, one-line errors that name the problem.

:func:`image_array` is the core: it takes an array-like of images and returns
it as uint8 ``[N, H, W, C]`` after checking the dtype, rank, image shape,
that the batch is not empty and that every pixel is a finite integer in
``[0, num_levels - 1]``; anything else raises ``error(message)``, one line
``"<name>: expected <what>, got <what it got>"``. The wrappers choose the
error class and the words, nothing else:

- :func:`vlae_tf.data_readers.check_split_images`: a dataset split
  (:class:`vlae_tf.datasets.DataError`, the config's binarization);
- the codec's images (``image_array(images, "images", model.image_shape,
  model.num_levels, error=CodecError, integers_only=True)``).

Model inputs are checked inside the graph (so the exported signatures refuse
bad requests too): :func:`vlae_tf.model.check_image_tensor` and
:class:`vlae_tf.export.ServingModule` state the expectation with
:func:`expected_pixels` and :func:`expected_batch` of this module. No
TensorFlow is imported here.
"""

from __future__ import annotations

import numpy as np


def expected_pixels(num_levels) -> str:
  """What pixels of ``num_levels`` levels must be, in words."""
  top = int(num_levels) - 1
  return "binary values {0, 1}" if top == 1 else f"integer values in [0, {top}]"


def expected_batch(image_shape) -> str:
  """``"[N, H, W, C]"`` for ``image_shape = (H, W, C)``."""
  h, w, c = image_shape
  return f"[N, {h}, {w}, {c}]"


def image_array(x, name="images", image_shape=None, num_levels=256, error=ValueError,
                expected=None, integers_only=False, what="batch") -> np.ndarray:
  """``x`` as uint8 ``[N, H, W, C]`` after checking it (module doc).

  Args:
    x: array-like ``[N, H, W, C]``, or ``[N, H, W]`` for one channel; bool,
      integer or (unless ``integers_only``) float pixels holding integers.
    name: names ``x`` in the message (an argument, a file and key, ...).
    image_shape: the expected ``(H, W, C)``; None: any size with C = 1 or 3.
    num_levels: pixels must be integers in ``[0, num_levels - 1]``.
    error: the exception class raised.
    expected: the words for valid pixels (default :func:`expected_pixels`).
    integers_only: refuse float arrays.
    what: what ``x`` is, for the empty-input message (``"batch"``, ``"split"``).
  """
  try:
    x = np.asarray(x)
  except (TypeError, ValueError) as e:
    raise error(f"{name}: expected a numeric array of images, got {type(x).__name__} ({e})") \
        from None
  top = int(num_levels) - 1
  want = expected or expected_pixels(num_levels)
  if x.dtype == bool:
    x = x.astype(np.uint8)
  if x.dtype.kind not in ("iu" if integers_only else "iuf"):
    kind = "an integer" if integers_only else "a numeric"
    raise error(f"{name}: expected {kind} image array (uint8 pixels), got dtype {x.dtype}")
  if x.ndim == 3 and (image_shape is None or image_shape[-1] == 1):
    x = x[..., None]
  if image_shape is None:
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
      raise error(f"{name}: expected images [N, H, W] or [N, H, W, C] with C = 1 or 3, got "
                  f"shape {x.shape}")
  elif x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
    h, w, c = image_shape
    shapes = expected_batch(image_shape) + (f" or [N, {h}, {w}]" if c == 1 else "")
    raise error(f"{name}: expected images of shape {shapes}, got shape {list(x.shape)}")
  if not len(x):
    raise error(f"{name}: expected at least one image, the {what} is empty (shape {x.shape})")
  if x.dtype.kind == "f" and not np.isfinite(x).all():
    raise error(f"{name}: expected {want}, got {x.dtype} with {np.size(x) - np.isfinite(x).sum()} "
                "NaN / infinite values")
  lo, hi = x.min(), x.max()
  integral = x.dtype.kind != "f" or bool((x == np.round(x)).all())
  if integral and 0 <= lo and top < hi <= 255:
    raise error(f"{name}: expected {want}, got values up to {hi}")
  if lo < 0 or hi > top or not integral:
    hint = " (scale [0, 1] floats to 0..255)" if x.dtype.kind == "f" and hi <= 1 < top else ""
    raise error(f"{name}: expected {want}, got {x.dtype} values in [{lo}, {hi}]{hint}")
  return x.astype(np.uint8)


__all__ = ["expected_pixels", "expected_batch", "image_array"]
