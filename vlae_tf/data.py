"""Datasets for VLAE training and evaluation: sources, binarization, a resumable tf.data pipeline.

Datasets (``config.data.dataset``)
  ``binarized_mnist``  static binarization of Larochelle & Murray (2011): {0, 1}.
  ``mnist``            8-bit MNIST; ``binarization="dynamic"`` draws a fresh
                       ``x_bin ~ Bernoulli(x / 255)`` for every image every epoch.
  ``omniglot``         28x28 Omniglot, 0..255 gray (255 = ink), usually dynamic.
  ``cifar10``          32x32x3 RGB, 0..255 (``binarization="none"``).
  ``synthetic``        small structured random images of ``data.image_shape``
                       (for tests; no files, no network).

Sources (``config.data.source``)
  ``auto``  ``npz`` when ``data.data_dir`` or the environment variable
            ``VLAE_DATA_DIR`` is set, else ``tfds``.
  ``npz``   local NumPy files (below).
  ``tfds``  TensorFlow Datasets (``binarized_mnist``, ``mnist``, ``omniglot``,
            ``cifar10``); TFDS names the validation split ``validation`` and
            Omniglot's background / evaluation sets ``train`` / ``test``, and
            we map ``valid``, ``background``, ``evaluation`` to those. TFDS
            split slicing such as ``"train[:90%]"`` passes through unchanged.
            TFDS Omniglot images are 105x105 RGB (black ink on white): we take
            ``ink = 255 - mean(R, G, B)`` and box-filter (area-average) to 28x28.

The .npz layout (readable with ``numpy.load(path, allow_pickle=False)``)
  One uint8 array per split named ``x_<split>`` (``x_train``, ``x_test``,
  optional ``x_valid``; Omniglot: ``x_background``, ``x_evaluation``), images
  ``[N, H, W, C]`` or ``[N, H, W]`` for grayscale. Other keys (labels) are
  ignored. Lookup in ``D = data.data_dir or $VLAE_DATA_DIR`` for dataset ``name``
  and split ``s``, first match wins:

  1. ``D/<name>.npz``                      a single user-made file,
  2. ``D/<name>/<file>.npz``               ``<file>`` = ``<name>``, or for
                                           omniglot ``omniglot_28_box`` first,
  3. ``D/<name>/<name>_<s>.npz``           one file per split, and
     ``D/<name>/<name>_<s>_1.npz, _2, ...`` one split in numbered parts,
     concatenated in order (the CIFAR-10 layout: ``cifar10_train_1..5.npz``,
     ``cifar10_test.npz``, keys ``x_train`` / ``x_test``).

  ``data.data_dir`` may also point straight at one ``.npz`` file.

Binarization (``config.data.binarization``)
  ``static``     the data must already be {0, 1}; used as is.
  ``dynamic``    training: ``Bernoulli(x / 255)`` redrawn each epoch;
                 evaluation: ONE fixed draw with ``data.binarization_seed``.
  ``threshold``  ``x > 127``.
  ``none``       0..255 pixels as is (logistic-mixture models).

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
"""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow as tf

DATASETS = ("binarized_mnist", "mnist", "omniglot", "cifar10", "synthetic")
SOURCES = ("auto", "npz", "tfds")
BINARIZATIONS = ("static", "dynamic", "threshold", "none")
ENV_VAR = "VLAE_DATA_DIR"

_NATIVE_SHAPE = {"binarized_mnist": (28, 28, 1), "mnist": (28, 28, 1), "omniglot": (28, 28, 1),
                 "cifar10": (32, 32, 3)}
_NPZ_FILES = {"omniglot": ("omniglot_28_box", "omniglot")}
_TFDS_SPLITS = {"valid": "validation", "background": "train", "evaluation": "test"}
# Stream tags for stateless seeds, so the data streams never reuse the training-noise seeds.
_PERMUTATION_TAG, _BINARIZATION_TAG = 101, 202
_SYNTHETIC_SIZE = {"train": 256, "valid": 64, "test": 64}


# ------------------------------------------------------------------ sources
def data_dir(config) -> str:
  """``config.data.data_dir`` or ``$VLAE_DATA_DIR`` ('' when neither is set)."""
  return str(config.data.get("data_dir", "") or os.environ.get(ENV_VAR, ""))


