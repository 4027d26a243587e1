"""Training in-process (default strategy): schedule, EMA, skipped updates, resume, eval, config checks."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers import read_metrics, train_config
from vlae_tf import training
from vlae_tf import config as vconfig
from vlae_tf import optimizer as voptim
from vlae_tf import workdir as vwork


def _all_variables(state):
  return ([v.numpy() for v in state.model.weights] + [v.numpy() for v in state.optimizer.variables]
          + [v.numpy() for v in state.ema.shadow])


# ------------------------------------------------------------------ schedule / EMA maths
def test_learning_rate_schedule():
  t = train_config().train
  t.steps, t.warmup_steps, t.learning_rate, t.min_learning_rate = 110, 10, 1e-2, 1e-4
  lr = lambda s: float(voptim.learning_rate(s, t))  # noqa: E731
  assert lr(0) == pytest.approx(1e-3) and lr(4) == pytest.approx(5e-3)   # (t + 1) / W
  t.decay = "cosine"
  assert lr(10) == pytest.approx(1e-2) and lr(110) == pytest.approx(1e-4)
  assert lr(60) == pytest.approx(1e-4 + (1e-2 - 1e-4) / 2)               # half way: mean
  t.decay = "exponential"
  assert lr(60) == pytest.approx(math.sqrt(1e-2 * 1e-4))                 # geometric mean
  assert lr(110) == pytest.approx(1e-4)
  t.decay = "constant"
  assert lr(100) == pytest.approx(1e-2)


def test_ema_update_and_swap():
  v = tf.Variable([2.0, 4.0])
  ema = voptim.EMA([v], decay=0.5)
  v.assign([4.0, 8.0])
  ema.update(num_updates=1000)                       # d = min(0.5, 1001/1010) = 0.5
  np.testing.assert_allclose(ema.shadow[0].numpy(), [3.0, 6.0])
  ema.update(num_updates=0)                          # d = min(0.5, 1/10) = 0.1
  np.testing.assert_allclose(ema.shadow[0].numpy(), [0.1 * 3 + 0.9 * 4, 0.1 * 6 + 0.9 * 8])
  with ema.swapped():
    np.testing.assert_allclose(v.numpy(), ema.shadow[0].numpy())
  np.testing.assert_array_equal(v.numpy(), [4.0, 8.0])


# ------------------------------------------------------------------ one step
@pytest.mark.slow
def test_step_matches_model_loss_and_clips():
  cfg = train_config(grad_clip_norm=1e-3, warmup_steps=0, optimizer="adam")
  state = training.TrainState(cfg)
  step_fn = training.make_train_step(state)
  x = tf.constant(np.random.default_rng(0).integers(0, 2, (8, 4, 4, 1)), tf.uint8)
  eps = tf.random.stateless_normal(
      [8, state.model.latent_size],
      tf.random.experimental.stateless_fold_in(tf.constant([0, 303], tf.int64),  # seed 0, the
                                                 tf.constant(0, tf.int64)))       # noise tag
  with tf.GradientTape() as tape:
    expected, _ = state.model.training_loss(x, 0, eps=eps)
  grads = tape.gradient(expected, state.model.trainable_variables)
  norm = float(tf.linalg.global_norm(grads))
  m = step_fn(x, tf.constant(1.0))
  assert float(m["loss"]) == pytest.approx(float(expected), rel=1e-5)
  assert float(m["grad_norm"]) == pytest.approx(norm, rel=1e-4)
  assert bool(m["finite"]) and int(state.step.numpy()) == 1 and norm > 1e-2
  # Adam's first moment after one step is (1 - beta_1) * g_clipped, g_clipped = g * c / |g|.
  momenta = state.optimizer._momentums
  assert len(momenta) == len(grads)
  for mom, g in zip(momenta, grads):
    np.testing.assert_allclose(mom.numpy(), 0.1 * g.numpy() * 1e-3 / norm, rtol=1e-3, atol=1e-12)


def test_non_finite_step_changes_nothing():
  cfg = train_config()
  state = training.TrainState(cfg)
  step_fn = training.make_train_step(state)
  x = tf.constant(np.random.default_rng(0).integers(0, 2, (8, 4, 4, 1)), tf.uint8)
  step_fn(x, tf.constant(1.0))
  before = _all_variables(state)
  m = step_fn(x, tf.constant(float("nan")))           # poisoned after the input checks
  assert not bool(m["finite"])
  for a, b in zip(before, _all_variables(state)):
    np.testing.assert_array_equal(a, b)
  assert int(state.step.numpy()) == 2 and int(state.skipped.numpy()) == 1
  step_fn(x, tf.constant(1.0))
  assert any(not np.array_equal(a, b) for a, b in zip(before, _all_variables(state)))


# ------------------------------------------------------------------ runs
@pytest.mark.slow
def test_train_resume_eval_end_to_end(tmp_path):
  wd = str(tmp_path / "run")
  cfg = train_config(steps=6)
  out = training.train(cfg, wd)
  assert out["step"] == 6 and out["skipped_steps"] == 0
  assert sorted(os.listdir(os.path.join(wd, "checkpoints")))[:2] == ["checkpoint", "ckpt-3.data-00000-of-00001"]
  assert vwork.latest_checkpoint(wd).endswith("ckpt-6")
  assert [r["step"] for r in read_metrics(wd)] == list(range(1, 7))
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(wd, "tensorboard")))
  # Extend the run: resumes at 6, only train.steps changed.
  cfg.train.steps = 8
  out = training.train(cfg, wd)
  assert out["trained_steps"] == 2 and out["step"] == 8
  assert [r["step"] for r in read_metrics(wd)][-2:] == [7, 8]
  model, stored, step = vwork.load_model_from_workdir(wd)
  assert step == 8 and stored.train.steps == 8 and tuple(stored.data.image_shape) == (4, 4, 1)
  # The loaded model holds the EMA weights.
  state = training.TrainState(cfg)
  state.checkpoint.restore(vwork.latest_checkpoint(wd))
  for w, s in zip(model.trainable_variables, state.ema.shadow):
    np.testing.assert_array_equal(w.numpy(), s.numpy())
  result = vwork.evaluate_workdir(wd, iwae_samples=3, num_examples=10)
  with open(os.path.join(wd, "eval.json")) as f:
    on_disk = json.load(f)
  assert on_disk["step"] == 8 and on_disk["iwae_samples"] == 3 and on_disk["num_examples"] == 10
  assert on_disk == json.loads(json.dumps(result))
  # IWAE with k = 3 is a tighter bound than the ELBO on average (up to MC noise).
  assert on_disk["iwae_nll"] <= -on_disk["elbo"] + 0.5
  for key in ("bits_per_dim", "active_units", "mutual_information", "wall_time_s"):
    assert key in on_disk


@pytest.mark.slow
def test_consecutive_non_finite_steps_stop_the_run(tmp_path):
  wd = str(tmp_path / "run")
  cfg = train_config(steps=20, checkpoint_every=2, max_consecutive_skips=3)
  # fault_hook(t) poisons the update from step t to t + 1: steps 2, 5, 6, 7 are non-finite.
  with pytest.raises(training.TrainingError, match="3 consecutive non-finite.*step 7.*ckpt-6"):
    training.train(cfg, wd, fault_hook=lambda step: step >= 4 or step == 1)
  assert vwork.latest_checkpoint(wd).endswith("ckpt-6")   # nothing written after the error
  assert [r["skipped_steps"] for r in read_metrics(wd)] == [0, 1, 1, 1, 2, 3]
  # Skipped steps 5 and 6 changed no weight: checkpoint 6 holds checkpoint 4's weights.
  r4 = tf.train.load_checkpoint(os.path.join(wd, "checkpoints", "ckpt-4"))
  r6 = tf.train.load_checkpoint(os.path.join(wd, "checkpoints", "ckpt-6"))
  names = [n for n in r4.get_variable_to_shape_map() if "model" in n or "ema" in n or "optimizer" in n]
  assert len(names) > 10
  for n in names:
    np.testing.assert_array_equal(r4.get_tensor(n), r6.get_tensor(n))


def test_bad_configs_fail_with_a_message(tmp_path):
  cfg = train_config()
  cfg.train.optimizer = "sgd"
  cfg.train.learning_rate = -1.0
  with pytest.raises(ValueError, match=r"(?s)train.optimizer.*train.learning_rate must be > 0"):
    vconfig.validate_config(cfg)
  cfg = train_config()
  cfg.data.binarization = "none"
  with pytest.raises(ValueError, match="bernoulli likelihood needs binary data"):
    vconfig.validate_config(cfg)
  cfg = train_config()
  cfg.data.dataset = "mnist"
  with pytest.raises(ValueError, match=r"image_shape \(4, 4, 1\) does not match"):
    vconfig.validate_config(cfg)
  cfg = train_config()
  with cfg.unlocked():
    cfg.train.stpes = 3
  with pytest.raises(ValueError, match="unknown key train.stpes"):
    vconfig.validate_config(cfg)
  cfg = train_config()
  cfg.train.batch_size = 0
  with pytest.raises(ValueError, match="train.batch_size must be an int >= 1"):
    training.train(cfg, str(tmp_path / "never"))
  assert not os.path.exists(tmp_path / "never")


def test_workdir_of_another_config_is_refused(tmp_path):
  wd = str(tmp_path / "run")
  cfg = train_config()
  vwork.check_config(cfg, wd)         # what training.train does first
  vwork.write_config(cfg, wd)
  cfg.train.steps = 1000              # allowed: extends the run
  cfg.eval.iwae_samples = 7
  vwork.check_config(cfg, wd)
  cfg.model.latent_dim = 5
  cfg.train.learning_rate = 0.5
  with pytest.raises(ValueError, match=r"(?s)different config.*model.latent_dim: stored 3, now 5"
                                       r".*train.learning_rate"):
    vwork.check_config(cfg, wd)
  with pytest.raises(ValueError, match="different config"):
    training.train(cfg, wd)
  with pytest.raises(FileNotFoundError, match="not a training work directory"):
    vwork.load_model_from_workdir(str(tmp_path / "nothing"))


@pytest.mark.slow
def test_train_and_eval_on_tfds_mock_data(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  wd = str(tmp_path / "run")
  cfg = train_config(steps=2)
  cfg.data.dataset = "mnist"
  cfg.data.source = "tfds"
  cfg.data.binarization = "dynamic"
  cfg.data.valid_split = ""
  cfg.data.image_shape = (28, 28, 1)
  cfg.eval.num_images = 0
  cfg.eval.periodic_examples = 8
  with tfds.testing.mock_data(num_examples=16):
    out = training.train(cfg, wd)
    result = vwork.evaluate_workdir(wd, iwae_samples=2, num_examples=8)
  assert out["step"] == 2 and np.isfinite(read_metrics(wd)[-1]["elbo"])
  assert result["num_examples"] == 8 and result["step"] == 2 and result["dataset"] == "mnist"
  assert np.isfinite(result["iwae_nll"]) and result["iwae_nll"] > 0


def test_every_zoo_config_is_a_valid_run_config():
  import vlae_tf
  for name in vlae_tf.zoo.list_configs():
    vconfig.validate_config(vlae_tf.zoo.get_config(name))   # raises naming the bad key
