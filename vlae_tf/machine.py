"""What machine ran something: CPU model, usable cores, GPUs, versions (for results and benchmarks)."""

from __future__ import annotations

import os
import platform

import tensorflow as tf


def cpu_model() -> str:
  """The CPU's model name from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def usable_cores() -> int:
  """Cores this process may run on (its affinity), else ``os.cpu_count()``."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count()


def hardware() -> dict:
  """The machine as a JSON-ready dict (``results.json`` of the experiments)."""
  return {"cpu": cpu_model(), "usable_cores": usable_cores(),
          "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
          "tensorflow": tf.__version__, "python": platform.python_version(),
          "load_average_at_end": os.getloadavg()[0]}


__all__ = ["cpu_model", "usable_cores", "hardware"]