def resolve_source(config) -> str:
  """The concrete source (``npz``, ``tfds`` or ``synthetic``) for a config."""
  if config.data.dataset == "synthetic":
    return "synthetic"
  source = config.data.source
  if source not in SOURCES:
    raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
  if source == "auto":
    return "npz" if data_dir(config) else "tfds"
  return source


def _npz_candidates(root, name, split):
  """Files that may hold split ``split`` of ``name`` under ``root``, in lookup order."""
  if root.endswith(".npz"):
    return [[root]]
  out = [[os.path.join(root, f"{name}.npz")]]
  out += [[os.path.join(root, name, f"{f}.npz")] for f in _NPZ_FILES.get(name, ()) + (name,)]
  out.append([os.path.join(root, name, f"{name}_{split}.npz")])
  parts = sorted(glob.glob(os.path.join(root, name, f"{name}_{split}_*.npz")),
                 key=lambda p: (len(p), p))
  if parts:
    out.append(parts)
  return out


def load_npz_split(root, name, split) -> np.ndarray:
  """Split ``split`` of dataset ``name`` from the .npz layout (see module doc)."""
  if not root:
    raise FileNotFoundError(
        f"no data directory for the npz source: set data.data_dir or ${ENV_VAR} to the folder "
        f"holding {name}.npz or {name}/{name}.npz (uint8 arrays x_train, x_test, ...)")
  key = f"x_{split}"
  tried = []
  for files in _npz_candidates(root, name, split):
    if not all(os.path.isfile(f) for f in files):
      tried.append(" + ".join(files))
      continue
    arrays = []
    for f in files:
      with np.load(f, allow_pickle=False) as z:
        if key not in z.files:
          tried.append(f"{f} (has {', '.join(z.files)}; no {key})")
          break
        arrays.append(z[key])
    else:
      return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
  raise FileNotFoundError(f"split {split!r} of {name!r} not found as array {key!r}; tried:\n  "
                          + "\n  ".join(tried))


def _tfds_split(split):
  base, sep, rest = split.partition("[")
  return _TFDS_SPLITS.get(base, base) + sep + rest


def load_tfds_split(name, split, tfds_data_dir=None) -> np.ndarray:
  """All images of a TFDS split as a uint8 numpy array (Omniglot converted to 28x28 ink)."""
  import tensorflow_datasets as tfds
  try:
    ds = tfds.load(name, split=_tfds_split(split), data_dir=tfds_data_dir or None,
                   shuffle_files=False, download=True)
  except Exception as e:  # noqa: BLE001 -- any download / build failure gets the same advice
    raise RuntimeError(
        f"TFDS could not load {name!r} split {split!r} ({type(e).__name__}: {e}). Without "
        f"network access, point at local files instead: set ${ENV_VAR} (or --config.data.data_dir) "
        f"to a folder with {name}.npz or {name}/{name}.npz holding uint8 arrays x_train, x_test "
        f"(see vlae_tf/data.py), or pass --config.data.source=npz") from e
  images = [ex["image"] for ex in tfds.as_numpy(ds)]
  if not images:
    raise ValueError(f"TFDS split {split!r} of {name!r} is empty")
  x = np.stack(images)
  if name == "omniglot":
    x = omniglot_to_28(x)
  return x


def omniglot_to_28(x) -> np.ndarray:
  """TFDS Omniglot ``[N, 105, 105, 3]`` (black ink on white) -> ``[N, 28, 28, 1]`` ink 0..255.

  ``ink = 255 - mean_c(x)``, then an area-average (box filter) resize: each
  output pixel is the mean of the 3.75 x 3.75 input area it covers.
  """
  x = np.asarray(x, np.float32)
  ink = 255.0 - x.mean(axis=-1, keepdims=True)
  out = tf.image.resize(ink, (28, 28), method="area").numpy()
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def synthetic_split(image_shape, split, seed=0, num_levels=2, size=None) -> np.ndarray:
  """Structured random images: each is one of 4 fixed random templates with 5% pixel noise.

  The templates are shared by all splits (so a model can learn them); the
  template choice and the noise depend on ``(seed, split)``.
  """
  h, w, c = image_shape
  n = size or _SYNTHETIC_SIZE.get(split, 64)
  rng_t = np.random.default_rng(seed)
  templates = rng_t.random((4, h, w, c)) < 0.5
  rng = np.random.default_rng([seed, sum(map(ord, split))])
  x = templates[rng.integers(0, 4, n)] ^ (rng.random((n, h, w, c)) < 0.05)
  if num_levels == 2:
    return x.astype(np.uint8)
  return (x * (num_levels - 1)).astype(np.uint8)


