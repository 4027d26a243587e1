"""experiments/layout_check.py: block means and the paired own-vs-other distance."""

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from experiments import layout_check  # noqa: E402


def test_block_mean_averages_each_block():
  x = np.arange(2 * 4 * 4 * 1, dtype=np.float64).reshape(2, 4, 4, 1)
  b = layout_check.block_mean(x, 2)
  assert b.shape == (2, 2, 2, 1)
  assert b[0, 0, 0, 0] == np.mean([0, 1, 4, 5]) and b[1, 1, 1, 0] == np.mean([26, 27, 30, 31])


def test_paired_difference_is_positive_when_decodes_keep_their_image():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (5, 8, 8, 3))
  keep = np.clip(x[:, None] + rng.integers(-10, 11, (5, 3, 8, 8, 3)), 0, 255)   # near their own
  diff = layout_check.paired(x, keep, 256)
  assert diff.shape == (5,) and np.all(diff > 0)
  shuffled = np.roll(keep, -1, axis=0)        # decodes of image i look like image i + 1, the "other"
  assert np.all(layout_check.paired(x, shuffled, 256) < 0)
