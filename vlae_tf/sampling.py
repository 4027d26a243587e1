"""Sampling x ~ p(x|z) and x ~ p(x) from a VLAE, fast and exactly.

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

  Cost: ``sum_l T_l C_l F_l`` multiply-adds per pixel (``T_l`` the non-zero
  taps of layer l): one forward pass in all, ``H W`` times fewer FLOPs than
  naive, in ``H W`` sequential steps of small matmuls; on 2 CPU cores the
  per-step op overhead dominates for small batches. ``none`` is one decoder
  pass; ``full`` is one big window (``T ~ 2 H W`` taps).

Prior sampling ``z ~ p(z)`` belongs to the prior: ``model.sample_prior``
(the AF prior's exact incremental sampler, :mod:`vlae_tf.af_prior`).

All functions here are traceable in ``tf.function`` with a symbolic batch size;
the public ``sample`` / ``decode`` / ``reconstruct`` take a ``[2]`` int
stateless seed.

Longer than 400 lines: the one pixel walk that the sampler and the codec share
(:func:`cached_pixels`, both decoder families and its per-pixel outputs) stays in
one module.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf.gated_decoder import GatedDecoder, gate
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


class TapLayer:
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

  def row(self, cache, p0, width):
    """The layer at pixels ``p0 .. p0 + width - 1`` at once: ``[width, B, Cout]``."""
    patch = cache.gather(tf.reshape(self.table[p0:p0 + width], [-1]))  # [W T, B, Cin]
    b = tf.shape(patch)[1]
    patch = tf.reshape(patch, tf.stack([width, self.num_taps, b, self.cin]))
    flat = tf.reshape(tf.transpose(patch, [0, 2, 1, 3]), tf.stack([width, b, -1]))
    return tf.einsum("wbk,kc->wbc", flat, self.kernel)


def projection(layer, cond):
  """``layer(cond)`` in float32, the cached programs' dtype under any policy (bfloat16 too)."""
  return tf.cast(layer(cond), tf.float32)


def per_pixel(t):
  """``[B, H, W, F]`` -> ``[H W, B, F]`` so step ``p`` reads a contiguous slice."""
  s = tf.shape(t)
  return tf.transpose(tf.reshape(t, [s[0], s[1] * s[2], s[3]]), [1, 0, 2])


def _slot_cache(b, channels, num_pixels):
  """A TensorArray of ``H W + 1`` slots ``[B, channels]``; slot 0 holds the zero padding."""
  ta = tf.TensorArray(tf.float32, size=num_pixels + 1, element_shape=[None, channels],
                      clear_after_read=False)
  return ta.write(0, tf.zeros(tf.stack([b, channels])))


