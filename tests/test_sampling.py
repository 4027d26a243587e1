"""The cached sampler equals the naive one exactly; samples follow the model's conditionals.

Random-initialised decoders have logits close to 0 (small output init), where
a sampler that read the wrong context would still draw almost the same
images. ``_sharpen`` scales the decoder's output layer up so every pixel's
distribution depends strongly on its context, and each exactness test first
checks that ignoring the context changes the images (so it can fail).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import tiny_config
from vlae_tf import sampling

SHAPE_BIN = (6, 6, 1)
SHAPE_RGB = (6, 6, 3)


def _sharpen(model, factor=25.0):
  out = model.decoder.out
  out.kernel.assign(out.kernel * factor)
  return model


def _build(context, likelihood, shape, **overrides):
  keras.utils.set_random_seed(0)   # the same weights whatever ran before in this worker
  model = vlae_tf.build_model(tiny_config(context, likelihood, shape, **overrides))
  return _sharpen(model, 25.0 if likelihood == "bernoulli" else 4.0)


def _context_blind(model, z, noise):
  """Every pixel drawn from the decoder's output on an all-zero image: ignores the context."""
  cond = model.conditioning_features(z)
  x0 = tf.zeros(tf.concat([tf.shape(z)[:1], model.image_shape], 0))
  return model.likelihood.sample(model.decoder(model.normalize(x0), cond), noise)


CASES = [
    ("stack", "bernoulli", SHAPE_BIN, dict(decoder_layers=1)),
    ("stack", "bernoulli", SHAPE_BIN, dict(decoder_layers=2)),
    ("stack", "bernoulli", SHAPE_BIN, dict(decoder_layers=3)),
    ("stack", "bernoulli", SHAPE_BIN, dict(decoder_layers=2, decoder_kernel=5)),
    ("stack", "logistic_mixture", SHAPE_RGB, dict(decoder_layers=3)),
    ("window", "bernoulli", SHAPE_BIN, dict(decoder_window=(3, 2))),
    ("window", "bernoulli", SHAPE_BIN, dict(decoder_window=(4, 1))),
    ("window", "bernoulli", SHAPE_BIN, dict(decoder_window=(2, 3))),
    ("window", "logistic_mixture", SHAPE_RGB, dict(decoder_window=(5, 2))),
    ("grayscale", "logistic_mixture", SHAPE_RGB, dict(decoder_window=(3, 2))),
    ("full", "bernoulli", SHAPE_BIN, {}),
    ("full", "bernoulli", SHAPE_BIN, dict(decoder_layers=1)),
    ("full", "bernoulli", SHAPE_BIN, dict(decoder_layers=3)),
    ("full", "logistic_mixture", SHAPE_RGB, {}),
    ("none", "bernoulli", SHAPE_BIN, {}),
    ("none", "logistic_mixture", SHAPE_RGB, {}),
    ("gated", "bernoulli", SHAPE_BIN, dict(decoder_layers=1)),
    ("gated", "bernoulli", SHAPE_BIN, dict(decoder_layers=3, decoder_blocks=2)),
    ("gated", "logistic_mixture", SHAPE_RGB, dict(decoder_layers=2)),
    ("gated_full", "bernoulli", SHAPE_BIN, dict(decoder_layers=2)),
    ("gated_full", "logistic_mixture", SHAPE_RGB, dict(decoder_layers=2)),
]


@pytest.mark.parametrize("context,likelihood,shape,overrides", CASES,
                         ids=[f"{c[0]}-{c[1]}-{'-'.join(f'{k}={v}' for k, v in c[3].items())}"
                              for c in CASES])
def test_cached_equals_naive(context, likelihood, shape, overrides):
  model = _build(context, likelihood, shape, **overrides)
  z = tf.random.stateless_normal([4, model.latent_size], [1, 2])
  noise = sampling.draw_noise(model, 4, tf.constant([3, 4]))

  @tf.function
  def both(z, noise):
    return (sampling.sample_x_given_z(model, z, noise, method="naive"),
            sampling.sample_x_given_z(model, z, noise, method="cached"))

  naive, cached = (t.numpy() for t in both(z, noise))
  levels = model.num_levels
  assert naive.shape == (4,) + shape
  assert np.all((naive >= 0) & (naive <= levels - 1) & (naive == np.round(naive)))
  np.testing.assert_array_equal(cached, naive)
  blind = _context_blind(model, z, noise).numpy()
  if context == "none":
    np.testing.assert_array_equal(naive, blind)
  else:   # the images depend on the context, so a sampler reading it wrongly would differ
    assert (naive != blind).mean() > 0.05


def test_default_method_is_cached_and_bad_method_rejected():
  model = _build("stack", "bernoulli", (4, 4, 1))
  z = tf.zeros([2, model.latent_size])
  noise = sampling.draw_noise(model, 2, tf.constant([0, 1]))
  np.testing.assert_array_equal(sampling.sample_x_given_z(model, z, noise).numpy(),
                                sampling.cached_sample(model, model.conditioning_features(z),
                                                       noise).numpy())
  with pytest.raises(ValueError, match="unknown sampling method 'fast'"):
    sampling.sample_x_given_z(model, z, noise, method="fast")


def _calibration_z(p, x):
  """Per probability bin, ``(sum x - sum p) / sqrt(sum p (1 - p))``."""
  bins = np.clip((p * 10).astype(int), 0, 9)
  out = []
  for k in range(10):
    sel = bins == k
    var = (p[sel] * (1 - p[sel])).sum()
    if var > 5:
      out.append((x[sel].sum() - p[sel].sum()) / np.sqrt(var))
  return np.array(out)


