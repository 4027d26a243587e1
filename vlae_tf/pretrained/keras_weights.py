"""Keras-native zoo weights: ``<name>/model.weights.h5`` and :func:`load_keras`.

Every zoo entry (see :mod:`vlae_tf.pretrained.store` for the layout) carries, beside
its SavedModel, the Keras 3 weights of the same model in
``model.weights.h5`` (``keras.Model.save_weights``), listed and checksummed in
``card.json`` like every other file. :func:`load_keras` rebuilds the trainable
:class:`vlae_tf.model.VLAE` from the card's config and loads those weights:
the model to fine-tune, to call ``elbo_terms`` / ``training_loss`` on, or to
take features from in Keras.

The weights file is written by :func:`vlae_tf.pretrained.packaging.export_model`
(so by ``train.py --mode=export``) from the
very model whose variables go into the SavedModel. For a zoo entry packaged
before the file existed, :func:`add_keras_weights` derives it from the
SavedModel itself: it builds the model from the card's config, copies the
SavedModel's variables into it one by one (the export stores
``list(model.variables)`` in build order, so names and shapes must match
pairwise and are checked), verifies that the Keras model and the SavedModel
give the same ELBO terms on the bundled example images, then writes the file
and the card's new checksums::

  python -m vlae_tf.pretrained.keras_weights saved_models/mnist saved_models/omniglot ...
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import tensorflow as tf

from vlae_tf import atomic
from vlae_tf import config as vconfig
from vlae_tf.data_readers import read_npz
from vlae_tf.pretrained import card as zoo_card
from vlae_tf.pretrained import store as zoo_store
from vlae_tf.model import build_model

KERAS_WEIGHTS = zoo_store.KERAS_WEIGHTS
_ELBO_SEED = (0, 0)            # the seed of the SavedModel's log_prob signature (vlae_tf.export)


def save_keras_weights(model, model_dir) -> pathlib.Path:
  """Writes ``model``'s weights as ``model_dir/model.weights.h5``; returns the path."""
  path = pathlib.Path(model_dir) / KERAS_WEIGHTS
  path.parent.mkdir(parents=True, exist_ok=True)
  model.save_weights(str(path))
  return path


def load_keras(name_or_path, zoo=None, verify_checksums=True):
  """The pretrained zoo model ``name_or_path`` as a trainable :class:`vlae_tf.model.VLAE`.

  Built from the card's config with the Keras weights of the entry (checksums
  verified first, as :func:`vlae_tf.pretrained.store.load` does). The model's
  ``vlae_config`` is the card's config; ``model.zoo_card`` holds the card.
  """
  d = zoo_store.model_dir(name_or_path, zoo)
  card = zoo_store.verify(d) if verify_checksums else zoo_store.read_card(d)
  # the card describes the SavedModel it ships
  zoo_card.check_card_config(card, d, zoo_store.saved_model_config(d, card["version"]))
  path = d / KERAS_WEIGHTS
  if not path.is_file():
    raise zoo_store.ZooError(
        f"zoo model at {d} has no Keras weights ({KERAS_WEIGHTS}); re-package it with "
        "`train.py --mode=export` or add them with `python -m vlae_tf.pretrained.keras_weights "
        + str(d) + "`")
  try:
    model = build_model(card["config"])
    model.load_weights(str(path))
  except Exception as e:  # noqa: BLE001 -- damaged or foreign files fail in many ways
    raise zoo_store.ZooError(
        f"cannot load {path} into the model of its card's config ({zoo_card.first_line(e)}); the "
        "file may be damaged" + ("" if verify_checksums else ": load it with "
                                 "verify_checksums=True to check its sha256")) from None
  model.zoo_card = card
  return model


def parse_init_from(spec):
  """``"zoo:<name or folder>"`` -> the zoo name or folder; ValueError for anything else."""
  if not isinstance(spec, str) or not spec.startswith("zoo:") or not spec[4:]:
    raise ValueError(f"--init_from must be zoo:<name> (a pretrained zoo model, e.g. zoo:mnist), "
                     f"got {spec!r}")
  return spec[4:]


INIT_SKIPPABLE = ("decoder",)   # parts of a model --init_skip may leave at their initialization


def check_init_from(spec, config, zoo=None, skip=()) -> dict:
  """Checks that the zoo model named by ``spec`` can initialize a run of ``config``; its card.

  The model architecture must be the same (the ``model`` section of the configs
  and the image shape), or the weights do not fit: a ValueError says which keys
  differ. Objective, data and training settings may differ (fine-tuning).
  ``skip=("decoder",)``: the decoder is not loaded, so its settings
  (``model.decoder_*``) may differ (a new decoder on a trained encoder and prior).
  """
  bad = sorted(set(skip) - set(INIT_SKIPPABLE))
  if bad:
    raise ValueError(f"--init_skip: unknown part(s) {', '.join(bad)}; "
                     f"choose from {', '.join(INIT_SKIPPABLE)}")
  d = zoo_store.model_dir(parse_init_from(spec), zoo)
  card = zoo_store.read_card(d)
  zoo_card.check_card_config(card, d, zoo_store.saved_model_config(d, card["version"]))
  ours = vconfig.jsonable(vconfig.with_defaults(config))
  theirs = vconfig.jsonable(vconfig.with_defaults(card["config"]))
  diff = sorted(k for k in set(ours["model"]) | set(theirs["model"])
                if ours["model"].get(k) != theirs["model"].get(k)
                and not ("decoder" in skip and k.startswith("decoder_")))
  if list(ours["data"]["image_shape"]) != list(theirs["data"]["image_shape"]):
    diff.append("data.image_shape")
  if diff:
    raise ValueError(f"--init_from={spec}: the zoo model's architecture differs from this "
                     f"config's in {', '.join(diff)}; use the zoo model's config "
                     f"(zoo/{card.get('config_name')}.py) or the same model settings")
  return card


