"""Shared fixtures: tiny configs that build in a second on 2 CPU cores."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import vlae_tf


def tiny_config(context="stack", likelihood="bernoulli", image_shape=(4, 4, 1), latent_dim=3,
                prior="af", posterior="gaussian", **model_overrides):
  """A small variant of the ``mnist`` zoo config (or ``cifar10`` for RGB)."""
  rgb = image_shape[-1] == 3
  cfg = vlae_tf.zoo.get_config("cifar10" if rgb else "mnist")
  cfg.data.dataset = "synthetic"
  cfg.data.image_shape = tuple(image_shape)
  m = cfg.model
  m.likelihood = likelihood
  m.num_mixtures = 2
  m.latent_kind = "vector"
  m.latent_dim = latent_dim
  m.latent_channels = 0
  m.num_resolution_changes = 0
  m.encoder_filters = 8
  m.encoder_blocks = 1
  m.cond_filters = 8
  m.cond_blocks = 1
  m.decoder_context = context
  m.decoder_layers = 2
  m.decoder_window = (3, 2)
  m.decoder_filters = 8
  m.decoder_blocks = 1
  m.prior = prior
  m.prior_steps = 2
  m.prior_hidden = (16,)
  m.posterior = posterior
  m.posterior_steps = 2
  m.posterior_hidden = (16,)
  m.posterior_context = 4
  cfg.objective.free_bits = 0.0
  cfg.objective.free_bits_groups = 1
  cfg.train.batch_size = 8
  for k, v in model_overrides.items():
    setattr(m, k, v)
  return cfg


@pytest.fixture
def rng():
  return np.random.default_rng(0)
