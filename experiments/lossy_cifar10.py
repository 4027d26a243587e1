"""The lossy (z-only) code of the ``cifar10`` zoo model: rate vs PSNR next to WebP and JPEG.

Run (VLAE_DATA_DIR must point at the data, here /work/shared/data)::

    python -m experiments.lossy_cifar10 --out bench/results/lossy_cifar10.json

On ``--num`` (100) evenly spaced CIFAR-10 test images, every code is measured
on the same images:

* the VLAE z-only code (:mod:`vlae_tf.codec`, ``lossy=True``,
  ``lossy_side=None``) with every decode rule at the default latent bins
  (2^-1); and the default code, z plus the side information the encoder
  chooses (``lossy_side="auto"``: the mean colour and a 3x3 gain on the
  ``expectation``'s detail, :mod:`vlae_tf.codec.side_info`), at bins 2^-1, 2^2,
  2^1 and 2^-3; compressed and decompressed through ``vlae_tf.codec`` in this process;
* other side information, computed with :mod:`vlae_tf.codec.side_info` on the
  same estimate ``e`` of ``E[x | z]`` the decoder computes (the 16 seeded
  draws of each group, as in the file; checked: for the default, these
  maths give the decoded file's images bit for bit): one gain ``alpha`` for
  all channels, 2x2 and 4x4 block means with the 3x3 gain; bits = the z-only
  payload + the side information's symbol widths
  (:func:`vlae_tf.codec.side_info.nominal_bits`);
* the side information without z (block means alone, bilinear, no gain:
  what those bits buy by themselves), and a control: the default side
  information fitted to the ``e`` of *another* image's z (the next image's),
  which says how much of the gain is this image's z and how much any
  CIFAR-like detail pattern would give;
* JPEG and WebP (Pillow) at their smallest files (JPEG quality 1, WebP
  quality 0 and 1) and a few higher qualities;
* filling each image with its own mean colour (24 bits: three 8-bit means)
  and with mid-grey 128 (0 bits), the floors a z-only decode should beat;
* a check that the binary ``mnist`` model's lossy code still works with the
  new default (which gives binary models no side information):
  ``--mnist_num`` (100) evenly spaced test digits, default bins,
  ``expectation`` vs the greedy ``mode``, fraction of pixels that differ.

Rate: bits per image (the VLAE payload, side information included;
``file_bits_per_image`` adds the file's header, ~1 KB shared by the N images)
and per dimension (3,072).
Distortion: PSNR in dB, the mean over images of each image's PSNR
(``psnr_db``), and the PSNR of the mean squared error over all images
(``psnr_of_mean_mse_db``).

``diagnosis`` measures why greedy decodes fail (the numbers in
:mod:`vlae_tf.codec.lossy`'s docstring), with z the posterior mean:
the per-sub-pixel mean given the *true* earlier pixels and z (one parallel
decoder pass), ``log p(x | z)`` of each image and of a flat grey image, the
cost of each image under another image's z, the spread of the mean colours of
the 16 draws the expectation averages, and the share of sub-pixels at 0 / 255.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time

from ml_collections import ConfigDict
import numpy as np
import tensorflow as tf

import vlae_tf
from bench.machine_info import header
from experiments.compression import lossy_baseline, subset
from vlae_tf import codec, data
from vlae_tf.codec import chain, file_format, lossy, side_info
from vlae_tf.codec.pixels import channel_models

DEFAULT_BINS = codec.DEFAULT_BIN_WIDTH_LOG2["lossy"]
# Files made in this process decode in it; a codec that codes only in its canonical numeric
# mode unless told (portable=False) is told so.
_HERE = ({"portable": False} if "portable" in inspect.signature(codec.encode).parameters
         else {})


def psnr(x, y):
  """``(mean over images of each image's PSNR, PSNR of the mean squared error)`` in dB."""
  mse = np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2, axis=(1, 2, 3))
  each = 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12))
  return float(np.mean(each)), float(10 * math.log10(255.0 ** 2 / max(np.mean(mse), 1e-12)))


def row(name, x, y, bits_per_image, **extra):
  each, pooled = psnr(x, y)
  dims = x[0].size
  return {"code": name, "bits_per_image": bits_per_image, "bits_per_dim": bits_per_image / dims,
          "psnr_db": each, "psnr_of_mean_mse_db": pooled,
          "share_at_0": float(np.mean(y == 0)), "share_at_255": float(np.mean(y == 255)), **extra}


