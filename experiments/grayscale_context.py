"""Claim 5: what the decoder may see decides what z encodes (CIFAR-10).

Two VLAEs on CIFAR-10 with the same encoder, spatial latent, AF prior and
budget (zoo ``cifar10_grayscale`` and ``cifar10``; at the default run size both
scaled as ``zoo/cifar10_cpu.py`` scales ``cifar10``, window 4x2):

* ``grayscale``  the decoder reads only the grayscale 0.299 R + 0.587 G +
                 0.114 B of the A x B window of earlier pixels: colour has to
                 come through z, so decodes of one z share their colours while
                 the (grayscale) detail varies.
* ``window``     the decoder reads the full-colour A x B window: z carries the
                 global layout, local texture and colour are redrawn.

Reported: test bits/dim (IWAE and ELBO) of each, and for ``--num_images`` test
images ``--num_decodes`` decodes of one z (figures ``decodes_<model>.png``).
Decode statistics (:func:`colour_and_detail_spread`, pixels in [0, 1]):

* ``colour spread``  std over the decodes of one z of the block-averaged
  chroma ``x - gray(x)`` (blocks of max(2, H/8) pixels square): how much the colour
  layout changes between decodes;
* ``detail spread``  std over the decodes of the grayscale minus its block
  mean: how much the local detail changes.

Expected shape (computed): the grayscale decoder's colour-to-detail spread
ratio is lower than the window decoder's (its colours are held by z), and the
window decoder's decodes are closer to their own test image than to another
(z carries the layout; :func:`harness.decode_consistency`).

  VLAE_DATA_DIR=/path/to/data python experiments/grayscale_context.py --workdir=runs/exp/grayscale
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from experiments import harness  # noqa: E402
from vlae_tf.local_decoder import GRAY_WEIGHTS  # noqa: E402

NAME = "grayscale_context"
TITLE = "Grayscale-context vs window decoder: what z encodes (CIFAR-10)"
MODELS = (("grayscale", "cifar10_grayscale"), ("window", "cifar10"))
LABELS = {"grayscale": "grayscale context", "window": "full-colour window"}
BUDGETS = {"cpu": harness.Budget(steps=3000, eval_examples=500, iwae_samples=16,
                                 kl_examples=500, eval_batch_size=50)}
PAPER = {"source": "Chen et al., ICLR 2017: CIFAR-10 (Table 3: 2.95 bits/dim) and the "
                   "grayscale-decoder figures",
         "window_bits_per_dim": 2.95,
         "claim": "a grayscale-context decoder makes z encode colour (decodes share colours, "
                  "detail varies); with a small window z carries the global layout"}


def define_flags(fv=flags.FLAGS):
  harness.define_common_flags(fv)
  flags.DEFINE_integer("num_images", 6, "Test images for the decode figures.", flag_values=fv)
  flags.DEFINE_integer("num_decodes", 6, "Decodes of the same z per test image.", flag_values=fv)


def _block_mean(x, block):
  """Mean over non-overlapping ``block x block`` squares of ``[..., H, W, C]``, same shape."""
  *lead, h, w, c = x.shape
  hb, wb = h // block, w // block
  y = x[..., :hb * block, :wb * block, :].reshape(tuple(lead) + (hb, block, wb, block, c))
  return y.mean(axis=(-4, -2))


def colour_and_detail_spread(decodes):
  """``(colour_spread, detail_spread)`` of ``[N, M, H, W, 3]`` 0..255 decodes (module doc)."""
  d = np.asarray(decodes, np.float64) / 255.0
  if d.ndim != 5 or d.shape[-1] != 3 or d.shape[1] < 2:
    raise ValueError(f"need RGB decodes [N, M >= 2, H, W, 3], got {d.shape}")
  block = max(2, d.shape[2] // 8)
  gray = (d * np.asarray(GRAY_WEIGHTS)).sum(-1, keepdims=True)
  colour = _block_mean(d - gray, block)                                   # [N, M, h, w, 3]
  gray_blocks = _block_mean(gray, block)
  up = np.repeat(np.repeat(gray_blocks, block, axis=-3), block, axis=-2)
  hb, wb = up.shape[-3], up.shape[-2]
  detail = gray[..., :hb, :wb, :] - up
  return float(colour.std(axis=1).mean()), float(detail.std(axis=1).mean())


def run(workdir, size="cpu", num_images=6, num_decodes=6, **common):
  if num_images < 2 or num_decodes < 2:
    raise ValueError("--num_images and --num_decodes must be >= 2")
  exp = harness.Experiment(NAME, TITLE, workdir, size, BUDGETS, **common)
  tests, stats = {}, {}
  for key, zoo_name in MODELS:
    exp.train(key, exp.config(zoo_name))
    model, cfg, _ = exp.load(key)
    tests[key], _ = exp.test_metrics(key, model, cfg)
    zm = harness.servable(model, cfg, key)
    x = harness.test_images(cfg, num_images)
    z = zm.encode(x, seed=exp.seed)["z"]
    dec = zm.decode(np.repeat(z, num_decodes, axis=0), seed=exp.seed + 1)
    dec = dec.reshape((len(x), num_decodes) + zm.image_shape)
    colour, detail = colour_and_detail_spread(dec)
    stats[key] = dict(harness.decode_consistency(x, dec, zm.num_levels), colour_spread=colour,
                      detail_spread=detail, colour_to_detail=colour / max(detail, 1e-12))
    cap = (f"{LABELS[key]} decoder: test images (left) and {num_decodes} decodes of one z each. "
           f"Colour spread {colour:.4f}, detail spread {detail:.4f} (std over decodes of the "
           "block-mean chroma / of the grayscale high-pass).")
    harness.save_image_grid(exp.figure(f"decodes_{key}.png", cap),
                            np.concatenate([x[:, None], dec], 1), zm.num_levels, cap,
                            col_labels=["test"] + [str(i + 1) for i in range(num_decodes)])

  g, w = stats["grayscale"], stats["window"]
  exp.check("grayscale decodes share colours more than window decodes",
            g["colour_to_detail"] < w["colour_to_detail"],
            f"colour/detail spread ratio grayscale {g['colour_to_detail']:.3f} < window "
            f"{w['colour_to_detail']:.3f}")
  exp.check("window decoder: z carries the global layout", w["own"] < w["other"],
            f"decode distance to own image {w['own']:.4f} < to another image {w['other']:.4f}")
  columns = ["decoder", "zoo config", "steps", "test bits/dim (IWAE)", "ELBO bits/dim",
             "KL (nats)", "colour spread", "detail spread", "colour/detail",
             "dist. to own", "dist. to other", "paper bits/dim"]
  rows = [[LABELS[k], z, exp.models[k]["steps"], tests[k].get("bits_per_dim"),
           tests[k]["elbo_bits_per_dim"], tests[k]["kl_total"], stats[k]["colour_spread"],
           stats[k]["detail_spread"], stats[k]["colour_to_detail"], stats[k]["own"],
           stats[k]["other"], PAPER["window_bits_per_dim"] if k == "window" else None]
          for k, z in MODELS]
  k = tests["window"]["iwae_samples"]
  table = (f"Test set (IWAE k = {k or '— (skipped)'}); decode statistics over {num_images} test "
           f"images x {num_decodes} decodes:\n\n" + harness.markdown_table(columns, rows))
  return exp.finish({"decode_stats": stats}, table, paper=PAPER,
                    notes=["The paper's 2.95 bits/dim is its full-size 7x4-window model; the "
                           "default run size here is much smaller and trained far less."])


def options(fv=flags.FLAGS):
  return dict(harness.common_options(fv), num_images=fv.num_images, num_decodes=fv.num_decodes)


if __name__ == "__main__":
  define_flags()
  app.run(harness.make_main(run, options))
