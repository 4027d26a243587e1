"""Codec speed: lossless encode / decode vs the cached sampler, same images, same batch.

Run (a few minutes on 2 busy CPU cores)::

    python bench/codec_speed.py                        # mnist and cifar10 zoo models, 8 images each
    python bench/codec_speed.py --models mnist --num 8
    VLAE_DATA_DIR=/work/shared/data python bench/codec_speed.py --throughput mnist:1000 cifar10:100

Decoding a lossless file does the pixel-by-pixel work of sampling (one decoder
step per pixel, sub-pixels in order) plus the entropy coder, so its yardstick is
the cached sampler (:func:`vlae_tf.sampling.sample_x_given_z`, ``method="cached"``)
drawing the same number of images in one batch. All of it runs in one process in
the codec's canonical numeric mode (:mod:`vlae_tf.codec.numeric_mode`; the script re-runs
itself in it), so the sampler gets the same kernels and the same single thread as
the codec. Per model, with ``N = --num`` of the zoo model's bundled test images:

* ``sampler``: ``sample_x_given_z`` on the images' posterior means, batch N, in a
  ``tf.function``: the first call (tracing included) and the best of 3 warm calls;
* ``encode`` / ``decode``: :func:`vlae_tf.codec.encode` (``group_size=N``) and
  :func:`vlae_tf.codec.decompress` of its file, each timed on its first call (what
  ``vlae compress`` / ``vlae decompress`` pay: tracing included) and on a second call;
* the ratios ``encode / sampler`` and ``decode / sampler`` (warm calls of both;
  the goal is at most 2), and the decoded images are checked to be the inputs;
* ``sampler_groups``: the sampler run once per group of the file, at the group's
  size, one after another (best of 3): what the pixel walks alone would cost if
  the codec's walk were the sampler's. Bits-back codes a group only once the
  groups before it are coded (the sender pops a group's latents from the bits
  the groups before it pushed; the receiver needs a group's pixels before it can
  put those bits back), and its first groups are small (module doc of
  :mod:`vlae_tf.codec.chain`), so ``sampler_groups / sampler`` bounds the ratios
  from below for a codec that walks each group once.

``--throughput NAME:N ...`` measures instead what the README's compression table
states: lossless compress and decompress images/s on ``N`` evenly spaced test
images of the model's dataset at the default coding parameters (groups of up to
64), after one warm-up call on two images (tracing), and checks the round trip.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from vlae_tf.codec import numeric_mode

if __name__ == "__main__" and not numeric_mode.startable():
  sys.exit(numeric_mode.main([os.path.abspath(__file__), *sys.argv[1:]]))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_info import header  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ml_collections import ConfigDict  # noqa: E402

from vlae_tf import codec, data, evaluation, sampling  # noqa: E402
from vlae_tf.pretrained import keras_weights, store  # noqa: E402


def _timed(fn):
  t = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t


def bench(name, num):
  model = keras_weights.load_keras(name)
  x = np.load(os.path.join(store.model_dir(name), "examples.npz"))["x"][:num]
  mu, _, _ = model.encode(tf.constant(x, tf.float32))
  draw = tf.function(lambda z: sampling.sample_x_given_z(model, z, seed=tf.constant([0, 1])),
                     autograph=False)
  _, sampler_first = _timed(lambda: draw(mu).numpy())
  sampler = min(_timed(lambda: draw(mu).numpy())[1] for _ in range(3))
  (blob, st), enc_first = _timed(lambda: codec.encode(model, x, group_size=len(x)))
  groups = codec.read_header(blob)["groups"]
  starts = np.cumsum([0] + groups[:-1])
  walks = lambda: [draw(mu[s:s + n]).numpy() for s, n in zip(starts, groups)]
  walks()
  sampler_groups = min(_timed(walks)[1] for _ in range(3))
  _, enc = _timed(lambda: codec.encode(model, x, group_size=len(x)))
  y, dec_first = _timed(lambda: codec.decompress(model, blob))
  _, dec = _timed(lambda: codec.decompress(model, blob))
  assert np.array_equal(y, x), "the codec did not give the images back"
  return {"model": name, "images": len(x), "image_shape": list(x.shape[1:]),
          "groups": groups, "bits_per_dim": st["bits_per_dim"],
          "initial_bits": st["initial_bits"], "payload_bits": st["payload_bits"],
          "sampler_first_s": sampler_first, "sampler_s": sampler,
          "sampler_groups_s": sampler_groups, "groups_over_sampler": sampler_groups / sampler,
          "encode_first_s": enc_first, "encode_s": enc, "decode_first_s": dec_first,
          "decode_s": dec, "encode_over_sampler": enc / sampler,
          "decode_over_sampler": dec / sampler}


def throughput(name, num):
  model = keras_weights.load_keras(name)
  cfg = ConfigDict(model.vlae_config)
  full = data.load_split(cfg, data.eval_split_name(cfg, "test"))
  x = full[evaluation.iwae_subset(len(full), num)]
  codec.decompress(model, codec.compress(model, x[:2]))                 # tracing
  (blob, st), enc = _timed(lambda: codec.encode(model, x))
  y, dec = _timed(lambda: codec.decompress(model, blob))
  assert np.array_equal(y, x), "the codec did not give the images back"
  return {"model": name, "images": len(x), "groups": len(codec.read_header(blob)["groups"]),
          "bits_per_dim": st["bits_per_dim"], "with_initial": st["bits_per_dim_with_initial"],
          "compress_images_per_s": len(x) / enc, "decompress_images_per_s": len(x) / dec}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--models", nargs="+", default=["mnist", "cifar10"])
  p.add_argument("--num", type=int, default=8, help="images (the zoo folder bundles 8)")
  p.add_argument("--json", default=None, help="also write the results here")
  p.add_argument("--throughput", nargs="+", default=None, metavar="NAME:N",
                 help="instead: compress / decompress images/s on N evenly spaced test images")
  args = p.parse_args()
  numeric_mode.configure_threads()
  print(header("codec speed (bench/codec_speed.py)"))
  print(f"numeric mode: {json.dumps(numeric_mode.process_mode())}")
  rows = []
  for spec in args.throughput or []:
    name, num = spec.split(":")
    rows.append(throughput(name, int(num)))
    print(json.dumps(rows[-1]), flush=True)
  if args.throughput:
    args.models = []
  for name in args.models:
    r = bench(name, args.num)
    rows.append(r)
    print(f"{name}: {r['images']} images {r['image_shape']}, groups {r['groups']}, "
          f"{r['bits_per_dim']:.4f} bits/dim ({r['initial_bits']} initial bits) | sampler "
          f"{r['sampler_s']:.2f} s (first call {r['sampler_first_s']:.2f} s; at the groups' "
          f"sizes {r['sampler_groups_s']:.2f} s, {r['groups_over_sampler']:.2f}x) | encode "
          f"{r['encode_s']:.2f} s "
          f"(first {r['encode_first_s']:.2f} s) | decode {r['decode_s']:.2f} s "
          f"(first {r['decode_first_s']:.2f} s) | encode/sampler {r['encode_over_sampler']:.2f}, "
          f"decode/sampler {r['decode_over_sampler']:.2f}", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
