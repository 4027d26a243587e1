"""IWAE evaluation throughput and peak memory vs chunk size at k = 4096 importance samples.

Run (about 3-4 minutes on 2 busy CPU cores with the defaults)::

    python bench/iwae.py
    python bench/iwae.py --chunks 128,512,2048,4096 --examples 2    # bigger

``vlae_tf.iwae_nll`` evaluates ``k`` samples of q(z|x) per example in chunks of
``chunk_size`` samples (one batched decoder pass of ``examples * chunk`` images
each) and combines them with a running log-sum-exp, so memory should follow
the chunk, not k. Each chunk size runs in a fresh process (TF's allocator keeps
freed memory, so in one process a smaller chunk measured after a bigger one
would show no growth): wall time of the whole ``k``-sample evaluation (after
tracing and running one chunk of that size), ``examples * k / time``
samples/s, and the peak memory above the level after building the model:
process RSS sampled every 5 ms in a thread (``tracemalloc`` does not see TF's
C++ allocations), and on a GPU ``tf.config.experimental.get_memory_info``
peak. The NLL estimates of the
different chunk sizes use different samples; they must agree within Monte Carlo
noise.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from machine_info import PeakRSS, gpu_peak_bytes, header, reset_gpu_peak  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vlae_tf  # noqa: E402
from vlae_tf import evaluation  # noqa: E402


def measure_chunk(args, chunk):
  """Runs in a fresh process: peak RSS over the level after building the model."""
  cfg = vlae_tf.zoo.get_config(args.config)
  model = vlae_tf.build_model(cfg)
  h, w, c = model.image_shape
  x = np.random.default_rng(0).integers(0, model.num_levels, (args.examples, h, w, c))
  x = x.astype(np.uint8)
  x_f = model.check_inputs(x)
  fn = evaluation.log_weights_fn(model)
  gc.collect()
  reset_gpu_peak()
  with PeakRSS() as mem:
    t0 = time.perf_counter()
    fn(x_f, chunk, tf.constant([0, 0], tf.int64)).numpy()   # trace + run one chunk
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    nll = evaluation.iwae_nll(model, x, num_samples=args.k, chunk_size=chunk, seed=1)
    t = time.perf_counter() - t0
  gpu = gpu_peak_bytes()
  rate = args.examples * args.k / t
  print(f"   chunk {chunk:5d}: {t:7.2f} s for {args.examples}x{args.k} samples = "
        f"{rate:8.1f} samples/s; peak RSS +{(mem.peak - mem.start) / 2**20:7.0f} MiB over "
        f"{mem.start / 2**20:.0f} MiB after model build"
        + (f"; GPU peak {gpu / 2**20:.1f} MiB" if gpu is not None else "")
        + f"; NLL {np.mean(nll):.2f} nats (trace + one-chunk warm-up {t_warm:.1f} s)", flush=True)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="mnist")
  p.add_argument("--examples", type=int, default=1)
  p.add_argument("--k", type=int, default=4096, help="importance samples per example")
  p.add_argument("--chunks", default="256,2048", help="comma-separated chunk sizes")
  p.add_argument("--child_chunk", type=int, default=0, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child_chunk:
    measure_chunk(args, args.child_chunk)
    return
  print(header("VLAE IWAE evaluation: throughput and peak memory vs chunk size"))
  print(f"config {args.config} (random weights), {args.examples} example(s), k = {args.k}, "
        f"library default chunk for this batch: "
        f"{evaluation.default_chunk(args.examples, args.k)}; each chunk size in a fresh process "
        "(TF's allocator keeps freed memory, so one process would hide later peaks)", flush=True)
  for chunk in [min(int(v), args.k) for v in args.chunks.split(",")]:
    subprocess.run([sys.executable, os.path.abspath(__file__), "--config", args.config,
                    "--examples", str(args.examples), "--k", str(args.k),
                    "--child_chunk", str(chunk)], check=True)


if __name__ == "__main__":
  main()
