"""``bench/compression.py`` runs its real lossless path on a tiny packaged model.

The bench decodes in a fresh child process, which loads the model again: from the
same zoo folder (``--zoo_dir``) as the parent, or the weights hash in the file will
not match. Measured here end to end (compress, a fresh-process decompress, the
baselines) on a tiny model exported to a temporary zoo.
"""

import argparse
import os
import sys

import vlae_tf
from helpers import NAME, binary_images
from vlae_tf import codec

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import compression  # noqa: E402


def test_lossless_bench_decodes_in_a_fresh_process_with_the_given_zoo(zoo):
  model = vlae_tf.zoo.load_keras(NAME, zoo.root)
  x = binary_images(5, seed=3)
  res = {"neg_elbo_bits_per_dim": codec.negative_elbo_bits_per_dim(model, x)}
  args = argparse.Namespace(zoo_dir=str(zoo.root), group_size=4)
  compression.lossless(NAME, model, x, True, res, args)
  ll = res["lossless"]
  assert ll["exact_in_fresh_process"]
  assert abs(ll["overhead_pct"]) < 5          # the tiny model's file size tracks its -ELBO
  assert set(res["baselines"]) == {"png", "webp_lossless", "gzip", "bz2", "lzma"}
