"""What was written before the restructuring (issue 10) still loads and gives the same numbers.

``tests/fixtures/old_layout_run`` is a 2-step work directory written by the
pre-split training code, and ``old_layout_reference.json`` holds what that
code computed from it and from the shipped zoo SavedModels for fixed seeds
(``tests/fixtures/make_old_layout_run.py``). The current code must restore
every object of the checkpoint, store the same config keys, and reproduce the
ELBO terms, IWAE bounds, prior draws and images.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import run_train_py
from vlae_tf import config as vconfig
from vlae_tf import data, sampling, training
from vlae_tf import workdir as vwork

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
RUN = os.path.join(HERE, "old_layout_run")


@pytest.fixture(scope="module")
def ref():
  with open(os.path.join(HERE, "old_layout_reference.json")) as f:
    return json.load(f)


@pytest.fixture
def run(tmp_path):
  dst = tmp_path / "run"
  shutil.copytree(RUN, dst)
  return str(dst)


def test_old_checkpoint_restores_every_object_and_config_round_trips(run):
  cfg = vwork.read_workdir_config(run)
  state = training.TrainState(cfg)
  status = state.checkpoint.restore(vwork.latest_checkpoint(run))
  status.assert_existing_objects_matched()
  status.assert_consumed()
  assert int(state.step.numpy()) == 2
  assert set(vconfig.flatten(cfg)) == set(vconfig.flatten(vconfig.default_config()))
  vwork.check_config(cfg, run)                        # a resume would accept it
  vwork.write_config(cfg, run)                        # what a resume writes back
  assert vconfig.flatten(vwork.read_workdir_config(run)) == vconfig.flatten(cfg)
  assert cfg.train.precision == "float32"             # added later: the default, what it used


def test_a_cifar10_run_from_before_the_carved_validation_split_resumes_as_it_was(tmp_path):
  """Its config.json has data.valid_split '' (all 50,000 trained, the curve on test): so it stays.

  Today's zoo/cifar10_cpu.py asks for the carved split, which would change the run's training
  set, so resuming with it is refused, with the flag that resumes the run as it was.
  """
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  shutil.copy(os.path.join(HERE, "config_cifar10_cpu_7bdb780.json"), run_dir / vwork.CONFIG_FILE)
  stored = vwork.read_workdir_config(str(run_dir))
  assert stored.data.valid_split == ""
  vwork.check_config(stored, str(run_dir))
  assert not data.carves_valid(stored) and data.heldout_split(stored) == "test"
  carving = vwork.read_workdir_config(str(run_dir))
  carving.data.valid_split = vlae_tf.zoo.get_config("cifar10_cpu").data.valid_split
  assert data.carves_valid(carving)
  with pytest.raises(vwork.ConfigMismatch, match=r"(?s)data.valid_split: stored '', now 'valid'"
                                                 r".*--config.data.valid_split=''"):
    vwork.check_config(carving, str(run_dir))


@pytest.mark.parametrize("weights", ["ema", "raw"])
def test_old_checkpoint_gives_the_same_numbers(run, ref, weights):
  model, _, step = vwork.load_model_from_workdir(run, use_ema=weights == "ema")
  want = ref[weights]
  assert step == ref["step"]
  x = np.array(want["x"], np.uint8)
  t = model.elbo_terms(x, seed=tf.constant([1, 2], tf.int64))
  for k, v in want["elbo_terms"].items():
    np.testing.assert_allclose(t[k].numpy(), v, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(vlae_tf.iwae_nll(model, x, 5, seed=3), want["iwae_nll"], rtol=1e-5)
  z = model.sample_prior(4, seed=tf.constant([4, 5], tf.int64)).numpy()
  np.testing.assert_allclose(z, want["fast_prior"], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(z, want["sample_prior"], rtol=1e-4, atol=1e-5)   # the old tfb path
  np.testing.assert_array_equal(sampling.sample(model, 4, tf.constant([6, 7], tf.int64)).numpy(),
                                want["samples"])


@pytest.mark.slow
@pytest.mark.subprocess
def test_old_run_exports_with_the_documented_command(run, ref, tmp_path):
  """``train.py --mode=export`` packages the old run as a zoo folder that loads and agrees."""
  with open(os.path.join(run, "eval.json"), "w") as f:
    json.dump({"elbo": -1.0, "iwae_nll": 1.0, "iwae_samples": 2, "num_examples": 4,
               "step": ref["step"]}, f)
  target = tmp_path / "zoo" / "oldrun"
  rc, out, err = run_train_py(f"--workdir={run}", "--mode=export", f"--export_dir={target}",
                              "--num_examples=0", "--hardware=CI CPU", "--command=pytest")
  assert rc == 0, err[-2000:]
  assert f"wrote {target}" in out
  m = vlae_tf.zoo.load(str(target))
  assert m.card["training"]["hardware"] == "CI CPU" and m.name == "oldrun"
  x = np.array(ref["ema"]["x"], np.uint8)
  model, _, _ = vwork.load_model_from_workdir(run, use_ema=True)
  want = model.elbo_terms(x, seed=tf.constant([0, 0], tf.int64))["elbo"].numpy()
  np.testing.assert_allclose(m.log_prob(x)["elbo"], want, rtol=1e-5, atol=1e-5)
  keras_model = vlae_tf.zoo.load_keras(str(target))
  np.testing.assert_allclose(
      keras_model.elbo_terms(x, seed=tf.constant([0, 0], tf.int64))["elbo"].numpy(), want,
      rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "omniglot", "cifar10", "mnist_dynamic"])
def test_shipped_zoo_models_give_the_same_numbers(name):
  """The shipped SavedModels give what they gave when packaged (``make_zoo_reference.py``).

  Until the v2 weights (2026-11-30) this compared the v1 SavedModels, exported by the
  pre-split code, with ``old_layout_reference.json["zoo"]``; that passed on every commit up to
  d7bdd7f. The v2 models were exported by the current code, so their own record is the reference.
  """
  with open(os.path.join(HERE, "zoo_reference.json")) as f:
    want = json.load(f)[name]
  m = vlae_tf.zoo.load(name)
  x = m.examples()[:2]
  for k, v in m.log_prob(x).items():
    np.testing.assert_allclose(np.asarray(v), want["log_prob"][k], rtol=1e-6)
  for k, v in m.iwae(x, num_samples=4, seed=5).items():
    np.testing.assert_allclose(np.asarray(v), want["iwae"][k], rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(m.sample(num=2, seed=7)), want["sample"])
  np.testing.assert_array_equal(np.asarray(m.reconstruct(x, seed=3)), want["reconstruct"])
