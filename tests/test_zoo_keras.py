"""Keras-native zoo weights: the Keras model of a zoo entry is the SavedModel's model."""

import json
import shutil

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import NAME, tiny_config
from vlae_tf import training, workdir
from vlae_tf.pretrained import keras_weights as zoo_keras
from vlae_tf.pretrained import store as zoo_store
from vlae_tf.model import VLAE
from vlae_tf.pretrained.store import ZooError


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
  zoo_store.write_card_checksum(d)                 # as packaged then: the card is sealed
  with pytest.raises(ZooError, match="no Keras weights"):
    vlae_tf.zoo.load_keras(str(d))
  assert zoo_keras.add_keras_weights(d) <= 1e-5
  model = vlae_tf.zoo.load_keras(str(d))
  for a, b in zip(model.variables, zoo.model.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_shipped_mnist_keras_model_agrees_with_its_saved_model():
  model = vlae_tf.zoo.load_keras("mnist")
  m = vlae_tf.zoo.load("mnist")
  _agree(model, m.saved_model, m.examples())


# ------------------------------------------------------------ fine-tuning
@pytest.mark.slow
def test_fine_tuning_two_steps_starts_from_the_zoo_weights(zoo, tmp_path):
  cfg = ml_collections.ConfigDict(zoo.config.to_dict())
  cfg.seed = 1                                          # the tiny zoo model is seed 0's init
  cfg.train.steps = 2
  cfg.train.warmup_steps = 1
  cfg.train.checkpoint_every = 2
  cfg.train.eval_every = 0
  cfg.eval.periodic_examples = 16
  cfg.eval.num_images = 2
  wd = str(tmp_path / "fine_tune")
  out = training.train(cfg, wd, init_from=f"zoo:{zoo.dir}")
  assert out["step"] == 2
  tuned, _, step = workdir.load_model_from_workdir(wd, use_ema=False)
  keras.utils.set_random_seed(int(cfg.seed))           # where the run starts without init_from
  fresh = vlae_tf.build_model(cfg)
  dist = lambda a, b: sum(float(np.sum((u.numpy() - v.numpy()) ** 2))
                          for u, v in zip(a.trainable_variables, b.trainable_variables))
  assert step == 2 and 0 < dist(tuned, zoo.model) < 0.01 * dist(fresh, zoo.model)


def test_init_from_needs_a_zoo_model_of_the_same_architecture(zoo):
  with pytest.raises(ValueError, match="zoo:<name>"):
    zoo_keras.check_init_from("mnist", zoo.config)
  other = tiny_config(image_shape=(6, 6, 1), latent_dim=4)
  with pytest.raises(ValueError, match="latent_dim"):
    zoo_keras.check_init_from(f"zoo:{zoo.dir}", other)
  assert zoo_keras.check_init_from(f"zoo:{zoo.dir}", zoo.config)["name"] == NAME


def test_init_skip_decoder_takes_every_other_part_and_a_new_decoder(zoo):
  """--init_skip=decoder: encoder, conditioning and prior come from the zoo model; the
  decoder (here of another kind) keeps its own initialization."""
  cfg = ml_collections.ConfigDict(zoo.config.to_dict())
  cfg.model.decoder_context = "gated"
  with pytest.raises(ValueError, match="decoder_context"):
    zoo_keras.check_init_from(f"zoo:{zoo.dir}", cfg)
  with pytest.raises(ValueError, match="unknown part"):
    zoo_keras.check_init_from(f"zoo:{zoo.dir}", cfg, skip=("prior_flow",))
  other = ml_collections.ConfigDict(cfg.to_dict())
  other.model.latent_dim = zoo.config.model.latent_dim + 1
  with pytest.raises(ValueError, match="latent_dim"):     # only decoder_* may differ
    zoo_keras.check_init_from(f"zoo:{zoo.dir}", other, skip=("decoder",))
  model = vlae_tf.build_model(cfg)
  before = [v.numpy().copy() for v in model.decoder.weights]
  shadows = [tf.Variable(tf.zeros_like(v)) for v in model.trainable_variables]
  zoo_keras.initialize_from_zoo(model, f"zoo:{zoo.dir}", shadows=shadows, skip=("decoder",))
  for part in ("encoder", "conditioning", "prior"):
    for a, b in zip(getattr(model, part).weights, getattr(zoo.model, part).weights, strict=True):
      np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  for a, b in zip(model.decoder.weights, before):
    np.testing.assert_array_equal(a.numpy(), b)
  for s, v in zip(shadows, model.trainable_variables):
    np.testing.assert_array_equal(s.numpy(), v.numpy())