def test_binary_samples_follow_model_conditionals():
  """Each drawn bit is Bernoulli(sigmoid(logit given the drawn earlier pixels)).

  The model's conditional at every pixel of every sample is recomputed with one
  parallel decoder pass on the sampled images; the sampled bits must match
  these probabilities within each of 10 probability bins (|z| < 4.5). As a
  check that this can fail, the same bits scored against the conditionals of
  an all-zero context must be rejected.
  """
  model = _build("stack", "bernoulli", (4, 4, 1), decoder_layers=2)
  model.decoder.out.kernel.assign(model.decoder.out.kernel * 0.5)   # spread p over (0, 1)
  n = 3000
  z = tf.tile(tf.random.stateless_normal([1, model.latent_size], [5, 6]), [n, 1])
  x = tf.function(lambda z: sampling.sample_x_given_z(model, z, seed=tf.constant([7, 8])))(z)
  p = tf.sigmoid(model.decoder_raw(x, z)).numpy().ravel()
  xs = x.numpy().ravel()
  assert 0.05 < p.mean() < 0.95 and p.std() > 0.1
  zs = _calibration_z(p, xs)
  assert len(zs) >= 3
  assert np.all(np.abs(zs) < 4.5), zs
  wrong = tf.sigmoid(model.decoder_raw(tf.zeros_like(x), z)).numpy().ravel()
  assert np.abs(_calibration_z(wrong, xs)).max() > 6.0


def _nontrivial_prior(model, scale=0.5, seed=0):
  """Replace the MADEs' tiny output weights (flows start near identity) by large ones."""
  rng = np.random.default_rng(seed)
  for made in model.prior.mades:
    made.out_kernel.assign(rng.normal(0, scale, made.out_kernel.shape).astype(np.float32))
    made.out_bias.assign(rng.normal(0, 1.0, made.out_bias.shape).astype(np.float32))
  return model


@pytest.mark.parametrize("latent_dim,hidden,steps,block", [
    (5, (16,), 2, 32), (9, (16,), 2, 4), (7, (16, 12), 3, 3), (6, (16, 12, 10), 2, 1),
    (1, (8,), 2, 4)])
def test_fast_prior_sampler_equals_maf_forward(latent_dim, hidden, steps, block):
  model = _nontrivial_prior(vlae_tf.build_model(
      tiny_config("none", latent_dim=latent_dim, prior_hidden=hidden, prior_steps=steps)))
  eps = tf.random.stateless_normal([7, latent_dim], [1, 1])
  ref = model.prior.bijector().forward(eps).numpy()          # tfb's MAF forward: the reference
  fast = tf.function(lambda e: model.prior.sample_from_noise(e, block))(eps).numpy()
  # float32 through 3 flow steps in two op orders: 5.6e-5 was seen once under load (oneDNN
  # reductions); a wrong mask or order is off by O(1).
  np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4)
  assert np.abs(ref - eps.numpy()).max() > 0.3     # the flow is far from the identity
  # Also consistent with the density: f^{-1}(z) = eps.
  np.testing.assert_allclose(model.prior.bijector().inverse(fast), eps, rtol=1e-3, atol=1e-3)


def test_sample_prior_is_the_flow_of_scaled_noise_and_normal_prior_passthrough():
  model = _nontrivial_prior(vlae_tf.build_model(tiny_config("none", latent_dim=4)))
  seed = tf.constant([3, 9], tf.int64)
  eps = tf.random.stateless_normal([5, 4], seed) * 0.7
  np.testing.assert_allclose(model.sample_prior(5, seed, temperature=0.7),
                             model.prior.bijector().forward(eps), rtol=1e-5, atol=1e-5)
  normal = vlae_tf.build_model(tiny_config("none", latent_dim=4, prior="normal"))
  np.testing.assert_allclose(normal.sample_prior(5, seed),
                             tf.random.stateless_normal([5, 4], seed))


def test_sample_decode_reconstruct_trace_with_symbolic_batch():
  model = _build("window", "logistic_mixture", (4, 4, 3))
  seed_spec = tf.TensorSpec([2], tf.int64)
  sample_fn = tf.function(
      lambda n, s: sampling.sample(model, n, s, temperature=0.9)).get_concrete_function(
          tf.TensorSpec([], tf.int32), seed_spec)
  recon_fn = tf.function(lambda x, s: sampling.reconstruct(model, x, s)).get_concrete_function(
      tf.TensorSpec([None, 4, 4, 3], tf.uint8), seed_spec)
  decode_fn = tf.function(lambda z, s: sampling.decode(model, z, s)).get_concrete_function(
      tf.TensorSpec([None, model.latent_size], tf.float32), seed_spec)
  s1, s2 = tf.constant([1, 2], tf.int64), tf.constant([1, 3], tf.int64)
  a = sample_fn(tf.constant(3), s1).numpy()
  assert a.shape == (3, 4, 4, 3) and a.min() >= 0 and a.max() <= 255
  np.testing.assert_array_equal(a, sample_fn(tf.constant(3), s1).numpy())
  assert (a != sample_fn(tf.constant(3), s2).numpy()).mean() > 0.5
  x = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
  r = recon_fn(tf.constant(x), s1).numpy()
  assert r.shape == (2, 4, 4, 3)
  np.testing.assert_array_equal(r, sampling.reconstruct(model, x, s1, method="naive").numpy())
  z = tf.random.stateless_normal([5, model.latent_size], [0, 0])
  naive = sampling.sample_x_given_z(model, z, seed=s1, method="naive").numpy()
  np.testing.assert_array_equal(decode_fn(z, s1).numpy(), naive)
  with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
    sampling.reconstruct(model, np.full((1, 4, 4, 3), 300.0, np.float32), s1)
