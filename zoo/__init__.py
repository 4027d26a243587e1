"""The vlae_tf zoo: named configs (one file per model) and, later, pretrained weights.

Installed as the subpackage ``vlae_tf.zoo`` (``setup.py`` maps it to the
top-level ``zoo/`` folder). Each ``zoo/<name>.py`` defines ``get_config()``
returning an ``ml_collections.ConfigDict``; it is also a valid absl
``--config=zoo/<name>.py`` file.
"""

from __future__ import annotations

import importlib
import pkgutil

CONFIG_NAMES = (
    "mnist",
    "mnist_dynamic",
    "omniglot",
    "cifar10",
    "cifar10_grayscale",
    "mnist_vae_factorized",
    "mnist_vae_pixelcnn_full",
)


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