class GatedPixelProgram:
  """A :class:`vlae_tf.gated_decoder.GatedDecoder` evaluated from slot caches, a row at a time.

  The same idea as :func:`cached_sample`, for the two-stream decoder. The
  vertical stream at row i reads only rows above (and its own row at columns
  j-1 .. j+1 of the previous vertical layer, which depend on rows above only),
  so :meth:`row` computes it for a whole row as soon as the row above is
  drawn; :meth:`step` then computes the horizontal stream at one pixel.

  A cache is anything with ``gather(int32 [T]) -> [T, B, F]``, ``write(slot,
  [B, F]) -> cache`` and ``scatter(slots, [S, B, F]) -> cache`` (a
  ``tf.TensorArray`` here, ``tf.Variable`` s in the codec); slot 0 is the zero
  padding, slot ``q + 1`` holds pixel ``q``. Cached streams: the input x
  (written by the caller), ``elu(v_k)`` and ``elu(h_k)`` for ``k < n - 1``.
  """

  def __init__(self, dec, image_hw):
    self.dec = dec
    self.width = int(image_hw[1])
    self.v_in, self.h_in = TapLayer(dec.v_in, image_hw), TapLayer(dec.h_in, image_hw)
    self.v_taps = [TapLayer(c, image_hw) for c in dec.v_convs]
    self.h_taps = [TapLayer(c, image_hw) for c in dec.h_convs]
    t = tf.convert_to_tensor
    self.links = [t(dec.h_in_link.kernel)] + [t(d.kernel) for d in dec.h_links]
    self.pointwise = [t(d.kernel) for d in dec.pointwise]
    self.out_kernel, self.out_bias = t(dec.out.kernel), t(dec.out.bias)
    self.num_streams = dec.num_layers - 1      # cached v streams, and as many h streams
    self.x_channels = self.v_in.cin

  def prepare(self, cond):
    """``[H W, B, P]``: every z-dependent per-pixel term (projections plus biases)."""
    d = self.dec
    biases = ([d.v_in.bias, d.h_in.bias]
              + [b for v, h in zip(d.v_convs, d.h_convs) for b in (v.bias, h.bias)]
              + [layer.bias for layer in d.pointwise])
    return per_pixel(projection(d.cond_proj, cond) + tf.concat(biases, 0))

  def row(self, p0, pre, x_cache, v_caches):
    """The vertical stream of the row starting at pixel ``p0`` (rows above all drawn).

    Returns ``(h_terms, v_caches)``: ``h_terms[k]`` ``[W, B, F_k]`` is what
    ``h_k`` adds from outside its own stream (the link from ``elu(v_k)`` plus
    its z-dependent term), for every pixel of the row.
    """
    w, n = self.width, self.dec.num_layers
    pre = tf.split(pre[p0:p0 + w], self.dec.proj_sizes(), axis=-1)
    slots = p0 + 1 + tf.range(w)
    v = self.v_in.row(x_cache, p0, w) + pre[0]
    h_terms = [tf.einsum("wbf,fc->wbc", tf.nn.elu(v), self.links[0]) + pre[1]]
    v_caches = list(v_caches)
    for k in range(1, n):
      v_caches[k - 1] = v_caches[k - 1].scatter(slots, tf.nn.elu(v))
      v = gate(v, self.v_taps[k - 1].row(v_caches[k - 1], p0, w) + pre[2 * k])
      h_terms.append(tf.einsum("wbf,fc->wbc", tf.nn.elu(v), self.links[k]) + pre[2 * k + 1])
    return h_terms, v_caches

  def step(self, p, j, pre_p, h_terms, x_cache, h_caches):
    """Raw parameters ``[B, P]`` at pixel ``p`` (column ``j``) and the updated h caches."""
    n = self.dec.num_layers
    h = self.h_in(x_cache, p) + h_terms[0][j]
    h_caches = list(h_caches)
    for k in range(1, n):
      h_caches[k - 1] = h_caches[k - 1].write(p + 1, tf.nn.elu(h))
      h = gate(h, self.h_taps[k - 1](h_caches[k - 1], p) + h_terms[k][j])
    if self.pointwise:
      first = sum(self.dec.proj_sizes()[:2 * n])      # the pointwise blocks' slices follow
      pre = tf.split(pre_p[:, first:], len(self.pointwise), axis=-1)
      for kernel, term in zip(self.pointwise, pre):
        h = gate(h, tf.matmul(tf.nn.elu(h), kernel) + term)
    return tf.matmul(tf.nn.elu(h), self.out_kernel) + self.out_bias, h_caches


def _outputs(n, c, record_dtype):
  """A walk's per-pixel outputs: the values drawn ``[B, C]`` (and ``draw``'s records)."""
  outs = [tf.TensorArray(tf.float32, size=n, element_shape=[None, c])]
  return outs + ([tf.TensorArray(record_dtype, size=n)] if record_dtype is not None else [])


def _drawn(draw, p, raw, outs):
  """``draw`` at pixel ``p``: its values ``[B, C]``, and ``outs`` with what it returned."""
  got = draw(p, raw)
  got = got if isinstance(got, tuple) else (got,)
  return got[0], [o.write(p, g) for o, g in zip(outs, got)]


def _images(outs, shape):
  """``[B, H, W, C]`` of the values drawn (and the records ``[H W, ...]``)."""
  x = tf.reshape(tf.transpose(outs[0].stack(), [1, 0, 2]), tf.stack(shape))
  return (x, outs[1].stack()) if len(outs) > 1 else x


@_no_autograph
def _cached_pixels_gated(model, cond, draw, record_dtype):
  """:func:`cached_pixels` for the two-stream decoder: rows (vertical), then pixels (horizontal)."""
  h, w, c = model.image_shape
  n, b = h * w, tf.shape(cond)[0]
  prog = GatedPixelProgram(model.decoder, (h, w))
  pre = prog.prepare(cond)

  def row_body(i, x_cache, v_caches, h_caches, outs):
    p0 = i * w
    h_terms, v_caches = prog.row(p0, pre, x_cache, v_caches)

    def pixel_body(j, x_cache, h_caches, outs):
      p = p0 + j
      raw, h_caches = prog.step(p, j, pre[p], h_terms, x_cache, h_caches)
      pix, outs = _drawn(draw, p, raw, outs)
      x_cache = x_cache.write(p + 1, model.decoder.context_input(model.normalize(pix)))
      return j + 1, x_cache, h_caches, outs

    _, x_cache, h_caches, outs = tf.while_loop(lambda j, *_: j < w, pixel_body,
                                               [tf.constant(0), x_cache, h_caches, outs])
    return i + 1, x_cache, v_caches, h_caches, outs

  streams = lambda: [_slot_cache(b, model.decoder.filters, n) for _ in range(prog.num_streams)]
  loop = [tf.constant(0), _slot_cache(b, prog.x_channels, n), streams(), streams(),
          _outputs(n, c, record_dtype)]
  return _images(tf.while_loop(lambda i, *_: i < h, row_body, loop)[-1], [b, h, w, c])


