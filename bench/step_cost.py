"""Where a training step's CPU goes: the VLAE's parts vs tfd.PixelCNN, side by side in one process.

Run (a few CPU-minutes)::

    python -m bench.step_cost         # mnist_gated_cpu (bf16, f32) vs tfd.PixelCNN (16, 32 filters)
    python -m bench.step_cost --steps 30 --configs mnist_gated_cpu,mnist_cpu

The equal-compute study (``experiments/peers.py``) gives every contender the
same CPU seconds, so what a contender gets from them is *steps x what a step
teaches*. This bench measures the first factor and splits the VLAE's step
into its parts, all on the same batch of ``batch_size`` random binary 28x28
images (cost does not depend on the pixel values), each a ``tf.function``
traced before timing:

* ``step``: the whole training step the study runs (Adamax on
  ``model.training_loss``: encoder, posterior sample, conditioning network,
  decoder, likelihood, AF prior, free bits; gradients; the update);
* ``decoder``: forward + backward of ``-log p(x | z)`` through the
  conditioning network and the decoder for a fixed z (no update);
* ``encoder+prior``: forward + backward of the rate ``log q(z|x) - log p(z)``
  through the encoder and the AF prior (no decoder, no update);
* ``update``: what is left, ``step - decoder - encoder+prior`` (the optimizer's
  update, the gradient plumbing, the one-sample noise), reported, not timed;
* tfd.PixelCNN's whole step (``experiments.peers.PixelCNNTrainer``: Adam,
  clipping, mask projection, EMA) at each ``--pixelcnn_filters``.

Timing: CPU seconds of this process (``time.process_time``: both cores'
threads count) per call, the median of ``--steps`` rounds in which every
function runs once in turn (load drift on a shared machine hits all alike).
The ratios, not the absolute numbers, are the result.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import vlae_tf
from bench.machine_info import header
from experiments import harness, peers


def vlae_parts(cfg, precision, x):
  """``{part: fn}`` of the VLAE of ``cfg`` built in ``precision`` (module doc)."""
  model = vlae_tf.build_model(cfg, precision)
  opt = keras.optimizers.Adamax(float(cfg.train.learning_rate))
  opt.build(model.trainable_variables)
  x_f = tf.constant(x, tf.float32)
  seed = tf.constant([0, 1])
  mu, _, _ = model.encode(x_f)
  z_fixed = tf.constant(mu)
  dec_vars = model.conditioning.trainable_variables + model.decoder.trainable_variables
  enc_vars = model.encoder.trainable_variables + model.prior.trainable_variables

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss, _ = model.training_loss(x_f, step=1000, seed=seed)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))

  @tf.function
  def decoder():
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model.log_px_given_z(x_f, z_fixed))
    return tape.gradient(loss, dec_vars)

  @tf.function
  def encoder_prior():
    with tf.GradientTape() as tape:
      mu, sigma, context = model.encode(x_f)
      eps = tf.random.stateless_normal(tf.shape(mu), seed)
      z, log_q = model.posterior_from_noise(mu, sigma, context, eps)
      loss = tf.reduce_mean(tf.reduce_sum(log_q - model.prior.log_prob_per_dim(z), -1))
    return tape.gradient(loss, enc_vars)

  parts = {"step": step, "decoder": decoder, "encoder+prior": encoder_prior}
  return parts, harness.num_params(model)


def interleaved_cpu(fns, rounds):
  """Median CPU seconds per call of each of ``fns`` over ``rounds`` interleaved rounds."""
  for fn in fns.values():
    fn()                                                # trace
  times = {k: [] for k in fns}
  for _ in range(rounds):
    for k, fn in fns.items():
      t = time.process_time()
      fn()
      times[k].append(time.process_time() - t)
  return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--configs", default="mnist_gated_cpu")
  p.add_argument("--precisions", default="bfloat16,float32")
  p.add_argument("--pixelcnn_filters", default="16,32")
  p.add_argument("--steps", type=int, default=20, help="interleaved timed rounds (median)")
  args = p.parse_args(argv)
  print(header("Where a training step's CPU goes: VLAE parts vs tfd.PixelCNN"), flush=True)
  fns, params, batch = {}, {}, None
  rng = np.random.default_rng(0)
  for name in args.configs.split(","):
    cfg = vlae_tf.zoo.get_config(name)
    batch = batch or int(cfg.train.batch_size)
    if int(cfg.train.batch_size) != batch:
      p.error("--configs: every config must have the same train.batch_size")
    x = rng.integers(0, 2, (batch,) + tuple(cfg.data.image_shape)).astype(np.float32)
    for precision in args.precisions.split(","):
      parts, n = vlae_parts(cfg, precision, x)
      for part, fn in parts.items():
        fns[(f"{name} {precision}", part)] = fn
      params[f"{name} {precision}"] = n
  for f in [int(v) for v in args.pixelcnn_filters.split(",") if v]:
    trainer = peers.PixelCNNTrainer(peers.pixelcnn(x.shape[1:], dict(peers.PIXELCNN,
                                                                     num_filters=f)))
    key = f"tfd.PixelCNN {f} filters"
    fns[(key, "step")] = (lambda t: lambda: t.train_step(x))(trainer)
    params[key] = harness.num_params(trainer.dist)
  cpu = interleaved_cpu(fns, args.steps)
  ref = next(k for k in params if k.startswith("tfd.PixelCNN")) if args.pixelcnn_filters else None
  print(f"\nbatch {batch}; CPU seconds per call, median of {args.steps} interleaved rounds\n")
  print("| model | params | step | decoder | encoder+prior | update (rest) | step / "
        f"{ref or '-'} |\n| --- | --- | --- | --- | --- | --- | --- |")
  for model in params:
    s = cpu[(model, "step")]
    d, e = cpu.get((model, "decoder")), cpu.get((model, "encoder+prior"))
    parts = "— | — | —"                                 # tfd.PixelCNN: its step only
    if d is not None:
      rest = s - d - e
      parts = f"{d:.4f} ({d / s:.0%}) | {e:.4f} ({e / s:.0%}) | {rest:.4f} ({rest / s:.0%})"
    ratio = f"{s / cpu[(ref, 'step')]:.2f}x" if ref else "—"
    print(f"| {model} | {params[model]:,} | {s:.4f} | {parts} | {ratio} |", flush=True)
  return cpu


if __name__ == "__main__":
  main()
