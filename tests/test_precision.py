"""``train.precision = "bfloat16"``: bf16 compute where it is cheap, float32 where the maths is.

Mixed precision must change the speed and nothing a user keeps: variables,
checkpoints and every number the model reports are float32; the likelihood,
the prior and the KL are computed in float32; a bf16 checkpoint evaluates in a
float32 model; ``--deterministic`` runs are bitwise reproducible in bf16 too.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import tiny_config
from vlae_tf import sampling, training
from vlae_tf import workdir as vwork

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _x(model, n=4, seed=0):
  return (np.random.default_rng(seed).random((n,) + model.image_shape) < 0.4).astype(np.float32)


@pytest.mark.parametrize("context", ["stack", "gated"])
def test_bf16_computes_the_networks_in_bf16_and_the_maths_in_float32(context):
  cfg = tiny_config(context=context, image_shape=(6, 6, 1))
  model = vlae_tf.build_model(cfg, "bfloat16")
  assert model.decoder.compute_dtype == "bfloat16" and model.encoder.compute_dtype == "bfloat16"
  assert model.conditioning.compute_dtype == "bfloat16"
  assert model.prior.compute_dtype == "float32"
  assert all(v.dtype == "float32" for v in model.variables)
  x = _x(model)
  raw = model.decoder_raw(x, tf.zeros([4, model.latent_size]))
  mu, sigma, _ = model.encode(x)
  assert raw.dtype == mu.dtype == sigma.dtype == tf.float32
  terms = model.elbo_terms(x, seed=tf.constant([1, 2]))
  assert all(t.dtype == tf.float32 for t in terms.values())
  # The same weights in a float32 model give nearly the same numbers (bf16 has 8 mantissa bits).
  ref = vlae_tf.build_model(cfg, "float32")
  ref.set_weights(model.get_weights())
  full = ref.elbo_terms(x, seed=tf.constant([1, 2]))
  np.testing.assert_allclose(terms["elbo"].numpy(), full["elbo"].numpy(), rtol=0.05)
  assert not np.array_equal(terms["elbo"].numpy(), full["elbo"].numpy())  # really bf16


@pytest.mark.parametrize("context,likelihood,shape", [("stack", "bernoulli", (5, 5, 1)),
                                                      ("gated", "bernoulli", (5, 5, 1)),
                                                      ("gated", "logistic_mixture", (4, 4, 3))])
def test_a_bf16_model_samples_with_the_cached_sampler(context, likelihood, shape):
  """The periodic image summaries of a bf16 run sample from the bf16 model: the cached programs
  take its bf16 projections of z into float32 (before: AddV2 of bfloat16 and float32)."""
  cfg = tiny_config(context=context, likelihood=likelihood, image_shape=shape)
  model = vlae_tf.build_model(cfg, "bfloat16")
  z = model.sample_prior(3, seed=tf.constant([0, 1], tf.int64))
  seed = tf.constant([0, 2], tf.int64)
  x = sampling.sample_x_given_z(model, z, seed=seed)
  assert x.dtype == tf.float32 and x.shape == (3,) + shape
  np.testing.assert_array_equal(x, sampling.sample_x_given_z(model, z, seed=seed))
  if likelihood == "bernoulli":
    assert set(np.unique(x.numpy())) <= {0.0, 1.0}


def test_the_global_dtype_policy_is_left_as_it_was():
  import keras
  before = keras.config.dtype_policy().name
  vlae_tf.build_model(tiny_config(), "bfloat16")
  assert keras.config.dtype_policy().name == before
  with pytest.raises(ValueError, match="precision must be one of"):
    vlae_tf.build_model(tiny_config(), "float16")


def test_bad_precision_in_a_config_is_named():
  cfg = tiny_config()
  cfg.train.precision = "fp8"
  with pytest.raises(ValueError, match="train.precision must be one of"):
    vlae_tf.config.validate_config(cfg)


@pytest.mark.slow
def test_a_bf16_run_trains_and_its_checkpoint_evaluates_in_float32(tmp_path):
  cfg = tiny_config(context="gated", image_shape=(6, 6, 1))
  cfg.train.precision = "bfloat16"
  cfg.train.steps, cfg.train.log_every, cfg.train.eval_every = 6, 3, 0
  cfg.eval.periodic_examples, cfg.eval.num_images = 0, 0
  run = str(tmp_path / "run")
  out = training.train(cfg, run)
  assert out["step"] == 6 and out["skipped_steps"] == 0
  model, config, step = vwork.load_model_from_workdir(run)
  assert step == 6 and config.train.precision == "bfloat16"
  assert model.decoder.compute_dtype == "float32"          # evaluation is float32
  elbo = model.elbo_terms(_x(model))["elbo"].numpy()
  assert np.all(np.isfinite(elbo))
  # precision may change between pieces of one run (the variables are the same)
  cfg.train.precision, cfg.train.steps = "float32", 8
  assert training.train(cfg, run)["step"] == 8


def _checkpoint(run):
  reader = tf.train.load_checkpoint(vwork.latest_checkpoint(run))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


@pytest.mark.slow
@pytest.mark.subprocess
def test_deterministic_bf16_runs_are_bitwise_identical(tmp_path):
  # The shipped mnist's recipe (mnist_gated_cpu in bf16) at batch 8 for 2 steps: each process
  # spends ~12 s of CPU starting and ~2.5 s per step of 16. (On the 2-core AMD EPYC, two runs
  # without --deterministic agreed bitwise at this size and at batch 16 for 3 steps alike, so the
  # larger run found nothing more: what this checks is the flag's path in bf16, seeds and data
  # order included, not a kernel's rounding.)
  flags = ["--config=zoo/mnist_gated_cpu.py", "--config.data.dataset=synthetic",
           "--config.train.batch_size=8", "--config.train.steps=2",
           "--config.train.warmup_steps=1", "--config.train.eval_every=0",
           "--config.eval.periodic_examples=0", "--config.eval.num_images=0",
           "--config.train.precision=bfloat16", "--deterministic"]
  procs = [subprocess.Popen([sys.executable, "train.py", f"--workdir={tmp_path / r}", *flags],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
           for r in ("a", "b")]
  for p in procs:
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
  a, b = _checkpoint(str(tmp_path / "a")), _checkpoint(str(tmp_path / "b"))
  assert len(a) > 50 and set(a) == set(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
