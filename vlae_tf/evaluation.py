"""Honest evaluation: per-example ELBO terms and IWAE bound, KL per dimension, active units, I(x; z).

The one evaluation path: :func:`elbo_per_example` and :func:`iwae_per_example`
give per-example values (batch ``i`` of the posterior noise from the stateless
seed ``[seed, i]``, IWAE of the batch starting at example ``i`` from seed
``seed + i``); :func:`evaluate` (``eval.json``), training's periodic eval, the
experiments and the benchmarks all summarise them. :func:`iwae_nll_graph` is
the one IWAE implementation, used eagerly by :func:`iwae_nll` and in-graph by
the SavedModel's ``iwae`` signature.

IWAE (Burda et al. 2016)
  ``log p(x) >= L_k = E[log (1/k) sum_s p(x, z_s) / q(z_s|x)]``, ``z_s ~ q(z|x)``;
  ``L_1`` is the ELBO, ``L_k`` is non-decreasing in k and tends to ``log p(x)``.
  We report ``-L_k`` as the NLL (an upper bound on the true NLL). The k
  samples are processed ``chunk`` at a time (default ``N * chunk <=
  IWAE_BUDGET``) and combined with a running log-sum-exp, so memory is
  bounded by the chunk, not by k. ``k <= MAX_IWAE_SAMPLES``
  (:data:`vlae_tf.config.MAX_IWAE_SAMPLES`) everywhere.

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
import time

import numpy as np
import tensorflow as tf

from vlae_tf.af_prior import std_normal_log_prob
from vlae_tf.config import MAX_IWAE_SAMPLES
from vlae_tf.objective import nats_to_bits_per_dim

# Importance samples per decoder pass, N * chunk (bench/iwae.py: no faster on CPU than 2048,
# at a seventh of the memory).
IWAE_BUDGET = 512


def default_chunk(batch, num_samples):
  """Samples per decoder pass for ``batch`` examples: ``max(1, min(k, IWAE_BUDGET // N))``."""
  return int(max(1, min(num_samples, IWAE_BUDGET // max(1, batch))))


def iwae_nll_graph(model, x_f, num_samples, seed, chunk=None):
  """``-L_k`` per example, ``[N]`` nats, traceable (the k draws in a ``tf.while_loop``).

  ``L_k = logsumexp_s(log w_s) - log k`` accumulated chunk by chunk; chunk
  ``i`` draws its posterior noise from the stateless seed ``seed + [0, i]``.
  ``chunk``: samples per chunk (default ``max(1, min(k, IWAE_BUDGET // N))``).
  """
  b = tf.shape(x_f)[0]
  k = tf.cast(num_samples, tf.int32)
  if chunk is None:
    chunk = tf.maximum(1, tf.minimum(k, IWAE_BUDGET // b))
  chunk = tf.cast(chunk, tf.int32)
  num_chunks = (k + chunk - 1) // chunk
  total = iwae_log_sum(model, x_f, k, seed, chunk, tf.constant(0), num_chunks,
                       tf.fill([b], tf.constant(-np.inf, tf.float32)))
  return iwae_nll_from_log_sum(total, k)


def iwae_log_sum(model, x_f, num_samples, seed, chunk, start, stop, total):
  """``total`` updated with ``logsumexp`` of the log weights of chunks ``start .. stop - 1``.

  The loop of :func:`iwae_nll_graph`; a caller that runs the chunks in several
  pieces, passing ``total`` on, gets exactly the same numbers (the same ops in the
  same order: :func:`iwae_per_example` does, to report its progress).
  """
  k = tf.cast(num_samples, tf.int32)
  seed = tf.cast(seed, tf.int64)
  chunk = tf.cast(chunk, tf.int32)

  def body(i, total):
    s = tf.minimum(chunk, k - i * chunk)
    lw = model.log_weights(x_f, s, seed + tf.stack([tf.constant(0, tf.int64),
                                                    tf.cast(i, tf.int64)]))
    return i + 1, tf.reduce_logsumexp(tf.concat([total[None], lw], 0), axis=0)

  _, total = tf.while_loop(lambda i, _: i < stop, body, [tf.cast(start, tf.int32), total])
  return total


def iwae_nll_from_log_sum(total, num_samples):
  """``-(total - log k)``: the NLL bound from the log-sum of all k weights."""
  log_k = tf.cast(tf.math.log(tf.cast(num_samples, tf.float64)), tf.float32)
  return -(total - log_k)


def iwae_nll(model, x, num_samples=1000, chunk_size=None, seed=None):
  """Per-example importance-weighted NLL bound ``-L_k`` in nats, ``[B]`` numpy array.

  Args:
    model: a :class:`vlae_tf.model.VLAE`.
    x: ``[B, H, W, C]`` pixels in data scale.
    num_samples: k, 1 .. MAX_IWAE_SAMPLES (``k = 1`` gives ``-ELBO``).
    chunk_size: samples per forward pass; default keeps ``B * chunk <= IWAE_BUDGET``.
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
  chunk = int(chunk_size) if chunk_size is not None else default_chunk(int(x_f.shape[0]),
                                                                         num_samples)
  # No seed: a fresh random stream per call; a seed: a reproducible estimate.
  first = int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)
  return _iwae_fn(model)(x_f, tf.constant(num_samples, tf.int32), tf.constant(chunk, tf.int32),
                         tf.constant([first, 0], tf.int64)).numpy()


def _iwae_fn(model):
  """:func:`iwae_nll_graph` as a ``tf.function``, one per model (traced once per batch shape)."""
  fn = getattr(model, "_iwae_fn", None)
  if fn is None:
    @tf.function(reduce_retracing=True)
    def fn(x_f, k, chunk, seed):
      return iwae_nll_graph(model, x_f, k, seed, chunk)
    model._iwae_fn = fn
  return fn


def log_weights_fn(model):
  """``model.log_weights`` as a ``tf.function`` ``(x_f, num_samples, seed) -> [S, B]``."""
  fn = getattr(model, "_log_weights_fn", None)
  if fn is None:
    fn = tf.function(model.log_weights, reduce_retracing=True)
    model._log_weights_fn = fn
  return fn


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


def _stderr(v):
  """Standard error of the mean of per-example values (0 for fewer than two)."""
  return float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


# I(x; z) compares every pair of images: O(N^2) memory, so it uses this many evenly spaced ones.
MUTUAL_INFORMATION_EXAMPLES = 1000


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


def iwae_subset(num_examples, iwae_examples):
  """Indices of an evenly spaced subset of ``iwae_examples`` out of ``num_examples``.

  Evenly spaced, not a prefix: test sets such as binarized MNIST's are sorted
  by class, so a prefix would be a biased sample. ``None`` or ``<= 0``: all.
  """
  if not iwae_examples or iwae_examples <= 0 or iwae_examples >= num_examples:
    return np.arange(num_examples)
  return np.unique(np.round(np.linspace(0, num_examples - 1, int(iwae_examples))).astype(int))


def elbo_per_example(model, x, batch_size=100, seed=0, progress=None):
  """Per-example one-sample ELBO terms and the posterior q0(z|x) of every example of ``x``.

  Returns a dict of NumPy arrays: ``elbo``, ``rate``, ``distortion`` ``[N]``
  (nats) and ``mu``, ``sigma`` ``[N, D]``. The batch starting at example ``i``
  draws its posterior noise from the stateless seed ``[seed, i]``. ``progress``:
  an optional :class:`Progress` counting images.
  """
  x = np.asarray(x)
  out = {k: [] for k in ("elbo", "rate", "distortion", "mu", "sigma")}
  for i in range(0, len(x), batch_size):
    xb = x[i:i + batch_size]
    t = model.elbo_terms(xb, seed=tf.constant([seed, i], tf.int64))
    for k in ("elbo", "rate", "distortion"):
      out[k].append(t[k].numpy())
    mu, sigma = posterior_stats(model, xb)
    out["mu"].append(mu)
    out["sigma"].append(sigma)
    if progress is not None:
      progress.advance(len(xb))
  return {k: np.concatenate(v) for k, v in out.items()}


def iwae_per_example(model, x, num_samples, batch_size=100, seed=0, progress=None):
  """``[N]`` IWAE NLL bounds (:func:`iwae_nll`); the batch starting at example ``i`` uses seed ``seed + i``.

  The same numbers as :func:`iwae_nll` batch by batch, computed a few chunks of
  samples per call (:func:`iwae_log_sum`, about :data:`SECONDS_PER_CALL` each), so
  ``progress`` (a :class:`Progress` counting images) hears from it every few seconds
  even at k = 4096.
  """
  x = np.asarray(x)
  out = []
  calls = _IwaeCalls(model)
  for i in range(0, len(x), batch_size):
    out.append(calls.batch(x[i:i + batch_size], int(num_samples), seed + i, progress))
  return np.concatenate(out)


# Seconds of work per call of iwae_per_example (progress lines come between calls), and the
# seconds between two progress lines: a line at least every PROGRESS_EVERY + one call (< 30 s).
SECONDS_PER_CALL = 3.0
PROGRESS_EVERY = 20.0


class _IwaeCalls:
  """Runs :func:`iwae_log_sum` over a batch's chunks a few at a time, sized by how long one took."""

  def __init__(self, model):
    self.model, self.per_call = model, 1
    self.fn = getattr(model, "_iwae_log_sum_fn", None)
    if self.fn is None:
      self.fn = model._iwae_log_sum_fn = tf.function(
          lambda *a: iwae_log_sum(model, *a), reduce_retracing=True)

  def batch(self, xb, k, seed, progress):
    x_f = self.model.check_inputs(xb)
    n = int(x_f.shape[0])
    chunk = default_chunk(n, k)
    num_chunks = -(-k // chunk)
    total = tf.fill([n], tf.constant(-np.inf, tf.float32))
    args = (tf.constant(k, tf.int32), tf.constant([seed, 0], tf.int64), tf.constant(chunk, tf.int32))
    i = 0
    while i < num_chunks:
      stop = min(num_chunks, i + self.per_call)
      t0 = time.monotonic()
      total = self.fn(x_f, *args, tf.constant(i), tf.constant(stop), total)
      took = time.monotonic() - t0
      if progress is not None:
        progress.advance(n * (min(k, stop * chunk) - i * chunk) / k)
      if took < SECONDS_PER_CALL / 2:
        self.per_call *= 2
      elif took > SECONDS_PER_CALL * 2 and self.per_call > 1:
        self.per_call //= 2
      i = stop
    return iwae_nll_from_log_sum(total, k).numpy()


def _duration(seconds):
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
  """``<what>: 340/1,000 images (34%), 1m05s elapsed, ETA 2m06s``, about every ``every`` seconds.

  ``advance(n)`` counts work done (images; fractions of one allowed); a line is
  written through ``log`` when ``every`` seconds (default :data:`PROGRESS_EVERY`) have
  passed since the last one (so a short evaluation prints nothing), and by ``finish()``
  if any line was written. ``log=None``: silent.
  """

  def __init__(self, what, total, log=print, every=None, unit="images"):
    self.what, self.total, self.log, self.unit = what, total, log, unit
    self.every = PROGRESS_EVERY if every is None else every
    self.done, self.shown, self.lines = 0.0, 0.0, 0
    self.start = self.last = time.monotonic()

  def advance(self, amount):
    self.done = round(self.done + amount, 9)     # fractions of images add up to whole ones
    if self.log is not None and time.monotonic() - self.last >= self.every:
      self._line()

  def finish(self):
    if self.lines and self.shown < self.done:      # a last line, unless it is already out
      self._line()

  def _line(self):
    now = time.monotonic()
    elapsed = now - self.start
    frac = min(1.0, self.done / self.total) if self.total else 1.0
    eta = f"ETA {_duration(elapsed / frac * (1 - frac))}" if frac > 0 else "ETA unknown"
    self.log(f"{self.what}: {int(self.done):,}/{self.total:,} {self.unit} ({100 * frac:.0f}%), "
             f"{_duration(elapsed)} elapsed, {eta if frac < 1 else 'done'}")
    self.last, self.shown, self.lines = now, self.done, self.lines + 1


def evaluate(model, x, num_samples=1000, batch_size=100, seed=0, iwae_examples=None, log=None):
  """Test-set summary: mean ELBO terms, IWAE NLL, bits/dim, active units, I(x; z).

  The ELBO, rate, distortion, active units and I(x; z) use every example of
  ``x``; the (expensive) IWAE bound uses all of them too unless
  ``iwae_examples`` asks for an evenly spaced subset, in which case the result
  also holds the ELBO on that same subset and the standard error of the mean
  IWAE NLL, so the two can be compared honestly. ``log`` (e.g. ``print``): where
  an evaluation that takes longer than half a minute reports its progress and ETA
  (:class:`Progress`); None: silent.
  """
  x = np.asarray(x)
  idx = iwae_subset(len(x), iwae_examples)
  progress = Progress(f"ELBO on {len(x):,} images", len(x), log)
  per = elbo_per_example(model, x, batch_size, seed, progress)
  progress.finish()
  progress = Progress(f"IWAE k={num_samples} on {len(idx):,} images", len(idx), log)
  nll = iwae_per_example(model, x[idx], num_samples, batch_size, seed, progress)
  progress.finish()
  mu, sigma, elbo = per["mu"], per["sigma"], per["elbo"]
  mi = iwae_subset(len(x), MUTUAL_INFORMATION_EXAMPLES)
  au, _ = active_units(mu)
  dims = model.num_dims
  return {
      "num_examples": int(len(x)),
      "elbo": float(elbo.mean()),
      "rate": float(per["rate"].mean()),
      "distortion": float(per["distortion"].mean()),
      "iwae_nll": float(nll.mean()),
      "iwae_nll_stderr": _stderr(nll),
      "elbo_stderr": _stderr(elbo),
      "iwae_samples": int(num_samples),
      "iwae_num_examples": int(len(idx)),
      "iwae_subset": "all" if len(idx) == len(x) else "evenly spaced",
      "elbo_on_iwae_subset": float(elbo[idx].mean()),
      "elbo_on_iwae_subset_stderr": _stderr(elbo[idx]),
      "bits_per_dim": float(nats_to_bits_per_dim(nll.mean(), dims)),
      "elbo_bits_per_dim": float(nats_to_bits_per_dim(-elbo.mean(), dims)),
      "active_units": au,
      "latent_size": int(mu.shape[1]),
      "mutual_information": mutual_information(mu[mi], sigma[mi], seed),
      "mutual_information_examples": int(len(mi)),
  }


__all__ = ["iwae_nll", "iwae_nll_graph", "iwae_log_sum", "iwae_nll_from_log_sum", "Progress",
           "elbo_per_example", "iwae_per_example", "active_units",
           "kl_per_dim", "mutual_information", "evaluate", "posterior_stats",
           "std_normal_log_prob", "MAX_IWAE_SAMPLES"]
