"""validate_config names every bad value before TensorFlow does any work (issue 22 §2).

Defect: the model's choice fields (prior, posterior, decoder context, latent
kind, likelihood) and every ``objective.*`` key were left to the layer
constructors, which raised one at a time after the distribution strategy
existed; ``train.py --config.model.prior=bogus`` imported TensorFlow, built a
strategy and died in ``VLAE.__init__``.
"""

import os

import pytest

import vlae_tf.zoo
from helpers import run_train_py
from vlae_tf import config as vconfig
from vlae_tf import encoder, gated_decoder, likelihoods, local_decoder, model


def _errors(**changes):
  """The message of ``validate_config`` for the ``mnist`` config with ``changes`` ("model.prior")."""
  cfg = vlae_tf.zoo.get_config("mnist")
  vconfig.shrink(cfg, {k.replace("__", "."): v for k, v in changes.items()})
  with pytest.raises(ValueError) as e:
    vconfig.validate_config(cfg)
  return str(e.value)


@pytest.mark.parametrize("key, value, message", [
    ("model.prior", "bogus", "model.prior must be one of ('af', 'normal'), got 'bogus'"),
    ("model.posterior", "flow", "model.posterior must be one of ('gaussian', 'iaf'), got 'flow'"),
    ("model.decoder_context", "diagonal", "model.decoder_context must be one of ('stack', "
     "'window', 'grayscale', 'full', 'none', 'gated', 'gated_full'), got 'diagonal'"),
    ("model.latent_kind", "grid", "model.latent_kind must be one of ('vector', 'spatial')"),
    ("model.likelihood", "gaussian", "model.likelihood must be one of ('bernoulli', "
     "'logistic_mixture'), got 'gaussian'"),
    ("model.decoder_kernel", 4, "model.decoder_kernel must be a positive odd int, got 4"),
    ("model.decoder_window", (1, 0), "model.decoder_window must be (A >= 1, B >= 0) reading at "
     "least one pixel"),
    ("model.prior_hidden", (64, 0), "model.prior_hidden must be a tuple of positive ints"),
    ("model.latent_dim", 0, "a vector latent needs model.latent_dim >= 1, got 0"),
    ("model.num_resolution_changes", 3, "H and W must be divisible by "
     "2**model.num_resolution_changes = 8"),
    ("model.decoder_context", "grayscale", "'grayscale' needs RGB images (3 channels)"),
    ("objective.beta", -1.0, "objective.beta must be a number >= 0, got -1.0"),
    ("objective.free_bits", float("nan"), "objective.free_bits must be a number >= 0, got nan"),
    ("objective.free_bits_groups", 0, "objective.free_bits_groups must be an int >= 1, got 0"),
    ("objective.free_bits_groups", 5, "objective.free_bits_groups=5 must divide the latent "
     "size 32"),
    ("objective.kl_warmup_steps", -1, "objective.kl_warmup_steps must be an int >= 0, got -1"),
])
def test_a_bad_model_or_objective_value_is_named(key, value, message):
  assert message in _errors(**{key.replace(".", "__"): value})


def test_every_bad_value_is_named_at_once():
  msg = _errors(model__prior="bogus", objective__beta=-1.0, train__optimizer="sgd")
  assert msg.startswith("invalid config:\n") and len(msg.splitlines()) == 4, msg
  assert "model.prior" in msg and "objective.beta" in msg and "train.optimizer" in msg


def test_the_spatial_latent_size_decides_which_free_bits_groups_divide_it():
  cfg = vlae_tf.zoo.get_config("cifar10")            # 32x32, 2 halvings, 32 channels: D = 2048
  vconfig.validate_config(cfg)
  vconfig.shrink(cfg, {"objective.free_bits_groups": 3})
  with pytest.raises(ValueError, match="free_bits_groups=3 must divide the latent size 2048"):
    vconfig.validate_config(cfg)


def test_the_allowed_values_are_those_the_layers_build():
  # config.py holds the allowed values; the layers that read them must accept exactly those.
  assert vconfig.DECODER_CONTEXTS == local_decoder.CONTEXTS + gated_decoder.CONTEXTS
  for kind in vconfig.LIKELIHOODS:
    likelihoods.make_likelihood(kind, 1)
  for prior in vconfig.PRIORS:                     # the real constructors accept every value
    cfg = vlae_tf.zoo.get_config("mnist_cpu")
    vconfig.shrink(cfg, {"model.prior": prior, "model.posterior": "iaf"})
    assert model.build_model(cfg).prior is not None


