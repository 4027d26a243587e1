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

Lossy: groups of ``G`` images (the last shorter), each pushes its side
information (if the header's ``lossy_side`` names any: block means and a gain
the sender chose for what the receiver will decode, :mod:`vlae_tf.codec.side_info`)
and then its ``k`` under ``P``; the receiver pops the last group first, ``k``
then the side information, and fills in the pixels with the rounded mean of
16 seeded draws from ``p(x | z)`` (``"expectation"``, the default,
:mod:`vlae_tf.codec.lossy`; corrected by the side information), or greedily with
each sub-pixel's mode given the pixels before it (``lossy_decode="mode"``),
its rounded conditional mean (``"mean"``; the mode for binary images), or a
draw from it with uniforms seeded by the file's ``lossy_seed`` and the group
(``"sample"``).
"""

from __future__ import annotations

import contextlib
import hashlib

import constriction
import numpy as np
import tensorflow as tf

from vlae_tf.codec import file_format, lossy, side_info
from vlae_tf.codec.file_format import CodecError, group_sizes
from vlae_tf.codec.latent import LatentScheme, check_codable
from vlae_tf.codec.pixels import PixelWalker

INITIAL_SEED = file_format.INITIAL_SEED
LOSSY_DECODES = file_format.LOSSY_DECODES
_RAN_OUT = ("decoding failed: the payload ran out before the {count} images of the header's "
            "'count' / 'groups' were decoded (the header claims more images than the file holds)")


@contextlib.contextmanager
def coder_panics_as_errors(doing):
  """Turns a panic of constriction's Rust code (``pyo3_runtime.PanicException``, a
  BaseException that no ``except Exception`` catches) into a one-line :class:`CodecError`."""
  try:
    yield
  except BaseException as e:
    if type(e).__name__ != "PanicException":
      raise
    text = " ".join(str(e).split()) or "no message"
    raise CodecError(f"{doing} failed: the entropy coder (constriction) refused its input "
                     f"({text})") from None


def next_group_size(gained_bits, pop_per_image, g, remaining):
  """How many images the lossless sender codes next: as many as the message can lend bits to.

  ``gained_bits``: the message's growth over the initial words so far; ``pop_per_image``: the
  bits each image of the previous group popped. The receiver recomputes it to check a file's
  ``groups``.
  """
  lend = gained_bits + 2 * pop_per_image
  return int(max(1, min(g, remaining, lend // max(pop_per_image, 1.0))))


def images_sha256(x):
  return hashlib.sha256(np.ascontiguousarray(x, np.uint8).tobytes()).hexdigest()


def initial_words(count, seed=INITIAL_SEED):
  """``count`` pseudo-random nonzero words, reversed: the coder reads them in seed order."""
  rng = np.random.Generator(np.random.PCG64(seed))
  return rng.integers(1, 2 ** 32, size=count, dtype=np.uint64).astype(np.uint32)[::-1].copy()


class Coder:
  """The model-side machinery of one code (shared by sender and receiver)."""

  def __init__(self, model, group_size, bin_width_log2, latent_range, legacy=False):
    check_codable(model)
    self.model = model
    self.g = int(group_size)
    h, w, c = model.image_shape
    self.shape = (h, w, c)
    self.latent = LatentScheme(model, bin_width_log2, latent_range, legacy)
    self.pixels = PixelWalker(model)
    m = self.latent.max_symbol
    self.q_family = constriction.stream.model.QuantizedGaussian(-m, m)
    self.families = {"bernoulli": constriction.stream.model.Bernoulli(perfect=False),
                     "categorical": constriction.stream.model.Categorical(perfect=False)}
    spec = tf.TensorSpec([None, h, w, c], tf.float32)

    def encode(x):
      mu, sigma, _ = model.encode(x)
      return mu, sigma

    self._encode = tf.function(encode, input_signature=[spec], autograph=False)

  def encode(self, x):
    """The posterior's means and stds ``[n, D]`` of a group's images ``[n, H, W, C]``."""
    mu, sigma = self._encode(tf.constant(x, tf.float32))
    return mu.numpy(), sigma.numpy()


def _push_in_order(coder, symbols, family, params, chunk=8192):
  """Pushes ``symbols`` so that popping gives them back first to last: one ``encode_reverse``
  per chunk, chunks last first (the same words as one push per symbol, last first)."""
  symbols = np.concatenate(symbols).astype(np.int32)
  params = [np.concatenate(p) for p in params]
  for s in reversed(range(0, len(symbols), chunk)):
    coder.encode_reverse(symbols[s:s + chunk], family, *(p[s:s + chunk] for p in params))


def _push_prior(cod, coder, k):
  """Pushes ``k`` ``[n, D]`` under the prior, so that the receiver's prior walk pops it."""
  mean, std = cod.latent.prior_params(k)            # columns in the prior walk's order
  walk_k = k[:, ::-1] if cod.latent.steps == 2 else k
  _push_in_order(coder, list(walk_k.T), cod.q_family, [list(mean.T), list(std.T)])


