"""The IWAE bound against an exact log-likelihood computed by quadrature.

A VLAE with a one-dimensional latent and a standard normal prior has::

    log p(x) = log integral p(x|z) N(z; 0, 1) dz

which the trapezoid rule on a dense grid over [-10, 10] computes to ~1e-6. The
model is trained for a few hundred steps on 3x3 binary images drawn from three
noisy prototypes, so that z matters (the ELBO is ~0.25 nats below log p(x))
and the encoder is a reasonable proposal. Then

* ``iwae_nll(k=4096)`` is within 0.05 nats of ``-log p(x)`` per example (a
  missing ``log k`` would be off by 8.3 nats; the ELBO is off by ~0.25);
* ``-L_k`` decreases with k (1, 10, 100, 1000) on average and stays above
  ``-log p(x)`` (up to Monte-Carlo error);
* the chunk size does not change the estimate beyond Monte-Carlo error, and a
  fixed seed makes it reproducible.
"""

import functools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import adam_step_fn, exact_log_px, tiny_config

# Every test needs the two models trained for 200 steps (cached once per process).
pytestmark = pytest.mark.slow

PROTOTYPES = np.array([[1, 1, 1, 0, 0, 0, 1, 1, 1],
                       [0, 1, 0, 0, 1, 0, 0, 1, 0],
                       [1, 0, 0, 0, 1, 0, 0, 0, 1]], np.float32).reshape(3, 3, 3, 1)


def _data(rng, n, flip=0.1):
  x = PROTOTYPES[rng.integers(0, 3, n)]
  return np.abs(x - (rng.random(x.shape) < flip)).astype(np.float32)


def _train(model, rng, steps, lr=1e-2):
  step = adam_step_fn(model, lr)
  for i in range(steps):
    step(tf.constant(_data(rng, 32)), tf.constant([0, i]))


@functools.lru_cache(maxsize=None)
def _trained(context):
  keras.utils.set_random_seed(0)
  cfg = tiny_config(context=context, image_shape=(3, 3, 1), latent_dim=1, prior="normal",
                    decoder_layers=1)
  model = vlae_tf.build_model(cfg)
  rng = np.random.default_rng(0)
  _train(model, rng, 200)
  x = _data(rng, 8)
  return model, x, exact_log_px(model, x)


@pytest.fixture(params=["none", "stack"])
def trained_any(request):
  """Factorized and autoregressive (1-layer PixelCNN) decoders."""
  return _trained(request.param)


@pytest.fixture
def trained():
  """The factorized decoder, whose ELBO gap is largest (~0.25 nats)."""
  return _trained("none")


def test_quadrature_is_converged(trained_any):
  model, x, log_px = trained_any
  np.testing.assert_allclose(exact_log_px(model, x[:2], lim=14.0, num=8001), log_px[:2], atol=1e-4)


def test_iwae_4096_matches_exact_log_likelihood(trained_any):
  model, x, log_px = trained_any
  nll = vlae_tf.iwae_nll(model, x, num_samples=4096, seed=1)
  assert nll.shape == (len(x),)
  np.testing.assert_allclose(nll, -log_px, atol=0.05)
  assert abs(np.mean(nll + log_px)) < 0.02
  # The check is sharp: the ELBO is clearly worse than log p(x) here.
  elbo_nll = np.mean([vlae_tf.iwae_nll(model, x, 1, seed=s) for s in range(100)], 0)
  assert np.mean(elbo_nll + log_px) > 0.06     # ~0.25 (none), ~0.09 (stack); tolerance 0.02


def test_iwae_bound_tightens_with_k(trained):
  model, x, log_px = trained
  ks = [1, 10, 100, 1000]
  means, ses = [], []
  for k in ks:
    reps = {1: 200, 10: 40}.get(k, 10)     # -log w is heavy tailed: small k needs many repeats
    v = np.array([vlae_tf.iwae_nll(model, x, k, seed=100 + r).mean() for r in range(reps)])
    means.append(v.mean())
    ses.append(v.std(ddof=1) / math.sqrt(reps))
  exact = -log_px.mean()
  for a in range(len(ks) - 1):
    tol = 3 * math.hypot(ses[a], ses[a + 1])
    assert means[a + 1] <= means[a] + tol, (ks, means, ses)
  assert means[0] - means[2] > 0.1, means        # ELBO (k=1) is far looser than k=100
  for m, se in zip(means, ses):
    assert m >= exact - 3 * se - 1e-3, (means, exact)   # every L_k <= log p(x)


def test_chunking_does_not_change_the_estimate(trained):
  model, x, log_px = trained
  k, reps = 210, 3
  est = {}
  for chunk in (7, 64, 300):
    est[chunk] = np.array([vlae_tf.iwae_nll(model, x, k, chunk_size=chunk, seed=r).mean()
                           for r in range(reps)])
  for chunk, v in est.items():
    assert abs(v.mean() + log_px.mean()) < 0.03, (chunk, v, -log_px.mean())
  # Same seed, same chunking: identical.
  a = vlae_tf.iwae_nll(model, x, 50, chunk_size=16, seed=3)
  b = vlae_tf.iwae_nll(model, x, 50, chunk_size=16, seed=3)
  np.testing.assert_array_equal(a, b)
