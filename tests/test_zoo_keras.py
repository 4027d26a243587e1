"""Keras-native zoo weights: the Keras model of a zoo entry is the SavedModel's model."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from vlae_tf import zoo_keras, zoo_store
from vlae_tf.model import VLAE
from vlae_tf.zoo_store import ZooError
from zoo_testing import NAME, zoo  # noqa: F401  (zoo: fixture)


def _agree(model, saved_model, images, rtol=1e-5):
  ours, theirs = zoo_keras.elbo_terms_both(model, saved_model, images)
  assert zoo_keras.max_relative_difference(ours, theirs) <= rtol
  assert np.all(np.isfinite(ours["elbo"]))


def test_export_writes_checksummed_keras_weights_and_load_keras_agrees(zoo):
  card = zoo_store.read_card(zoo.dir)
  assert card["keras_weights"] == "model.weights.h5"
  assert card["files"]["model.weights.h5"] == zoo_store.sha256(zoo.dir / "model.weights.h5")
  model = vlae_tf.zoo.load_keras(NAME, zoo.root)
  assert isinstance(model, VLAE) and model.trainable_variables
  assert model.vlae_config == card["config"]
  for a, b in zip(model.variables, zoo.model.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  _agree(model, tf.saved_model.load(str(zoo.saved_model_dir)), zoo.examples)
  loss, _ = model.training_loss(tf.constant(zoo.examples, tf.float32))
  assert np.isfinite(loss.numpy())


def test_load_keras_checks_the_weights_file(zoo, tmp_path):
  d = tmp_path / NAME
  shutil.copytree(zoo.dir, d)
  w = d / "model.weights.h5"
  data = bytearray(w.read_bytes())
  data[-100] ^= 0xFF
  w.write_bytes(bytes(data))
  with pytest.raises(ZooError, match="checksum mismatch for model.weights.h5"):
    vlae_tf.zoo.load_keras(str(d))


def test_add_keras_weights_derives_them_from_the_saved_model(zoo, tmp_path):
  """An entry packaged before Keras weights existed gets them from its SavedModel's variables."""
  d = tmp_path / NAME
  shutil.copytree(zoo.dir, d)
  (d / "model.weights.h5").unlink()
  card = json.loads((d / "card.json").read_text())
  del card["files"]["model.weights.h5"]
  card.pop("keras_weights")
  (d / "card.json").write_text(json.dumps(card))
  with pytest.raises(ZooError, match="no Keras weights"):
    vlae_tf.zoo.load_keras(str(d))
  assert zoo_keras.add_keras_weights(d) <= 1e-5
  model = vlae_tf.zoo.load_keras(str(d))
  for a, b in zip(model.variables, zoo.model.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_shipped_mnist_keras_model_agrees_with_its_saved_model():
  model = vlae_tf.zoo.load_keras("mnist")
  m = vlae_tf.zoo.load("mnist")
  _agree(model, m.saved_model, m.examples())
