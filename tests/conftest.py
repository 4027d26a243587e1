"""Shared fixtures: tiny configs that build in a second on 2 CPU cores."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import vlae_tf
from vlae_tf import config as vconfig


def tiny_config(context="stack", likelihood="bernoulli", image_shape=(4, 4, 1), latent_dim=3,
                prior="af", posterior="gaussian", **model_overrides):
  """A small variant of the ``mnist`` zoo config (or ``cifar10`` for RGB), by ``vlae_tf.config.shrink``."""
  rgb = image_shape[-1] == 3
  cfg = vlae_tf.zoo.get_config("cifar10" if rgb else "mnist")
  vconfig.shrink(cfg, {
      "data.dataset": "synthetic", "data.image_shape": tuple(image_shape),
      "model.likelihood": likelihood, "model.num_mixtures": 2, "model.latent_kind": "vector",
      "model.latent_dim": latent_dim, "model.latent_channels": 0,
      "model.num_resolution_changes": 0, "model.encoder_filters": 8, "model.encoder_blocks": 1,
      "model.cond_filters": 8, "model.cond_blocks": 1, "model.decoder_context": context,
      "model.decoder_layers": 2, "model.decoder_window": (3, 2), "model.decoder_filters": 8,
      "model.decoder_blocks": 1, "model.prior": prior, "model.prior_steps": 2,
      "model.prior_hidden": (16,), "model.posterior": posterior, "model.posterior_steps": 2,
      "model.posterior_hidden": (16,), "model.posterior_context": 4,
      "objective.free_bits": 0.0, "objective.free_bits_groups": 1, "train.batch_size": 8,
      **{f"model.{k}": v for k, v in model_overrides.items()}})
  return cfg


@pytest.fixture
def rng():
  return np.random.default_rng(0)
