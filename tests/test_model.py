"""The assembled VLAE: every zoo config builds, the ELBO is assembled correctly, training lowers the loss.

ELBO for one z ~ q(z|x) (reparameterized ``z0 = mu + sigma eps``, optionally
``z = IAF(z0)``)::

    rate       = log N(eps) - sum log sigma - sum log|dz/dz0| - log p(z)
    distortion = -log p(x|z)
    elbo       = -(rate + distortion),  bits/dim = -elbo / (H W C log 2)

recomputed here from the model's parts with the same stateless seed and
compared with ``elbo_terms``.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from vlae_tf import config as vconfig
from vlae_tf import masked_conv as mc
from vlae_tf.af_prior import AFPrior, StandardNormalPrior
from vlae_tf.likelihoods import Bernoulli, DiscretizedLogisticMixture
from helpers import adam_step_fn, exact_log_px, tiny_config


def _shrunk(name):
  """A zoo config with every width cut down; structure (shapes, contexts, likelihood) untouched."""
  cfg = vlae_tf.zoo.get_config(name)
  vconfig.shrink(cfg, {
      "model.encoder_filters": 4, "model.cond_filters": 4, "model.decoder_filters": 4,
      "model.encoder_blocks": 1, "model.cond_blocks": 1,
      "model.decoder_blocks": min(cfg.model.decoder_blocks, 1), "model.prior_hidden": (8,),
      "model.posterior_hidden": (8,), "model.posterior_context": 4, "model.num_mixtures": 2})
  return cfg


@pytest.mark.parametrize("name", vlae_tf.zoo.list_configs())
def test_every_zoo_config_builds_and_runs(name):
  cfg = _shrunk(name)
  model = vlae_tf.build_model(cfg)
  m, d = cfg.model, cfg.data
  h, w, c = d.image_shape
  assert model.image_shape == (h, w, c)
  assert model.decoder.context == m.decoder_context
  lik = {"bernoulli": Bernoulli, "logistic_mixture": DiscretizedLogisticMixture}[m.likelihood]
  assert isinstance(model.likelihood, lik)
  assert isinstance(model.prior, {"af": AFPrior, "normal": StandardNormalPrior}[m.prior])
  n = m.num_resolution_changes
  want_latent = (m.latent_dim if m.latent_kind == "vector"
                 else (h // 2 ** n) * (w // 2 ** n) * m.latent_channels)
  assert model.latent_size == want_latent
  if m.decoder_context in ("window", "grayscale"):
    mask, anchor = model.decoder.geometry[0]
    want_mask, want_anchor = mc.window_mask(*m.decoder_window)
    np.testing.assert_array_equal(mask, want_mask)
    assert anchor == want_anchor and len(model.decoder.geometry) == 1
  if m.decoder_context == "stack":
    assert len(model.decoder.geometry) == m.decoder_layers
  # The training loss (free-bits groups must divide the latent size); build() ran elbo_terms.
  x = np.random.default_rng(0).integers(0, model.num_levels, (2, h, w, c)).astype(np.uint8)
  loss, metrics = model.training_loss(x, 0, tf.constant([0, 1], tf.int64))
  assert np.isfinite(float(loss))
  for k in ("elbo", "rate", "distortion"):
    assert metrics[k].shape == (2,) and np.all(np.isfinite(metrics[k].numpy())), k
  assert metrics["rate_per_dim"].shape == (2, model.latent_size)


def _reference_terms(model, x, seed=None, eps=None):
  """ELBO terms recomputed from encode / posterior flow / prior / decoder with the same noise."""
  x_f = tf.cast(tf.constant(x), tf.float32)
  mu, sigma, context = model.encode(x_f)
  if eps is None:
    eps = tf.random.stateless_normal(tf.shape(mu), seed)
  z0 = mu + sigma * eps
  log_q = tf.reduce_sum(-0.5 * eps ** 2 - 0.5 * math.log(2 * math.pi) - tf.math.log(sigma), -1)
  if model.posterior_flow is not None:
    with tf.GradientTape() as tape:
      tape.watch(z0)
      z, _ = model.posterior_flow.forward(z0, context)
    log_q -= np.linalg.slogdet(tape.batch_jacobian(z, z0).numpy().astype(np.float64))[1]
  else:
    z = z0
  rate = log_q - model.prior.log_prob(z)
  dist = -model.likelihood.log_prob(model.decoder_raw(x_f, z), x_f)
  return rate.numpy(), dist.numpy()


@pytest.mark.parametrize("kw", [
    dict(context="stack", prior="af"),
    dict(context="window", prior="normal", posterior="iaf"),
    dict(context="none", prior="af", posterior="iaf"),
    dict(context="window", image_shape=(4, 4, 3), likelihood="logistic_mixture", prior="af"),
])
def test_elbo_terms_are_rate_plus_distortion(kw):
  model = vlae_tf.build_model(tiny_config(latent_dim=4, **kw))
  h, w, c = model.image_shape
  x = np.random.default_rng(1).integers(0, model.num_levels, (3, h, w, c)).astype(np.uint8)
  seed = tf.constant([7, 3], tf.int64)
  t = {k: v.numpy() for k, v in model.elbo_terms(x, seed=seed).items()}
  np.testing.assert_allclose(t["elbo"], -(t["rate"] + t["distortion"]), rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(t["bits_per_dim"], -t["elbo"] / (h * w * c * math.log(2)), rtol=1e-6)
  rate, dist = _reference_terms(model, x, seed)
  np.testing.assert_allclose(t["rate"], rate, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(t["distortion"], dist, rtol=1e-5, atol=1e-4)
  # Per-dimension rates of the training loss add up to the rate.
  _, m = model.training_loss(x, 0, seed)
  np.testing.assert_allclose(m["rate_per_dim"].numpy().sum(-1), t["rate"], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(m["elbo"].numpy(), t["elbo"], rtol=1e-6, atol=1e-5)
  # Importance log-weights log p(x, z_s) - log q(z_s|x) for s = 1..3, same noise layout [S, B, D].
  log_w = model.log_weights(tf.cast(x, tf.float32), 3, seed).numpy()
  eps = tf.random.stateless_normal([3, len(x), model.latent_size], seed)
  for s in range(3):
    r, dd = _reference_terms(model, x, eps=eps[s])
    np.testing.assert_allclose(log_w[s], -(r + dd), rtol=1e-4, atol=2e-4)
  # The same seed reproduces; another one does not.
  again = model.elbo_terms(x, seed=seed)["elbo"].numpy()
  np.testing.assert_array_equal(again, t["elbo"])
  other = model.elbo_terms(x, seed=tf.constant([8, 3], tf.int64))["elbo"].numpy()
  assert np.any(other != t["elbo"])


def test_elbo_is_below_exact_log_likelihood_on_average():
  """E_q[ELBO] <= log p(x): averaged over many z, the ELBO of a 1-D latent model stays below quadrature."""
  model = vlae_tf.build_model(tiny_config(context="stack", image_shape=(2, 2, 1), latent_dim=1,
                                          prior="normal", decoder_layers=1))
  x = np.array([[[[1], [0]], [[0], [1]]], [[[1], [1]], [[1], [1]]]], np.float32)
  # log_weights are one-sample ELBOs; their mean over 4000 z is E_q[ELBO] (MC error ~0.01).
  log_w = model.log_weights(tf.constant(x), 4000, tf.constant([0, 0], tf.int64)).numpy()
  one = model.elbo_terms(x, seed=tf.constant([5, 5], tf.int64))["elbo"].numpy()
  assert np.all(np.isfinite(one))
  assert np.all(log_w.mean(0) <= exact_log_px(model, x) + 0.01)
  assert np.all(log_w.max(0) > log_w.mean(0))     # the bound is loose for single z


@pytest.mark.slow
def test_adam_steps_reduce_the_loss():
  keras.utils.set_random_seed(0)
  model = vlae_tf.build_model(tiny_config(context="stack", image_shape=(4, 4, 1), latent_dim=2))
  rng = np.random.default_rng(0)
  protos = (rng.random((3, 4, 4, 1)) < 0.5).astype(np.float32)
  data = protos[rng.integers(0, 3, 64)]
  step = adam_step_fn(model, 1e-2)

  def eval_nll():
    return -np.mean([model.elbo_terms(data, seed=tf.constant([99, s], tf.int64))["elbo"].numpy()
                     for s in range(4)])

  before = eval_nll()
  for i in range(60):
    step(tf.constant(data[(i * 16) % 64:(i * 16) % 64 + 16]), tf.constant([0, i]))
  after = eval_nll()
  # 16 binary pixels at ~log 2 each is ~11 nats; three prototypes can be learned to ~log 3.
  assert after < before - 3.0, (before, after)


def test_model_call_and_sample_prior_shapes():
  model = vlae_tf.build_model(tiny_config(latent_dim=3))
  x = np.zeros((2, 4, 4, 1), np.uint8)
  out = model(x)
  assert set(out) >= {"elbo", "rate", "distortion", "bits_per_dim"}
  z = model.sample_prior(5, seed=tf.constant([1, 2]))
  assert z.shape == (5, 3)
  # Temperature scales the base noise: at 0 every sample is f(0).
  z0 = model.sample_prior(3, seed=tf.constant([3, 4]), temperature=0.0).numpy()
  np.testing.assert_allclose(z0, np.repeat(model.prior.sample_from_noise(tf.zeros((1, 3))).numpy(),
                                           3, 0), atol=1e-6)
