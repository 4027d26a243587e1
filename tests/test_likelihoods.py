"""The likelihoods are normalized distributions, and their samplers draw from them.

* Bernoulli: sum over all 2**9 binary 3x3 images of p(x|z) under a model's
  autoregressive decoder (fixed z) is 1.
* Discretized logistic mixture: sum over all n**3 values of an RGB pixel is 1,
  for random and extreme parameters; matches an independent float64 reference
  of the PixelCNN++ formula; and a whole model's p(x|z) over every 1x2 RGB image
  (2 bits: 4**6 images) and every 2x2 single-channel image (3 bits) sums to 1.
* ``sample(raw, noise)`` draws each value with its probability (a chi-square
  check over many draws).
"""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import tiny_config
from vlae_tf.likelihoods import Bernoulli, DiscretizedLogisticMixture, uniform_noise


def _all_images(h, w, c, levels):
  grid = np.array(list(itertools.product(range(levels), repeat=h * w * c)), np.float32)
  return grid.reshape(-1, h, w, c)


def _total_prob_under_model(model, seed=0):
  """sum_x p(x | z) over every image x, for one fixed z (float64 sum of per-image probs)."""
  h, w, c = model.image_shape
  xs = _all_images(h, w, c, model.num_levels)
  z = np.random.default_rng(seed).standard_normal((1, model.latent_size)).astype(np.float32) * 2
  log_p = model.log_px_given_z(tf.constant(xs), tf.constant(np.tile(z, (len(xs), 1))))
  return float(np.sum(np.exp(log_p.numpy().astype(np.float64)))), log_p.numpy()


def _perturb_weights(model, scale=0.5, seed=0):
  """Random, larger-than-init weights so the distribution is far from uniform."""
  rng = np.random.default_rng(seed)
  for v in model.trainable_variables:
    v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype(np.float32))


# ------------------------------------------------------------------ Bernoulli

@pytest.mark.parametrize("context,overrides", [
    ("stack", {"decoder_layers": 2}),
    ("window", {"decoder_window": (3, 2)}),
    ("full", {}),
    ("none", {}),
])
def test_bernoulli_model_sums_to_one_over_all_3x3_images(context, overrides):
  model = vlae_tf.build_model(tiny_config(context=context, image_shape=(3, 3, 1), prior="normal",
                                          **overrides))
  _perturb_weights(model)
  total, log_p = _total_prob_under_model(model)
  assert abs(total - 1.0) < 1e-4, total
  assert log_p.max() - log_p.min() > 1.0     # not the uniform distribution 2**-9


def test_bernoulli_log_prob_formula():
  lik = Bernoulli(1)
  raw = tf.constant([[[[-3.0], [0.0]], [[2.5], [40.0]]]])
  x = tf.constant([[[[0.0], [1.0]], [[1.0], [0.0]]]])
  p1 = 1 / (1 + np.exp(-np.array([-3.0, 0.0, 2.5, 40.0])))
  want = np.log(1 - p1[0]) + np.log(p1[1]) + np.log(p1[2]) + (-40.0)   # log(1 - sigmoid(40)) = -40
  np.testing.assert_allclose(lik.log_prob(raw, x).numpy(), [want], rtol=1e-5)


# ------------------------------------------------------------------ discretized logistic mixture

def _dlm_raw(lik, rng, n, extreme=False):
  """Random raw parameters ``[n, P]``; ``extreme`` adds tiny/huge scales, far means, saturated coeffs."""
  k, c = lik.num_mixtures, lik.channels
  logits = rng.normal(0, 2, (n, k))
  means = rng.normal(0, 1, (n, c, k))
  log_scales = rng.normal(-2, 1.5, (n, c, k))
  coeffs = rng.normal(0, 2, (n, lik.num_coeffs, k))
  if extreme:
    means = rng.choice([-40.0, -3.0, -1.0, 0.0, 1.0, 1.3, 25.0], size=(n, c, k)) \
        + rng.normal(0, 1e-3, (n, c, k))
    log_scales = rng.choice([-30.0, -7.0, -5.0, 0.0, 4.0], size=(n, c, k))
    coeffs = rng.choice([-60.0, 0.0, 60.0], size=(n, lik.num_coeffs, k))
    logits = rng.choice([-50.0, 0.0, 30.0], size=(n, k))
  raw = np.concatenate([logits, means.reshape(n, -1), log_scales.reshape(n, -1),
                        coeffs.reshape(n, -1)], -1)
  assert raw.shape[-1] == lik.num_params()
  return raw.astype(np.float32)


def _pixel_table(lik, raw):
  """``[n_params, levels**C]`` probabilities of every value of a 1x1 pixel."""
  vals = _all_images(1, 1, lik.channels, lik.num_levels)           # [V, 1, 1, C]
  v, p = len(vals), len(raw)
  raw_b = np.repeat(raw, v, axis=0).reshape(p * v, 1, 1, -1)
  x_b = np.tile(vals, (p, 1, 1, 1))
  log_p = lik.log_prob(tf.constant(raw_b), tf.constant(x_b)).numpy().reshape(p, v)
  return np.exp(log_p.astype(np.float64)), vals.reshape(v, lik.channels)


