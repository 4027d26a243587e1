"""The AF prior, the IAF posterior and their MADE, against dense Jacobians by autodiff.

Change of variables for ``z = f(eps)``, ``eps ~ N(0, I)``::

    log p(z) = log N(eps; 0, I) - log |det df/deps|     (eps = f^{-1}(z))

The determinant is computed here from the full ``D x D`` Jacobian of the
forward (sequential) sampler, not from the flow's own log-scales. For the IAF
posterior ``log |det dz/dz0|`` must equal the sum of the returned per-dimension
log-Jacobian terms.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from vlae_tf.af_prior import AFPrior, IAFPosterior, StandardNormalPrior
from vlae_tf.made import MADE


@pytest.fixture(autouse=True)
def _seeded():
  keras.utils.set_random_seed(0)   # reproducible initial weights


def _roughen(layer, scale=0.4, seed=0):
  """Push the near-identity initial flow well away from the identity."""
  rng = np.random.default_rng(seed)
  for v in layer.trainable_variables:
    v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype(np.float32))


def _prior(d, steps, seed=0):
  prior = AFPrior(d, num_steps=steps, hidden_units=(16, 16))
  prior.build((None, d))
  _roughen(prior, 0.25, seed=seed)
  return prior


def _logdet(jac):
  return np.linalg.slogdet(jac.numpy().astype(np.float64))[1]


def _std_normal_logp(x):
  return np.sum(-0.5 * np.square(x) - 0.5 * math.log(2 * math.pi), -1)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_af_prior_log_prob_is_change_of_variables(steps):
  d = 5
  prior = _prior(d, steps, seed=steps)
  eps = tf.constant(np.random.default_rng(1).standard_normal((16, d)).astype(np.float32))
  with tf.GradientTape() as tape:
    tape.watch(eps)
    z = prior.sample_from_noise(eps)
  jac = tape.batch_jacobian(z, eps)                       # [B, D, D], dz/deps
  want = _std_normal_logp(eps.numpy()) - _logdet(jac)
  np.testing.assert_allclose(prior.log_prob(z).numpy(), want, rtol=1e-4, atol=1e-3)
  # The flow is far from the identity, so the test is not trivially passed.
  assert np.abs(_logdet(jac)).mean() > 0.3
  assert np.abs(z.numpy() - eps.numpy()).mean() > 0.1


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_af_prior_round_trip_and_per_dim_split(steps):
  d = 4
  prior = _prior(d, steps, seed=10 + steps)
  eps = tf.constant(np.random.default_rng(2).standard_normal((32, d)).astype(np.float32))
  z = prior.sample_from_noise(eps)
  np.testing.assert_allclose(prior.bijector().inverse(z).numpy(), eps.numpy(), atol=1e-4)
  per_dim = prior.log_prob_per_dim(z)
  assert per_dim.shape == (32, d)
  np.testing.assert_allclose(tf.reduce_sum(per_dim, -1).numpy(), prior.log_prob(z).numpy(),
                             rtol=1e-5, atol=1e-4)


def test_af_prior_inverse_jacobian():
  """The same identity through the inverse: log p(z) = log N(f^-1(z)) + log|det df^-1/dz|."""
  d = 4
  prior = _prior(d, 2, seed=3)
  z = tf.constant(np.random.default_rng(3).normal(0, 1.5, (8, d)).astype(np.float32))
  with tf.GradientTape() as tape:
    tape.watch(z)
    eps = prior.bijector().inverse(z)
  want = _std_normal_logp(eps.numpy()) + _logdet(tape.batch_jacobian(eps, z))
  np.testing.assert_allclose(prior.log_prob(z).numpy(), want, rtol=1e-4, atol=1e-3)


def test_standard_normal_prior():
  prior = StandardNormalPrior(3)
  z = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
  np.testing.assert_allclose(prior.log_prob(z).numpy(), _std_normal_logp(z), rtol=1e-6)
  np.testing.assert_allclose(tf.reduce_sum(prior.log_prob_per_dim(z), -1).numpy(),
                             _std_normal_logp(z), rtol=1e-6)


def test_af_prior_density_integrates_to_one_in_2d():
  prior = _prior(2, 2, seed=4)
  g = np.linspace(-15, 15, 401).astype(np.float32)   # wide: the flow can scale by up to e**6
  zz = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
  dens = np.exp(prior.log_prob(zz).numpy().astype(np.float64)).reshape(len(g), len(g))
  total = np.trapezoid(np.trapezoid(dens, g, axis=1), g)
  assert abs(total - 1.0) < 1e-3, total
  # and it is not a standard normal
  std = np.exp(_std_normal_logp(zz)).reshape(dens.shape)
  assert np.abs(dens - std).max() > 0.02


def test_af_prior_density_integrates_to_one_in_1d():
  prior = _prior(1, 2, seed=5)
  g = np.linspace(-30, 30, 6001).astype(np.float32)[:, None]
  total = np.trapezoid(np.exp(prior.log_prob(g).numpy().astype(np.float64)), g[:, 0])
  assert abs(total - 1.0) < 1e-3, total


# ------------------------------------------------------------------ MADE

def _made_jacobian(made, x, context=None):
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = made(x, context=context)                          # [B, D, P]
  return tape.batch_jacobian(out, x).numpy()                # [B, D, P, D]


@pytest.mark.parametrize("context_size", [0, 3])
@pytest.mark.parametrize("hidden", [(16,), (12, 12)])
def test_made_is_autoregressive(context_size, hidden):
  d = 5
  made = MADE(d, hidden, params=2, context_size=context_size)
  rng = np.random.default_rng(0)
  x = tf.constant(rng.standard_normal((4, d)).astype(np.float32))
  ctx = tf.constant(rng.standard_normal((4, context_size)).astype(np.float32)) \
      if context_size else None
  made(x, context=ctx)
  _roughen(made, 0.5)
  jac = _made_jacobian(made, x, ctx)
  nonzero = np.abs(jac).max(axis=(0, 2)) > 0               # [D_out, D_in]
  # Strictly lower triangular: output d depends exactly on inputs e < d.
  np.testing.assert_array_equal(nonzero, np.tril(np.ones((d, d), bool), k=-1))
  if context_size:
    with tf.GradientTape() as tape:
      tape.watch(ctx)
      out = made(x, context=ctx)
    cj = tape.batch_jacobian(out, ctx).numpy()              # [B, D, P, ctx]
    dep = np.abs(cj).max(axis=(0, 2, 3)) > 0
    assert dep[1:].all()         # the context reaches every output that has hidden units


def test_made_graph_masks_equal_the_numpy_masks():
  made = MADE(7, (10, 9), params=2)
  for got, want in zip(made.graph_masks(), made.masks):
    np.testing.assert_array_equal(got.numpy(), want)
  # Spelled out for D = 3, one hidden layer of 4: hidden degrees 1 2 1 2.
  small = MADE(3, (4,))
  np.testing.assert_array_equal(small.graph_masks()[0].numpy(),
                                [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]])
  np.testing.assert_array_equal(small.graph_masks()[1].numpy(),
                                [[0, 1, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1]])


def test_traced_made_holds_no_mask_sized_constants():
  """Masks as graph constants made a D = 1024 SavedModel 20 MB; they must be built in-graph."""
  d, hidden = 256, (512,)
  made = MADE(d, hidden)
  fn = tf.function(lambda x: made(x)).get_concrete_function(tf.TensorSpec([None, d]))
  consts = [n for n in fn.graph.as_graph_def().node if n.op == "Const"]
  biggest = max(n.ByteSize() for n in consts)
  assert biggest < 16 * 1024, f"a {biggest}-byte constant in the traced MADE"


def test_made_requires_context_when_built_with_one():
  made = MADE(3, (8,), context_size=2)
  with pytest.raises(ValueError, match="context"):
    made(tf.zeros((1, 3)))


# ------------------------------------------------------------------ IAF posterior

@pytest.mark.parametrize("steps", [1, 2, 3])
@pytest.mark.parametrize("context_size", [0, 3])
def test_iaf_log_det_matches_dense_jacobian(steps, context_size):
  d = 4
  flow = IAFPosterior(d, num_steps=steps, hidden_units=(16,), context_size=context_size)
  flow.build((None, d))
  rng = np.random.default_rng(steps)
  ctx = tf.constant(rng.standard_normal((6, context_size)).astype(np.float32)) \
      if context_size else None
  _roughen(flow, 0.4, seed=steps)
  z0 = tf.constant(rng.standard_normal((6, d)).astype(np.float32))
  with tf.GradientTape() as tape:
    tape.watch(z0)
    z, ldj = flow.forward(z0, ctx)
  jac = tape.batch_jacobian(z, z0)
  np.testing.assert_allclose(tf.reduce_sum(ldj, -1).numpy(), _logdet(jac), rtol=1e-4, atol=1e-4)
  assert np.abs(_logdet(jac)).mean() > 0.2
  if steps == 1:
    # One step in the natural order: lower triangular, and ldj_d is log of the diagonal.
    j = jac.numpy()
    assert np.all(np.triu(j, 1) == 0)
    np.testing.assert_allclose(ldj.numpy(), np.log(np.abs(np.diagonal(j, axis1=1, axis2=2))),
                               rtol=1e-4, atol=1e-5)


def test_iaf_output_in_original_order():
  """With 2 steps the second runs on the reversed vector; the output must be reversed back.

  With the MADE outputs zeroed the flow is the identity, whatever the order bookkeeping.
  """
  flow = IAFPosterior(4, num_steps=2, hidden_units=(8,))
  flow.build((None, 4))
  for m in flow.mades:
    m.out_kernel.assign(tf.zeros_like(m.out_kernel))
  z0 = tf.constant([[1.0, 2.0, 3.0, 4.0]])
  z, ldj = flow.forward(z0)
  np.testing.assert_allclose(z.numpy(), z0.numpy())
  np.testing.assert_allclose(ldj.numpy(), 0.0)


# ------------------------------------------------------------------ training

def test_af_prior_fits_a_correlated_gaussian():
  rho = 0.9
  cov = np.array([[1.0, rho], [rho, 1.0]])
  rng = np.random.default_rng(0)
  data = rng.multivariate_normal([0.0, 0.0], cov, 4096).astype(np.float32)
  entropy = 0.5 * math.log((2 * math.pi * math.e) ** 2 * np.linalg.det(cov))
  std_nll = float(-_std_normal_logp(data).mean())
  assert std_nll - entropy > 0.7      # a standard normal is a poor fit
  prior = AFPrior(2, num_steps=2, hidden_units=(32,))
  prior.build((None, 2))
  opt = keras.optimizers.Adam(1e-2)

  @tf.function
  def step(batch):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(prior.log_prob(batch))
    grads = tape.gradient(loss, prior.trainable_variables)
    opt.apply_gradients(zip(grads, prior.trainable_variables))
    return loss

  for i in range(300):
    step(tf.constant(data[(i * 256) % 4096:(i * 256) % 4096 + 256]))
  test = rng.multivariate_normal([0.0, 0.0], cov, 4096).astype(np.float32)
  nll = float(-prior.log_prob(test).numpy().mean())
  assert nll < std_nll - 0.5, (nll, std_nll, entropy)
  assert nll < entropy + 0.15, (nll, entropy)
