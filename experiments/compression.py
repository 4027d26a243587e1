"""Compression with the zoo models next to the formats people use, on the same test images.

Run (VLAE_DATA_DIR must point at the data, here /work/shared/data)::

    python -m experiments.compression                                   # mnist, omniglot, cifar10
    python -m experiments.compression --datasets mnist --num 200        # quicker

For each zoo model (``vlae_tf.zoo.load_keras``) on an evenly spaced subset of
its test split (``--num`` binary images, ``--cifar_num`` CIFAR-10 images; ``0``
= the whole split):

* **lossless**: VLAE bits-back (:mod:`vlae_tf.codec`) bits/dim without and with
  the initial bits, and for the whole file; the model's -ELBO/dim on the same
  images (one posterior sample each, fixed seed); the overhead of each over it;
  compress and decompress images/s. Decompression runs in a **fresh process**
  (a child Python with one TF thread that loads the model and calls
  ``vlae_tf.codec.decompress``), and its output is compared with the
  originals pixel for pixel. Next to it: PNG (Pillow, ``optimize=True``, 1-bit
  PNGs for binary images), WebP lossless (Pillow, ``method=6``), each per
  image; gzip / bz2 / lzma (maximum levels) of the whole subset's packed raw
  pixels (1 bit per binary pixel, 8 per sub-pixel otherwise).
* **lossy**: the z-only code at several latent bin widths: bits/image and
  distortion (binary: fraction of pixels that differ; CIFAR-10: PSNR in dB);
  bits/image counts the ANS payload (the file's header, a few hundred bytes,
  is in ``file_bits_per_image``: it amortizes over the images of a file),
  next to JPEG and WebP (Pillow) at a sweep of qualities (binary images:
  decoded and thresholded at 128); and a PNG of originals vs the lossy decodes
  in ``docs/figures/compression_lossy_<model>.png``.

Numbers go to stdout and ``--out`` (JSON). Times are wall clock on a shared
machine: noisy. The codec codes only in its canonical numeric mode
(:mod:`vlae_tf.codec.numeric_mode`), so the script re-runs itself in a process started in it.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import math
import os
import subprocess
import sys
import tempfile
import time

from ml_collections import ConfigDict
import numpy as np
from PIL import Image

from vlae_tf.codec import numeric_mode  # noqa: E402  (before TensorFlow: it decides the process)

if __name__ == "__main__" and not numeric_mode.startable():
  sys.exit(numeric_mode.main(["-m", "experiments.compression", *sys.argv[1:]]))

from bench.machine_info import header  # noqa: E402

import vlae_tf  # noqa: E402
from vlae_tf import codec, data, evaluation  # noqa: E402
from vlae_tf.images import image_grid, save_png, to_display  # noqa: E402

_CHILD = """
import json, sys, time
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)   # another thread count than the parent
tf.config.threading.set_inter_op_parallelism_threads(1)
import numpy as np
import vlae_tf
from vlae_tf import codec
model = vlae_tf.zoo.load_keras(sys.argv[1], sys.argv[4] or None)   # argv[4]: --zoo_dir
blob = open(sys.argv[2], "rb").read()
t = time.perf_counter()
x = codec.decompress(model, blob)
seconds = time.perf_counter() - t
np.savez(sys.argv[3], x=x)
print(json.dumps({"seconds": seconds}))
"""


def subset(x, num):
  """``num`` evenly spaced images of ``x`` (0: all), as every evaluation here picks them."""
  return x[evaluation.iwae_subset(len(x), num)]


def _pil(img, binary):
  if binary:
    return Image.fromarray((img[..., 0] * 255).astype(np.uint8)).convert("1")
  return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def png_bytes(x, binary):
  out = 0
  for img in x:
    buf = io.BytesIO()
    _pil(img, binary).save(buf, format="PNG", optimize=True)
    out += buf.tell()
  return out


def webp_lossless_bytes(x, binary):
  out = 0
  for img in x:
    buf = io.BytesIO()
    im = _pil(img, binary).convert("L" if img.shape[-1] == 1 else "RGB")
    im.save(buf, format="WEBP", lossless=True, quality=100, method=6)
    out += buf.tell()
  return out


def raw_bytes(x, binary):
  return np.packbits(x.reshape(-1)).tobytes() if binary else x.tobytes()


def lossy_baseline(x, binary, fmt, quality):
  """``(bits per image, decoded images)`` of JPEG / WebP at ``quality``."""
  total, dec = 0, []
  for img in x:
    buf = io.BytesIO()
    im = Image.fromarray((img[..., 0] * 255).astype(np.uint8) if binary else
                         (img[..., 0] if img.shape[-1] == 1 else img))
    im.save(buf, format=fmt, quality=quality)
    total += buf.tell()
    buf.seek(0)
    d = np.asarray(Image.open(buf).convert("L" if img.shape[-1] == 1 else "RGB"))
    d = d.reshape(img.shape)
    dec.append((d >= 128).astype(np.uint8) if binary else d)
  return 8 * total / len(x), np.stack(dec)


def distortion(x, y, binary):
  if binary:
    return {"pixel_error": float(np.mean(x != y))}
  mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
  return {"psnr_db": float(10 * math.log10(255.0 ** 2 / max(mse, 1e-12)))}


def run(name, args):
  model = vlae_tf.zoo.load_keras(name, args.zoo_dir)
  cfg = ConfigDict(model.vlae_config)
  split = data.eval_split_name(cfg, "test")
  full = data.load_split(cfg, split)
  num = args.cifar_num if model.image_shape[-1] == 3 else args.num
  x = subset(full, num)
  binary = model.num_levels == 2
  dims = x[0].size
  n = len(x)
  res = {"model": name, "split": split, "split_size": len(full), "num_images": n,
         "subset": "all" if n == len(full) else f"{n} evenly spaced", "dims": dims}
  print(f"\n== {name}: {res['subset']} images of the {split} split ({len(full)}), {dims} dims")
  res["neg_elbo_bits_per_dim"] = codec.negative_elbo_bits_per_dim(model, x)
  if not args.lossy_only:
    lossless(name, model, x, binary, res, args)
  lossy(name, model, x, binary, res, args)
  return res


def lossless(name, model, x, binary, res, args):
  n, dims = len(x), x[0].size
  t = time.perf_counter()
  blob, st = codec.encode(model, x, group_size=args.group_size)
  t_enc = time.perf_counter() - t
  res["lossless"] = dict(st, compress_images_per_s=n / t_enc)
  with tempfile.TemporaryDirectory() as tmp:
    path, back = os.path.join(tmp, "x.vlae"), os.path.join(tmp, "back.npz")
    with open(path, "wb") as f:
      f.write(blob)
    child = subprocess.run([sys.executable, "-c", _CHILD, name, path, back, args.zoo_dir or ""],
                           capture_output=True, text=True, check=False)
    if child.returncode != 0:
      raise RuntimeError(f"fresh-process decompress failed: {child.stderr.strip()[-2000:]}")
    t_dec = json.loads(child.stdout.strip().splitlines()[-1])["seconds"]
    y = np.load(back)["x"]
  res["lossless"]["decompress_images_per_s"] = n / t_dec
  res["lossless"]["exact_in_fresh_process"] = bool(np.array_equal(x, y))
  elbo = res["neg_elbo_bits_per_dim"]
  for k in ("bits_per_dim", "bits_per_dim_with_initial", "file_bits_per_dim"):
    res["lossless"][k.replace("bits_per_dim", "overhead_pct")] = 100 * (st[k] / elbo - 1)
  raw = raw_bytes(x, binary)
  res["baselines"] = {
      "png": 8 * png_bytes(x, binary) / (n * dims),
      "webp_lossless": 8 * webp_lossless_bytes(x, binary) / (n * dims),
      "gzip": 8 * len(gzip.compress(raw, 9)) / (n * dims),
      "bz2": 8 * len(bz2.compress(raw, 9)) / (n * dims),
      "lzma": 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)) / (n * dims),
  }
  ll = res["lossless"]
  print(f"VLAE lossless {ll['bits_per_dim']:.4f} bits/dim ({ll['bits_per_dim_with_initial']:.4f} "
        f"with {ll['initial_bits']} initial bits, {ll['file_bits_per_dim']:.4f} whole file); "
        f"-ELBO {elbo:.4f}; exact in a fresh process: {ll['exact_in_fresh_process']}; "
        f"{ll['compress_images_per_s']:.2f} / {ll['decompress_images_per_s']:.2f} images/s")
  print("baselines (bits/dim): " + ", ".join(f"{k} {v:.4f}" for k, v in res["baselines"].items()))


def lossy(name, model, x, binary, res, args):
  lx = subset(x, args.lossy_num)           # evenly spaced again: test sets sorted by class
  res["lossy"], decodes = [], []
  rules = args.lossy_decodes or (["mode", "sample"] if binary else ["mean", "sample"])
  for rule in rules:
    for b in args.lossy_bins:
      blob, st = codec.encode(model, lx, lossy=True, bin_width_log2=b, lossy_decode=rule,
                              group_size=args.group_size)
      y = codec.decompress(model, blob)
      row = {"decode": rule, "bin_width_log2": b, "bits_per_image": st["bits_per_image"],
             "file_bits_per_image": 8 * len(blob) / len(lx), **distortion(lx, y, binary)}
      res["lossy"].append(row)
      decodes.append(y)
      print(f"VLAE lossy ({rule}), latent bins 2^{-b}: {row}")
  res["lossy_baselines"] = []
  for fmt in ("JPEG", "WEBP"):
    for q in args.qualities:
      bits, y = lossy_baseline(lx, binary, fmt, q)
      row = {"format": fmt, "quality": q, "bits_per_image": bits, **distortion(lx, y, binary)}
      res["lossy_baselines"].append(row)
      print(f"{fmt} q={q}: {row}")
  res["lossy_num_images"] = len(lx)
  if args.figures:
    show = evaluation.iwae_subset(len(lx), 8)
    rows = [lx[show]] + [d[show] for d in decodes]
    grid = image_grid(to_display(np.concatenate(rows), model.num_levels), ncol=min(8, len(lx)),
                      scale=3)
    fig = os.path.join(args.figures, f"compression_lossy_{name}.png")
    save_png(grid, fig)
    res["figure"] = fig
    print(f"figure: {fig} (top row originals, then one row per decode rule "
          f"({', '.join(rules)}) and bin width "
          f"({', '.join(f'2^{-b}' for b in args.lossy_bins)}))")


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--datasets", default="mnist,omniglot,cifar10", help="zoo model names")
  p.add_argument("--num", type=int, default=1000, help="binary test images (0 = all)")
  p.add_argument("--cifar_num", type=int, default=100, help="RGB test images (0 = all)")
  p.add_argument("--lossy_num", type=int, default=100, help="images for the lossy tables (evenly spaced in the subset)")
  p.add_argument("--lossy_bins", default="-2,0,2", help="lossy latent bin widths 2^-B")
  p.add_argument("--lossy_decodes", default="auto", help="lossy decode rules, e.g. mode,sample "
                 "(auto: mode,sample for binary images, mean,sample for RGB)")
  p.add_argument("--lossy_only", action="store_true", help="skip the lossless part")
  p.add_argument("--qualities", default="5,20,50,90", help="JPEG / WebP qualities")
  p.add_argument("--group_size", type=int, default=codec.DEFAULT_GROUP_SIZE)
  p.add_argument("--zoo_dir", default=None)
  p.add_argument("--figures", default="docs/figures", help="folder for the lossy PNGs ('' = none)")
  p.add_argument("--out", default=None, help="write all numbers as JSON here")
  args = p.parse_args()
  args.lossy_bins = [int(b) for b in args.lossy_bins.split(",")]
  args.lossy_decodes = None if args.lossy_decodes == "auto" else args.lossy_decodes.split(",")
  args.qualities = [int(q) for q in args.qualities.split(",")]
  print(header("compression: VLAE bits-back / z-only codes vs PNG, WebP, gzip/bz2/lzma, JPEG"))
  results = []
  for name in [n for n in args.datasets.split(",") if n]:
    results.append(run(name, args))
    if args.out:                           # after each model: a crash keeps what was measured
      with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
  print("\n| model | images | VLAE bits/dim | with initial bits | whole file | -ELBO/dim | overhead "
        "| PNG | WebP lossless | gzip | bz2 | lzma | compress / decompress images/s | exact |")
  print("| --- " * 14 + "|")
  for r in results:
    if "lossless" not in r:
      continue
    ll, bl = r["lossless"], r["baselines"]
    print(f"| {r['model']} | {r['subset']} | {ll['bits_per_dim']:.4f} | "
          f"{ll['bits_per_dim_with_initial']:.4f} | {ll['file_bits_per_dim']:.4f} | "
          f"{r['neg_elbo_bits_per_dim']:.4f} | {ll['overhead_pct']:+.2f}% "
          f"({ll['overhead_pct_with_initial']:+.2f}% with initial) | {bl['png']:.4f} | "
          f"{bl['webp_lossless']:.4f} | {bl['gzip']:.4f} | {bl['bz2']:.4f} | {bl['lzma']:.4f} | "
          f"{ll['compress_images_per_s']:.2f} / {ll['decompress_images_per_s']:.2f} | "
          f"{ll['exact_in_fresh_process']} |")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