@pytest.mark.parametrize("num_bits", [2, 3])
@pytest.mark.parametrize("extreme", [False, True])
def test_dlm_sums_to_one_over_every_rgb_value(num_bits, extreme):
  lik = DiscretizedLogisticMixture(channels=3, num_mixtures=3, num_bits=num_bits)
  raw = _dlm_raw(lik, np.random.default_rng(num_bits + 10 * extreme), 40, extreme)
  probs, _ = _pixel_table(lik, raw)
  assert np.all(np.isfinite(probs))
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)


def test_dlm_single_channel_sums_to_one():
  lik = DiscretizedLogisticMixture(channels=1, num_mixtures=2, num_bits=3)
  probs, _ = _pixel_table(lik, _dlm_raw(lik, np.random.default_rng(1), 30, extreme=True))
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)


def _logistic_cdf(t):
  return 0.5 * (1.0 + np.tanh(0.5 * t))


def _reference_dlm_prob(raw, value, num_bits, channels=3, k=3):
  """Independent float64 PixelCNN++ probability of one pixel value (no log-space tricks)."""
  n = 2 ** num_bits
  h = 1.0 / (n - 1)
  logits = raw[:k]
  means = raw[k:k + channels * k].reshape(channels, k)
  log_s = np.maximum(raw[k + channels * k:k + 2 * channels * k].reshape(channels, k), -7.0)
  coeffs = np.tanh(raw[k + 2 * channels * k:].reshape(-1, k))
  pi = np.exp(logits - logits.max())
  pi /= pi.sum()
  s = 2.0 * np.asarray(value, np.float64) / (n - 1) - 1.0
  total = 0.0
  for comp in range(k):
    # Channel c's mean moves with the earlier channels: mu + a[c,0] s0 (+ a[c,1] s1); order (1,0),(2,0),(2,1).
    adj = [means[0, comp], means[1, comp] + coeffs[0, comp] * s[0],
           means[2, comp] + coeffs[1, comp] * s[0] + coeffs[2, comp] * s[1]][:channels]
    prod = 1.0
    for c in range(channels):
      sig = np.exp(log_s[c, comp])
      upper = 1.0 if value[c] == n - 1 else _logistic_cdf((s[c] + h - adj[c]) / sig)
      lower = 0.0 if value[c] == 0 else _logistic_cdf((s[c] - h - adj[c]) / sig)
      prod *= upper - lower
    total += pi[comp] * prod
  return total


def test_dlm_matches_float64_reference():
  lik = DiscretizedLogisticMixture(channels=3, num_mixtures=3, num_bits=3)
  rng = np.random.default_rng(5)
  raw = _dlm_raw(lik, rng, 6)
  raw[:, 3:12] = rng.uniform(-1, 1, (6, 9))      # means in range
  raw[:, 12:21] = rng.uniform(-3, -0.5, (6, 9))  # moderate scales: no cancellation in float64
  probs, vals = _pixel_table(lik, raw)
  for p in range(len(raw)):
    for idx in rng.choice(len(vals), 25, replace=False):
      want = _reference_dlm_prob(raw[p].astype(np.float64), vals[idx].astype(int), 3)
      np.testing.assert_allclose(probs[p, idx], want, rtol=2e-4, atol=1e-7)


def test_dlm_tiny_scale_puts_all_mass_in_the_mean_bin():
  lik = DiscretizedLogisticMixture(channels=1, num_mixtures=1, num_bits=3)
  # mean at the centre of bin v=5 (s = 2*5/7 - 1), log-scale -7: essentially a point mass.
  raw = np.array([[0.0, 2 * 5 / 7 - 1, -7.0]], np.float32)
  probs, _ = _pixel_table(lik, raw)
  assert probs[0, 5] > 1 - 1e-6
  # Far outside [-1, 1]: all mass in the edge bins.
  raw = np.array([[0.0, 30.0, -7.0], [0.0, -30.0, -7.0]], np.float32)
  probs, _ = _pixel_table(lik, raw)
  assert probs[0, -1] > 1 - 1e-6 and probs[1, 0] > 1 - 1e-6


# ------------------------------------------------------------------ whole-model p(x|z)

@pytest.mark.parametrize("context,shape,bits,overrides", [
    ("window", (1, 2, 3), 2, {"decoder_window": (3, 2)}),   # 4**6 = 4096 images
    ("stack", (1, 2, 3), 2, {"decoder_layers": 2}),
    ("stack", (2, 2, 1), 3, {"decoder_layers": 2}),          # 8**4 = 4096 images
])
def test_dlm_model_sums_to_one_over_all_images(context, shape, bits, overrides):
  model = vlae_tf.build_model(tiny_config(context=context, image_shape=shape,
                                          likelihood="logistic_mixture", num_bits=bits,
                                          prior="normal", **overrides))
  _perturb_weights(model, 0.3)
  total, log_p = _total_prob_under_model(model)
  assert abs(total - 1.0) < 1e-4, total
  assert log_p.max() - log_p.min() > 1.0