def _unchecked(key, value):
  """The ``mnist_cpu`` config with ``key`` set to ``value``, never validated."""
  cfg = vlae_tf.zoo.get_config("mnist_cpu")
  vconfig.shrink(cfg, {key: value})
  return cfg


@pytest.mark.parametrize("key, value, build", [
    ("model.likelihood", "gaussian", lambda: likelihoods.make_likelihood("gaussian", 1)),
    ("model.latent_kind", "grid", lambda: encoder.Encoder("grid", 4, 4)),
    ("model.latent_kind", "grid", lambda: encoder.Conditioning("grid", (4, 4))),
    ("model.prior", "bogus", lambda: model.VLAE(_unchecked("model.prior", "bogus"))),
    ("model.posterior", "flow", lambda: model.VLAE(_unchecked("model.posterior", "flow"))),
    ("model.decoder_context", "diagonal",
     lambda: model.VLAE(_unchecked("model.decoder_context", "diagonal"))),
])
def test_a_layer_given_a_bad_choice_says_what_validate_config_says(key, value, build):
  # Defect: each layer had its own hand-written list and wording ("unknown likelihood 'x';
  # expected 'bernoulli' or 'logistic_mixture'"); the allowed values live in config.py alone.
  with pytest.raises(ValueError) as e:
    build()
  assert str(e.value) in _errors(**{key.replace(".", "__"): value})


def test_each_decoder_refuses_the_other_decoders_contexts_from_the_same_table():
  assert local_decoder.CONTEXTS is vconfig.LOCAL_DECODER_CONTEXTS
  assert gated_decoder.CONTEXTS is vconfig.GATED_DECODER_CONTEXTS
  with pytest.raises(ValueError, match=r"^model.decoder_context must be one of \('stack', "
                                       r"'window', 'grayscale', 'full', 'none'\), got 'gated'$"):
    local_decoder.LocalDecoder("gated", (4, 4, 1), 1)
  with pytest.raises(ValueError, match=r"^model.decoder_context must be one of \('gated', "
                                       r"'gated_full'\), got 'stack'$"):
    gated_decoder.GatedDecoder("stack", (4, 4, 1), 1)
  for bad in (lambda: local_decoder.context_layers("gated", (4, 4)),
              lambda: gated_decoder.first_masks("none", (4, 4))):
    with pytest.raises(ValueError, match="^model.decoder_context must be one of"):
      bad()


def test_cpu_sizes_hold_only_what_every_cpu_config_keeps():
  # Defect: mnist_cpu and cifar10_cpu shrank with CPU_SIZES and then set half of it back.
  cpu = [n for n in vlae_tf.zoo.list_configs() if n.endswith("_cpu")]
  assert {"mnist_cpu", "cifar10_cpu"} <= set(cpu)
  for name in cpu:
    flat = vconfig.flatten(vlae_tf.zoo.get_config(name))
    assert {k: flat[k] for k in vconfig.CPU_SIZES} == vconfig.CPU_SIZES, name


@pytest.mark.slow
@pytest.mark.subprocess
def test_train_py_rejects_a_bad_value_before_importing_tensorflow(tmp_path):
  # A "tensorflow" that cannot be imported: the config error must come first.
  fake = tmp_path / "fake"
  (fake / "tensorflow").mkdir(parents=True)
  (fake / "tensorflow" / "__init__.py").write_text("raise ImportError('TensorFlow imported')\n")
  env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))}
  wd = tmp_path / "never"
  for flag, message in (("--config.model.decoder_context=diagonal", "model.decoder_context"),
                        ("--config.objective.free_bits_groups=5", "must divide the latent"),
                        ("--config.model.prior=bogus", "model.prior must be one of")):
    rc, out, err = run_train_py("--config=zoo/mnist_cpu.py", f"--workdir={wd}", flag, env=env)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and message in err, (rc, err)
    assert err.startswith("error: invalid config: ") and not wd.exists(), err
  # The fake is really in the way: a valid config reaches the TensorFlow import and fails there.
  rc, _, err = run_train_py("--config=zoo/mnist_cpu.py", f"--workdir={wd}", env=env)
  assert rc != 0 and "TensorFlow imported" in err
