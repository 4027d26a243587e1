"""Shared helpers for the benchmarks: what machine and command produced a figure, and timers.

Every benchmark prints :func:`header` first, so a figure copied into
``bench/README.md`` always carries its command, CPU model, core count and TF
version. Absolute numbers on a shared machine are noisy; each script measures
the things it compares side by side in one process so the *ratios* hold.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vlae_tf.machine import cpu_model, usable_cores  # noqa: E402,F401  (cpu_model: for scripts)


def header(title: str) -> str:
  """Multi-line description of the run: command, CPU, cores, TF version, devices."""
  usable = usable_cores()
  gpus = tf.config.list_physical_devices("GPU")
  gpu_names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
               for g in gpus]
  lines = [
      f"== {title}",
      f"command: {' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)}",
      f"cpu: {cpu_model()}, {os.cpu_count()} logical cores ({usable} usable)",
      f"gpu: {', '.join(gpu_names) if gpu_names else 'none'}",
      f"tensorflow {tf.__version__}, python {platform.python_version()}, "
      f"load average {os.getloadavg()[0]:.2f} at start",
      "absolute numbers are noisy on a shared machine; ratios are measured side by side",
  ]
  return "\n".join(lines)


def time_call(fn, repeats=3, warmup=1):
  """Best wall time in seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls.

  ``fn`` should return tensors; their ``.numpy()`` is forced so asynchronous
  execution is included.
  """
  def run():
    out = fn()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
  for _ in range(warmup):
    run()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - t0)
  return best


def rss_bytes() -> int:
  """Current resident set size of this process (Linux /proc)."""
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
  """Samples the process RSS every ``interval`` seconds in a thread; ``.peak`` in bytes.

  ``tracemalloc`` and ``getrusage`` miss or over-count TF's C++ allocations
  within one process; sampling /proc gives the peak during the ``with`` block.
  """

  def __init__(self, interval=0.005):
    self.interval = interval
    self.peak = 0
    self._stop = threading.Event()

  def __enter__(self):
    self.start = rss_bytes()
    self.peak = self.start
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def _run(self):
    while not self._stop.is_set():
      self.peak = max(self.peak, rss_bytes())
      time.sleep(self.interval)

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, rss_bytes())


def gpu_peak_bytes():
  """Peak GPU memory since the last reset, or None without a GPU."""
  if not tf.config.list_physical_devices("GPU"):
    return None
  return tf.config.experimental.get_memory_info("GPU:0")["peak"]


def reset_gpu_peak():
  if tf.config.list_physical_devices("GPU"):
    tf.config.experimental.reset_memory_stats("GPU:0")


def fmt_seconds(s: float) -> str:
  return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def set_seed(seed=0):
  np.random.seed(seed)
  tf.random.set_seed(seed)
