"""The AF prior p(z) and the IAF posterior option (the paper's Section 2.2 / 4.1 ablation).

AF prior (MAF direction)
  ``z = f(eps)``, ``eps ~ N(0, I)``, with ``f`` a stack of
  ``tfb.MaskedAutoregressiveFlow`` steps, each ``z_d = eps_d exp(s_d(z_<d)) +
  m_d(z_<d)`` and the order reversed between steps. The density needs only the
  inverse, which is one parallel MADE pass per step::

      log p(z) = log N(f^{-1}(z); 0, I) - sum_steps sum_d s_d

  while sampling is sequential over the D dimensions. This is what VLAE uses:
  an autoregressive prior makes the rate cheaper for the same posterior.

IAF posterior
  ``z = g(z0)``, ``z0 ~ N(mu(x), sigma(x))``, each step ``z_d <- z_d exp(s_d) +
  m_d`` with ``(m, s)`` a MADE of the *input* of the step (parallel sampling)::

      log q(z|x) = log N(z0; mu, sigma) - sum_steps sum_d s_d

Both are built from :class:`vlae_tf.made.MADE` (Keras 3). Log-scales are soft
clamped to ``(-3, 3)`` per step for stability.

Exact fast prior sampling (:func:`maf_forward`, used by ``AFPrior.sample_from_noise``)
  ``tfb.MaskedAutoregressiveFlow.forward`` runs the whole MADE ``D`` times per
  flow step: ``O(D^2 H)``, about a minute for the CIFAR-10 prior (``D = 2048``).
  The MADE's masks allow an exact incremental sampler: a hidden unit is
  *final* once the inputs it can see are known, so each unit's pre-activation
  collects every contribution exactly once, ``O(D H)`` per flow step (one MADE
  pass). The ``D`` sequential steps run in blocks of K dims: the ``O(H)`` work
  (units already final, rank-K input updates) is one matmul per block, and the
  K steps inside a block touch only the few units that become final inside it.
  It agrees with the tfb forward (``AFPrior.bijector().forward``, the reference)
  up to float summation order.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vlae_tf.made import MADE

tfb = tfp.bijectors
tfd = tfp.distributions

_LOG_SCALE_CLAMP = 3.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def soft_clamp(s):
  """The log-scale of every MAF / IAF step from its MADE's raw output:
  ``3 tanh(s / 3)``, in ``(-3, 3)``. Public: the codec (:mod:`vlae_tf.codec.latent`)
  computes the prior's and posterior's conditionals with it."""
  return _LOG_SCALE_CLAMP * tf.tanh(s / _LOG_SCALE_CLAMP)


def std_normal_log_prob(x):
  return -0.5 * tf.square(x) - _HALF_LOG_2PI


@keras.saving.register_keras_serializable(package="vlae_tf")
class StandardNormalPrior(keras.layers.Layer):
  """p(z) = N(0, I) over a flat ``[B, D]`` latent."""

  def __init__(self, event_size, **kwargs):
    super().__init__(**kwargs)
    self.event_size = int(event_size)

  def log_prob_per_dim(self, z):
    return std_normal_log_prob(z)

  def log_prob(self, z):
    return tf.reduce_sum(std_normal_log_prob(z), -1)

  def sample_from_noise(self, eps):
    return eps

  def get_config(self):
    return {**super().get_config(), "event_size": self.event_size}


@keras.saving.register_keras_serializable(package="vlae_tf")
class AFPrior(keras.layers.Layer):
  """Autoregressive-flow prior: a stack of MAF steps over N(0, I)."""

  def __init__(self, event_size, num_steps=2, hidden_units=(256, 256), **kwargs):
    super().__init__(**kwargs)
    self.event_size = int(event_size)
    self.num_steps = int(num_steps)
    self.hidden_units = tuple(int(h) for h in hidden_units)
    self.mades = [MADE(self.event_size, self.hidden_units, params=2, name=f"made_{i}")
                  for i in range(self.num_steps)]
    self._reverse = np.arange(self.event_size)[::-1].copy()

  def build(self, input_shape):
    for m in self.mades:
      m.build((None, self.event_size))

  def _shift_and_log_scale_fn(self, made):
    def fn(y):
      out = made(y)
      return out[..., 0], soft_clamp(out[..., 1])
    return fn

  def bijector(self):
    """``f``: eps -> z. Chain applies the last listed bijector first."""
    steps = []
    for i, made in enumerate(self.mades):
      if i > 0:
        steps.append(tfb.Permute(self._reverse))
      steps.append(tfb.MaskedAutoregressiveFlow(
          shift_and_log_scale_fn=self._shift_and_log_scale_fn(made)))
    return tfb.Chain(steps[::-1])

  def distribution(self):
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([self.event_size]))
    return tfd.TransformedDistribution(base, self.bijector())

  def log_prob(self, z):
    return self.distribution().log_prob(z)

  def log_prob_per_dim(self, z):
    """A per-dimension split of ``log p(z)`` that sums to it exactly.

    Runs the parallel inverse pass by hand and credits each ``-s_d`` term and
    each base term to the latent dimension ``z_d`` it came from after undoing
    the reversals. (Only the sum is a density; the split is for reporting KL
    per dimension and for free bits on groups of dimensions.)
    """
    y = z
    perm = np.arange(self.event_size)        # position p of y holds original dim perm[p]
    terms = tf.zeros_like(z)
    for i in reversed(range(self.num_steps)):
      out = self.mades[i](y)
      shift, log_scale = out[..., 0], soft_clamp(out[..., 1])
      y = (y - shift) * tf.exp(-log_scale)
      terms = terms + tf.gather(-log_scale, np.argsort(perm), axis=-1)
      if i > 0:
        y = tf.gather(y, self._reverse, axis=-1)   # inverse of Permute(reverse)
        perm = perm[self._reverse]
    return terms + tf.gather(std_normal_log_prob(y), np.argsort(perm), axis=-1)

  def sample_from_noise(self, eps, block_size=32):
    """``z = f(eps)`` with the exact incremental sampler (:func:`maf_forward` per MAF step,
    reversing the order between steps as :meth:`bijector` does): one MADE pass per step."""
    y = tf.convert_to_tensor(eps, tf.float32)
    for i, made in enumerate(self.mades):
      if i > 0:
        y = tf.gather(y, self._reverse, axis=-1)
      y = maf_forward(made, y, block_size)
    return y

  def get_config(self):
    return {**super().get_config(), "event_size": self.event_size,
            "num_steps": self.num_steps, "hidden_units": list(self.hidden_units)}


def _units_final_inside_blocks(e, num_blocks, block):
  """``[nb, M]`` indices of the units with ``a < e < a + K`` per block, padded with ``len(e)``."""
  starts = np.arange(num_blocks) * block
  inside = [np.flatnonzero((e > a) & (e < a + block)) for a in starts]
  idx = np.full((num_blocks, max(1, max(len(u) for u in inside))), len(e), np.int32)
  for bi, u in enumerate(inside):
    idx[bi, :len(u)] = u
  return idx


@tf.autograph.experimental.do_not_convert   # Python loops over static structure only
def maf_forward(made, eps, block_size=32):
  """Exact ``y`` with ``y_d = eps_d exp(s_d(y_<d)) + m_d(y_<d)`` for a MADE ``(m, s)``.

  The MAF forward pass, ``O(D H)`` work instead of ``D`` whole MADE passes.
  Hidden unit ``u`` of layer ``l`` with *effective degree* ``e_u`` (it depends
  on inputs ``y_0 .. y_{e_u - 1}``) is final from step ``e_u`` on; its
  pre-activation collects each contribution once. The D steps run in blocks of
  ``K = block_size`` dims ``[a, a + K)``:

  * block start: the units with ``e <= a`` are final; their contribution to
    the K outputs of the block is one matmul ``elu(pre_L) [e <= a] W_out[:, a:a+K]``;
  * K sequential steps touch only the few units with ``a < e < a + K``
    (copied out of the layers): step ``d`` adds the contributions of those with
    ``e = d`` to the layer above, reads output d through the MADE's masked
    weights (zero for units not final at d), draws ``y_d`` and adds
    ``y_d W_1[d]`` to them;
  * block end: ``pre_1 += y_block W_1[a:a+K]`` and, layer by layer, the units
    with ``a < e <= a + K`` add their contributions to the next layer (matmuls).

  The per-step work is ``O(K)`` small tensors; the ``O(H)`` work is batched in
  per-block matmuls, which is what makes a ``D = 2048`` prior fast.
  """
  d, params = made.event_size, made.params
  masks = made.masks
  graph_masks = made.graph_masks()
  block = int(max(1, min(block_size, d)))
  nb = -(-d // block)
  dp = nb * block
  num_hidden = len(masks) - 1
  kernels = [tf.convert_to_tensor(k) * m for k, m in zip(made.kernels, graph_masks)]
  biases = [tf.convert_to_tensor(b) for b in made.biases]
  h_last = masks[-1].shape[0]
  w_out = (tf.reshape(tf.convert_to_tensor(made.out_kernel), [h_last, d, params])
           * graph_masks[-1][:, :, None])
  w_out = tf.pad(w_out, [[0, 1], [0, dp - d], [0, 0]])               # [H_L + 1, Dp, P]; dummy row
  w_out_blocks = tf.transpose(tf.reshape(w_out[:h_last], [h_last, nb, block * params]), [1, 0, 2])
  b_out = tf.reshape(tf.pad(tf.reshape(tf.convert_to_tensor(made.out_bias), [d, params]),
                            [[0, dp - d], [0, 0]]), [nb, block * params])
  w_in = tf.reshape(tf.pad(kernels[0], [[0, dp - d], [0, 1]]), [nb, block, -1])  # [nb, K, H1 + 1]
  # The units that become final inside each block, and their weights at each step of it.
  degrees = made.effective_degrees()
  idx = [_units_final_inside_blocks(e, nb, block) for e in degrees]
  w_out_in = tf.gather(tf.transpose(tf.reshape(w_out, [h_last + 1, nb, block, params]),
                                    [1, 0, 2, 3]), idx[-1], axis=1, batch_dims=1)
  w_out_in = tf.transpose(w_out_in, [0, 2, 1, 3])                        # [nb, K, M_L, P]
  w1_in = tf.gather(w_in, idx[0], axis=2, batch_dims=1)                  # [nb, K, M_1]
  w_in = w_in[:, :, :-1]
  w_rr = []
  for l in range(num_hidden - 1):
    rows = tf.gather(tf.pad(kernels[l + 1], [[0, 1], [0, 1]]), idx[l])  # [nb, M_l, H + 1]
    w_rr.append(tf.gather(rows, idx[l + 1], axis=2, batch_dims=1))      # [nb, M_l, M_l+1]
  e_t = [tf.constant(e.astype(np.int32)) for e in degrees]
  e_pad = [tf.constant(np.append(e, dp + 1).astype(np.int32)) for e in degrees]  # dummy: never
  idx_t = [tf.constant(i) for i in idx]
  idx_read = [tf.constant(np.minimum(i, len(e) - 1)) for i, e in zip(idx, degrees)]
  b = tf.shape(eps)[0]
  eps_blocks = tf.transpose(tf.reshape(tf.pad(eps, [[0, 0], [0, dp - d]]), [b, nb, block]),
                            [1, 2, 0])                                    # [nb, K, B]

  def propagate(pres, final):
    """Units with ``final(e)`` add their contributions to the next layer, lowest layer first."""
    for l in range(num_hidden - 1):
      act = tf.nn.elu(pres[l]) * tf.cast(final(e_t[l]), tf.float32)
      pres[l + 1] = pres[l + 1] + tf.matmul(act, kernels[l + 1])
    return pres

  def body(bi, pres, ys):
    pres = list(pres)
    a = bi * block
    start_out = tf.matmul(tf.nn.elu(pres[-1]) * tf.cast(e_t[-1] <= a, tf.float32),
                          w_out_blocks[bi]) + b_out[bi]
    start_out = tf.unstack(tf.reshape(start_out, [b, block, params]), axis=1)
    local = [tf.gather(pre, idx_read[l][bi], axis=1) for l, pre in enumerate(pres)]
    steps = a + tf.range(block)[:, None]
    fin = [tf.unstack(tf.cast(tf.gather(e_pad[l], idx_t[l][bi])[None, :] == steps, tf.float32))
           for l in range(num_hidden - 1)]
    w_out_steps = tf.unstack(w_out_in[bi])
    w1_steps = tf.unstack(w1_in[bi])
    eps_steps = tf.unstack(eps_blocks[bi])
    w_rr_b = [w[bi] for w in w_rr]
    y_steps = []
    for t in range(block):
      for l in range(num_hidden - 1):
        local[l + 1] = local[l + 1] + tf.matmul(tf.nn.elu(local[l]) * fin[l][t], w_rr_b[l])
      shift, raw_scale = tf.unstack(start_out[t] + tf.matmul(tf.nn.elu(local[-1]),
                                                             w_out_steps[t]), axis=1)
      y = eps_steps[t] * tf.exp(soft_clamp(raw_scale)) + shift
      local[0] = local[0] + y[:, None] * w1_steps[t]
      y_steps.append(y)
    y_block = tf.stack(y_steps, axis=1)                                     # [B, K]
    pres[0] = pres[0] + tf.matmul(y_block, w_in[bi])
    pres = propagate(pres, lambda e: (e > a) & (e <= a + block))
    return bi + 1, pres, ys.write(bi, y_block)

  pres = [tf.zeros(tf.stack([b, tf.shape(bias)[0]])) + bias for bias in biases]
  pres = propagate(pres, lambda e: tf.equal(e, 0))
  ys = tf.TensorArray(tf.float32, size=nb, element_shape=[None, block])
  _, _, ys = tf.while_loop(lambda bi, *_: bi < nb, body, [tf.constant(0), pres, ys])
  y = tf.reshape(tf.transpose(ys.stack(), [1, 0, 2]), [b, dp])
  return y[:, :d]


@keras.saving.register_keras_serializable(package="vlae_tf")
class IAFPosterior(keras.layers.Layer):
  """IAF on top of the diagonal Gaussian q0(z|x), conditioned on encoder context."""

  def __init__(self, event_size, num_steps=2, hidden_units=(256, 256), context_size=0, **kwargs):
    super().__init__(**kwargs)
    self.event_size = int(event_size)
    self.num_steps = int(num_steps)
    self.hidden_units = tuple(int(h) for h in hidden_units)
    self.context_size = int(context_size)
    self.mades = [MADE(self.event_size, self.hidden_units, params=2,
                       context_size=self.context_size, name=f"made_{i}")
                  for i in range(self.num_steps)]
    self._reverse = np.arange(self.event_size)[::-1].copy()

  def build(self, input_shape):
    for m in self.mades:
      m.build((None, self.event_size))

  def forward(self, z0, context=None):
    """Returns ``z = g(z0)`` and the per-dimension ``log|dz/dz0|`` credited to z0's dims."""
    z = z0
    perm = np.arange(self.event_size)
    ldj = tf.zeros_like(z0)
    for i, made in enumerate(self.mades):
      if i > 0:
        z = tf.gather(z, self._reverse, axis=-1)
        perm = perm[self._reverse]
      out = made(z, context=context if self.context_size else None)
      shift, log_scale = out[..., 0], soft_clamp(out[..., 1])
      z = z * tf.exp(log_scale) + shift
      ldj = ldj + tf.gather(log_scale, np.argsort(perm), axis=-1)
    if self.num_steps > 1 and (self.num_steps - 1) % 2 == 1:
      z = tf.gather(z, self._reverse, axis=-1)   # back to the original order
    return z, ldj

  def get_config(self):
    return {**super().get_config(), "event_size": self.event_size,
            "num_steps": self.num_steps, "hidden_units": list(self.hidden_units),
            "context_size": self.context_size}