DEFAULT_SIDE_NAME = "mean colour 6 bits + 3x3 gain"


def vlae_rows(model, x, bins_other):
  """The codec's own files: z only with each rule, and z + the default side information."""
  rows, decoded = [], {}
  runs = [(rule, DEFAULT_BINS, None) for rule in ("expectation", "mode", "mean", "sample")]
  runs += [("expectation", b, "auto") for b in [DEFAULT_BINS] + list(bins_other)]
  for rule, b, side in runs:
    t = time.perf_counter()
    blob, st = codec.encode(model, x, lossy=True, bin_width_log2=b, lossy_decode=rule,
                            lossy_side=side, **_HERE)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    y = codec.decompress(model, blob)
    t_dec = time.perf_counter() - t
    name = (f"VLAE z only, {rule}" if side is None else
            f"VLAE z + {DEFAULT_SIDE_NAME}, expectation (the default file)")
    r = row(f"{name}, latent bins 2^{-b}", x, y, st["bits_per_image"], decode=rule,
            bin_width_log2=b, lossy_side=codec.read_header(blob)["lossy_side"],
            side_bits_per_image=st["side_bits_per_image"],
            file_bits_per_image=8 * len(blob) / len(x), compress_s=t_enc, decompress_s=t_dec)
    rows.append(r)
    decoded[(rule, b, side)] = y
    print(json.dumps(r), flush=True)
  return rows, decoded


def receiver_estimate(model, x, b=DEFAULT_BINS, group_size=codec.DEFAULT_GROUP_SIZE, seed=0):
  """The decoder's ``e`` (mean of the 16 seeded draws of ``z(k)``) for a lossy file of ``x``
  with latent bins 2^-b: float64 ``[N, H, W, C]``, group by group as the file codes them."""
  cod = chain.Coder(model, group_size, b, codec.DEFAULT_LATENT_RANGE)
  rec = lossy.Reconstructor(model)
  groups = file_format.group_sizes(len(x), group_size)
  out, start = [], 0
  for j, n in enumerate(groups):
    z = cod.latent.z_of(chain.lossy_latents(cod, x[start:start + n]))[0]
    out.append(rec.mean(z, seed, len(groups) - 1 - j))
    start += n
  return np.concatenate(out)


SIDE_VARIANTS = [
    ("mean colour 8 bits, no gain", {"grid": 1, "mean_bits": 8, "gain": "none"}),
    ("mean colour 6 bits + one gain alpha (9 levels)",
     {"grid": 1, "mean_bits": 6, "gain": "alpha", "gain_step": 8, "gain_levels": 9}),
    (DEFAULT_SIDE_NAME, side_info.DEFAULT),         # checked against the file, not shown
    ("2x2 block means 5 bits + 3x3 gain",
     {"grid": 2, "mean_bits": 5, "gain": "matrix", "gain_step": 8, "gain_levels": 33}),
    ("4x4 block means 5 bits + 3x3 gain",
     {"grid": 4, "mean_bits": 5, "gain": "matrix", "gain_step": 8, "gain_levels": 33}),
]
THUMBNAILS = [(1, 6), (2, 5), (4, 5)]      # (grid, mean_bits) of the block means without z


def side_rows(model, x, z_bits, decoded):
  """Other side information on the decoder's own estimate (offline, the codec's maths), the
  block means without z, and the control with another image's z."""
  e = receiver_estimate(model, x)
  levels, rows = model.num_levels, []
  for name, side in SIDE_VARIANTS:
    y = side_info.reconstruct(side, e, *side_info.choose(side, x, e, levels), levels)
    if side == side_info.DEFAULT:     # the maths give what the decoder of the file gave
      np.testing.assert_array_equal(y, decoded[("expectation", DEFAULT_BINS, "auto")])
      continue
    bits = side_info.nominal_bits(side, x.shape[1:])
    rows.append(row(f"VLAE z + {name}, latent bins 2^{-DEFAULT_BINS} (side maths offline)", x,
                    y, z_bits + bits, lossy_side=side, side_bits_per_image=bits))
  for grid, mean_bits in THUMBNAILS:
    side = {"grid": grid, "mean_bits": mean_bits, "gain": "none"}
    y = side_info.reconstruct(side, e, *side_info.choose(side, x, e, levels), levels)
    bits = side_info.nominal_bits(side, x.shape[1:])
    rows.append(row(f"{grid}x{grid} block means {mean_bits} bits alone, bilinear (no z)", x, y,
                    bits, lossy_side=side))
  other = np.roll(e, -1, axis=0)             # image i gets the estimate of image i + 1's z
  side = side_info.DEFAULT
  y = side_info.reconstruct(side, other, *side_info.choose(side, x, other, levels), levels)
  rows.append(row(f"control: z + {DEFAULT_SIDE_NAME} fitted to the next image's z", x, y,
                  z_bits + side_info.nominal_bits(side, x.shape[1:]), lossy_side=side))
  for r in rows:
    print(json.dumps(r), flush=True)
  return rows