# ------------------------------------------------------------------ sampling

def _chi_square(counts, probs):
  """Pearson chi-square, pooling values whose expected count is below 5; returns (stat, dof)."""
  n = counts.sum()
  exp = probs * n
  small = exp < 5
  obs = np.append(counts[~small], counts[small].sum())
  exp = np.append(exp[~small], exp[small].sum())
  keep = exp > 0
  return float(np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep])), int(keep.sum() - 1)


def _assert_chi_square(counts, probs):
  stat, dof = _chi_square(counts, probs)
  # Mean dof, sd sqrt(2 dof): 6 sd above is a false alarm with probability << 1e-6.
  assert stat < dof + 6 * math.sqrt(2 * dof) + 10, (stat, dof)


@pytest.mark.parametrize("seed", [0, 1])
def test_dlm_sample_frequencies(seed):
  lik = DiscretizedLogisticMixture(channels=3, num_mixtures=3, num_bits=2)
  raw = _dlm_raw(lik, np.random.default_rng(100 + seed), 1)
  raw[0, 12:21] = np.random.default_rng(seed).uniform(-1.5, 0.0, 9)   # spread over many values
  probs, vals = _pixel_table(lik, raw)
  n = 100_000
  noise = uniform_noise([n, lik.noise_channels()], stateless_seed=[seed, 7])
  draws = lik.sample(tf.constant(np.repeat(raw, n, 0)), noise).numpy().astype(int)   # [n, 3]
  assert draws.min() >= 0 and draws.max() <= 3
  codes = (draws[:, 0] * 4 + draws[:, 1]) * 4 + draws[:, 2]
  val_codes = (vals[:, 0] * 4 + vals[:, 1]) * 4 + vals[:, 2]
  counts = np.bincount(codes, minlength=64)[val_codes.astype(int)]
  assert (probs[0] > 0.01).sum() >= 8      # a non-trivial distribution
  _assert_chi_square(counts, probs[0])


def test_dlm_sample_shifted_by_half_a_bin_would_fail_the_check():
  """The frequency check is sharp enough to catch an off-by-one rounding of the level."""
  lik = DiscretizedLogisticMixture(channels=3, num_mixtures=3, num_bits=2)
  raw = _dlm_raw(lik, np.random.default_rng(100), 1)
  raw[0, 12:21] = np.random.default_rng(0).uniform(-1.5, 0.0, 9)
  probs, vals = _pixel_table(lik, raw)
  n = 100_000
  noise = uniform_noise([n, lik.noise_channels()], stateless_seed=[0, 7])
  draws = lik.sample(tf.constant(np.repeat(raw, n, 0)), noise).numpy().astype(int)
  draws[:, 2] = np.minimum(draws[:, 2] + (draws[:, 0] == 1), 3)     # a biased sampler
  codes = (draws[:, 0] * 4 + draws[:, 1]) * 4 + draws[:, 2]
  val_codes = ((vals[:, 0] * 4 + vals[:, 1]) * 4 + vals[:, 2]).astype(int)
  counts = np.bincount(codes, minlength=64)[val_codes]
  with pytest.raises(AssertionError):
    _assert_chi_square(counts, probs[0])


def test_bernoulli_sample_frequencies():
  lik = Bernoulli(1)
  logits = tf.constant([-2.0, 0.3, 3.0])
  n = 50_000
  noise = uniform_noise([n, 3], stateless_seed=[3, 4])
  draws = lik.sample(tf.broadcast_to(logits, [n, 3]), noise).numpy()
  p = 1 / (1 + np.exp(-logits.numpy()))
  np.testing.assert_allclose(draws.mean(0), p, atol=5 * np.sqrt(0.25 / n))


def test_dlm_sample_frequencies_with_extreme_parameters():
  """Tiny scales, far-away means, saturated coefficients and logits: still exact frequencies."""
  lik = DiscretizedLogisticMixture(channels=3, num_mixtures=3, num_bits=2)
  raw = _dlm_raw(lik, np.random.default_rng(7), 12, extreme=True)
  probs, vals = _pixel_table(lik, raw)
  n = 20_000
  noise = uniform_noise([len(raw) * n, lik.noise_channels()], stateless_seed=[5, 5])
  draws = lik.sample(tf.constant(np.repeat(raw, n, 0)), noise).numpy().astype(int)
  codes = ((draws[:, 0] * 4 + draws[:, 1]) * 4 + draws[:, 2]).reshape(len(raw), n)
  val_codes = ((vals[:, 0] * 4 + vals[:, 1]) * 4 + vals[:, 2]).astype(int)
  for p in range(len(raw)):
    _assert_chi_square(np.bincount(codes[p], minlength=64)[val_codes], probs[p])
