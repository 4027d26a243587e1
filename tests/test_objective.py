"""The training objective (beta, free bits, KL warm-up) and the latent diagnostics.

loss = E_x[distortion] + beta_t * sum_g max(E_x[rate_g], lambda),
beta_t = beta * min(1, step / warmup_steps).

* Free bits: a group whose batch-mean rate is below lambda contributes a
  constant, so the gradient of the loss equals the gradient of the distortion
  alone; above lambda the rate's gradient is back.
* beta scales exactly the rate's share of the gradient.
* Active units count ``Var_x(E_q[z_u]) > 0.01``; the minibatch I(x; z) of
  Gaussian posteriors is 0 for identical posteriors, log N for disjoint ones,
  and ``0.5 log(1 + a^2 / s^2)`` per dimension for ``x ~ N(0, 1)``,
  ``q(z|x) = N(a x, s^2)``.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import tiny_config
from vlae_tf import objective
from vlae_tf.evaluation import active_units, mutual_information

SEED = tf.constant([4, 2], tf.int64)


@pytest.fixture(scope="module")
def model_and_x():
  cfg = tiny_config(context="stack", image_shape=(4, 4, 1), latent_dim=4, prior="af")
  model = vlae_tf.build_model(cfg)
  x = (np.random.default_rng(0).random((8, 4, 4, 1)) < 0.4).astype(np.uint8)
  return model, x


def _grads(model, x, step=0, **attrs):
  """Gradients of the loss and of the mean distortion (same z), for all trainable variables."""
  saved = {k: getattr(model, k) for k in attrs}
  for k, v in attrs.items():
    setattr(model, k, v)
  try:
    with tf.GradientTape(persistent=True) as tape:
      loss, metrics = model.training_loss(x, step, SEED)
      dist = tf.reduce_mean(metrics["distortion"])
    variables = model.trainable_variables
    tf_vars = [v.value for v in variables]      # the backing tf.Variables of the Keras variables
    zero = tf.UnconnectedGradients.ZERO
    g_loss = tape.gradient(loss, tf_vars, unconnected_gradients=zero)
    g_dist = tape.gradient(dist, tf_vars, unconnected_gradients=zero)
  finally:
    for k, v in saved.items():
      setattr(model, k, v)
  names = [_owner(model, v) + ":" + v.path for v in variables]
  return ({n: g.numpy() for n, g in zip(names, g_loss)},
          {n: g.numpy() for n, g in zip(names, g_dist)}, loss, metrics)


def _owner(model, var):
  for part in ("encoder", "conditioning", "decoder", "prior"):
    if any(var is w for w in getattr(model, part).trainable_variables):
      return part
  return "other"


def _rate_part(g_loss, g_dist, prefix=""):
  return {n: g_loss[n] - g_dist[n] for n in g_loss if n.startswith(prefix)}


def _max_abs(d):
  return max(float(np.abs(v).max()) for v in d.values())


def test_free_bits_below_lambda_gives_the_rate_no_gradient(model_and_x):
  model, x = model_and_x
  g_loss, g_dist, _, m = _grads(model, x, free_bits=1e3, free_bits_groups=1)
  assert float(tf.reduce_mean(m["rate"])) < 1e3
  rate_part = _rate_part(g_loss, g_dist)
  assert _max_abs(rate_part) == 0.0
  # The prior (reached only through the rate) gets no gradient at all.
  assert _max_abs({n: g for n, g in g_loss.items() if n.startswith("prior")}) == 0.0


def test_free_bits_above_lambda_keeps_the_rate_gradient(model_and_x):
  model, x = model_and_x
  g_loss, g_dist, _, m = _grads(model, x, free_bits=1e-4, free_bits_groups=1)
  assert float(tf.reduce_mean(m["rate"])) > 1e-4
  assert _max_abs(_rate_part(g_loss, g_dist, "encoder")) > 1e-4
  # With lambda below the rate, free bits change nothing: same as no free bits.
  g_plain, _, _, _ = _grads(model, x, free_bits=0.0, free_bits_groups=1)
  for n in g_loss:
    np.testing.assert_allclose(g_loss[n], g_plain[n], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("free_bits", [0.0, 1e-4])
def test_beta_scales_the_rate_gradient(model_and_x, free_bits):
  model, x = model_and_x
  g1, d1, _, _ = _grads(model, x, beta=1.0, free_bits=free_bits)
  g2, d2, _, _ = _grads(model, x, beta=2.0, free_bits=free_bits)
  g0, d0, _, _ = _grads(model, x, beta=0.0, free_bits=free_bits)
  r1, r2 = _rate_part(g1, d1), _rate_part(g2, d2)
  assert _max_abs(r1) > 1e-4
  for n in r1:
    np.testing.assert_array_equal(d1[n], d2[n])               # same z: same distortion
    np.testing.assert_allclose(r2[n], 2.0 * r1[n], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g0[n], d0[n], rtol=1e-5, atol=1e-7)   # beta = 0: distortion only


def test_loss_value_is_distortion_plus_beta_rate(model_and_x):
  model, x = model_and_x
  for beta, fb in [(1.0, 0.0), (0.5, 0.0), (1.0, 1e3)]:
    saved = (model.beta, model.free_bits, model.free_bits_groups)
    model.beta, model.free_bits, model.free_bits_groups = beta, fb, 2
    try:
      loss, m = model.training_loss(x, 0, SEED)
    finally:
      model.beta, model.free_bits, model.free_bits_groups = saved
    rpd = m["rate_per_dim"].numpy()
    groups = rpd.reshape(len(x), 2, -1).sum(-1).mean(0)
    want = m["distortion"].numpy().mean() + beta * np.maximum(groups, fb).sum()
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(m["elbo"].numpy(), -(m["distortion"] + m["rate"]).numpy(), rtol=1e-6)


def test_free_bits_per_group_gradients():
  """Group 0's mean rate is below lambda, group 1's above: only group 1 gets gradient."""
  rate = tf.Variable(np.array([[0.1, 0.1, 2.0, 1.0],
                               [0.3, -0.2, 1.5, 0.5],
                               [0.0, 0.2, 1.0, 1.0]], np.float32))
  dist = tf.constant([10.0, 11.0, 12.0])
  with tf.GradientTape() as tape:
    loss = objective.training_loss(dist, rate, beta_t=1.5, free_bits=0.5, num_groups=2)
  g = tape.gradient(loss, rate).numpy()
  np.testing.assert_array_equal(g[:, :2], 0.0)
  np.testing.assert_allclose(g[:, 2:], 1.5 / 3)
  # group means: 0.1667 -> clamped to 0.5; 2.3333 kept
  np.testing.assert_allclose(float(loss), 11.0 + 1.5 * (0.5 + 7.0 / 3), rtol=1e-6)


def test_group_rates_and_bad_groups():
  rpd = tf.constant(np.arange(12, dtype=np.float32).reshape(2, 6))
  np.testing.assert_array_equal(objective.group_rates(rpd, 3).numpy(), [[1, 5, 9], [13, 17, 21]])
  with pytest.raises(ValueError, match="must divide the latent size"):
    objective.group_rates(rpd, 4)
  with pytest.raises(ValueError, match="must divide"):
    objective.group_rates(rpd, 0)


def test_kl_warmup_schedule(model_and_x):
  assert float(objective.kl_weight(0, 2.0, 0)) == 2.0
  for step, want in [(0, 0.0), (25, 0.5), (50, 1.0), (100, 2.0), (1000, 2.0)]:
    assert float(objective.kl_weight(step, 2.0, 100)) == pytest.approx(want)
  model, x = model_and_x
  saved = (model.beta, model.kl_warmup_steps, model.free_bits)
  model.beta, model.kl_warmup_steps, model.free_bits = 2.0, 100, 0.0
  try:
    for step, want in [(0, 0.0), (50, 1.0), (200, 2.0)]:
      loss, m = model.training_loss(x, step, SEED)
      assert float(m["beta"]) == pytest.approx(want)
      want_loss = m["distortion"].numpy().mean() + want * m["rate"].numpy().mean()
      np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
  finally:
    model.beta, model.kl_warmup_steps, model.free_bits = saved


# ------------------------------------------------------------------ diagnostics

def test_active_units_on_synthetic_means():
  rng = np.random.default_rng(0)
  n = 5000
  mu = np.stack([rng.normal(0, 1.0, n),      # var 1      -> active
                 rng.normal(3, 0.2, n),      # var 0.04   -> active
                 rng.normal(0, 0.05, n),     # var 0.0025 -> inactive
                 np.full(n, 0.7),            # constant   -> inactive
                 rng.normal(0, 0.13, n)],    # var 0.0169 -> active
                -1)
  count, var = active_units(mu)
  assert count == 3
  np.testing.assert_allclose(var, [1.0, 0.04, 0.0025, 0.0, 0.0169], rtol=0.1, atol=1e-12)
  assert active_units(mu, threshold=0.02)[0] == 2


def test_mutual_information_identical_posteriors_is_zero():
  mu = np.tile([[0.3, -1.0]], (200, 1))
  sigma = np.tile([[0.5, 2.0]], (200, 1))
  assert abs(mutual_information(mu, sigma)) < 1e-9


def test_mutual_information_disjoint_posteriors_is_log_n():
  n = 64
  mu = np.arange(n, dtype=np.float64)[:, None] * 100.0
  assert mutual_information(mu, np.full((n, 1), 0.1)) == pytest.approx(math.log(n), abs=1e-6)


def test_mutual_information_gaussian_channel():
  a, s = np.array([1.0, 2.0]), np.array([0.5, 1.0])
  want = float(np.sum(0.5 * np.log1p(a ** 2 / s ** 2)))     # 0.5 log 5 + 0.5 log 5
  est = []
  for seed in range(3):
    x = np.random.default_rng(100 + seed).standard_normal((1200, 2))
    est.append(mutual_information(a * x, np.broadcast_to(s, x.shape), seed=seed))
  assert np.mean(est) == pytest.approx(want, abs=0.05)


def gaussian_kl_to_standard_normal(mu, sigma):
  """Analytic KL(N(mu, sigma) || N(0, 1)) per dimension, in float64 (the reference below)."""
  mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
  return 0.5 * (mu ** 2 + sigma ** 2 - 1.0) - np.log(sigma)


def test_kl_per_dim_matches_analytic_gaussian_kl():
  """Standard normal prior, Gaussian posterior: MC KL per dim -> 0.5(mu^2 + s^2 - 1) - log s."""
  cfg = tiny_config(context="none", image_shape=(4, 4, 1), latent_dim=3, prior="normal")
  model = vlae_tf.build_model(cfg)
  rng = np.random.default_rng(1)
  for v in model.encoder.head.trainable_variables:
    v.assign(v.numpy() + rng.normal(0, 0.3, v.shape).astype(np.float32))   # spread mu, sigma
  x = (rng.random((16, 4, 4, 1)) < 0.5).astype(np.float32)
  mu, sigma, _ = model.encode(tf.constant(x))
  want = gaussian_kl_to_standard_normal(mu.numpy(), sigma.numpy()).mean(0)
  got = vlae_tf.kl_per_dim(model, x, num_samples=400)
  assert got.shape == (3,)
  assert np.all(np.abs(got - want) < 0.05 + 0.05 * np.abs(want)), (got, want)
  assert want.max() > 0.2
