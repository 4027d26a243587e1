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
  -ELBO up to that discretization; ``python -m experiments.compression`` measures it.

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

Both walks are sequential in their order. Step i reads the MADE's output i
from :class:`vlae_tf.made.MADESteps`: the hidden units' running pre-activations,
updated as each entry of the walk's vector is fixed (``O(H)`` per step, instead
of the whole MADE pass per step of canonical mode 2, ``O(D H)``). Sender and
receiver make the same calls with the same inputs and shapes (``[G, H]``,
``G`` the group's size), so they compute bit-identical parameters; where the
values are all known (the sender's prior walk, the receiver's ``z(k)``) the same
walk runs without calling the coder. Lossy files of format version 1 were
coded with the whole-pass walk, which ``legacy=True`` keeps.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf.af_prior import AFPrior, StandardNormalPrior, soft_clamp
from vlae_tf.codec.pixels import Chooser
from vlae_tf.made import MADESteps


class UnsupportedModel(ValueError):
  """The model's prior / posterior pair cannot be coded exactly (see the module doc)."""


def check_codable(model):
  """Raises :class:`UnsupportedModel` naming why ``model`` cannot be bits-back coded."""
  if model.posterior_flow is not None:
    raise UnsupportedModel(
        "cannot code this model exactly: its posterior is an IAF flow (model.posterior='iaf'); "
        "the codec needs the diagonal Gaussian posterior (see vlae_tf.codec.latent)")
  prior = model.prior
  if isinstance(prior, StandardNormalPrior):
    return
  if isinstance(prior, AFPrior) and prior.num_steps in (1, 2):
    return
  steps = getattr(prior, "num_steps", "?")
  raise UnsupportedModel(
      f"cannot code this model exactly: its AF prior has {steps} MAF steps with reversed orders; "
      "only 1 or 2 steps have a variable whose prior and posterior both factorize "
      "autoregressively (see vlae_tf.codec.latent)")


class _WholePass:
  """The walk's MADE as format-version-1 lossy files were coded: one whole pass per step on the
  partially known vector ``[G, D]`` (later entries zero, which the masks never read)."""

  def __init__(self, made):
    self.made, self.d = made, made.event_size

  def initial(self, g):
    return [tf.zeros(tf.stack([g, self.d]))]

  def output(self, state, i):
    out = self.made(state[0])
    return tf.stack([out[..., 0], soft_clamp(out[..., 1])], -1)[:, i]

  def update(self, state, i, value):
    return [state[0] + value[:, None] * tf.one_hot(i, self.d)]


class _Steps(MADESteps):
  """:class:`MADESteps` giving ``(shift, soft-clamped log-scale)`` ``[G, 2]`` per step."""

  def output(self, state, i):
    out = super().output(state, i)
    return tf.stack([out[:, 0], soft_clamp(out[:, 1])], -1)


class _Zero:
  """No flow step: shift and log-scale 0 (the standard normal, or a one-step prior's posterior)."""

  def initial(self, g):
    return [tf.zeros(tf.stack([g, 1]))]

  def output(self, state, i):
    del i
    return tf.zeros(tf.stack([tf.shape(state[0])[0], 2]))

  def update(self, state, i, value):
    del i, value
    return state


class LatentScheme:
  """The coded latent v of a model (module doc), for groups of ``G`` images (any ``G``).

  ``legacy``: the whole-pass walks of format-version-1 (lossy) files.
  """

  def __init__(self, model, bin_width_log2, latent_range, legacy=False):
    check_codable(model)
    self.d = d = int(model.latent_size)
    self.delta = float(2.0 ** -int(bin_width_log2))
    self.max_symbol = int(round(float(latent_range) / self.delta))
    prior = model.prior
    self.steps = 0 if isinstance(prior, StandardNormalPrior) else prior.num_steps
    walker = _WholePass if legacy else _Steps
    self._prior_made = walker(prior.mades[0]) if self.steps >= 1 else _Zero()
    self._posterior_made = walker(prior.mades[1]) if self.steps == 2 else _Zero()
    self._chooser = Chooser()
    spec = tf.TensorSpec([None, d], tf.int64)

    def fn(body, pop):
      return tf.function(lambda k: body(k, pop), input_signature=[spec], autograph=False)

    self._z_pop, self._z_known = fn(self._z_walk_fn, True), fn(self._z_walk_fn, False)
    self._prior_pop, self._prior_known = fn(self._prior_walk_fn, True), fn(self._prior_walk_fn,
                                                                            False)
    self._encode_v = None
    if self.steps == 2:
      made = prior.mades[1]
      self._encode_v = tf.function(
          lambda y: (lambda out: tf.stack([out[..., 0], soft_clamp(out[..., 1])], -1))(made(y)),
          autograph=False, input_signature=[tf.TensorSpec([None, d], tf.float32)])

  def _loop(self, walker, g, body, outputs):
    """``for i in range(D)``: ``body(i, state) -> (state, [outputs of step i [G]])`` as a
    ``tf.while_loop`` from ``walker.initial(g)``; returns each output stacked ``[G, D]``."""
    arrays = [tf.TensorArray(dtype, size=self.d, element_shape=[None]) for dtype in outputs]

    def step(i, state, arrays):
      state, outs = body(i, state)
      return i + 1, state, [a.write(i, o) for a, o in zip(arrays, outs)]

    _, _, arrays = tf.while_loop(lambda i, *_: i < self.d, step,
                                 [tf.constant(0), walker.initial(g), arrays])
    return [tf.transpose(a.stack()) for a in arrays]

  # ------------------------------------------------------------ posterior
  def _z_walk_fn(self, known, pop):
    delta, made = self.delta, self._posterior_made

    def body(i, state):
      out = made.output(state, i)
      shift, log_scale = out[:, 0], out[:, 1]
      if pop:
        k = self._chooser.op([i, shift, log_scale], lambda i, s, ls: (int(i), s, ls))
      else:
        k = known[:, i]
      u = tf.cast(tf.cast(k, tf.float64) * delta, tf.float32)
      z_i = u * tf.exp(log_scale) + shift
      return made.update(state, i, z_i), [k, z_i, shift, log_scale]

    return self._loop(made, tf.shape(known)[0], body,
                      [tf.int64, tf.float32, tf.float32, tf.float32])

  def z_walk(self, g, choose):
    """Walks v of ``g`` images in the posterior's order (natural), computing ``z = z(v)``.

    ``choose(d, shift, log_scale)`` returns ``k_d`` ``[g]`` (ints) given the
    step's ``m1_d, s1_d`` ``[g]`` float32 (zero for the one-variable schemes).
    Returns ``(k [g, D] int64, z [g, D] float32, shift [g, D], log_scale [g, D])``.
    One graph call: the D steps run in a ``tf.while_loop`` that calls ``choose``.
    """
    out = self._chooser.run(choose, self._z_pop, tf.zeros([g, self.d], tf.int64))
    return tuple(t.numpy() for t in out)

  def z_of(self, k):
    """:meth:`z_walk` with every ``k`` ``[g, D]`` known (no coder calls): ``(z, shift,
    log_scale)``, the same bits as the walk that chose them."""
    return tuple(t.numpy() for t in self._z_known(tf.constant(k, tf.int64))[1:])

  def posterior_params(self, mu, sigma, shift, log_scale):
    """Mean and std of ``q(v_d | v_<d, x)`` in bin units (float64; any matching shapes).

    The inputs are copied to contiguous float64 first, so that sender and receiver (which
    slice them from differently laid out arrays) run NumPy's same loops on them.
    """
    mu, sigma, shift, log_scale = (np.ascontiguousarray(a, np.float64)
                                   for a in (mu, sigma, shift, log_scale))
    inv = np.exp(-log_scale)
    mean = (mu - shift) * inv / self.delta
    std = sigma * inv / self.delta
    return mean, std

  # ---------------------------------------------------------------- prior
  def _prior_walk_fn(self, known, pop):
    d, delta, made = self.d, self.delta, self._prior_made

    def body(j, state):                  # state: of the prior's variable, v or v reversed
      i = d - 1 - j if self.steps == 2 else j
      out = tf.cast(made.output(state, j), tf.float64)
      mean, std = out[:, 0], tf.exp(out[:, 1])
      if pop:
        k = self._chooser.op([i, mean / delta, std / delta], lambda i, m, s: (int(i), m, s))
      else:
        k = known[:, i]
      y_j = tf.cast(tf.cast(k, tf.float64) * delta, tf.float32)
      return made.update(state, j, y_j), [k, mean / delta, std / delta]

    return self._loop(made, tf.shape(known)[0], body, [tf.int64, tf.float64, tf.float64])

  def prior_walk(self, g, choose):
    """Walks v of ``g`` images in the prior's order; ``choose(i, mean, std)`` returns ``k`` of
    that dim ``[g]``.

    ``i`` is the index into v (for two steps the walk runs i = D-1, ..., 0);
    mean and std are float64 ``[g]`` in bin units. Returns ``k [g, D]``. One
    graph call, as :meth:`z_walk`.
    """
    k = self._chooser.run(choose, self._prior_pop, tf.zeros([g, self.d], tf.int64))[0].numpy()
    return k[:, ::-1] if self.steps == 2 else k

  def prior_params(self, k):
    """The prior walk's ``(mean, std)`` ``[g, D]`` at known ``k`` ``[g, D]``, columns in the
    walk's order (for two steps v's dims D-1, ..., 0), with no coder calls: the same bits
    :meth:`prior_walk` hands its ``choose``."""
    return tuple(t.numpy() for t in self._prior_known(tf.constant(k, tf.int64))[1:])

  def encode_v(self, mu):
    """``v`` of the latent ``z = mu`` (the lossy code's point), ``[G, D]`` float32.

    One step: ``v = z``; two steps: ``u = F1^{-1}(z)``, a parallel pass.
    """
    mu = np.asarray(mu, np.float32)
    if self._encode_v is None:
      return mu
    out = self._encode_v(tf.constant(mu)).numpy()
    return ((mu - out[..., 0]) * np.exp(-out[..., 1])).astype(np.float32)