def initialize_from_zoo(model, spec, zoo=None, shadows=(), skip=()) -> dict:
  """Loads the Keras weights of the zoo model ``spec`` (``zoo:<name>``) into ``model``.

  For fine-tuning: ``model`` must have the same architecture
  (:func:`check_init_from`); checksums are verified. ``shadows``: EMA copies
  of ``model.trainable_variables`` (in that order), set to the loaded weights
  too. ``skip``: parts left as they are (``("decoder",)``: every other part is
  copied from the zoo model, variable by variable, shapes checked). Returns the
  zoo card.
  """
  check_init_from(spec, model.vlae_config, zoo, skip)
  d = zoo_store.model_dir(parse_init_from(spec), zoo)
  card = zoo_store.verify(d)
  path = d / KERAS_WEIGHTS
  if not path.is_file():
    raise zoo_store.ZooError(f"zoo model at {d} has no Keras weights ({KERAS_WEIGHTS})")
  if skip:
    source = load_keras(str(d), verify_checksums=False)   # verified just above
    for part in ("encoder", "conditioning", "prior", "posterior_flow"):
      if part in skip or getattr(model, part) is None:
        continue
      for dst, src in zip(getattr(model, part).weights, getattr(source, part).weights,
                          strict=True):
        if tuple(dst.shape) != tuple(src.shape):
          raise ValueError(f"--init_from={spec}: {dst.path} has shape {tuple(dst.shape)}, the "
                           f"zoo model's {tuple(src.shape)}")
        dst.assign(src)
  else:
    model.load_weights(str(path))
  for shadow, v in zip(shadows, model.trainable_variables):
    shadow.assign(v)
  return card


def copy_saved_model_variables(model, saved_model):
  """Assigns the SavedModel's stored variables to ``model`` pairwise (names and shapes checked)."""
  src = list(saved_model.model_variables)
  dst = list(model.variables)
  if len(src) != len(dst):
    raise ValueError(f"the SavedModel holds {len(src)} model variables, the model built from "
                     f"its config {len(dst)}")
  for s, v in zip(src, dst):
    if tuple(s.shape) != tuple(v.shape) or s.name.split("/")[-1] != v.path.split("/")[-1] + ":0":
      raise ValueError(f"variable mismatch: SavedModel {s.name} {tuple(s.shape)} vs model "
                       f"{v.path} {tuple(v.shape)}")
    v.assign(s)
  return model


def elbo_terms_both(model, saved_model, images):
  """``(keras_terms, saved_model_terms)``: dicts of ``[N]`` arrays for the same images."""
  x = tf.constant(np.asarray(images, np.float32))
  k = model.elbo_terms(x, seed=tf.constant(_ELBO_SEED, tf.int64))
  s = saved_model.signatures["log_prob"](images=x)
  names = ("elbo", "rate", "distortion")
  return {n: k[n].numpy() for n in names}, {n: s[n].numpy() for n in names}


def max_relative_difference(ours, theirs):
  """``max |a - b| / max(1, |b|)`` over every ELBO term and image (float32 round-off: ~1e-7)."""
  return max(float(np.max(np.abs(ours[n] - theirs[n]) / np.maximum(1.0, np.abs(theirs[n]))))
             for n in ours)


def add_keras_weights(model_dir, rtol=1e-5):
  """Derives ``model.weights.h5`` for a packaged entry from its SavedModel (module doc).

  Returns the largest relative difference in ELBO terms seen on the bundled
  examples (:func:`max_relative_difference`); refuses (ValueError) beyond ``rtol``.
  """
  d = pathlib.Path(model_dir)
  card = zoo_store.verify(d)
  saved_model = tf.saved_model.load(str(d / str(card["version"])))
  model = copy_saved_model_variables(build_model(card["config"]), saved_model)
  images = read_npz(d / zoo_store.EXAMPLES, ["x"])[0]
  ours, theirs = elbo_terms_both(model, saved_model, images)
  diff = max_relative_difference(ours, theirs)
  if not diff <= rtol:
    raise ValueError(f"{d}: the Keras model's ELBO terms differ from the SavedModel's by "
                     f"{diff:g} (relative, > {rtol:g})")
  save_keras_weights(model, d)
  card["keras_weights"] = KERAS_WEIGHTS
  card["files"] = zoo_store.compute_checksums(d)
  atomic.write_json(d / zoo_store.CARD, card, sort_keys=False)
  zoo_store.write_card_checksum(d)                 # card.sha256 covers the new card
  zoo_store.verify(d)
  return diff


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if not argv:
    print("usage: python -m vlae_tf.pretrained.keras_weights MODEL_DIR [MODEL_DIR ...]",
          file=sys.stderr)
    return 2
  for d in argv:
    diff = add_keras_weights(d)
    print(f"{d}: wrote {KERAS_WEIGHTS}; ELBO terms equal to the SavedModel's within "
          f"{diff:.2e} (relative) on the bundled examples")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
