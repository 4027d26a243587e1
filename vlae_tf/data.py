"""A run's data: its splits by config, their binarization, and the resumable training stream.

What a config may name (datasets, sources, binarizations, :class:`DataError`)
is :mod:`vlae_tf.datasets`; the readers of .npz files, image folders and the
synthetic data (with the checks every split passes) are
:mod:`vlae_tf.data_readers`, TFDS is :mod:`vlae_tf.data_tfds`. This module
picks the reader for a config (:func:`resolve_source`), binarizes
(``config.data.binarization``, :mod:`vlae_tf.datasets`) and streams.

Validation split
  ``data.valid_split`` names the held-out images of the periodic evaluation
  during training (:func:`eval_split_name`; ``""``: the test split). A built-in
  dataset without a validation split of its own
  (:data:`vlae_tf.datasets.WITHOUT_VALID`: mnist, omniglot, cifar10) asked for
  ``"valid"`` gets a fixed one carved from its training split by
  :func:`vlae_tf.data_readers.holdout` (10%, NumPy PCG64 seed 0: CIFAR-10's
  5,000 of 50,000), from the .npz files and from TFDS alike, and the training
  split is the rest, so training never sees those images (:func:`carves_valid`).
  A TFDS dataset of your own (``tfds:<name>``) without a validation split
  (:func:`vlae_tf.data_tfds.own_valid_split`) is carved here the same way;
  your .npz files and image folders are carved by their readers by the same
  rule. :func:`heldout_split` says in words which images the curve used.

Resumable order
  The training stream is a pure function of ``(config.seed, step)``: epoch
  ``e`` visits the training set in the stateless permutation
  ``argsort(U(seed, e))`` (a uniform shuffle of the whole epoch, so
  ``train.shuffle_buffer`` is not needed), and a dynamic binarization of
  example ``i`` in epoch ``e`` uses the stateless seed ``fold(seed, e, i)``.
  Global step ``t`` consumes stream positions ``[t G, (t + 1) G)`` (``G`` =
  global batch), so resuming at step ``t`` only skips ``(t G) mod N`` indices.
  Under a multi-worker strategy input pipeline ``k`` of ``n`` takes the
  ``k``-th contiguous ``G / n`` slice of every global batch, and its replicas
  take consecutive per-replica batches of that slice, so global replica ``r``
  always sees positions ``[t G + r B, t G + (r + 1) B)`` whatever the device
  count (``B`` = per-replica batch).

Random streams of a run
  Every stateless random stream of training starts from the seed
  ``[config.seed, tag]`` with its tag in :data:`STREAM_TAGS` (one table, so no
  two streams share a seed): the epoch permutations, the dynamic binarization
  and the posterior noise of :mod:`vlae_tf.training`. The tags are part of
  what a run is: changing one changes every run's data or noise.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from vlae_tf import data_readers as readers
from vlae_tf import data_tfds
from vlae_tf.datasets import (WITHOUT_VALID, DataError, data_dir, dataset_name_error, is_builtin,
                              source_error, tfds_name)
# Re-exported: the names callers (tests, experiments, bench) know as ``vlae_tf.data.<name>``.
from vlae_tf.data_readers import check_split_images, holdout, synthetic_split  # noqa: F401
from vlae_tf.data_tfds import load_tfds_split  # noqa: F401
from vlae_tf.datasets import ENV_VAR  # noqa: F401

STREAM_TAGS = {"permutation": 101, "binarization": 202, "posterior_noise": 303}


# ------------------------------------------------------------------ the splits of a config
def resolve_source(config) -> str:
  """The concrete source (``npz``, ``images``, ``tfds`` or ``synthetic``) for a config."""
  if config.data.dataset == "synthetic":
    return "synthetic"
  source = config.data.source
  err = source_error(source)
  if err:
    raise ValueError(err)
  if source.startswith("tfds"):
    return "tfds"
  if source == "auto":
    root = data_dir(config)
    if not root:
      return "tfds"
    name = config.data.dataset
    return "images" if not is_builtin(name) and readers.is_image_folder(root, name) else "npz"
  return source


def _to_nhwc(x, config, where):
  x = readers.check_split_images(x, where, config.data.binarization)
  want = tuple(int(v) for v in config.data.image_shape)
  if x.shape[1:] != want:
    raise DataError(f"{where}: has images of shape {x.shape[1:]}, but data.image_shape is {want}")
  return x


def carves_valid(config) -> bool:
  """Whether ``data.valid_split`` is carved from the training split rather than read (module doc)."""
  d = config.data
  if d.get("valid_split", "") not in readers.VALID_KEYS:   # "": the test split; else read as named
    return False
  if is_builtin(d.dataset):
    return d.dataset in WITHOUT_VALID
  source, root = resolve_source(config), data_dir(config)
  if source == "npz":   # (what own_npz_split does; False while the files cannot be found)
    return (readers.has_npz_split(root, d.dataset, d.train_split)
            and not readers.has_npz_split(root, d.dataset, "valid"))
  if source == "images":
    return os.path.isdir(root) and not readers.has_valid_folder(root, d.dataset)
  if source == "tfds":   # tfds:<name>: its own validation split if it has one (prepares it)
    return not data_tfds.own_valid_split(tfds_name(config), d.get("tfds_data_dir", ""))
  return False


def _load_with_origin(config, split):
  name = config.data.dataset
  err = dataset_name_error(name)
  if err:
    raise ValueError(err)
  source = resolve_source(config)
  train = config.data.train_split
  if ((is_builtin(name) or source == "tfds") and (split in readers.VALID_KEYS or split == train)
      and carves_valid(config)):   # (.npz files and image folders of your own: their readers)
    x, where = _read_split(config, source, train, original_order=True)
    kept, held = readers.holdout(len(x))
    what = name if is_builtin(name) else f"{name} (TFDS {tfds_name(config)!r})"
    readers.say_once(
        f"{what} has no validation split of its own: data.valid_split="
        f"{config.data.valid_split!r} is {len(held):,} of the {len(x):,} images of its training "
        f"split {train!r} ({readers.HOLDOUT_FRACTION:.0%} holdout, NumPy PCG64 seed "
        f"{readers.HOLDOUT_SEED}), training on the other {len(kept):,} (data.valid_split='' "
        f"trains on all and evaluates on the test split)")
    if split in readers.VALID_KEYS:
      return np.asarray(x)[held], f"{where} (validation part carved out of it)"
    return np.asarray(x)[kept], f"{where} (training part)"
  return _read_split(config, source, split)


def _read_split(config, source, split, original_order=False):
  """``(array, where)`` of split ``split`` as the source stores it (no carving of built-ins)."""
  name = config.data.dataset
  if source == "synthetic":
    x = readers.synthetic_split(tuple(config.data.image_shape), split, int(config.seed),
                                2 if config.data.binarization == "static" else 256,
                                size=int(config.data.get("synthetic_size", 0)) or None)
    return x, f"synthetic split {split!r}"
  if source == "npz":
    if is_builtin(name):
      return readers.find_npz_split(data_dir(config), name, split)
    return readers.own_npz_split(data_dir(config), name, split, config.data.train_split,
                                 bool(config.data.get("valid_split")))
  if source == "images":
    if is_builtin(name):
      raise ValueError(f"data.source='images' is for datasets of your own, not the built-in "
                       f"{name!r} (give it another name)")
    return readers.find_image_split(data_dir(config), name, split)
  tname = tfds_name(config)
  if is_builtin(name) and tname != name:
    raise ValueError(f"data.dataset={name!r} names a built-in dataset but data.source reads "
                     f"TFDS {tname!r}: set data.dataset to a name of your own")
  x = data_tfds.load_tfds_split(tname, split, config.data.get("tfds_data_dir", ""),
                                original_order=original_order)
  return x, f"TFDS {tname!r} split {split!r}"


def load_raw_split(config, split) -> np.ndarray:
  """Split ``split`` as uint8 NHWC, before binarization."""
  x, where = _load_with_origin(config, split)
  return _to_nhwc(x, config, where)


def resolve_data_config(config):
  """``config`` with ``data.image_shape`` taken from the data for a dataset of your own.

  Built-in datasets keep their fixed shapes (checked by the config validation).
  Reads (and checks) the training split, so bad data fails here, before
  anything is built. Returns the same ``ConfigDict``, changed in place.
  """
  name = config.data.dataset
  if is_builtin(name) or dataset_name_error(name) or source_error(config.data.source):
    return config
  x, where = _load_with_origin(config, config.data.train_split)
  x = readers.check_split_images(x, where, config.data.binarization)
  shape = tuple(int(v) for v in x.shape[1:])
  readers.say_once(f"{name}: {len(x)} training images of shape {shape} from {where}")
  if tuple(config.data.image_shape) != shape:
    config.data.image_shape = shape
  return config


def fixed_binarization(x, seed) -> np.ndarray:
  """One reproducible draw ``Bernoulli(x / 255)`` of a whole uint8 array (NumPy PCG64)."""
  rng = np.random.default_rng(int(seed))
  return (rng.random(x.shape, dtype=np.float32) < x.astype(np.float32) / 255.0).astype(np.uint8)


def load_split(config, split, num_examples=-1) -> np.ndarray:
  """Model-ready uint8 images of an evaluation split (dynamic -> the fixed seeded draw)."""
  x = load_raw_split(config, split)
  if num_examples is not None and num_examples > 0:
    x = x[:num_examples]
  b = config.data.binarization
  if b == "dynamic":
    return fixed_binarization(x, config.data.binarization_seed)
  if b == "threshold":
    return (x > 127).astype(np.uint8)
  if b == "static":
    _check_binary(x, config.data.dataset, split)
  return x


def _check_binary(x, name, split):
  if x.max(initial=0) > 1:
    raise DataError(f"{name} split {split!r} has values up to {x.max()} but "
                    f"data.binarization='static' needs {{0, 1}} pixels; use 'dynamic' or "
                    f"'threshold' for 8-bit data")


def eval_split_name(config, which="test") -> str:
  """The configured split for ``which`` in {train, valid, test}; valid falls back to test.

  A carved validation split (:func:`carves_valid`) is named like any other:
  :func:`load_split` of the name gives the carved images.
  """
  split = config.data.get(f"{which}_split", "")
  if which == "valid" and not split:
    split = config.data.test_split
  return split


def heldout_split(config, num_images=None) -> str:
  """The held-out split of the periodic evaluation, in words (logs, ``metrics.jsonl``, curves).

  ``"valid (5,000 images carved from train)"``, ``"valid (10,000 images)"``,
  ``"test (10,000 images)"``; without ``num_images`` the count is left out
  (``"valid (carved from train)"``, ``"test"``).
  """
  split = eval_split_name(config, "valid")
  words = [f"{num_images:,} images"] if num_images is not None else []
  if split == config.data.get("valid_split") and carves_valid(config):
    words.append(f"carved from {config.data.train_split}")
  return f"{split} ({' '.join(words)})" if words else split


# ------------------------------------------------------------------ training stream
def stream_seed(seed, stream):
  """The ``[2]`` int64 stateless seed ``[seed, STREAM_TAGS[stream]]`` of a random stream (module doc)."""
  return tf.constant([int(seed), STREAM_TAGS[stream]], tf.int64)


def epoch_permutation(num_examples, seed, epoch):
  """The stateless order of epoch ``epoch``: ``argsort(U_(seed, epoch))``, int64 ``[N]``."""
  u = tf.random.stateless_uniform(
      [num_examples],
      tf.random.experimental.stateless_fold_in(stream_seed(seed, "permutation"), epoch))
  return tf.cast(tf.argsort(u, stable=True), tf.int64)


def train_dataset(config, start_step=0, input_context=None, raw=None):
  """The infinite, resumable training stream of per-replica uint8 batches.

  Args:
    config: the run config.
    start_step: the global step to resume at (the stream skips what steps
      ``0 .. start_step - 1`` consumed).
    input_context: ``tf.distribute.InputContext`` (None: one pipeline, one replica).
    raw: optional pre-loaded raw training array (``load_raw_split(config, train_split)``).
  """
  global_batch = int(config.train.batch_size)
  if raw is None:
    raw = load_raw_split(config, config.data.train_split)
  mode = config.data.binarization
  if mode == "static":
    _check_binary(raw, config.data.dataset, config.data.train_split)
  elif mode == "threshold":
    raw = (raw > 127).astype(np.uint8)
  n = int(raw.shape[0])
  pipelines, pipeline_id, per_replica = 1, 0, global_batch
  if input_context is not None:
    pipelines = input_context.num_input_pipelines
    pipeline_id = input_context.input_pipeline_id
    per_replica = input_context.get_per_replica_batch_size(global_batch)
  if global_batch % pipelines:
    raise ValueError(f"train.batch_size={global_batch} is not divisible by the "
                     f"{pipelines} input pipelines")
  chunk = global_batch // pipelines
  seed = int(config.seed)
  first = int(start_step) * global_batch
  images = tf.constant(raw)

  def epoch_indices(epoch):
    idx = epoch_permutation(n, seed, epoch)
    return tf.data.Dataset.from_tensor_slices(
        (tf.fill([n], epoch), idx))

  ds = tf.data.Dataset.range(first // n, np.iinfo(np.int64).max).flat_map(epoch_indices)
  ds = ds.skip(first % n)
  if pipelines > 1:
    lo = pipeline_id * chunk
    ds = ds.batch(global_batch, drop_remainder=True)
    ds = ds.map(lambda e, i: (e[lo:lo + chunk], i[lo:lo + chunk])).unbatch()
  bin_seed = stream_seed(seed, "binarization")

  def load(epoch, index):
    x = tf.gather(images, index)
    if mode != "dynamic":
      return x
    s = tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(bin_seed, epoch), index)
    u = tf.random.stateless_uniform(tf.shape(x), s)
    return tf.cast(u < tf.cast(x, tf.float32) / 255.0, tf.uint8)

  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(per_replica, drop_remainder=True)
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def distributed_train_dataset(strategy, config, start_step=0):
  """``train_dataset`` for every replica of ``strategy`` (one pipeline per worker)."""
  raw = load_raw_split(config, config.data.train_split)
  return strategy.distribute_datasets_from_function(
      lambda ctx: train_dataset(config, start_step, ctx, raw=raw))


__all__ = ["STREAM_TAGS", "stream_seed", "resolve_source", "resolve_data_config",
           "load_raw_split", "fixed_binarization", "load_split", "eval_split_name", "carves_valid",
           "heldout_split",
           "epoch_permutation", "train_dataset", "distributed_train_dataset",
           # re-exported for their callers (their homes: datasets, data_readers, data_tfds)
           "ENV_VAR", "DataError", "data_dir", "check_split_images", "holdout", "synthetic_split",
           "load_tfds_split"]
