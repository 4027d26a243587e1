"""Honest evaluation: IWAE bound, KL per dimension, active units, I(x; z).

IWAE (Burda et al. 2016)
  ``log p(x) >= L_k = E[log (1/k) sum_s p(x, z_s) / q(z_s|x)]``, ``z_s ~ q(z|x)``;
  ``L_1`` is the ELBO, ``L_k`` is non-decreasing in k and tends to ``log p(x)``.
  We report ``-L_k`` as the NLL (an upper bound on the true NLL). The k
  samples are processed ``chunk_size`` at a time and combined with a running
  log-sum-exp, so memory is bounded by the chunk, not by k.

Active units (Burda et al. 2016)
  ``A_u = Cov_x(E_{q(z|x)}[z_u]) > 0.01``. With an IAF posterior the mean
  of q0 is used.

Mutual information (Hoffman & Johnson 2016)
  ``I(x; z) = E_x KL(q(z|x) || q(z))`` with the aggregate posterior ``q(z)``
  estimated by the mixture of the posteriors of the evaluation batch:
  ``log q(z_i) ~= logsumexp_j log q(z_i|x_j) - log N``. Biased low for small
  N and bounded by ``log N``.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from vlae_tf.af_prior import std_normal_log_prob

MAX_IWAE_SAMPLES = 65536


def _default_chunk(batch, num_samples, budget=512):
  return int(max(1, min(num_samples, budget // max(1, batch))))


def iwae_nll(model, x, num_samples=1000, chunk_size=None, seed=None):
  """Per-example importance-weighted NLL bound ``-L_k`` in nats, ``[B]`` numpy array.

  Args:
    model: a :class:`vlae_tf.model.VLAE`.
    x: ``[B, H, W, C]`` pixels in data scale.
    num_samples: k, 1 .. 65536 (``k = 1`` gives ``-ELBO``).
    chunk_size: samples per forward pass; default keeps ``B * chunk <= 512`` (bench/iwae.py:
      no faster on CPU than 2048, at a seventh of the memory).
    seed: optional int for a reproducible estimate (None: a fresh random one per call).
  """
  if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
    raise TypeError(f"num_samples must be an int, got {num_samples!r}")
  if not 1 <= num_samples <= MAX_IWAE_SAMPLES:
    raise ValueError(f"num_samples must be in [1, {MAX_IWAE_SAMPLES}], got {num_samples}")
  if chunk_size is not None and (isinstance(chunk_size, bool)
                                 or not isinstance(chunk_size, (int, np.integer))):
    raise TypeError(f"chunk_size must be None or an int, got {chunk_size!r}")
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  x_f = model.check_inputs(x)
  b = int(x_f.shape[0])
  chunk = int(chunk_size) if chunk_size is not None else _default_chunk(b, num_samples)
  fn = _log_weights_fn(model)
  total = tf.fill([b], -np.inf)
  done, i = 0, 0
  # No seed: a fresh random stream per call; a seed: a reproducible estimate.
  first = int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)
  base = tf.constant([first, 0], tf.int64)
  while done < num_samples:
    s = min(chunk, num_samples - done)
    lw = fn(x_f, s, base + tf.constant([0, i], tf.int64))
    total = tf.reduce_logsumexp(tf.concat([total[None], lw], 0), axis=0)
    done += s
    i += 1
  return (-(total - math.log(num_samples))).numpy()


def _log_weights_fn(model):
  fn = getattr(model, "_iwae_fn", None)
  if fn is None:
    @tf.function(reduce_retracing=True)
    def fn(x_f, s, seed):
      return model.log_weights(x_f, s, seed)
    model._iwae_fn = fn
  return lambda x_f, s, seed: fn(x_f, s, seed)


def posterior_stats(model, x):
  """``(mu, sigma)`` of q0(z|x), flat ``[B, D]``."""
  x_f = model.check_inputs(x)
  mu, sigma, _ = model.encode(x_f)
  return mu.numpy(), sigma.numpy()


def active_units(mu, threshold=0.01):
  """Number of active units and the per-unit ``Cov_x(E_q[z_u])`` from posterior means."""
  var = np.var(np.asarray(mu, np.float64), axis=0)
  return int(np.sum(var > threshold)), var


def kl_per_dim(model, x, num_samples=16, seed=0):
  """Monte-Carlo ``E_x E_q[log q(z_d|x) - log p_d(z)]`` per latent dimension, ``[D]``.

  Uses the per-dimension split of log p(z) of the prior (exact for a standard
  normal prior; for the AF prior the split sums to the exact rate).
  """
  x_f = model.check_inputs(x)
  mu, sigma, context = model.encode(x_f)
  total = 0.0
  for s in range(num_samples):
    eps = tf.random.stateless_normal(tf.shape(mu), [seed, s])
    z, log_q = model.posterior_from_noise(mu, sigma, context, eps)
    total += tf.reduce_mean(log_q - model.prior.log_prob_per_dim(z), 0)
  return (total / num_samples).numpy()


def mutual_information(mu, sigma, seed=0):
  """Minibatch estimate of I(x; z) in nats from Gaussian posteriors ``[N, D]``.

  ``mean_i [log q(z_i|x_i) - log (1/N) sum_j q(z_i|x_j)]`` with ``z_i ~ q(z|x_i)``.
  Each term is at most log N (the sum contains j = i), so the estimate
  saturates at log N once the posteriors of different images barely overlap:
  compare models with it only below that ceiling (or with larger N).
  """
  mu = np.asarray(mu, np.float64)
  sigma = np.asarray(sigma, np.float64)
  n, _ = mu.shape
  rng = np.random.default_rng(seed)
  z = mu + sigma * rng.standard_normal(mu.shape)
  # log q(z_i | x_j) for all i, j: [N, N]
  diff = (z[:, None, :] - mu[None, :, :]) / sigma[None, :, :]
  log_q = np.sum(-0.5 * diff ** 2 - np.log(sigma)[None] - 0.5 * math.log(2 * math.pi), -1)
  log_q_own = np.diag(log_q)
  m = log_q.max(axis=1, keepdims=True)
  log_agg = (m[:, 0] + np.log(np.exp(log_q - m).sum(axis=1))) - math.log(n)
  return float(np.mean(log_q_own - log_agg))


def gaussian_kl_to_standard_normal(mu, sigma):
  """Analytic KL(N(mu, sigma) || N(0, 1)) per dimension (a reference for plots)."""
  mu = np.asarray(mu, np.float64)
  sigma = np.asarray(sigma, np.float64)
  return 0.5 * (mu ** 2 + sigma ** 2 - 1.0) - np.log(sigma)


def iwae_subset(num_examples, iwae_examples):
  """Indices of an evenly spaced subset of ``iwae_examples`` out of ``num_examples``.

  Evenly spaced, not a prefix: test sets such as binarized MNIST's are sorted
  by class, so a prefix would be a biased sample. ``None`` or ``<= 0``: all.
  """
  if not iwae_examples or iwae_examples <= 0 or iwae_examples >= num_examples:
    return np.arange(num_examples)
  return np.unique(np.round(np.linspace(0, num_examples - 1, int(iwae_examples))).astype(int))


def evaluate(model, x, num_samples=1000, batch_size=100, seed=0, iwae_examples=None):
  """Test-set summary: mean ELBO terms, IWAE NLL, bits/dim, active units, I(x; z).

  The ELBO, rate, distortion, active units and I(x; z) use every example of
  ``x``; the (expensive) IWAE bound uses all of them too unless
  ``iwae_examples`` asks for an evenly spaced subset, in which case the result
  also holds the ELBO on that same subset and the standard error of the mean
  IWAE NLL, so the two can be compared honestly.
  """
  x = np.asarray(x)
  elbo, rate, dist, mus, sigmas = [], [], [], [], []
  for i in range(0, len(x), batch_size):
    xb = x[i:i + batch_size]
    t = model.elbo_terms(xb, seed=tf.constant([seed, i], tf.int64))
    elbo.append(t["elbo"].numpy())
    rate.append(t["rate"].numpy())
    dist.append(t["distortion"].numpy())
    mu, sigma = posterior_stats(model, xb)
    mus.append(mu)
    sigmas.append(sigma)
  idx = iwae_subset(len(x), iwae_examples)
  nll = np.concatenate([iwae_nll(model, x[idx[i:i + batch_size]], num_samples, seed=seed + i)
                        for i in range(0, len(idx), batch_size)])
  mu, sigma = np.concatenate(mus), np.concatenate(sigmas)
  au, _ = active_units(mu)
  elbo = np.concatenate(elbo)
  dims = model.num_dims
  to_bpd = 1.0 / (dims * math.log(2.0))
  return {
      "num_examples": int(len(x)),
      "elbo": float(elbo.mean()),
      "rate": float(np.concatenate(rate).mean()),
      "distortion": float(np.concatenate(dist).mean()),
      "iwae_nll": float(nll.mean()),
      "iwae_nll_stderr": float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else 0.0,
      "iwae_samples": int(num_samples),
      "iwae_num_examples": int(len(idx)),
      "iwae_subset": "all" if len(idx) == len(x) else "evenly spaced",
      "elbo_on_iwae_subset": float(elbo[idx].mean()),
      "bits_per_dim": float(nll.mean() * to_bpd),
      "elbo_bits_per_dim": float(-elbo.mean() * to_bpd),
      "active_units": au,
      "latent_size": int(mu.shape[1]),
      "mutual_information": mutual_information(mu[:1000], sigma[:1000], seed),
  }


__all__ = ["iwae_nll", "active_units", "kl_per_dim", "mutual_information", "evaluate",
           "posterior_stats", "gaussian_kl_to_standard_normal", "std_normal_log_prob"]
