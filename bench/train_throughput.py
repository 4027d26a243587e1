"""Training-step throughput of the zoo models vs this machine's conv peak, with and without XLA.

Run (about 3 minutes on 2 busy CPU cores with the defaults)::

    python bench/train_throughput.py
    python bench/train_throughput.py --configs cifar10 --steps 20 --batch 64   # bigger

For each config, a plain ``keras.optimizers.Adam`` step on
``model.training_loss`` over a fixed batch of random data (uniform {0,1} or
0..255 pixels; speed does not depend on the values), compiled with
``tf.function`` and with ``tf.function(jit_compile=True)`` (XLA), measured in
the same process: ``examples/s`` = batch / median step time.

The conv peak is a large ``tf.nn.conv2d`` (3x3, 128 -> 128 channels, 64x64,
batch 16 by default) timed in the same run: FLOP/s = 2 * multiply-adds / time.
The model's FLOPs per example are counted by TF's graph profiler on the
forward pass (``elbo_terms``: conv / matmul FLOPs, i.e. 2 per multiply-add) and
a training step is taken as 3x the forward pass (forward + two backward
products), the usual estimate; share of peak = examples/s * FLOPs/example /
peak.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_info import header, time_call  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vlae_tf  # noqa: E402


def conv_peak(batch=16, size=64, channels=128, repeats=5):
  """Measured FLOP/s of one big 3x3 same-padded conv."""
  x = tf.random.normal([batch, size, size, channels])
  k = tf.random.normal([3, 3, channels, channels])
  fn = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"))
  t = time_call(lambda: fn(x, k), repeats=repeats, warmup=2)
  flops = 2.0 * batch * size * size * 9 * channels * channels
  return flops / t, t


def forward_flops(model, x):
  """FLOPs (2 per multiply-add) of ``model.elbo_terms`` for ``x``, from TF's graph profiler."""
  from tensorflow.python.profiler import model_analyzer, option_builder
  concrete = tf.function(
      lambda x: model.elbo_terms(x, seed=tf.constant([0, 0]))).get_concrete_function(x)
  opts = option_builder.ProfileOptionBuilder.float_operation()
  opts["output"] = "none"
  info = model_analyzer.profile(concrete.graph, options=opts)
  return float(info.total_float_ops)


def random_batch(model, batch, rng):
  h, w, c = model.image_shape
  return tf.constant(rng.integers(0, model.num_levels, (batch, h, w, c)).astype(np.uint8))


def train_step_fn(model, jit):
  opt = keras.optimizers.Adam(1e-4)
  variables = model.trainable_variables
  opt.build(variables)

  @tf.function(jit_compile=jit)
  def step(x, seed):
    with tf.GradientTape() as tape:
      loss, _ = model.training_loss(x, step=1000, seed=seed)
    grads = tape.gradient(loss, variables)
    opt.apply_gradients(zip(grads, variables))
    return loss

  return step


def interleaved_median_steps(fns, x, steps):
  """Median step time of each fn, timing them alternately so machine-load drift hits all alike."""
  seed = tf.constant([1, 2])
  for fn in fns.values():
    fn(x, seed).numpy()                       # trace / compile
    fn(x, seed).numpy()
  times = {k: [] for k in fns}
  for _ in range(steps):
    for k, fn in fns.items():
      t0 = time.perf_counter()
      fn(x, seed).numpy()
      times[k].append(time.perf_counter() - t0)
  return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--configs", default="mnist,cifar10")
  p.add_argument("--batch", type=int, default=0, help="0: the config's train.batch_size")
  p.add_argument("--steps", type=int, default=5, help="timed steps per setting (median)")
  p.add_argument("--peak_batch", type=int, default=16)
  args = p.parse_args(argv)
  print(header("VLAE training-step throughput"))
  peak, t_peak = conv_peak(args.peak_batch)
  print(f"conv peak probe: 3x3 conv 128->128 on {args.peak_batch}x64x64: {t_peak * 1e3:.1f} ms "
        f"= {peak / 1e9:.1f} GFLOP/s")
  rng = np.random.default_rng(0)
  results = {}
  for name in args.configs.split(","):
    cfg = vlae_tf.zoo.get_config(name)
    batch = args.batch or int(cfg.train.batch_size)
    model = vlae_tf.build_model(cfg)
    x = random_batch(model, batch, rng)
    flops = forward_flops(model, x) / batch
    print(f"\n-- config {name}: batch {batch}, forward {flops / 1e9:.3f} GFLOP/example "
          f"(profiler), training ~{3 * flops / 1e9:.3f} GFLOP/example (3x forward)")
    fns = {}
    for jit in (False, True):
      fn = train_step_fn(model, jit)
      try:
        fn(x, tf.constant([1, 2])).numpy()
        fns[jit] = fn
      except Exception as e:  # XLA may be unavailable on some builds
        print(f"   jit_compile={jit}: FAILED {type(e).__name__}: {str(e)[:200]}")
    results[name] = (batch, flops, interleaved_median_steps(fns, x, args.steps))
  peak2, _ = conv_peak(args.peak_batch)
  best_peak = max(peak, peak2)
  print(f"\nconv peak probe again at the end: {peak2 / 1e9:.1f} GFLOP/s; shares below use the "
        f"higher of the two, {best_peak / 1e9:.1f} GFLOP/s (the spread shows the load noise)")
  for name, (batch, flops, times) in results.items():
    rates = {}
    for jit, t in times.items():
      rate = batch / t
      rates[jit] = rate
      print(f"   {name} jit_compile={jit!s:5}: {t * 1e3:8.1f} ms/step (median of {args.steps}, "
            f"interleaved), {rate:8.1f} examples/s, {100 * rate * 3 * flops / best_peak:.1f}% of "
            "the conv peak")
    if len(rates) == 2:
      best = max(rates, key=rates.get)
      print(f"   RESULT {name}: faster here is jit_compile={best} "
            f"({rates[best] / rates[not best]:.2f}x)")


if __name__ == "__main__":
  main()