# ------------------------------------------------------------------ binarization
def _num_levels(config):
  if config.model.likelihood == "bernoulli":
    return 2
  return 2 ** int(config.model.get("num_bits", 8))


def fixed_binarization(x, seed) -> np.ndarray:
  """One reproducible draw ``Bernoulli(x / 255)`` of a whole uint8 array (NumPy PCG64)."""
  rng = np.random.default_rng(int(seed))
  return (rng.random(x.shape, dtype=np.float32) < x.astype(np.float32) / 255.0).astype(np.uint8)


def _to_nhwc(x, config, name, split):
  x = np.asarray(x)
  if x.ndim == 3:
    x = x[..., None]
  want = tuple(int(v) for v in config.data.image_shape)
  if x.ndim >= 1 and len(x) == 0:
    raise ValueError(f"{name} split {split!r} is empty (0 images of shape {x.shape[1:]}): "
                     "check the data files")
  if x.ndim != 4 or x.shape[1:] != want:
    raise ValueError(f"{name} split {split!r} has images of shape {x.shape[1:]}, but "
                     f"data.image_shape is {want}")
  if x.dtype == bool:
    x = x.astype(np.uint8)
  if x.dtype != np.uint8:
    if x.dtype.kind not in "iuf" or not np.all((x >= 0) & (x <= 255) & (x == np.round(x))):
      bad = x.dtype.kind not in "iuf" or np.isnan(x).any()
      raise ValueError(f"{name} split {split!r} must hold integer pixels in 0..255, got dtype "
                       f"{x.dtype} with " + ("NaN or non-numeric values" if bad else
                                             f"values in [{x.min()}, {x.max()}]"))
    x = x.astype(np.uint8)
  return x


def load_raw_split(config, split) -> np.ndarray:
  """Split ``split`` as uint8 NHWC, before binarization."""
  name = config.data.dataset
  if name not in DATASETS:
    raise ValueError(f"data.dataset must be one of {DATASETS}, got {name!r}")
  source = resolve_source(config)
  if source == "synthetic":
    x = synthetic_split(tuple(config.data.image_shape), split, int(config.seed),
                        2 if config.data.binarization == "static" else 256,
                        size=int(config.data.get("synthetic_size", 0)) or None)
  elif source == "npz":
    x = load_npz_split(data_dir(config), name, split)
  else:
    x = load_tfds_split(name, split, config.data.get("tfds_data_dir", ""))
  return _to_nhwc(x, config, name, split)


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
    raise ValueError(f"{name} split {split!r} has values up to {x.max()} but "
                     f"data.binarization='static' needs {{0, 1}} pixels; use 'dynamic' or "
                     f"'threshold' for 8-bit data")


def eval_split_name(config, which="test") -> str:
  """The configured split for ``which`` in {train, valid, test}; valid falls back to test."""
  split = config.data.get(f"{which}_split", "")
  if which == "valid" and not split:
    split = config.data.test_split
  return split


# ------------------------------------------------------------------ training stream
def _stream_seed(seed, tag):
  return tf.constant([int(seed), tag], tf.int64)


def epoch_permutation(num_examples, seed, epoch):
  """The stateless order of epoch ``epoch``: ``argsort(U_(seed, epoch))``, int64 ``[N]``."""
  u = tf.random.stateless_uniform(
      [num_examples],
      tf.random.experimental.stateless_fold_in(_stream_seed(seed, _PERMUTATION_TAG), epoch))
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
  bin_seed = _stream_seed(seed, _BINARIZATION_TAG)

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


__all__ = ["DATASETS", "SOURCES", "BINARIZATIONS", "ENV_VAR", "data_dir", "resolve_source",
           "load_npz_split", "load_tfds_split", "omniglot_to_28", "synthetic_split",
           "fixed_binarization", "load_raw_split", "load_split", "eval_split_name",
           "epoch_permutation", "train_dataset", "distributed_train_dataset"]
