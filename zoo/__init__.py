"""The vlae_tf zoo: named configs (one file per model) and the pretrained models built from them.

Installed as the subpackage ``vlae_tf.zoo`` (``setup.py`` maps it to the
top-level ``zoo/`` folder). Each ``zoo/<name>.py`` defines ``get_config()``
returning an ``ml_collections.ConfigDict`` (it starts from
:func:`vlae_tf.config.default_config`); it is also a valid absl
``--config=zoo/<name>.py`` file. The packaged (trained) models are read by
:mod:`vlae_tf.pretrained.store` (:func:`list_models`, :func:`load`) and
:mod:`vlae_tf.pretrained.keras_weights` (:func:`load_keras`), which import TensorFlow: they
are imported on the first call, so reading a config (:func:`get_config`,
``from vlae_tf.zoo import mnist``, ``train.py --config=zoo/mnist.py``) does not
import TensorFlow.
"""

from __future__ import annotations

import importlib
import pkgutil


def _store():
  return importlib.import_module("vlae_tf.pretrained.store")   # imports TensorFlow: on first use


def list_configs() -> list[str]:
  """Names of every config file in the zoo."""
  names = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
  return sorted(names)


def get_config(name: str):
  """The ``ml_collections.ConfigDict`` of a named zoo model, e.g. ``"mnist"``."""
  available = list_configs()
  if name not in available:
    raise ValueError(f"unknown zoo config {name!r}; available: {', '.join(available)}")
  return importlib.import_module(f"{__name__}.{name}").get_config()


def list_models(zoo_dir=None) -> list[dict]:
  """Pretrained (packaged) models: name, description, headline numbers; see :mod:`vlae_tf.pretrained.store`."""
  return _store().list_models(zoo_dir)


def load(name, zoo_dir=None, verify_checksums=True):
  """The pretrained SavedModel ``name`` (checksums verified) as a :class:`vlae_tf.pretrained.model.ZooModel`.

  ``m = vlae_tf.zoo.load("mnist"); imgs = m.sample(num=16, seed=0)``. Weights
  are looked up in ``zoo_dir``, else ``$VLAE_ZOO_DIR``, else the repository's
  ``saved_models/``; ``name`` may also be the path of a model folder.
  """
  return _store().load(name, zoo_dir, verify_checksums=verify_checksums,
                       known_configs=list_configs())


def load_keras(name, zoo_dir=None, verify_checksums=True):
  """The pretrained model ``name`` as a trainable Keras :class:`vlae_tf.model.VLAE` (card config +
  ``model.weights.h5``, checksums verified); see :mod:`vlae_tf.pretrained.keras_weights`."""
  return importlib.import_module("vlae_tf.pretrained.keras_weights").load_keras(
      name, zoo_dir, verify_checksums=verify_checksums)
