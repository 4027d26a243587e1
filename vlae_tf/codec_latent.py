"""The latent that bits-back coding transmits, and its two autoregressive factorizations.

Coding a latent under p and taking bits back under q needs, in some order,
every conditional of the *discretized* prior ``P(v_i | v_<i)`` and of the
discretized posterior ``Q(v_i | v_<i, x)``. Which variable v to discretize:

``prior = "normal"`` or an AF prior with one MAF step
  ``v = z``. q(z|x) is the diagonal Gaussian ``N(mu, sigma)`` (factorized);
  the prior is N(0, I), or one MAF step ``z_d = eps_d exp(s_d(z_<d)) +
  m_d(z_<d)``, whose conditionals are ``N(m_d(z_<d), exp(s_d(z_<d)))``.

AF prior with two MAF steps (all shipped models): ``z = F1(R(F0(eps)))``
  with ``R`` the order reversal. z has no chain of 1-D conditionals under p
  in one order. The variable between the steps, ``u = R(F0(eps)) =
  F1^{-1}(z)``, has two:

  * prior: ``y = R(u) = F0(eps)`` is one MAF step of N(0, I), so
    ``p(y_j | y_<j) = N(m0_j(y_<j), exp(s0_j(y_<j)))``: u factorizes in the
    *reversed* order, each conditional a Gaussian;
  * posterior: z = F1(u) is ``z_d = u_d exp(s1_d(z_<d)) + m1_d(z_<d)`` and
    z_<d is a function of u_<d, so given u_<d, z_d is affine in u_d; z_d is
    ``N(mu_d, sigma_d)`` independently of z_<d under q, so
    ``q(u_d | u_<d) = N((mu_d - m1_d) exp(-s1_d), sigma_d exp(-s1_d))``
    with ``m1, s1`` evaluated at ``z_<d``: u factorizes in the *natural*
    order, again with Gaussian conditionals.

  The density ratio is unchanged by the change of variables (the Jacobian of
  F1 cancels): ``log q_u(u|x) - log p_u(u) = log q(z|x) - log p(z)`` at
  ``z = F1(u)``, so coding u costs the model's rate.

  Three or more steps have no such variable; neither has an IAF posterior
  (its push-forward is not a 1-D chain in an order the prior shares).
  :class:`LatentScheme` refuses those models with :class:`UnsupportedModel`.

Discretization (the cost over -ELBO)
  v is coded as integers k with ``v = k delta`` (``delta = 2^-bin_width_log2``
  in the file's coding parameters), ``|k| <= range / delta``. Each
  conditional is a Gaussian integrated over the bins (constriction's
  ``QuantizedGaussian``, which clips to the range and gives every bin at least
  the smallest representable mass), evaluated at the *discretized* earlier
  values, so ``P(k) = prod_i P(k_i | k_<i)`` and ``Q(k | x)`` are exact
  distributions both sides compute identically. One image costs
  ``-log p(x | z(k)) - log P(k) + log Q(k | x)`` bits; ``P / Q`` tends to the
  density ratio ``p_u / q_u`` as delta shrinks compared with the posterior's
  std (error O(delta^2 / sigma^2) plus the clipping and minimum-mass leaks,
  both well under 1% of a bit per dimension at the defaults), so the expected cost is
  -ELBO up to that discretization; ``bench/compression.py`` measures it.

  The leak sets how many bins a dimension may have: constriction reserves
  the smallest representable mass for *every* bin of the range, and with
  2^14 bins or more that reserve is large enough that pops from Q land in the
  far tails now and then (each such z costs tens of bits in -log p(x|z)).
  Seen on the shipped mnist model (every 250th test image, 16 images, range
  +-8): with bins of 2^-6 and 2^-8 constriction's pops from Q took 242 and
  308 bits/image, equal to the ideal ``-log2 Q`` of the popped values (242.5,
  308.2), and the ideal cost of the chain was 116.0 and 115.5 bits/image
  against a one-sample -ELBO of 115.0; with bins of 2^-10 (2^14 bins) the pops
  took 372 bits where the ideal ``-log2 Q`` of the (tail) values popped is 433.
  The chance that some dimension of an image pops a leaked bin grows with
  the number of bins *and* with the latent size D (about ``D * bins * 2^-24``
  per image at constriction's 24-bit precision), and a wider range puts the
  leaked bins further out. With CIFAR-10's D = 512 the leak showed at 4,097
  bins: on the cifar10 v4 zoo model (100 evenly spaced test images, -ELBO
  3.4446 bits/dim; bench/README.md section 9) bins of
  2^-8 / 2^-7 / 2^-6 with range +-8 cost 3.4769 / 3.4559 / 3.4512 bits/dim
  (+0.94% / +0.33% / +0.19%); on 32 of those images +-16 with 2^-7 cost
  +3.8% and +-32 with 2^-7 (8,193 bins) +46%. On mnist (D = 32, 256 images)
  2^-8 / 2^-7 / 2^-6 / 2^-5 cost 0.1510 / 0.1506 / 0.1506 / 0.1510 against a
  -ELBO of 0.1501. Hence the lossless default 2^-6 with +-8 (1,025 bins; the
  posterior's std of v is still >= 1.4 bins on every dimension of those
  100 cifar10 images, >= 25 on mnist) and the cap of 2^12 bins
  (:data:`vlae_tf.codec.MAX_LATENT_SYMBOLS`).
  Finer bins cost nothing per image, only more *initial bits* (the first
  posterior pops borrow about ``log2(sigma / delta) + 2`` bits per dimension).

Both walks are sequential in their order: step i calls one MADE on the
partially known vector (later entries zero, which the MADE's masks never
read). Sender and receiver make the same calls with the same inputs and
shapes ``[G, D]``, so they compute bit-identical parameters.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf.af_prior import AFPrior, StandardNormalPrior, soft_clamp


class UnsupportedModel(ValueError):
  """The model's prior / posterior pair cannot be coded exactly (see the module doc)."""


