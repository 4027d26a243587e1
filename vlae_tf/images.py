"""Image grids and PNG files: the one home of tiling a batch of images and writing it out.

Used by the ``vlae`` commands (:mod:`vlae_tf.cli_commands`), the training
summaries (:mod:`vlae_tf.training`) and the experiment figures
(``experiments/figures.py``). NumPy and PIL only, no TensorFlow.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from vlae_tf import atomic


def to_display(images, num_levels):
  """Data-scale pixels (``0 .. num_levels - 1``) -> uint8 0..255 for display."""
  x = np.asarray(images, np.float64)
  return np.clip(np.round(x * (255.0 / (num_levels - 1))), 0, 255).astype(np.uint8)


def image_grid(images, ncol=None, pad=2, pad_value=128, scale=1, border=True):
  """Tiles images into one ``[h, w, C]`` array of their dtype.

  Args:
    images: ``[N, H, W, C]`` (``ncol`` per row; default about square) or
      ``[rows, cols, H, W, C]`` (``cols`` per row).
    pad: pixels of ``pad_value`` between the images (and around them with
      ``border``); empty cells of the last row are ``pad_value`` too.
    scale: each pixel repeated ``scale`` x ``scale`` times.
  """
  x = np.asarray(images)
  if x.ndim == 5:
    ncol = x.shape[1]
    x = x.reshape((-1,) + x.shape[2:])
  if x.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C] or [rows, cols, H, W, C], got {x.shape}")
  n, h, w, c = x.shape
  if scale > 1:
    x = x.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = h * scale, w * scale
  ncol = int(ncol or int(np.ceil(np.sqrt(n))))
  nrow = int(np.ceil(n / ncol))
  edge = pad if border else 0
  grid = np.full((nrow * (h + pad) - pad + 2 * edge, ncol * (w + pad) - pad + 2 * edge, c),
                 pad_value, x.dtype)
  for k in range(n):
    i, j = divmod(k, ncol)
    top, left = edge + i * (h + pad), edge + j * (w + pad)
    grid[top:top + h, left:left + w] = x[k]
  return grid


def save_png(grid, path):
  """Writes uint8 ``[h, w, 1 or 3]`` as a PNG, atomically (a failure leaves the old file)."""
  grid = np.asarray(grid, np.uint8)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid,
                        mode="L" if grid.shape[-1] == 1 else "RGB")
  with atomic.open_for_writing(path, "wb") as f:
    img.save(f, format="PNG")
  return path


__all__ = ["to_display", "image_grid", "save_png"]
