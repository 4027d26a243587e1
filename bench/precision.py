"""Training throughput in float32 vs bfloat16 (``train.precision``), side by side in one process.

Run (a few minutes on 2 CPU cores)::

    python bench/precision.py                                   # mnist_cpu, cifar10_cpu; stack and gated decoders
    python bench/precision.py --configs mnist_cpu --decoders gated --steps 20

For each config and decoder context, the same Adam step on
``model.training_loss`` as ``bench/train_throughput.py`` (a fixed batch of
random pixels at the config's batch size) is built twice: once with
``build_model(cfg, "float32")`` and once with ``build_model(cfg, "bfloat16")``
(Keras mixed precision: bf16 convolutions and dense layers, float32
variables, likelihood, prior, KL and loss). The two steps are timed
alternately (``interleaved_median_steps``) so that load drift on a shared
machine hits both alike; the ratio of their examples/s is the result.
``--decoders`` swaps ``model.decoder_context`` (``gated`` keeps the config's
``decoder_layers`` and filters).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_info import header  # noqa: E402
from train_throughput import interleaved_median_steps, random_batch, train_step_fn  # noqa: E402

import numpy as np  # noqa: E402

import vlae_tf  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--configs", default="mnist_cpu,cifar10_cpu")
  p.add_argument("--decoders", default="stack,gated",
                 help="decoder contexts to try ('config': the config's own)")
  p.add_argument("--steps", type=int, default=10, help="timed steps per setting (median)")
  args = p.parse_args(argv)
  print(header("VLAE training throughput: float32 vs bfloat16"))
  rng = np.random.default_rng(0)
  for name in args.configs.split(","):
    for context in args.decoders.split(","):
      cfg = vlae_tf.zoo.get_config(name)
      if context != "config":
        if cfg.model.decoder_context in ("window", "grayscale") and context != "gated":
          continue
        cfg.model.decoder_context = context
      batch = int(cfg.train.batch_size)
      fns, params = {}, 0
      for precision in ("float32", "bfloat16"):
        model = vlae_tf.build_model(cfg, precision)
        params = model.count_params()
        fns[precision] = train_step_fn(model, jit=False)
      x = random_batch(model, batch, rng)
      times = interleaved_median_steps(fns, x, args.steps)
      rate = {k: batch / t for k, t in times.items()}
      print(f"{name} decoder={cfg.model.decoder_context} ({params:,} params, batch {batch}): "
            f"float32 {rate['float32']:.1f} ex/s, bfloat16 {rate['bfloat16']:.1f} ex/s "
            f"-> bf16/f32 = {rate['bfloat16'] / rate['float32']:.2f}x "
            f"(median of {args.steps} interleaved steps)", flush=True)


if __name__ == "__main__":
  main()