def baseline_rows(x, jpeg, webp):
  rows = []
  for fmt, qualities in (("JPEG", jpeg), ("WEBP", webp)):
    for q in qualities:
      bits, y = lossy_baseline(x, False, fmt, q)
      rows.append(row(f"{'WebP' if fmt == 'WEBP' else fmt} quality {q}", x, y, bits,
                      format=fmt, quality=q))
      print(json.dumps(rows[-1]), flush=True)
  colour = np.rint(x.astype(np.float64).mean(axis=(1, 2), keepdims=True))
  rows.append(row("each image's own mean colour", x, np.broadcast_to(colour, x.shape), 24.0))
  rows.append(row("mid-grey 128", x, np.full(x.shape, 128, np.uint8), 0.0))
  for r in rows[-2:]:
    print(json.dumps(r), flush=True)
  return rows


def true_context_means(model, x, z, batch=16):
  """Each sub-pixel's mean under p(x | z) given the *true* earlier pixels (teacher forced)."""
  levels = np.arange(model.num_levels, dtype=np.float64)
  out = np.zeros(x.shape, np.float64)
  for s in range(0, len(x), batch):
    xb = x[s:s + batch]
    raw = model.decoder_raw(tf.constant(xb, tf.float32), tf.constant(z[s:s + batch])).numpy()
    raw = raw.reshape(-1, raw.shape[-1])
    known = xb.reshape(-1, xb.shape[-1]).astype(np.int64)
    means = np.zeros(known.shape)

    def choose(c, kind, pmf, means=means, known=known):
      del kind
      means[:, c] = pmf @ levels / pmf.sum(-1)
      return known[:, c]

    channel_models(model.likelihood, raw, choose)
    out[s:s + batch] = means.reshape(xb.shape)
  return out


def bits_per_dim(model, x, z):
  lp = model.log_px_given_z(tf.constant(x, tf.float32), tf.constant(z)).numpy()
  return -lp / (x[0].size * math.log(2.0))


