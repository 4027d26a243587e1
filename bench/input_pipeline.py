"""tf.data input pipeline throughput vs what a training step consumes (goal: >= 10x headroom).

Run (about 2-3 minutes on 2 busy CPU cores with the defaults)::

    VLAE_DATA_DIR=/work/shared/data python bench/input_pipeline.py
    python bench/input_pipeline.py --data_dir /path/to/data --configs mnist,mnist_dynamic,cifar10

For each zoo config, in one process: examples/s of ``vlae_tf.data.train_dataset``
(the resumable training stream: stateless epoch permutation, gather, dynamic
binarization where configured, batching, prefetch) over ``--batches`` batches
after a warm-up, and examples/s of a training step (plain Adam on
``model.training_loss``, ``tf.function`` without XLA, the faster setting on this
CPU, see ``bench/train_throughput.py``) on the same batch size. Headroom =
pipeline rate / training rate. The pipeline is measured alone; while training
it shares the cores with the step, so the headroom is an upper bound there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_info import header  # noqa: E402
from train_throughput import interleaved_median_steps, train_step_fn  # noqa: E402

import tensorflow as tf  # noqa: E402

import vlae_tf  # noqa: E402
from vlae_tf import data  # noqa: E402


def pipeline_rate(ds, batches, warmup=5):
  it = iter(ds)
  for _ in range(warmup):
    x = next(it)
  n = 0
  t0 = time.perf_counter()
  for _ in range(batches):
    x = next(it)
    n += int(x.shape[0])
  return n / (time.perf_counter() - t0), x


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--configs", default="mnist,mnist_dynamic,cifar10")
  p.add_argument("--data_dir", default="", help="default: $VLAE_DATA_DIR")
  p.add_argument("--batches", type=int, default=200)
  p.add_argument("--train_steps", type=int, default=3)
  args = p.parse_args(argv)
  print(header("VLAE input pipeline vs training consumption"))
  for name in args.configs.split(","):
    cfg = vlae_tf.zoo.get_config(name)
    if args.data_dir:
      cfg.data.data_dir = args.data_dir
    batch = int(cfg.train.batch_size)
    t0 = time.perf_counter()
    raw = data.load_raw_split(cfg, cfg.data.train_split)
    t_load = time.perf_counter() - t0
    ds = data.train_dataset(cfg, start_step=0, raw=raw)
    rate, x = pipeline_rate(ds, args.batches)
    model = vlae_tf.build_model(cfg)
    step = train_step_fn(model, jit=False)
    t_step = interleaved_median_steps({"train": step}, x, args.train_steps)["train"]
    train_rate = batch / t_step
    print(f"-- {name} ({cfg.data.dataset}, binarization {cfg.data.binarization}, source "
          f"{data.resolve_source(cfg)}, {raw.shape[0]} train images loaded in {t_load:.1f} s), "
          f"batch {batch}:")
    print(f"   pipeline {rate:10.0f} examples/s ({args.batches} batches); training step "
          f"{t_step * 1e3:.0f} ms = {train_rate:.1f} examples/s")
    print(f"   RESULT {name}: headroom {rate / train_rate:.0f}x (goal >= 10x)")


if __name__ == "__main__":
  main()