# ---------------------------------------------------------------- lossless
def encode_lossless(cod, x, progress):
  n_total = len(x)
  hw = cod.shape[0] * cod.shape[1]
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
      n = next_group_size(coder.num_bits() - init_bits, pop_per_image, cod.g, n_total - start)
    xg = x[start:start + n]
    mu, sigma = cod.encode(xg)
    before = coder.num_bits()

    def pop(i, shift, log_scale):
      mean, std = cod.latent.posterior_params(mu[:, i], sigma[:, i], shift, log_scale)
      k = coder.decode(cod.q_family, mean, std)
      lowest[0] = min(lowest[0], coder.num_words())
      return k

    k, z, _, _ = cod.latent.z_walk(n, pop)
    if coder.num_words() < 4:
      raise CodecError("internal error: the initial bits ran out; use a smaller group_size")
    pop_per_image = (before - coder.num_bits()) / n
    known = xg.reshape(n, hw, cod.shape[2]).astype(np.int64)
    params = cod.pixels.distributions(z, known)     # [H W, C, n(, levels)]: (pixel, channel, lane)
    symbols = known.transpose(1, 2, 0).reshape(-1)
    _push_in_order(coder, [symbols], cod.families[cod.pixels.kind],
                   [[params.reshape((len(symbols),) + params.shape[3:])]])
    _push_prior(cod, coder, k)
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
  """Runs the groups backwards, each at its own size as the sender did. Two checks bound the
  work by the file: the message never shrinks below :func:`file_format.lowest_words` (below
  it the payload has run out), and each
  group holds as many images as the sender's :func:`next_group_size` gave it (checked once the
  group before it is decoded, which tells the bits that group popped)."""
  init = initial_words(int(header["initial_words"]))
  init_bits = constriction.stream.stack.AnsCoder(init.copy()).num_bits()
  skip = int(header["skipped_words"])
  floor = file_format.lowest_words(skip)
  coder = constriction.stream.stack.AnsCoder(np.concatenate([init[:skip], payload]))
  groups, total = header["groups"], int(header["count"])
  starts = np.cumsum([0] + groups[:-1]).tolist()
  out, done = [], 0

  def pop(family, *params):
    symbols = coder.decode(family, *params)
    if coder.num_words() < floor:
      raise CodecError(_RAN_OUT.format(count=total))
    return symbols

  after = coder.num_bits()                # the sender's message after group j
  for j in reversed(range(len(groups))):
    n = groups[j]
    k = cod.latent.prior_walk(n, lambda i, mean, std: pop(cod.q_family, mean, std))
    z, shift, log_scale = cod.latent.z_of(k)
    x = cod.pixels.walk(z, lambda p, c, kind, params: pop(cod.families[kind], params))
    x = x.reshape((n,) + cod.shape)
    popped = coder.num_bits()
    mu, sigma = cod.encode(x.astype(np.float32))
    params = [cod.latent.posterior_params(mu[:, i], sigma[:, i], shift[:, i], log_scale[:, i])
              for i in range(cod.latent.d)]    # as the sender computed them, dimension by dimension
    _push_in_order(coder, list(k.T), cod.q_family, [[m for m, _ in params], [s for _, s in params]])
    before = coder.num_bits()             # the sender's message before group j
    if j + 1 < len(groups):
      want = next_group_size(after - init_bits, (before - popped) / n, cod.g, total - starts[j + 1])
      if groups[j + 1] != want:
        raise CodecError(f"decoding failed: header field 'groups' says group {j + 2} of "
                         f"{len(groups)} holds {groups[j + 1]} image(s); the encoder puts {want} "
                         "there (the file was altered)")
    after = before
    out.append(x)
    done += n
    if progress is not None:
      progress(done, total)
  if not np.array_equal(coder.get_compressed(), init):
    raise CodecError("decoding failed: the message did not return to its initial state (the "
                     "probabilities were not reproduced bit-exactly on this machine, or the file "
                     "was made by another codec)")
  x = np.concatenate(out[::-1]).astype(np.uint8)
  if images_sha256(x) != header["images_sha256"]:
    raise CodecError("decoding failed: the decoded images do not match the hash recorded in the "
                     "file's header field 'images_sha256' although the coder returned exactly to "
                     "its initial state (the file was corrupted or tampered with)")
  return x


