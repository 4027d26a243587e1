"""Sampling x ~ p(x|z), z ~ p(z) and x ~ p(x) from a VLAE, fast and exactly.

Autoregressive sampling draws pixels in raster order; sub-pixels of a pixel in
R, G, B order inside the likelihood's ``sample``. All randomness comes from
pre-drawn uniform noise of shape ``[B, H, W, likelihood.noise_channels()]``,
so two samplers given the same z and noise return the same images (up to
float summation order in the logits, which flips a discrete draw only when a
uniform lands within ~1e-6 of a threshold).

``method="naive"``
  One full decoder pass per pixel (H * W passes, each over all H * W pixels):
  ``O((H W)^2)`` activations. The reference implementation.

``method="cached"`` (default)
  Each activation of the decoder is computed exactly once, as in Ramachandran
  et al. 2017 ("Fast Generation for Convolutional Autoregressive Models"),
  specialised to VLAE's decoder (:mod:`vlae_tf.local_decoder`): a chain of
  masked convolutions with an explicit ``(mask, anchor)`` geometry, each plus
  a 1x1 projection of the conditioning features ``c = g(z)``. The algorithm:

  1. Once per image: ``c = g(z)`` and, for every layer, the z-dependent
     per-pixel term ``proj(c) + bias`` (one batched pass, ``[H W, B, F]``).
  2. Per pixel ``p = (i, j)`` in raster order, for every x-reading layer
     ``l`` in order, gather the layer's *input* at the mask's taps
     ``{p + o : o in offsets(mask_l)}`` (positions outside the image read a
     zero slot, i.e. the zero padding), and compute the layer's output at
     ``p`` only: ``h_l(p) = sum_t in_l(p + o_t) W_l[t] + proj_l(c)(p)``.
     The 1x1 gated blocks and the output layer are per-pixel matmuls. Then
     sample ``x_p`` from the likelihood with the pixel's noise.
  3. Store ``x_p`` (normalized, grayscale for the ``grayscale`` context) and
     ``elu(h_l(p))`` of every mask-B layer in per-layer caches of one slot per
     pixel (a ``tf.TensorArray`` of ``H W + 1`` slots ``[B, F]``, slot 0 the
     zero padding), so later pixels can read them.

  Why it is exact: a mask-A/B or window layer at ``p`` reads its input only at
  raster-earlier positions, or at ``p`` itself for mask B. Layer ``l - 1`` at
  ``p`` was computed just before layer ``l`` in this step, and at an earlier
  position ``q`` it was computed at step ``q``, when every pixel it depends on
  (raster-earlier than ``q``) was already drawn, so the cached value equals
  the one the full pass computes. Masked-out taps are never read, so the
  not-yet-drawn pixels never matter (as in the naive pass, where they are
  multiplied by zero weights).

  Cost: ``sum_l T_l C_l F_l`` multiply-adds per pixel, with ``T_l`` the number
  of non-zero taps of layer l: one forward pass in total, i.e. ``H W`` times
  fewer FLOPs than naive (and fewer than a full pass, as masked taps are
  skipped), in ``H W`` sequential steps of small matmuls ``[B, T C] x [T C,
  F]``. For every context it is one step per pixel whatever the receptive
  field; on 2 CPU cores the per-step op overhead, not FLOPs, dominates for
  small batches. ``none`` is one decoder pass (no pixel reads another).
  ``full`` works the same way with one big window (``T ~ 2 H W`` taps, most of
  them zero slots near the top of the image).

Prior sampling (:func:`sample_prior`, :func:`prior_from_noise`)
  ``tfb.MaskedAutoregressiveFlow.forward`` runs the whole MADE ``D`` times per
  flow step: ``O(D^2 H)``, about a minute for the CIFAR-10 prior (``D = 2048``).
  The MADE's masks allow an exact incremental sampler: a hidden unit is
  *final* once the inputs it can see are known, so each unit's pre-activation
  collects every contribution exactly once, ``O(D H)`` per flow step (one MADE
  pass). The ``D`` sequential steps run in blocks of K dims: the ``O(H)`` work
  (units already final, rank-K input updates) is one matmul per block, and the
  K steps inside a block touch only the few units that become final inside it
  (see :func:`made_autoregressive_forward`).

All functions here are traceable in ``tf.function`` with a symbolic batch size;
the public ``sample`` / ``decode`` / ``reconstruct`` take a ``[2]`` int
stateless seed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf.af_prior import AFPrior, _soft_clamp
from vlae_tf.likelihoods import uniform_noise

METHODS = ("naive", "cached")

# Every loop here is either a Python loop over static structure (layers, the K
# steps of a block) or an explicit tf.while_loop: autograph has nothing to
# convert, and converting these functions costs seconds per trace.
_no_autograph = tf.autograph.experimental.do_not_convert


@_no_autograph
def draw_noise(model, batch, seed=None):
  """Uniform noise for :func:`sample_x_given_z`; ``seed`` is a ``[2]`` int stateless seed."""
  h, w, _ = model.image_shape
  return uniform_noise([batch, h, w, model.likelihood.noise_channels()], stateless_seed=seed)


# ------------------------------------------------------------------ naive
@_no_autograph
def naive_sample(model, cond, noise, num_pixels=None):
  """x ~ p(x | z) given conditioning features; H * W full decoder passes.

  ``num_pixels`` (default all): draw only the first pixels in raster order and
  leave the rest 0 (for timing the reference on part of an image).
  """
  h, w, c = model.image_shape
  b = tf.shape(cond)[0]
  num_pixels = h * w if num_pixels is None else num_pixels
  x = tf.zeros(tf.stack([b, h, w, c]), tf.float32)
  if model.decoder.context == "none":
    return model.likelihood.sample(model.decoder(model.normalize(x), cond), noise)

  def body(k, x):
    i, j = k // w, k % w
    raw = model.decoder(model.normalize(x), cond)[:, i, j]
    pix = model.likelihood.sample(raw, noise[:, i, j])                  # [B, C]
    onehot = tf.reshape(tf.one_hot(k, h * w), [1, h, w, 1])
    return k + 1, x + onehot * pix[:, None, None, :]

  _, x = tf.while_loop(lambda k, x: k < num_pixels, body, [tf.constant(0), x])
  return x


# ------------------------------------------------------------------ cached
def tap_table(mask, anchor, image_hw):
  """Where each non-zero tap of a masked kernel reads, for every output pixel.

  Returns ``(taps, table)``: ``taps`` the ``(u, v)`` kernel positions with
  ``mask[u, v] = 1`` in row-major order, and ``table`` an int32 ``[H W, T]``
  array whose entry ``[p, t]`` is ``1 + q`` for the input pixel ``q`` (raster
  index) that tap ``t`` reads at output pixel ``p``, or 0 when it falls in the
  zero padding.
  """
  h, w = image_hw
  us, vs = np.nonzero(np.asarray(mask))
  taps = list(zip(us.tolist(), vs.tolist()))
  ii, jj = np.divmod(np.arange(h * w), w)
  table = np.zeros((h * w, len(taps)), np.int32)
  for t, (u, v) in enumerate(taps):
    qi, qj = ii + u - anchor[0], jj + v - anchor[1]
    inside = (qi >= 0) & (qi < h) & (qj >= 0) & (qj < w)
    table[:, t] = np.where(inside, 1 + qi * w + qj, 0)
  return taps, table


class _TapLayer:
  """One masked conv evaluated at a single pixel from a slot cache."""

  def __init__(self, conv, image_hw):
    taps, table = tap_table(conv.mask, conv.anchor, image_hw)
    kernel = tf.convert_to_tensor(conv.kernel)                       # [kh, kw, Cin, Cout]
    self.cin = int(kernel.shape[2])
    self.kernel = tf.reshape(tf.gather_nd(kernel, np.array(taps, np.int32)),
                             [len(taps) * self.cin, int(kernel.shape[3])])
    self.table = tf.constant(table)
    self.num_taps = len(taps)

  def __call__(self, cache, p):
    patch = cache.gather(self.table[p])                              # [T, B, Cin]
    b = tf.shape(patch)[1]
    flat = tf.reshape(tf.transpose(patch, [1, 0, 2]), [b, self.num_taps * self.cin])
    return tf.matmul(flat, self.kernel)


def _per_pixel(t):
  """``[B, H, W, F]`` -> ``[H W, B, F]`` so step ``p`` reads a contiguous slice."""
  s = tf.shape(t)
  return tf.transpose(tf.reshape(t, [s[0], s[1] * s[2], s[3]]), [1, 0, 2])


def _slot_cache(b, channels, num_pixels):
  """A TensorArray of ``H W + 1`` slots ``[B, channels]``; slot 0 holds the zero padding."""
  ta = tf.TensorArray(tf.float32, size=num_pixels + 1, element_shape=[None, channels],
                      clear_after_read=False)
  return ta.write(0, tf.zeros(tf.stack([b, channels])))


@_no_autograph
def cached_sample(model, cond, noise):
  """x ~ p(x | z) given conditioning features, each activation computed once.

  See the module docstring for the algorithm. ``cond``: ``[B, H, W, Fc]``;
  ``noise``: ``[B, H, W, N]``. Returns ``[B, H, W, C]`` floats in data scale.
  """
  dec, lik = model.decoder, model.likelihood
  h, w, c = model.image_shape
  n = h * w
  if dec.context == "none":
    x = tf.zeros(tf.concat([tf.shape(cond)[:1], [h, w, c]], 0))
    return lik.sample(dec(model.normalize(x), cond), noise)
  b = tf.shape(cond)[0]
  first = _TapLayer(dec.first, (h, w))
  pre_first = _per_pixel(dec.first_proj(cond) + dec.first.bias)
  masked, pointwise = [], []
  for block in dec.blocks:
    pre = _per_pixel(block.proj(cond) + block.conv.bias)
    if block.conv.mask.shape == (1, 1):
      kernel = tf.convert_to_tensor(block.conv.kernel)[0, 0] * float(block.conv.mask[0, 0])
      pointwise.append((kernel, pre))
    else:
      masked.append((_TapLayer(block.conv, (h, w)), pre))
  out_kernel = tf.convert_to_tensor(dec.out.kernel)
  out_bias = tf.convert_to_tensor(dec.out.bias)
  noise_p = _per_pixel(noise)
  filters = dec.filters

  def gate(hid, conv_out):
    a, g = tf.split(conv_out, 2, axis=-1)
    return hid + a * tf.sigmoid(g)

  def body(p, x_cache, caches, out):
    hid = pre_first[p] + first(x_cache, p)
    new_caches = []
    for (layer, pre), cache in zip(masked, caches):
      cache = cache.write(p + 1, tf.nn.elu(hid))
      hid = gate(hid, layer(cache, p) + pre[p])
      new_caches.append(cache)
    for kernel, pre in pointwise:
      hid = gate(hid, tf.matmul(tf.nn.elu(hid), kernel) + pre[p])
    raw = tf.matmul(tf.nn.elu(hid), out_kernel) + out_bias
    pix = lik.sample(raw, noise_p[p])                                 # [B, C]
    x_cache = x_cache.write(p + 1, dec.context_input(model.normalize(pix)))
    return p + 1, x_cache, new_caches, out.write(p, pix)

  x_cache = _slot_cache(b, first.cin, n)
  caches = [_slot_cache(b, filters, n) for _ in masked]
  out = tf.TensorArray(tf.float32, size=n, element_shape=[None, c])
  _, _, _, out = tf.while_loop(lambda p, *_: p < n, body,
                               [tf.constant(0), x_cache, caches, out])
  return tf.reshape(tf.transpose(out.stack(), [1, 0, 2]), tf.stack([b, h, w, c]))


@_no_autograph
def sample_x_given_z(model, z_flat, noise=None, seed=None, method="cached"):
  """Images ``[B, H, W, C]`` (float, data scale) drawn from p(x | z).

  Args:
    model: a :class:`vlae_tf.model.VLAE`.
    z_flat: ``[B, D]`` latents.
    noise: optional pre-drawn uniforms (see :func:`draw_noise`).
    seed: optional ``[2]`` int stateless seed for the noise.
    method: ``"cached"`` (each activation once) or ``"naive"`` (reference).
  """
  if method not in METHODS:
    raise ValueError(f"unknown sampling method {method!r}; expected one of {METHODS}")
  cond = model.conditioning_features(z_flat)
  if noise is None:
    noise = draw_noise(model, tf.shape(z_flat)[0], seed)
  if method == "naive":
    return naive_sample(model, cond, noise)
  return cached_sample(model, cond, noise)


# ------------------------------------------------------------------ prior
def _effective_degrees(masks):
  """For each hidden layer of a MADE, 1 + the largest input index each unit can see (0: none)."""
  reach = masks[0].astype(bool)                                   # [D, H1]: input -> unit
  d = reach.shape[0]
  out = []
  for i, m in enumerate(masks[:-1]):
    if i > 0:
      reach = (reach.astype(np.float32) @ m) > 0
    idx = np.where(reach, np.arange(1, d + 1)[:, None], 0)
    out.append(idx.max(axis=0))
  return out


def _compact_mask(mask):
  """A MADE mask rebuilt in the graph from two small vectors (no ``D x H`` constant).

  Every MADE mask is a threshold ("Ferrers") matrix ``m[j, k] = [c_k >= r_j]``:
  with ``r_j = -(ones in row j)`` and ``c_k = max{r_j : m[j, k] = 1}`` the
  matrix is reproduced exactly (checked here; otherwise the mask itself is
  embedded). Embedding ``D x H`` masks as constants costs seconds of tracing.
  """
  mask = np.asarray(mask) > 0
  r = -mask.sum(axis=1)
  c = np.where(mask.any(axis=0), np.max(np.where(mask, r[:, None], r.min() - 1), axis=0),
               r.min() - 1)
  if not np.array_equal(c[None, :] >= r[:, None], mask):
    return tf.constant(mask.astype(np.float32))
  c, r = tf.constant(c.astype(np.int32)), tf.constant(r.astype(np.int32))
  return tf.cast(c[None, :] >= r[:, None], tf.float32)


def _units_final_inside_blocks(e, num_blocks, block):
  """``[nb, M]`` indices of the units with ``a < e < a + K`` per block, padded with ``len(e)``."""
  starts = np.arange(num_blocks) * block
  inside = [np.flatnonzero((e > a) & (e < a + block)) for a in starts]
  idx = np.full((num_blocks, max(1, max(len(u) for u in inside))), len(e), np.int32)
  for bi, u in enumerate(inside):
    idx[bi, :len(u)] = u
  return idx


@_no_autograph
def made_autoregressive_forward(made, eps, block_size=32):
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
  masks = made._masks
  block = int(max(1, min(block_size, d)))
  nb = -(-d // block)
  dp = nb * block
  num_hidden = len(masks) - 1
  kernels = [tf.convert_to_tensor(k) * _compact_mask(m) for k, m in zip(made.kernels, masks)]
  biases = [tf.convert_to_tensor(b) for b in made.biases]
  h_last = masks[-1].shape[0]
  w_out = (tf.reshape(tf.convert_to_tensor(made.out_kernel), [h_last, d, params])
           * _compact_mask(masks[-1])[:, :, None])
  w_out = tf.pad(w_out, [[0, 1], [0, dp - d], [0, 0]])               # [H_L + 1, Dp, P]; dummy row
  w_out_blocks = tf.transpose(tf.reshape(w_out[:h_last], [h_last, nb, block * params]), [1, 0, 2])
  b_out = tf.reshape(tf.pad(tf.reshape(tf.convert_to_tensor(made.out_bias), [d, params]),
                            [[0, dp - d], [0, 0]]), [nb, block * params])
  w_in = tf.reshape(tf.pad(kernels[0], [[0, dp - d], [0, 1]]), [nb, block, -1])  # [nb, K, H1 + 1]
  # The units that become final inside each block, and their weights at each step of it.
  degrees = _effective_degrees(masks)
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
      y = eps_steps[t] * tf.exp(_soft_clamp(raw_scale)) + shift
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


@_no_autograph
def prior_from_noise(prior, eps, block_size=32):
  """``z = f(eps)`` for the model's prior, equal to ``prior.sample_from_noise(eps)``.

  For :class:`vlae_tf.af_prior.AFPrior` it uses :func:`made_autoregressive_forward`
  for each MAF step (reversing the order between steps, as its bijector does).
  """
  if not isinstance(prior, AFPrior):
    return prior.sample_from_noise(eps)
  y = tf.convert_to_tensor(eps, tf.float32)
  for i, made in enumerate(prior.mades):
    if i > 0:
      y = tf.gather(y, prior._reverse, axis=-1)
    y = made_autoregressive_forward(made, y, block_size)
  return y


@_no_autograph
def sample_prior(model, num, seed=None, temperature=1.0):
  """``num`` latents ``[num, D]`` from p(z); the same draws as ``model.sample_prior``.

  ``eps ~ N(0, temperature^2 I)`` (stateless from a ``[2]`` int ``seed``), then
  :func:`prior_from_noise`.
  """
  shape = tf.stack([num, model.latent_size])
  eps = tf.random.normal(shape) if seed is None else tf.random.stateless_normal(shape, seed)
  return prior_from_noise(model.prior, eps * temperature)


# ------------------------------------------------------------------ public
def _split_seed(seed):
  seed = tf.convert_to_tensor(seed)
  if seed.dtype not in (tf.int32, tf.int64):
    seed = tf.cast(seed, tf.int64)
  seeds = tf.random.experimental.stateless_split(seed, 2)
  return seeds[0], seeds[1]


@_no_autograph
def sample(model, num, seed, temperature=1.0, method="cached"):
  """``num`` images from the model: ``z ~ p(z)`` (temperature scales the prior's
  noise), then ``x ~ p(x | z)``. ``seed``: a ``[2]`` int stateless seed; ``num``
  may be a scalar tensor. Returns ``[num, H, W, C]`` floats in data scale."""
  seed_z, seed_x = _split_seed(seed)
  z = sample_prior(model, num, seed_z, temperature)
  return sample_x_given_z(model, z, seed=seed_x, method=method)


@_no_autograph
def decode(model, z_flat, seed, method="cached"):
  """Images drawn from p(x | z) for given latents, with a ``[2]`` stateless seed."""
  return sample_x_given_z(model, z_flat, seed=seed, method=method)


@_no_autograph
def reconstruct(model, x, seed, method="cached"):
  """``x' ~ p(x | z)`` with ``z ~ q(z | x)``: a stochastic reconstruction of ``x``."""
  x_f = model.check_inputs(x)
  seed_z, seed_x = _split_seed(seed)
  mu, sigma, context = model.encode(x_f)
  eps = tf.random.stateless_normal(tf.shape(mu), seed_z)
  z, _ = model.posterior_from_noise(mu, sigma, context, eps)
  return sample_x_given_z(model, z, seed=seed_x, method=method)
