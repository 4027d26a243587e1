"""Sampling speed: cached vs naive VLAE samplers, fast vs tfb AF-prior sampler, and tfd.PixelCNN.

Run (about 4-5 minutes on 2 busy CPU cores with the defaults)::

    python bench/sampling.py
    python bench/sampling.py --configs mnist --batch 64 --naive_pixels 64   # bigger
    python bench/sampling.py --skip_tfb_prior --skip_tfp                    # quick

What is measured, all in one process (random weights; speed does not depend on them):

1. For each zoo config (default ``mnist`` 28x28 binary, ``cifar10`` 32x32x3 RGB),
   ``sample_x_given_z`` for a batch: ``method="cached"`` on whole images, and
   ``method="naive"`` on the first ``--naive_pixels`` pixels only (every naive
   step is one full decoder pass over the image, so its time is linear in the
   number of pixels drawn); the naive whole-image time is EXTRAPOLATED as
   ``t(k pixels) * H W / k`` and printed as such. The first k pixels of both
   samplers are checked to be identical.
2. The AF prior: ``model.prior.bijector().forward`` (tfb MAF forward: D whole
   MADE passes per flow step) vs ``model.prior.sample_from_noise`` (incremental MADE),
   checked equal, with the share of a full ``sample()`` each would take.
3. ``tfd.PixelCNN.sample`` vs the VLAE's ``sample()`` (prior + conditioning +
   cached decoder) at a matched budget: the TFP network (``num_hierarchies=1``,
   so every layer runs at full resolution, ``num_resnet=1``, 10 logistics) gets
   ``num_filters`` chosen so its parameter count is closest to the VLAE
   decoder's; at full resolution a conv net does one multiply-add per kernel
   weight per pixel, so matched parameters = matched FLOPs per pixel per pass.
   Measured directly at ``--tfp_image_size`` (default 16x16x3, where TFP's
   sampler, ``H W + 1`` whole-network passes, finishes in tens of seconds), and
   at 32x32x3 EXTRAPOLATED for TFP from one timed network pass times
   ``H W + 1`` (printed as such; the VLAE side is measured).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_info import fmt_seconds, header, time_call  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import vlae_tf  # noqa: E402
from vlae_tf import sampling  # noqa: E402


def build(name, image_size=None):
  cfg = vlae_tf.zoo.get_config(name)
  if image_size:
    cfg.data.image_shape = (image_size, image_size, cfg.data.image_shape[-1])
  return vlae_tf.build_model(cfg)


def kernel_weights(weights):
  """Multiply-adds per pixel of a full-resolution conv/dense net: its kernel weights."""
  return int(sum(np.prod(w.shape) for w in weights if len(w.shape) >= 2))


def cached_macs(model):
  """Per-pixel multiply-adds of the cached sampler (masked-out taps skipped)."""
  total = 0
  for w in model.decoder.weights:
    if len(w.shape) == 4:       # masked conv kernel [kh, kw, cin, cout]
      kh, kw, cin, cout = w.shape
      mask = None
      for layer in [model.decoder.first] + [b.conv for b in model.decoder.blocks]:
        if layer is not None and layer.kernel is w:
          mask = layer.mask
      total += int(mask.sum()) * cin * cout
    elif len(w.shape) == 2:
      total += int(np.prod(w.shape))
  return total


def bench_config(name, args):
  model = build(name)
  h, w, c = model.image_shape
  b = args.batch
  print(f"\n-- config {name}: image {h}x{w}x{c}, {model.likelihood.name}, decoder context "
        f"{model.decoder.context}, decoder params {model.decoder.count_params():,}, batch {b}")
  print(f"   per-pixel multiply-adds: full decoder pass {kernel_weights(model.decoder.weights):,}, "
        f"cached step {cached_macs(model):,}")
  z = tf.random.stateless_normal([b, model.latent_size], [0, 1])
  noise = sampling.draw_noise(model, b, tf.constant([2, 3]))
  cached_fn = tf.function(lambda z, n: sampling.sample_x_given_z(model, z, n, method="cached"))
  naive_fn = tf.function(lambda z, n, k: sampling.naive_sample(
      model, model.conditioning_features(z), n, num_pixels=k))
  t0 = time.perf_counter()
  x_cached = cached_fn(z, noise).numpy()
  t_first = time.perf_counter() - t0
  t_cached = time_call(lambda: cached_fn(z, noise), repeats=args.repeats, warmup=0)
  k = min(args.naive_pixels, h * w)
  naive_fn(z, noise, tf.constant(1)).numpy()                       # trace + warm up
  t0 = time.perf_counter()
  x_naive = naive_fn(z, noise, tf.constant(k)).numpy()
  t_naive_k = time.perf_counter() - t0
  flat_n = x_naive.reshape(b, h * w, c)
  flat_c = x_cached.reshape(b, h * w, c)
  same = np.array_equal(flat_n[:, :k], flat_c[:, :k])
  t_naive = t_naive_k * h * w / k
  print(f"   cached: {fmt_seconds(t_cached)} for {b} images (best of {args.repeats}; first call "
        f"incl. tracing {fmt_seconds(t_first)}), {t_cached / (h * w) * 1e3:.3f} ms per pixel step")
  print(f"   naive:  {fmt_seconds(t_naive_k)} for the first {k} of {h * w} pixels -> "
        f"EXTRAPOLATED {fmt_seconds(t_naive)} for whole images "
        f"({k}-pixel measurement x {h * w}/{k})")
  print(f"   first {k} pixels identical (naive vs cached): {same}")
  print(f"   RESULT {name} cached vs naive: {t_naive / t_cached:.0f}x faster (naive extrapolated)")
  for bs in [int(v) for v in filter(None, args.batch_sweep.split(","))]:
    zs = tf.random.stateless_normal([bs, model.latent_size], [0, 1])
    ns = sampling.draw_noise(model, bs, tf.constant([2, 3]))
    t = time_call(lambda: cached_fn(zs, ns), repeats=args.repeats)
    print(f"   cached at batch {bs}: {fmt_seconds(t)} = {t / bs * 1e3:.1f} ms per image")
  result = {"cached": t_cached, "naive": t_naive, "same": same}

  eps = tf.random.stateless_normal([args.prior_batch, model.latent_size], [4, 5])
  fast_fn = tf.function(lambda e: model.prior.sample_from_noise(e))
  t_fast = time_call(lambda: fast_fn(eps), repeats=args.repeats, warmup=1)
  line = (f"   AF prior (D={model.latent_size}, {model.prior.num_steps} MAF steps, hidden "
          f"{model.prior.hidden_units}), batch {args.prior_batch}: fast {fmt_seconds(t_fast)}")
  if not args.skip_tfb_prior:
    tfb_fn = tf.function(lambda e: model.prior.bijector().forward(e))
    tfb_fn.get_concrete_function(eps)
    t0 = time.perf_counter()
    z_tfb = tfb_fn(eps).numpy()
    t_tfb = time.perf_counter() - t0
    err = np.abs(z_tfb - fast_fn(eps).numpy()).max()
    line += (f", tfb MAF forward {fmt_seconds(t_tfb)} (1 run) -> {t_tfb / t_fast:.0f}x; "
             f"max |difference| {err:.1e}")
    result["prior_tfb"] = t_tfb
  print(line)
  sample_fn = tf.function(lambda s: sampling.sample(model, b, s))
  t_sample = time_call(lambda: sample_fn(tf.constant([1, 2], tf.int64)), repeats=args.repeats)
  t_prior_b = time_call(lambda: fast_fn(z), repeats=args.repeats)
  print(f"   sample() of {b} images: {fmt_seconds(t_sample)}; fast prior for {b} latents "
        f"{fmt_seconds(t_prior_b)} = {100 * t_prior_b / t_sample:.0f}% of it")
  if "prior_tfb" in result:
    print(f"   the tfb prior sampler for only {args.prior_batch} latents takes "
          f"{result['prior_tfb'] / t_sample:.1f}x the whole fast sample() of {b} images")
  return result


def tfp_pixelcnn(image_size, filters):
  return tfp.distributions.PixelCNN(
      image_shape=(image_size, image_size, 3), num_resnet=1, num_hierarchies=1,
      num_filters=filters, num_logistic_mix=10, receptive_field_dims=(3, 3), dropout_p=0.0,
      use_weight_norm=False)


def matched_pixelcnn(image_size, target_params):
  """The num_filters whose tfd.PixelCNN parameter count is closest to ``target_params``."""
  def count(f):
    d = tfp_pixelcnn(image_size, f)
    d.log_prob(tf.zeros([1, image_size, image_size, 3]))
    return d, d.network.count_params()
  _, p32 = count(32)
  guess = max(4, int(round(32 * math.sqrt(target_params / p32))))
  best = min(((f,) + count(f) for f in (guess - 1, guess, guess + 1)),
             key=lambda fdp: abs(fdp[2] - target_params))
  return best[0], best[1]


def bench_tfp(args):
  s, b = args.tfp_image_size, args.tfp_batch
  model = build("cifar10", s)
  dec = model.decoder.count_params()
  filters, dist = matched_pixelcnn(s, dec)
  net = dist.network
  print(f"\n-- tfd.PixelCNN vs VLAE cifar10 sampler, {s}x{s}x3, batch {b}")
  print(f"   budget match: VLAE decoder {dec:,} params ({kernel_weights(model.decoder.weights):,} "
        f"kernel weights = multiply-adds/pixel/pass); tfd.PixelCNN(num_filters="
        f"{filters}, num_resnet=1, num_hierarchies=1) {net.count_params():,} "
        f"params ({kernel_weights(net.weights):,} kernel weights)")
  sample_fn = tf.function(lambda seed: sampling.sample(model, b, seed))
  t_vlae = time_call(lambda: sample_fn(tf.constant([1, 2], tf.int64)), repeats=args.repeats)
  tfp_fn = tf.function(lambda: dist.sample(b, seed=1))
  tfp_fn.get_concrete_function()
  t0 = time.perf_counter()
  tfp_fn().numpy()
  t_tfp = time.perf_counter() - t0
  print(f"   VLAE sample() (prior + conditioning + cached decoder): {fmt_seconds(t_vlae)}; "
        f"tfd.PixelCNN.sample: {fmt_seconds(t_tfp)} (1 run, measured)")
  print(f"   RESULT tfd.PixelCNN vs VLAE cached at {s}x{s}x3: {t_tfp / t_vlae:.0f}x faster "
        "(measured)")
  if args.skip_tfp32:
    return
  big = 32
  model32 = build("cifar10", big)
  dist32 = tfp_pixelcnn(big, filters)
  x = tf.random.uniform([b, big, big, 3], 0, 255)
  net_fn = tf.function(lambda x: dist32.network(x))
  t_pass = time_call(lambda: net_fn(x), repeats=args.repeats)
  t_tfp32 = t_pass * (big * big + 1)
  sample32 = tf.function(lambda seed: sampling.sample(model32, b, seed))
  t_vlae32 = time_call(lambda: sample32(tf.constant([1, 2], tf.int64)), repeats=args.repeats)
  print(f"   32x32x3: one tfd.PixelCNN network pass {fmt_seconds(t_pass)} -> sample EXTRAPOLATED "
        f"{fmt_seconds(t_tfp32)} (x {big * big + 1} passes, sampling ops not counted); "
        f"VLAE sample() measured {fmt_seconds(t_vlae32)}")
  print(f"   RESULT tfd.PixelCNN vs VLAE cached at 32x32x3: {t_tfp32 / t_vlae32:.0f}x faster "
        "(TFP extrapolated)")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--configs", default="mnist,cifar10", help="'' to run only the TFP part")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--naive_pixels", type=int, default=8,
                 help="pixels the naive sampler draws (whole-image time extrapolated)")
  p.add_argument("--batch_sweep", default="", help="e.g. 4,64: also time cached at these batches")
  p.add_argument("--prior_batch", type=int, default=4)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--skip_tfb_prior", action="store_true",
                 help="skip the slow tfb MAF sampler (about 1 min for cifar10)")
  p.add_argument("--skip_tfp", action="store_true")
  p.add_argument("--skip_tfp32", action="store_true")
  p.add_argument("--tfp_image_size", type=int, default=16)
  p.add_argument("--tfp_batch", type=int, default=16)
  args = p.parse_args(argv)
  print(header("VLAE sampling benchmark"))
  for name in filter(None, args.configs.split(",")):
    bench_config(name, args)
  if not args.skip_tfp:
    bench_tfp(args)


if __name__ == "__main__":
  main()
