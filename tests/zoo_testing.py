"""Shared by the export / zoo / serving / CLI tests: ONE tiny model exported once per session.

Test modules import the fixtures ``zoo`` (the exported tiny model) and ``m``
(it loaded through ``vlae_tf.zoo.load``); the export is memoized here, so the
(slow) SavedModel export runs once per pytest process however many modules
use it. The card's numbers
come from a real ``vlae_tf.evaluate`` of the tiny model, never typed in.
"""

import keras
import numpy as np
import pytest

import vlae_tf
from conftest import tiny_config
from vlae_tf import export

NAME = "tiny"
IMAGE_SHAPE = (6, 6, 1)
_CACHE = {}


class TinyZoo:
  """``root``: zoo folder; ``dir``: model folder; ``model``/``config``: the Keras original."""

  def __init__(self, root, model, config, eval_results, examples):
    self.root, self.model, self.config = root, model, config
    self.dir = root / NAME
    self.saved_model_dir = self.dir / "1"
    self.eval_results, self.examples = eval_results, examples


def binary_images(n, seed=0, shape=IMAGE_SHAPE):
  return (np.random.default_rng(seed).random((n,) + tuple(shape)) < 0.4).astype(np.uint8)


def tiny_zoo(tmp_path_factory):
  if "zoo" not in _CACHE:
    root = tmp_path_factory.mktemp("zoo")
    config = tiny_config(image_shape=IMAGE_SHAPE, latent_dim=3)
    keras.utils.set_random_seed(0)       # the same weights every session: no flaky tolerances
    model = vlae_tf.build_model(config)
    x = binary_images(8, seed=1)
    eval_results = vlae_tf.evaluate(model, x, num_samples=8, batch_size=8, seed=0)
    examples = binary_images(6, seed=2)
    export.export_saved_model(model, config, root / NAME / "1", name=NAME,
                              eval_results=eval_results, command="pytest (tiny untrained model)",
                              hardware="CI CPU", wall_time_hours=0.0, steps=0,
                              examples=examples)
    _CACHE["zoo"] = TinyZoo(root, model, config, eval_results, examples)
  return _CACHE["zoo"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
  return tiny_zoo(tmp_path_factory)


@pytest.fixture(scope="module")
def m(zoo):
  return vlae_tf.zoo.load(NAME, zoo.root)
