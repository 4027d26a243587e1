"""Does z carry the global layout? Decodes of a shipped model compared at a coarse scale.

Claim 5 of the paper, checked on a packaged zoo model (issue 14 item 6): for
``--num_images`` evenly spaced test images, encode each (posterior mean z),
draw ``--num_decodes`` images from p(x | z), and compare them with the
originals after averaging ``--block`` x ``--block`` pixel blocks (4x4 on
32x32 CIFAR-10 leaves an 8x8 image: the layout of colours and shapes, none
of the local texture a window decoder redraws). Distances are mean absolute
pixel differences in [0, 1] (:func:`experiments.metrics.decode_consistency`):

* ``own``: decode vs its own original; ``other``: decode vs another image's
  original (image ``i`` vs ``i + 1``), what an uninformative z would give;
* ``resample``: between two decodes of the same z.

If z keeps the layout, ``own < other`` at the coarse scale. The paired
per-image difference ``other - own`` is reported with its standard error and
the fraction of images where it is positive; the same numbers at full
resolution are printed beside them.

  VLAE_DATA_DIR=../shared/data python experiments/layout_check.py --model=cifar10
"""

from __future__ import annotations

import json
import math
import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import vlae_tf  # noqa: E402
from experiments.metrics import decode_consistency  # noqa: E402
from vlae_tf import config as vconfig  # noqa: E402
from vlae_tf import data as vdata  # noqa: E402
from vlae_tf import evaluation  # noqa: E402

flags.DEFINE_string("model", "cifar10", "Zoo model name (or a model folder path).")
flags.DEFINE_integer("num_images", 100, "Evenly spaced test images.")
flags.DEFINE_integer("num_decodes", 4, "Decodes of each image's z.")
flags.DEFINE_integer("block", 4, "Side of the pixel blocks averaged before comparing.")
flags.DEFINE_string("out", "", "Optional JSON file for the results.")
FLAGS = flags.FLAGS


def block_mean(x, block):
  """``[..., H, W, C]`` -> ``[..., H/block, W/block, C]`` means of block x block pixels."""
  *lead, h, w, c = x.shape
  x = x.reshape(*lead, h // block, block, w // block, block, c)
  return x.mean(axis=(-4, -2))


def paired(originals, decodes, num_levels):
  """Per-image ``other - own`` distances (decodes averaged), in [0, 1] pixel units."""
  x = np.asarray(originals, np.float64) / (num_levels - 1)
  d = np.asarray(decodes, np.float64) / (num_levels - 1)
  axes = tuple(range(1, d.ndim))
  own = np.abs(d - x[:, None]).mean(axis=axes)
  other = np.abs(d - np.roll(x, -1, axis=0)[:, None]).mean(axis=axes)
  return other - own


def check(model, x, num_decodes, block, num_levels):
  z = np.asarray(model.encode(x)["mean"])
  decodes = np.stack([model.decode(z, seed=s) for s in range(num_decodes)], axis=1)
  out = {}
  for scale, (xs, ds) in (("full", (x, decodes)),
                          (f"{block}x{block} blocks", (block_mean(x.astype(np.float64), block),
                                                       block_mean(decodes.astype(np.float64),
                                                                  block)))):
    r = decode_consistency(xs, ds, num_levels)
    diff = paired(xs, ds, num_levels)
    r.update({"other_minus_own": float(diff.mean()),
              "other_minus_own_stderr": float(diff.std(ddof=1) / math.sqrt(len(diff))),
              "fraction_own_closer": float((diff > 0).mean())})
    out[scale] = r
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  model = vlae_tf.zoo.load(FLAGS.model)
  cfg = vconfig.from_json(model.card["config"])
  x_all = vdata.load_split(cfg, vdata.eval_split_name(cfg, "test"))
  x = x_all[evaluation.iwae_subset(len(x_all), FLAGS.num_images)]
  h = x.shape[1]
  if h % FLAGS.block:
    raise app.UsageError(f"--block={FLAGS.block} must divide the image size {h}")
  res = check(model, x, FLAGS.num_decodes, FLAGS.block, 2 ** int(cfg.model.num_bits)
              if cfg.model.likelihood != "bernoulli" else 2)
  print(f"model {FLAGS.model}, {len(x)} evenly spaced test images, {FLAGS.num_decodes} decodes of "
        f"each posterior-mean z; mean |pixel difference| in [0, 1]")
  print("| scale | own | other | resample | other - own (paired) | own closer |")
  print("| --- | --- | --- | --- | --- | --- |")
  for scale, r in res.items():
    print(f"| {scale} | {r['own']:.4f} | {r['other']:.4f} | {r['resample']:.4f} | "
          f"{r['other_minus_own']:.4f} ± {r['other_minus_own_stderr']:.4f} | "
          f"{100 * r['fraction_own_closer']:.0f}% |")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump({"model": FLAGS.model, "num_images": len(x), "num_decodes": FLAGS.num_decodes,
                 "block": FLAGS.block, "results": res}, f, indent=1)


if __name__ == "__main__":
  app.run(main)
