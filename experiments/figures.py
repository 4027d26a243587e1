"""Figures of the claim experiments: PNG plots and image grids with captions (matplotlib, Agg)."""

from __future__ import annotations

import textwrap

import numpy as np

from vlae_tf.images import image_grid


def pyplot():
  """matplotlib.pyplot with the file-only Agg backend (``pip install -e '.[plots]'``)."""
  try:
    import matplotlib
  except ImportError as e:
    raise ImportError("the experiment figures need matplotlib: pip install -e '.[plots]'") from e
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig, path, caption):
  """Adds a wrapped caption under ``fig`` and writes it to ``path`` (PNG)."""
  width = max(40, int(fig.get_figwidth() * 15))                  # characters at 7 pt
  fig.text(0.5, -0.01, textwrap.fill(caption, width), ha="center", va="top", fontsize=7)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  pyplot().close(fig)
  return path


def save_image_grid(path, images, num_levels, caption, row_labels=None, col_labels=None):
  """Saves ``[rows, cols, H, W, C]`` data-scale images as one grid PNG with a caption."""
  plt = pyplot()
  images = np.asarray(images, np.float32) / float(num_levels - 1)
  rows, cols, h, w, c = images.shape
  pad = max(1, h // 14)
  grid = image_grid(images, pad=pad, pad_value=1.0, border=False)
  scale = 0.45 if h <= 16 else 0.6
  fig, ax = plt.subplots(figsize=(max(3.0, cols * scale + 1.2), rows * scale + 0.9))
  ax.imshow(grid[..., 0] if c == 1 else grid, cmap="gray" if c == 1 else None, vmin=0.0,
            vmax=1.0, interpolation="nearest")
  ax.set_xticks([j * (w + pad) + w / 2 for j in range(cols)] if col_labels else [])
  ax.set_yticks([i * (h + pad) + h / 2 for i in range(rows)] if row_labels else [])
  if col_labels:
    ax.set_xticklabels(col_labels, fontsize=7)
    ax.xaxis.tick_top()
  if row_labels:
    ax.set_yticklabels(row_labels, fontsize=7)
  for s in ax.spines.values():
    s.set_visible(False)
  ax.tick_params(length=0)
  return save_figure(fig, path, caption)
