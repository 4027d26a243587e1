"""The bits-back chain and the z-only chain of :mod:`vlae_tf.codec`, group by group.

:class:`Coder` holds the model-side machinery of one code (latent walks,
step-by-step decoder, encoder at a fixed batch of ``G`` images, constriction's
model families); the four functions run the chains on an ANS stack.

Lossless, per group of ``n <= G`` images (sender)::

  pop  k under Q(k | x)           the posterior walk, dims in the posterior's order
  push x under p(x | z(k))        all pixels (raster, R G B, lanes 0..n-1), in reverse
  push k under P(k)               the prior walk, in reverse

The receiver runs each group's steps backwards (groups in reverse order):
pop k under P, run the decoder popping pixels, run the encoder on the decoded
images, push k back under Q. Within a step, symbols are ordered
(position, lane), so ``encode_reverse`` of a position's lanes is undone by one
``decode`` of that position. The sender's first group is one image and later
ones as large as the message can lend bits to (at most ``G``); the initial
words are ``W`` seeded pseudo-random words of which only the part the coder
read (below its lowest point) is stored.

Lossy: groups of ``G`` images (the last shorter), each pushes its ``k`` under
``P``; the receiver pops the last group first and fills in the pixels with
each sub-pixel's mode given the pixels before it (``lossy_decode="mode"``),
its rounded conditional mean (``"mean"``; the mode for binary images), or a
draw from it with uniforms seeded by the file's ``lossy_seed`` and the group
(``"sample"``).
"""

from __future__ import annotations

import hashlib

import constriction
import numpy as np
import tensorflow as tf

from vlae_tf.codec_format import CodecError
from vlae_tf.codec_latent import LatentScheme, check_codable
from vlae_tf.codec_pixels import PixelWalker, channel_models

INITIAL_SEED = 20170101


def images_sha256(x):
  return hashlib.sha256(np.ascontiguousarray(x, np.uint8).tobytes()).hexdigest()


def initial_words(count, seed=INITIAL_SEED):
  """``count`` pseudo-random nonzero words, reversed: the coder reads them in seed order."""
  rng = np.random.Generator(np.random.PCG64(seed))
  return rng.integers(1, 2 ** 32, size=count, dtype=np.uint64).astype(np.uint32)[::-1].copy()


class Coder:
  """The model-side machinery of one code (shared by sender and receiver)."""

  def __init__(self, model, group_size, bin_width_log2, latent_range):
    check_codable(model)
    self.model = model
    self.g = int(group_size)
    h, w, c = model.image_shape
    self.shape = (h, w, c)
    self.latent = LatentScheme(model, self.g, bin_width_log2, latent_range)
    self.pixels = PixelWalker(model, self.g)
    m = self.latent.max_symbol
    self.q_family = constriction.stream.model.QuantizedGaussian(-m, m)
    self.families = {"bernoulli": constriction.stream.model.Bernoulli(perfect=False),
                     "categorical": constriction.stream.model.Categorical(perfect=False)}
    spec = tf.TensorSpec([self.g, h, w, c], tf.float32)

    def encode(x):
      mu, sigma, _ = model.encode(x)
      return mu, sigma

    self._encode = tf.function(encode, input_signature=[spec], autograph=False)

  def pad(self, x):
    out = np.zeros((self.g,) + self.shape, np.float32)
    out[:len(x)] = x
    return out

  def encode(self, x_padded):
    mu, sigma = self._encode(tf.constant(x_padded, tf.float32))
    return mu.numpy(), sigma.numpy()

  def full(self, values, n):
    out = np.zeros(self.g, np.int64)
    out[:n] = values
    return out


