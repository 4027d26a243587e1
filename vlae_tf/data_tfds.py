"""Reading a dataset's splits from TensorFlow Datasets (``data.source="tfds"`` or ``"tfds:<name>"``).

Built-in names (``binarized_mnist``, ``mnist``, ``omniglot``, ``cifar10``) load
with ``tfds.load``; TFDS names the validation split ``validation`` and
Omniglot's background / evaluation sets ``train`` / ``test``, and we map
``valid``, ``background``, ``evaluation`` to those; split slicing such as
``"train[:90%]"`` passes through unchanged. TFDS Omniglot images are 105x105
RGB (black ink on white): :func:`omniglot_to_28` takes ``ink = 255 - mean(R, G, B)``
and box-filters (area-averages) to 28x28. Any other TFDS dataset is read
through its builder: its ``image`` feature, else its only ``Image`` feature,
all images of one size; its validation split is the first of
:data:`TFDS_VALID_SPLITS` it has (:func:`own_valid_split`), and where it has
none :mod:`vlae_tf.data` carves one from its training split, as for the
built-in datasets without one. ``tensorflow_datasets`` is imported only when
TFDS is read (it is optional and slow to import).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf.datasets import ENV_VAR, DataError, is_builtin

_TFDS_SPLITS = {"valid": "validation", "background": "train", "evaluation": "test"}
# A TFDS dataset's own validation split (not built in): the first of these it has.
TFDS_VALID_SPLITS = ("validation", "valid", "val")


def _tfds_split(split):
  base, sep, rest = split.partition("[")
  return _TFDS_SPLITS.get(base, base) + sep + rest


def tfds_image_key(builder):
  """The image feature of a TFDS builder: ``image``, else its only ``Image`` feature."""
  import tensorflow_datasets as tfds
  features = builder.info.features
  images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  if "image" in images:
    return "image"
  if len(images) == 1:
    return images[0]
  raise DataError(f"TFDS dataset {builder.name!r}: expected one image feature, has "
                  f"{images or 'none'} among {list(features)}")


def load_tfds_split(name, split, tfds_data_dir=None, original_order=False) -> np.ndarray:
  """All images of a TFDS split as a uint8 numpy array (Omniglot converted to 28x28 ink).

  TFDS stores a split in an order of its own (its writer shuffles the
  examples by key). With ``original_order`` the images of a dataset that has
  an ``id`` feature are sorted by it: CIFAR-10's ``train_00000``, ... are the
  positions in the original batch files, so the array is in the order of the
  .npz layout and a holdout by position picks the same images on both paths
  (MNIST and Omniglot have no ``id``: TFDS's order).
  """
  import tensorflow_datasets as tfds
  if not is_builtin(name):
    return _load_tfds_any(name, split, tfds_data_dir)
  try:
    ds = tfds.load(name, split=_tfds_split(split), data_dir=tfds_data_dir or None,
                   shuffle_files=False, download=True)
  except Exception as e:  # noqa: BLE001 -- any download / build failure gets the same advice
    raise RuntimeError(
        f"TFDS could not load {name!r} split {split!r} ({type(e).__name__}: {e}). Without "
        f"network access, point at local files instead: set ${ENV_VAR} (or --config.data.data_dir) "
        f"to a folder with {name}.npz or {name}/{name}.npz holding uint8 arrays x_train, x_test "
        f"(see vlae_tf/data_readers.py), or pass --config.data.source=npz") from e
  examples = list(tfds.as_numpy(ds))
  if not examples:
    raise ValueError(f"TFDS split {split!r} of {name!r} is empty")
  if original_order and "id" in examples[0]:
    examples.sort(key=lambda ex: ex["id"])
  x = np.stack([ex["image"] for ex in examples])
  if name == "omniglot":
    x = omniglot_to_28(x)
  return x


def _prepared_builder(name, tfds_data_dir, split):
  """``(builder, image key)`` of TFDS dataset ``name`` (not built in), prepared if need be."""
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=tfds_data_dir or None)
    key = tfds_image_key(builder)
    builder.download_and_prepare()
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001 -- unknown name, no network
    raise _could_not_load(name, split, e) from e
  return builder, key


def _could_not_load(name, split, e):
  return RuntimeError(f"TFDS could not load {name!r} split {split!r} ({type(e).__name__}: "
                      f"{' '.join(str(e).split())[:500]})")


def _valid_of(builder):
  return next((s for s in TFDS_VALID_SPLITS if s in builder.info.splits), "")


def own_valid_split(name, tfds_data_dir=None) -> str:
  """The TFDS name of the validation split of dataset ``name`` (not built in); ``""``: none.

  The first of :data:`TFDS_VALID_SPLITS` among its splits. With none, a
  validation split asked for is carved from the training split
  (:func:`vlae_tf.data.carves_valid`). Prepares the dataset if it is not yet:
  its splits are known only then.
  """
  return _valid_of(_prepared_builder(name, tfds_data_dir, "valid")[0])


def _load_tfds_any(name, split, tfds_data_dir=None):
  import tensorflow_datasets as tfds
  builder, key = _prepared_builder(name, tfds_data_dir, split)
  base, sep, rest = split.partition("[")
  own = _valid_of(builder) if base in TFDS_VALID_SPLITS else ""   # valid / val / validation
  tsplit = own + sep + rest if own else _tfds_split(split)
  try:
    ds = builder.as_dataset(split=tsplit, shuffle_files=False)
  except Exception as e:  # noqa: BLE001 -- unknown split
    raise _could_not_load(name, split, e) from e
  images = [ex[key] for ex in tfds.as_numpy(ds)]
  if not images:
    raise DataError(f"TFDS {name!r} split {split!r}: expected images, the split is empty")
  shapes = {np.shape(x) for x in images}
  if len(shapes) > 1:
    raise DataError(f"TFDS {name!r} split {split!r} feature {key!r}: expected images of one "
                    f"size, got {len(shapes)} sizes (e.g. {sorted(shapes)[:2]})")
  return np.stack(images)


def omniglot_to_28(x) -> np.ndarray:
  """TFDS Omniglot ``[N, 105, 105, 3]`` (black ink on white) -> ``[N, 28, 28, 1]`` ink 0..255.

  ``ink = 255 - mean_c(x)``, then an area-average (box filter) resize: each
  output pixel is the mean of the 3.75 x 3.75 input area it covers.
  """
  x = np.asarray(x, np.float32)
  ink = 255.0 - x.mean(axis=-1, keepdims=True)
  out = tf.image.resize(ink, (28, 28), method="area").numpy()
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


__all__ = ["TFDS_VALID_SPLITS", "tfds_image_key", "own_valid_split", "load_tfds_split",
           "omniglot_to_28"]