@_no_autograph
def cached_sample(model, cond, noise):
  """x ~ p(x | z) given conditioning features, each activation computed once.

  See the module docstring for the algorithm. ``cond``: ``[B, H, W, Fc]``;
  ``noise``: ``[B, H, W, N]``. Returns ``[B, H, W, C]`` floats in data scale.
  """
  lik = model.likelihood
  if model.decoder.context == "none" and not isinstance(model.decoder, GatedDecoder):
    x = tf.zeros(tf.concat([tf.shape(cond)[:1], list(model.image_shape)], 0))
    return lik.sample(model.decoder(model.normalize(x), cond), noise)
  noise_p = per_pixel(noise)
  return cached_pixels(model, cond, lambda p, raw: lik.sample(raw, noise_p[p]))


@_no_autograph
def cached_pixels(model, cond, draw, record_dtype=None):
  """The cached decoder's walk over the pixels in raster order, each pixel chosen by ``draw``.

  ``draw(p, raw)`` gets pixel ``p``'s raw parameters ``[B, P]`` (``p`` an int32 scalar
  tensor) and returns its values ``[B, C]`` (float, data scale), which later pixels read:
  noise in :func:`cached_sample`, the entropy coder in :mod:`vlae_tf.codec.pixels`.
  Returns ``[B, H, W, C]``: the values drawn. With ``record_dtype``, ``draw`` returns
  ``(values, record)`` and the walk returns ``(images, records)``: the records of every
  pixel stacked ``[H W, ...]`` (the codec's sender keeps its distributions so).
  """
  dec = model.decoder
  if isinstance(dec, GatedDecoder):
    return _cached_pixels_gated(model, cond, draw, record_dtype)
  h, w, c = model.image_shape
  n, b = h * w, tf.shape(cond)[0]
  if dec.context == "none":     # no pixel reads another: one decoder pass, then each pixel
    raw_all = per_pixel(dec(model.normalize(tf.zeros(tf.stack([b, h, w, c]))), cond))
    outs = tf.while_loop(lambda p, _: p < n,
                         lambda p, o: (p + 1, _drawn(draw, p, raw_all[p], o)[1]),
                         [tf.constant(0), _outputs(n, c, record_dtype)])[1]
    return _images(outs, [b, h, w, c])
  first = TapLayer(dec.first, (h, w))
  pre_first = per_pixel(projection(dec.first_proj, cond) + dec.first.bias)
  masked, pointwise = [], []
  for block in dec.blocks:
    pre = per_pixel(projection(block.proj, cond) + block.conv.bias)
    if block.conv.mask.shape == (1, 1):
      kernel = tf.convert_to_tensor(block.conv.kernel)[0, 0] * float(block.conv.mask[0, 0])
      pointwise.append((kernel, pre))
    else:
      masked.append((TapLayer(block.conv, (h, w)), pre))
  out_kernel = tf.convert_to_tensor(dec.out.kernel)
  out_bias = tf.convert_to_tensor(dec.out.bias)
  filters = dec.filters

  def body(p, x_cache, caches, outs):
    hid = pre_first[p] + first(x_cache, p)
    new_caches = []
    for (layer, pre), cache in zip(masked, caches):
      cache = cache.write(p + 1, tf.nn.elu(hid))
      hid = gate(hid, layer(cache, p) + pre[p])
      new_caches.append(cache)
    for kernel, pre in pointwise:
      hid = gate(hid, tf.matmul(tf.nn.elu(hid), kernel) + pre[p])
    raw = tf.matmul(tf.nn.elu(hid), out_kernel) + out_bias
    pix, outs = _drawn(draw, p, raw, outs)                            # [B, C]
    x_cache = x_cache.write(p + 1, dec.context_input(model.normalize(pix)))
    return p + 1, x_cache, new_caches, outs

  x_cache = _slot_cache(b, first.cin, n)
  caches = [_slot_cache(b, filters, n) for _ in masked]
  outs = tf.while_loop(lambda p, *_: p < n, body,
                       [tf.constant(0), x_cache, caches, _outputs(n, c, record_dtype)])[-1]
  return _images(outs, [b, h, w, c])


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
  z = model.sample_prior(num, seed_z, temperature)
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
