"""tf.distribute strategies for training: default, mirrored, multi_worker, tpu.

* ``default``: the no-op strategy of one device.
* ``mirrored``: synchronous data parallelism over all local GPUs, or over
  ``num_cpu_devices`` logical CPU devices (for testing on a CPU machine).
* ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the cluster in the
  ``TF_CONFIG`` environment variable (every worker runs the same command).
* ``tpu``: ``TPUStrategy`` on the TPU named by ``tpu`` (``""``: the local /
  environment-configured TPU). Not exercised by the tests (no TPU here).

Chief rule (the worker that writes checkpoints, summaries and eval files):
task type ``chief``, or ``worker`` 0 when the cluster has no ``chief`` task, or
any non-multi-worker strategy.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def split_cpu(num_devices):
  """Splits the physical CPU into ``num_devices`` logical devices (before TF initializes)."""
  cpus = tf.config.list_physical_devices("CPU")
  existing = tf.config.get_logical_device_configuration(cpus[0])
  if existing and len(existing) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
  except RuntimeError as e:
    raise RuntimeError(f"cannot split the CPU into {num_devices} logical devices after "
                       f"TensorFlow has initialized its devices; create the strategy first "
                       f"({e})") from e


def make_strategy(name="default", num_cpu_devices=0, tpu=""):
  """The ``tf.distribute.Strategy`` called ``name`` (see module doc)."""
  if name not in STRATEGIES:
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
  if num_cpu_devices < 0:
    raise ValueError(f"num_cpu_devices must be >= 0, got {num_cpu_devices}")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    if num_cpu_devices:
      split_cpu(num_cpu_devices)
      return tf.distribute.MirroredStrategy(
          devices=[f"/cpu:{i}" for i in range(num_cpu_devices)],
          cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("strategy 'multi_worker' needs the TF_CONFIG environment variable "
                       "(cluster spec + this worker's task)")
    json.loads(os.environ["TF_CONFIG"])  # a clear JSON error before TF's
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def task_info(strategy):
  """``(task_type, task_id)`` of this process (``(None, 0)`` when not multi-worker)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return None, 0
  return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy) -> bool:
  task_type, task_id = task_info(strategy)
  if task_type is None or task_type == "chief":
    return True
  cluster = strategy.cluster_resolver.cluster_spec().as_dict()
  return task_type == "worker" and task_id == 0 and "chief" not in cluster


__all__ = ["STRATEGIES", "make_strategy", "split_cpu", "task_info", "is_chief"]