def check_codable(model):
  """Raises :class:`UnsupportedModel` naming why ``model`` cannot be bits-back coded."""
  if model.posterior_flow is not None:
    raise UnsupportedModel(
        "cannot code this model exactly: its posterior is an IAF flow (model.posterior='iaf'); "
        "the codec needs the diagonal Gaussian posterior (see vlae_tf.codec_latent)")
  prior = model.prior
  if isinstance(prior, StandardNormalPrior):
    return
  if isinstance(prior, AFPrior) and prior.num_steps in (1, 2):
    return
  steps = getattr(prior, "num_steps", "?")
  raise UnsupportedModel(
      f"cannot code this model exactly: its AF prior has {steps} MAF steps with reversed orders; "
      "only 1 or 2 steps have a variable whose prior and posterior both factorize "
      "autoregressively (see vlae_tf.codec_latent)")


class LatentScheme:
  """The coded latent v of a model (module doc), for a fixed batch of ``G`` images."""

  def __init__(self, model, group_size, bin_width_log2, latent_range):
    check_codable(model)
    self.g = g = int(group_size)
    self.d = d = int(model.latent_size)
    self.delta = float(2.0 ** -int(bin_width_log2))
    self.max_symbol = int(round(float(latent_range) / self.delta))
    prior = model.prior
    self.steps = 0 if isinstance(prior, StandardNormalPrior) else prior.num_steps
    spec = [tf.TensorSpec([g, d], tf.float32)]

    def made_fn(made):
      def fn(y):
        out = made(y)
        return tf.stack([out[..., 0], soft_clamp(out[..., 1])], -1)   # [G, D, 2]
      return tf.function(fn, input_signature=spec, autograph=False)

    self._prior_made = made_fn(prior.mades[0]) if self.steps >= 1 else None
    self._posterior_made = made_fn(prior.mades[1]) if self.steps == 2 else None

  # ------------------------------------------------------------ posterior
  def z_walk(self, choose):
    """Walks v in the posterior's order (natural), computing ``z = z(v)``.

    ``choose(d, shift, log_scale)`` returns ``k_d`` ``[G]`` (ints) given the
    step's ``m1_d, s1_d`` ``[G]`` float32 (zero for the one-variable schemes).
    Returns ``(k [G, D] int64, z [G, D] float32, shift [G, D], log_scale [G, D])``.
    """
    g, d = self.g, self.d
    k = np.zeros((g, d), np.int64)
    z = np.zeros((g, d), np.float32)
    shift = np.zeros((g, d), np.float32)
    log_scale = np.zeros((g, d), np.float32)
    for i in range(d):
      if self._posterior_made is not None:
        out = self._posterior_made(tf.constant(z)).numpy()
        shift[:, i], log_scale[:, i] = out[:, i, 0], out[:, i, 1]
      k[:, i] = choose(i, shift[:, i], log_scale[:, i])
      u = (k[:, i] * self.delta).astype(np.float32)
      z[:, i] = u * np.exp(log_scale[:, i]) + shift[:, i]
    return k, z, shift, log_scale

  def posterior_params(self, mu, sigma, shift, log_scale):
    """Mean and std of ``q(v_d | v_<d, x)`` in bin units (float64; any matching shapes)."""
    inv = np.exp(-np.asarray(log_scale, np.float64))
    mean = (np.asarray(mu, np.float64) - shift) * inv / self.delta
    std = np.asarray(sigma, np.float64) * inv / self.delta
    return mean, std

  # ---------------------------------------------------------------- prior
  def prior_walk(self, choose):
    """Walks v in the prior's order; ``choose(i, mean, std)`` returns ``k`` of that dim ``[G]``.

    ``i`` is the index into v (for two steps the walk runs i = D-1, ..., 0);
    mean and std are float64 ``[G]`` in bin units. Returns ``k [G, D]``.
    """
    g, d = self.g, self.d
    k = np.zeros((g, d), np.int64)
    y = np.zeros((g, d), np.float32)           # the prior's variable: v, or v reversed
    for j in range(d):
      i = d - 1 - j if self.steps == 2 else j
      if self._prior_made is None:
        mean, std = np.zeros(g), np.full(g, 1.0)
      else:
        out = self._prior_made(tf.constant(y)).numpy()
        mean = out[:, j, 0].astype(np.float64)
        std = np.exp(out[:, j, 1].astype(np.float64))
      k[:, i] = choose(i, mean / self.delta, std / self.delta)
      y[:, j] = (k[:, i] * self.delta).astype(np.float32)
    return k

  def encode_v(self, mu):
    """``v`` of the latent ``z = mu`` (the lossy code's point), ``[G, D]`` float32.

    One step: ``v = z``; two steps: ``u = F1^{-1}(z)``, a parallel pass.
    """
    mu = np.asarray(mu, np.float32)
    if self._posterior_made is None:
      return mu
    out = self._posterior_made(tf.constant(mu)).numpy()
    return ((mu - out[..., 0]) * np.exp(-out[..., 1])).astype(np.float32)