# ---------------------------------------------------------------- lossless
def encode_lossless(cod, x, progress):
  n_total = len(x)
  hw = cod.shape[0] * cod.shape[1]
  lik = cod.model.likelihood
  num_init = cod.g * cod.latent.d + 256
  init = initial_words(num_init)
  coder = constriction.stream.stack.AnsCoder(init.copy())
  init_bits = coder.num_bits()
  lowest = [coder.num_words()]
  groups, start, pop_per_image = [], 0, None
  while start < n_total:
    if pop_per_image is None:
      n = 1
    else:
      lend = coder.num_bits() - init_bits + 2 * pop_per_image
      n = int(max(1, min(cod.g, n_total - start, lend // max(pop_per_image, 1.0))))
    xg = x[start:start + n]
    xp = cod.pad(xg)
    mu, sigma = cod.encode(xp)
    before = coder.num_bits()

    def pop(i, shift, log_scale):
      mean, std = cod.latent.posterior_params(mu[:n, i], sigma[:n, i], shift[:n], log_scale[:n])
      k = coder.decode(cod.q_family, mean, std)
      lowest[0] = min(lowest[0], coder.num_words())
      return cod.full(k, n)

    k, z, _, _ = cod.latent.z_walk(pop)
    if coder.num_words() < 4:
      raise CodecError("internal error: the initial bits ran out; use a smaller group_size")
    pop_per_image = (before - coder.num_bits()) / n
    known = xp.reshape(cod.g, hw, cod.shape[2]).astype(np.int64)
    raws = []

    def teacher(p, raw):
      raws.append(raw)
      return known[:, p]

    cod.pixels.walk(z, teacher)
    for p in reversed(range(hw)):
      models = []
      channel_models(lik, raws[p], lambda c, kind, params: (models.append((kind, params)),
                                                            known[:, p, c])[1])
      for c in reversed(range(cod.shape[2])):
        kind, params = models[c]
        coder.encode_reverse(known[:n, p, c].astype(np.int32), cod.families[kind], params[:n])
    prior = []
    cod.latent.prior_walk(lambda i, mean, std: (prior.append((i, mean[:n], std[:n])), k[:, i])[1])
    for i, mean, std in reversed(prior):
      coder.encode_reverse(k[:n, i].astype(np.int32), cod.q_family, mean, std)
    groups.append(n)
    start += n
    if progress is not None:
      progress(start, n_total)
  words = coder.get_compressed()
  skip = max(0, lowest[0] - 2)
  if not np.array_equal(words[:skip], init[:skip]):
    skip = 0
  return words[skip:], {"groups": groups, "initial_words": num_init, "skipped_words": skip,
                        "initial_bits": 32 * (num_init - skip)}


def decode_lossless(cod, header, payload, progress):
  lik = cod.model.likelihood
  init = initial_words(int(header["initial_words"]))
  skip = int(header["skipped_words"])
  coder = constriction.stream.stack.AnsCoder(np.concatenate([init[:skip], payload]))
  out, done, total = [], 0, int(header["count"])
  for n in reversed(header["groups"]):
    k = cod.latent.prior_walk(lambda i, mean, std: cod.full(coder.decode(cod.q_family, mean[:n],
                                                                          std[:n]), n))
    _, z, shift, log_scale = cod.latent.z_walk(lambda i, s, ls: k[:, i])

    def choose(p, raw):
      return channel_models(lik, raw, lambda c, kind, params: cod.full(
          coder.decode(cod.families[kind], params[:n]), n))

    x = cod.pixels.walk(z, choose).reshape((cod.g,) + cod.shape)
    x[n:] = 0
    mu, sigma = cod.encode(x.astype(np.float32))
    for i in reversed(range(cod.latent.d)):
      mean, std = cod.latent.posterior_params(mu[:n, i], sigma[:n, i], shift[:n, i],
                                              log_scale[:n, i])
      coder.encode_reverse(k[:n, i].astype(np.int32), cod.q_family, mean, std)
    out.append(x[:n])
    done += n
    if progress is not None:
      progress(done, total)
  if not np.array_equal(coder.get_compressed(), init):
    raise CodecError("decoding failed: the message did not return to its initial state (the "
                     "probabilities were not reproduced bit-exactly on this machine, or the file "
                     "was made by another codec)")
  x = np.concatenate(out[::-1]).astype(np.uint8)
  if images_sha256(x) != header["images_sha256"]:
    raise CodecError("decoding failed: the decoded images do not match the sha256 stored in "
                     "the file (probabilities not reproduced bit-exactly on this machine)")
  return x


# -------------------------------------------------------------------- lossy
def group_sizes(n_total, g):
  return [min(g, n_total - s) for s in range(0, n_total, g)]


def encode_lossy(cod, x, progress):
  coder = constriction.stream.stack.AnsCoder()
  groups = group_sizes(len(x), cod.g)
  m, delta = cod.latent.max_symbol, cod.latent.delta
  start = 0
  for n in groups:
    mu, _ = cod.encode(cod.pad(x[start:start + n]))
    k = np.clip(np.round(cod.latent.encode_v(mu) / delta), -m, m).astype(np.int64)
    k[n:] = 0
    prior = []
    cod.latent.prior_walk(lambda i, mean, std: (prior.append((i, mean[:n], std[:n])), k[:, i])[1])
    for i, mean, std in reversed(prior):
      coder.encode_reverse(k[:n, i].astype(np.int32), cod.q_family, mean, std)
    start += n
    if progress is not None:
      progress(start, len(x))
  # Groups are pushed in order, so the receiver pops the last group first.
  return coder.get_compressed(), {"groups": groups, "initial_bits": 0}


LOSSY_DECODES = ("mode", "mean", "sample")


def _mode(c, kind, params):
  del c
  return (params >= 0.5).astype(np.int64) if kind == "bernoulli" else np.argmax(params, -1)


def _mean(c, kind, params):
  """The conditional mean, rounded (the per-sub-pixel choice with the least squared error)."""
  if kind == "bernoulli":
    return _mode(c, kind, params)
  levels = np.arange(params.shape[-1], dtype=np.float64)
  return np.rint((params * levels).sum(-1) / params.sum(-1)).astype(np.int64)


def _sampler(seed, group):
  """Draws each sub-pixel from its distribution with uniforms of a PCG64 seeded by ``(seed, group)``."""
  rng = np.random.Generator(np.random.PCG64([int(seed), int(group)]))

  def draw(c, kind, params):
    del c
    u = rng.random(params.shape[0])
    if kind == "bernoulli":
      return (u < params).astype(np.int64)
    cdf = np.cumsum(params, -1)
    return np.minimum((cdf < (u * cdf[:, -1])[:, None]).sum(-1), params.shape[-1] - 1)
  return draw


def decode_lossy(cod, header, payload, progress):
  lik = cod.model.likelihood
  coder = constriction.stream.stack.AnsCoder(payload)
  out, done = [], 0
  for n in reversed(header["groups"]):
    k = cod.latent.prior_walk(lambda i, mean, std: cod.full(coder.decode(cod.q_family, mean[:n],
                                                                          std[:n]), n))
    _, z, _, _ = cod.latent.z_walk(lambda i, s, ls: k[:, i])
    how = header.get("lossy_decode", "mode")
    rule = {"mode": _mode, "mean": _mean}.get(how) or _sampler(header["lossy_seed"], len(out))
    x = cod.pixels.walk(z, lambda p, raw: channel_models(lik, raw, rule))
    out.append(x.reshape((cod.g,) + cod.shape)[:n])
    done += n
    if progress is not None:
      progress(done, int(header["count"]))
  if not coder.is_empty():
    raise CodecError("decoding failed: bits left over after the last image (the file was made "
                     "with other probabilities)")
  return np.concatenate(out[::-1]).astype(np.uint8)