def diagnose(model, x, batch=16):
  mu = np.concatenate([model.encode(tf.constant(x[s:s + batch], tf.float32))[0].numpy()
                       for s in range(0, len(x), batch)])
  grey = np.full(x.shape, 128, np.uint8)
  own, flat = bits_per_dim(model, x, mu), bits_per_dim(model, grey, mu)
  other = bits_per_dim(model, x, np.roll(mu, 1, axis=0))
  rec = lossy.Reconstructor(model)
  spreads, draws_psnr = [], []
  for s in range(0, len(x), 64):
    d = rec.draws(mu[s:s + 64], 0, s // 64)                       # [S, B, H, W, C]
    colours = d.mean(axis=(2, 3, 4))                              # [S, B]
    spreads.append(colours.max(0) - colours.min(0))
    draws_psnr += [psnr(x[s:s + 64], di)[0] for di in d]
  out = {
      "z": "the posterior mean (not rounded to latent bins)",
      "true_context_mean_psnr_db": psnr(x, np.clip(np.rint(true_context_means(model, x, mu)),
                                                  0, 255))[0],
      "bits_per_dim_of_the_images_given_z": float(np.mean(own)),
      "bits_per_dim_of_a_flat_grey_image_given_z": float(np.mean(flat)),
      "extra_bits_per_image_under_another_images_z": float(np.mean(other - own) * x[0].size),
      "mean_colour_spread_of_the_draws": float(np.mean(np.concatenate(spreads))),
      "max_mean_colour_spread_of_the_draws": float(np.max(np.concatenate(spreads))),
      "single_draw_psnr_db": float(np.mean(draws_psnr)),
      "expectation_draws": rec.samples,
  }
  print(json.dumps(out), flush=True)
  return out


def mnist_rows(num, zoo_dir):
  model = vlae_tf.zoo.load_keras("mnist", zoo_dir)
  cfg = ConfigDict(model.vlae_config)
  x = subset(data.load_split(cfg, data.eval_split_name(cfg, "test")), num).astype(np.uint8)
  rows = []
  for rule in ("expectation", "mode"):
    blob, st = codec.encode(model, x, lossy=True, lossy_decode=rule, **_HERE)
    y = codec.decompress(model, blob)
    rows.append({"code": f"VLAE z only, {rule}, latent bins 2^{-DEFAULT_BINS}",
                 "lossy_side": codec.read_header(blob)["lossy_side"],
                 "num_images": len(x), "bits_per_image": st["bits_per_image"],
                 "file_bits_per_image": 8 * len(blob) / len(x),
                 "pixel_error": float(np.mean(x != y))})
    print(json.dumps(rows[-1]), flush=True)
  return rows


def markdown(res):
  lines = ["| code | bits/image | bits/dim | PSNR dB (mean over images) | PSNR of the mean MSE | "
           "sub-pixels at 0 / 255 |", "| --- " * 6 + "|"]
  for r in res["rows"]:
    bits = f"{r['bits_per_image']:.0f}"
    notes = [f"{r['side_bits_per_image']:.0f} of them side information"] if (
        r.get("side_bits_per_image") and "VLAE" in r["code"]) else []
    if "file_bits_per_image" in r:
      notes.append(f"{r['file_bits_per_image']:.0f} with the file header")
    bits += f" ({'; '.join(notes)})" if notes else ""
    lines.append(f"| {r['code']} | {bits} | {r['bits_per_dim']:.4f} | {r['psnr_db']:.2f} | "
                 f"{r['psnr_of_mean_mse_db']:.2f} | {100 * r['share_at_0']:.1f}% / "
                 f"{100 * r['share_at_255']:.1f}% |")
  return "\n".join(lines)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--num", type=int, default=100, help="evenly spaced CIFAR-10 test images")
  p.add_argument("--bins", default="-2,-1,3", help="other latent bin widths 2^-B for the default "
                 "decode")
  p.add_argument("--jpeg", default="1,10,50", help="JPEG qualities")
  p.add_argument("--webp", default="0,1,10,50", help="WebP qualities")
  p.add_argument("--mnist_num", type=int, default=100, help="mnist test digits (0: skip)")
  p.add_argument("--zoo_dir", default=None)
  p.add_argument("--no_diagnosis", action="store_true")
  p.add_argument("--out", default=None, help="write the numbers as JSON here")
  args = p.parse_args()
  ints = lambda text: [int(v) for v in text.split(",") if v]
  print(header("lossy cifar10: VLAE z-only code vs WebP / JPEG / mean colour"))
  model = vlae_tf.zoo.load_keras("cifar10", args.zoo_dir)
  cfg = ConfigDict(model.vlae_config)
  full = data.load_split(cfg, data.eval_split_name(cfg, "test"))
  x = subset(full, args.num).astype(np.uint8)
  res = {"model": "cifar10", "packaged": (getattr(model, "zoo_card", None) or {}).get("packaged"),
         "num_images": len(x), "subset": f"{len(x)} evenly spaced of the {len(full)} test images",
         "command": "python -m experiments.lossy_cifar10 " + " ".join(sys.argv[1:])}
  rows, decoded = vlae_rows(model, x, ints(args.bins))
  z_bits = rows[0]["bits_per_image"]                # the z-only payload at the default bins
  res["rows"] = (rows + side_rows(model, x, z_bits, decoded)
                 + baseline_rows(x, ints(args.jpeg), ints(args.webp)))
  if not args.no_diagnosis:
    res["diagnosis"] = diagnose(model, x)
  if args.mnist_num:
    res["mnist"] = mnist_rows(args.mnist_num, args.zoo_dir)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(res, f, indent=2)
  print()
  print(markdown(res))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
