"""Trained models in the experiments: the zoo API over an in-memory model, configs and test images."""

from __future__ import annotations

from vlae_tf import config as vconfig
from vlae_tf import data as vdata
from vlae_tf import evaluation, export
from vlae_tf.pretrained import model as zoo_model

class _InMemorySavedModel:
  """What :class:`vlae_tf.pretrained.model.ZooModel` reads of a loaded SavedModel, without saving one."""

  def __init__(self, module):
    self.module = module
    self.signatures = module.signatures()
    self.info_json = module.info_json


def servable(model, config, name):
  """A trained in-memory model with the zoo API (``encode``, ``decode``, ``sample``, ...).

  The same signature functions as an exported SavedModel
  (:class:`vlae_tf.export.ServingModule`), so a work directory and a
  ``vlae_tf.zoo.load``-ed model behave identically (seeds included).
  """
  return zoo_model.ZooModel(_InMemorySavedModel(export.ServingModule(model, config)),
                            card={"name": name})


def zoo_config(zmodel):
  """The training config stored in a loaded zoo model, as a ConfigDict."""
  return vconfig.from_json(zmodel.info["config"])


def test_images(cfg, num):
  """``num`` model-ready test images of a config, evenly spaced over the split (-1: all).

  Evenly spaced, not a prefix (as :func:`vlae_tf.evaluation.iwae_subset`):
  binarized MNIST's test set is sorted by class. The whole split is
  binarized first, so a dynamically binarized image is the same whatever
  ``num`` is.
  """
  x = vdata.load_split(cfg, cfg.data.test_split)
  return x[evaluation.iwae_subset(len(x), None if num is None or num < 0 else int(num))]
