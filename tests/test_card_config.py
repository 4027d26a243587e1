"""A zoo card must describe the model it ships (issue 21).

``card.sha256`` only proves the card was not changed after it was summed: a card
whose config was edited and re-summed loaded, and ``load`` / ``load_keras``
misdescribed the model (``load_keras`` died in Keras with a six-line ValueError
when the edit changed the architecture). A 5,000-character model name was an
``OSError`` (file name too long), not a :class:`ZooError`.
"""

import json

import pytest
from ml_collections import ConfigDict

import vlae_tf
from helpers import edit_card
from vlae_tf.pretrained import card as zoo_card
from vlae_tf.pretrained import keras_weights as zoo_keras
from vlae_tf.pretrained.store import ZooError


def _edit_config(d, section, key, value):
  def edit(card):
    card["config"][section][key] = value
    return card
  edit_card(d, edit)
  zoo_card.write_card_checksum(d)             # the checksum no longer gives the edit away


def _loaders(d):
  return {"load": lambda **kw: vlae_tf.zoo.load(str(d), **kw),
          "load_keras": lambda **kw: vlae_tf.zoo.load_keras(str(d), **kw)}


@pytest.mark.parametrize("loader", ["load", "load_keras"])
@pytest.mark.parametrize("verify", [True, False], ids=["verified", "no_verify"])
@pytest.mark.parametrize("section, key, value, message", [
    ("model", "latent_dim", 5, r"model.latent_dim: card 5, model 3"),         # another architecture
    ("data", "binarization", "dynamic", r"data.binarization: card 'dynamic', model 'static'"),
    ("model", "bogus_key", 1, r"does not fit the config schema \(unknown key model.bogus_key"),
    ("train", "optimizer", "sgd", r"does not fit the config schema \(train.optimizer must be"),
], ids=["architecture", "description", "unknown_key", "bad_value"])
def test_an_edited_and_resummed_card_config_is_refused(zoo_copy, loader, verify, section, key,
                                                       value, message):
  d = zoo_copy / "tiny"
  _edit_config(d, section, key, value)
  with pytest.raises(ZooError, match=message) as e:
    _loaders(d)[loader](verify_checksums=verify)
  assert len(str(e.value).splitlines()) == 1, str(e.value)


def test_init_from_refuses_an_edited_card_config(zoo_copy):
  d = zoo_copy / "tiny"
  _edit_config(d, "data", "binarization", "dynamic")
  card = json.loads((d / "card.json").read_text())
  with pytest.raises(ZooError, match="does not describe the model it ships"):
    zoo_keras.check_init_from(f"zoo:{d}", ConfigDict(card["config"]))


def test_damaged_keras_weights_are_a_one_line_zoo_error(zoo_copy):
  weights = zoo_copy / "tiny" / "model.weights.h5"
  weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
  with pytest.raises(ZooError, match=r"cannot load .*model.weights.h5 .*verify_checksums=True") as e:
    vlae_tf.zoo.load_keras(str(zoo_copy / "tiny"), verify_checksums=False)
  assert len(str(e.value).splitlines()) == 1, str(e.value)


@pytest.mark.parametrize("name", ["x" * 5000, "./" + "x" * 5000], ids=["bare_name", "path"])
@pytest.mark.parametrize("loader", ["load", "load_keras"])
def test_a_5000_character_name_is_a_zoo_error(zoo, name, loader):
  with pytest.raises(ZooError, match=r"\(500[02] characters\)") as e:
    getattr(vlae_tf.zoo, loader)(name, zoo_dir=str(zoo.root))
  assert len(str(e.value)) < 400
