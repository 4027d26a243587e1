"""Dataset names, sources and binarizations: what a config may ask for (no TensorFlow, no files).

:mod:`vlae_tf.config` validates ``config.data`` against these names, so
reading or validating a config imports neither TensorFlow nor PIL. The files
are read by :mod:`vlae_tf.data_readers` (TFDS: :mod:`vlae_tf.data_tfds`); the
config-level loaders and the training stream are :mod:`vlae_tf.data`.

Datasets (``config.data.dataset``)
  Any name (letters, digits, ``_ . -``) with a source below; the built-in names
  keep their fixed image shapes (:data:`NATIVE_SHAPES`) and splits:
  ``binarized_mnist``  static binarization of Larochelle & Murray (2011): {0, 1}.
  ``mnist``            8-bit MNIST; ``binarization="dynamic"`` draws a fresh
                       ``x_bin ~ Bernoulli(x / 255)`` for every image every epoch.
  ``omniglot``         28x28 Omniglot, 0..255 gray (255 = ink), usually dynamic.
  ``cifar10``          32x32x3 RGB, 0..255 (``binarization="none"``).
  ``synthetic``        small structured random images of ``data.image_shape``
                       (for tests; no files, no network).

  Only ``binarized_mnist`` has a validation split of its own. For the others
  (:data:`WITHOUT_VALID`), ``data.valid_split = "valid"`` carves a fixed one
  out of the training split (the rest trains; :mod:`vlae_tf.data`), and
  ``data.valid_split = ""`` evaluates the held-out curve on the test split.

Sources (``config.data.source``)
  ``auto``  ``npz`` when ``data.data_dir`` or the environment variable
            ``VLAE_DATA_DIR`` is set (``images`` when that is a folder of image
            files rather than of .npz files), else ``tfds``.
  ``npz``   local NumPy files (layout in :mod:`vlae_tf.data_readers`).
  ``images``  a folder of image files (PNG, JPEG, BMP, GIF, WebP), for a
            dataset of your own (:mod:`vlae_tf.data_readers`).
  ``tfds:<name>``  any TFDS dataset with an image feature (``image``, else its
            only ``Image`` feature), for a dataset under a name of your own;
            without a validation split of its own one is carved from train.
  ``tfds``  TensorFlow Datasets (``binarized_mnist``, ``mnist``, ``omniglot``,
            ``cifar10``; split names and Omniglot's conversion to 28x28 ink in
            :mod:`vlae_tf.data_tfds`).

Binarization (``config.data.binarization``)
  ``static``     the data must already be {0, 1}; used as is.
  ``dynamic``    training: ``Bernoulli(x / 255)`` redrawn each epoch;
                 evaluation: ONE fixed draw with ``data.binarization_seed``.
  ``threshold``  ``x > 127``.
  ``none``       0..255 pixels as is (logistic-mixture models).
"""

from __future__ import annotations

import os
import re

DATASETS = ("binarized_mnist", "mnist", "omniglot", "cifar10", "synthetic")  # built in
SOURCES = ("auto", "npz", "tfds", "images")  # and "tfds:<name>"
BINARIZATIONS = ("static", "dynamic", "threshold", "none")
# The fixed image shape (H, W, C) of every built-in dataset read from files (synthetic: any).
NATIVE_SHAPES = {"binarized_mnist": (28, 28, 1), "mnist": (28, 28, 1), "omniglot": (28, 28, 1),
                 "cifar10": (32, 32, 3)}
# Built-in datasets without a validation split of their own (npz and TFDS alike): one is carved from train.
WITHOUT_VALID = ("mnist", "omniglot", "cifar10")
ENV_VAR = "VLAE_DATA_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DataError(ValueError):
  """The data of a run is unusable: one line naming the file, the array and what was expected."""


def is_builtin(name) -> bool:
  return name in DATASETS


def dataset_name_error(name):
  """Why ``name`` cannot be a dataset name (None when it can)."""
  if not isinstance(name, str) or not _NAME.match(name):
    return (f"data.dataset must be a built-in name ({', '.join(DATASETS)}) or a name of your "
            f"own (letters, digits, '_', '.', '-'), got {name!r}")
  return None


def source_error(source):
  """Why ``source`` cannot be a ``data.source`` (None when it can)."""
  if source in SOURCES or (isinstance(source, str) and source.startswith("tfds:")
                           and len(source) > 5):
    return None
  return f"data.source must be one of {SOURCES} or 'tfds:<name>', got {source!r}"


def data_dir(config) -> str:
  """``config.data.data_dir`` or ``$VLAE_DATA_DIR`` ('' when neither is set)."""
  return str(config.data.get("data_dir", "") or os.environ.get(ENV_VAR, ""))


def tfds_name(config) -> str:
  """The TFDS dataset a config reads: ``<name>`` of ``tfds:<name>``, else ``data.dataset``."""
  source = config.data.source
  return source[5:] if source.startswith("tfds:") else config.data.dataset


__all__ = ["DATASETS", "SOURCES", "BINARIZATIONS", "NATIVE_SHAPES", "WITHOUT_VALID", "ENV_VAR",
           "DataError", "is_builtin", "dataset_name_error", "source_error", "data_dir", "tfds_name"]