# -------------------------------------------------------------------- lossy
def _small_state(coder):
  """The message if it fits in the coder's head: only then can coding a group leave it as it was
  (pushing the lowest bin onto a message under 2^24 is free; popping an empty one gives it)."""
  return coder.get_compressed().tobytes() if coder.num_words() <= 2 else None


def _unchanged(coder, state):
  """Whether a group's latents left the message as it was (``state``: :func:`_small_state` before).

  The lossy encoder refuses such a group, so the receiver can tell a payload that ran out: a
  message that decoding no longer changes (or an empty one) before the header's last image.
  """
  return state is not None and _small_state(coder) == state


def lossy_latents(cod, x):
  """The latent bins ``k`` ``[n, D]`` the lossy sender codes for images ``x``: the posterior
  mean's, rounded to the bins and clipped to the range."""
  mu, _ = cod.encode(x)
  m = cod.latent.max_symbol
  return np.clip(np.round(cod.latent.encode_v(mu) / cod.latent.delta), -m, m).astype(np.int64)


def encode_lossy(cod, x, progress, side=None, seed=0):
  """``side``: the side information to add (:mod:`vlae_tf.codec.side_info`; None: none), chosen
  for the estimate of ``E[x | z(k)]`` the receiver will compute with the file's ``seed``."""
  coder = constriction.stream.stack.AnsCoder()
  groups = group_sizes(len(x), cod.g)
  start, recon = 0, None
  for j, n in enumerate(groups):
    state = _small_state(coder)
    k = lossy_latents(cod, x[start:start + n])
    if side is not None:
      recon = recon or lossy.Reconstructor(cod.model)
      e = recon.mean(cod.latent.z_of(k)[0], seed, len(groups) - 1 - j)   # the receiver's group
      side_info.push(coder, side, *side_info.choose(side, x[start:start + n], e,
                                                    cod.model.num_levels))
    _push_prior(cod, coder, k)
    if _unchanged(coder, state):   # the receiver takes that for a payload that ran out
      raise CodecError(f"cannot code these images lossily: every latent of the first {start + n} "
                       "lies at the lower edge of latent_range, which codes to nothing (raise "
                       "latent_range or bin_width_log2)")
    start += n
    if progress is not None:
      progress(start, len(x))
  # Groups are pushed in order, so the receiver pops the last group first.
  return coder.get_compressed(), {"groups": groups, "initial_bits": 0}


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
  side = header.get("lossy_side")
  side_info.check_model(cod.model, side, "header field 'lossy_side'")
  coder = constriction.stream.stack.AnsCoder(payload)
  out, done, recon = [], 0, None
  for n in reversed(header["groups"]):
    state = _small_state(coder)
    k = cod.latent.prior_walk(n, lambda i, mean, std: coder.decode(cod.q_family, mean, std))
    sent = side_info.pop(coder, side, n, cod.shape[2]) if side is not None else None
    if _unchanged(coder, state):   # never so for a group the encoder wrote
      raise CodecError(_RAN_OUT.format(count=int(header["count"])))
    z = cod.latent.z_of(k)[0]
    how = header.get("lossy_decode", "mode")
    if sent is not None:
      recon = recon or lossy.Reconstructor(cod.model)
      x = side_info.reconstruct(side, recon.mean(z, header["lossy_seed"], len(out)), *sent,
                                 cod.model.num_levels)
    elif how in lossy.BATCH_RULES:
      recon = recon or lossy.Reconstructor(cod.model)
      x = recon.reconstruct(how, z, header["lossy_seed"], len(out))
    else:
      rule = {"mode": _mode, "mean": _mean}.get(how) or _sampler(header["lossy_seed"], len(out))
      x = cod.pixels.walk(z, lambda p, c, kind, params: rule(c, kind, params))
    out.append(x.reshape((n,) + cod.shape))
    done += n
    if progress is not None:
      progress(done, int(header["count"]))
  if not coder.is_empty():
    raise CodecError("decoding failed: bits left over after the last image (the file was made "
                     "with other probabilities)")
  return np.concatenate(out[::-1]).astype(np.uint8)
