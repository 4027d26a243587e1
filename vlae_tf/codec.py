"""Compression with a VLAE: a lossless bits-back codec and a lossy z-only codec.

Entropy coding is constriction's ANS stack (``constriction.stream.stack.AnsCoder``)
with its quantized models (``QuantizedGaussian``, ``Bernoulli``, ``Categorical``,
all ``perfect=False``); nothing here codes bits by hand.

Lossless (BB-ANS, Townsend et al. 2019), per image x
  1. **pop** the discretized latent k from the message under ``Q(k | x)``;
  2. **push** x under ``p(x | z(k))``: pixels in raster order, sub-pixels R, G, B
     (Bernoulli, or the 256-way categorical of the discretized logistic mixture);
  3. **push** k under the discretized prior ``P(k)``.

  Which latent k is, and why its prior and posterior are both exact chains of
  1-D Gaussians for the shipped models (an AF prior of two MAF steps with
  reversed orders: k discretizes the variable *between* the two steps), is in
  :mod:`vlae_tf.codec_latent`, with the cost over -ELBO: the message grows by
  ``-log p(x | z(k)) - log P(k) + log Q(k | x)`` bits per image, -ELBO up to
  the discretization of k (``bin_width_log2``: bins of ``2^-b``). The first
  pops need bits already in the message: the coder starts from ``W``
  pseudo-random words (seeded, so the receiver regenerates them; only the
  part the coder actually reads is stored in the file and reported as the
  *initial bits*). The sender keeps that small by coding growing groups
  (1 image, then as many as the message can lend bits to, up to
  ``group_size``). Decoding runs the steps backwards, groups in reverse order,
  and ends by checking that the message is back at the initial words and that
  the images hash to the sha256 stored in the file.

Lossy (z only)
  The sender codes ``k = round(v(mu) / delta)`` under ``P(k)``, ``mu`` the
  posterior mean (no bits back, nothing else); the receiver decodes ``z(k)``
  and fills in x with the **mode** of each sub-pixel's distribution given
  the pixels decoded before it (greedy, deterministic: no seed is stored).
  Coarser bins (smaller ``bin_width_log2``) give fewer bits and more
  distortion.

Exactness (sender and receiver must compute bit-identical probabilities)
  Every probability that reaches the coder is computed by the same code on
  both sides from the same inputs with the same shapes: the latent walks of
  :mod:`vlae_tf.codec_latent`, the step-by-step decoder of
  :mod:`vlae_tf.codec_pixels` (the sender runs it teacher-forced instead of a
  parallel pass, whose float sums differ), the encoder on the same pixels, and
  float64 NumPy for the final distributions, which constriction quantizes to
  integers. TensorFlow always sees batches of exactly ``group_size`` images
  (short groups are padded with zero images that are never coded), so a
  file's probabilities do not depend on how a caller batches; the group size
  is a coding parameter of the file. ``tests/test_codec.py`` checks decoding in
  a fresh process with another TF thread count. Kernels that differ between
  CPUs (another instruction set) can still change float results: a file
  decoded on such a machine fails with an error naming the mismatch (image
  hash / final message state), never with wrong images.

API: :func:`compress` / :func:`decompress` take a Keras
:class:`vlae_tf.model.VLAE` (``vlae_tf.zoo.load_keras(name)``) or a zoo model
name; the SavedModel wrapper of ``vlae_tf.zoo.load`` cannot run the decoder
step by step. Command line: ``vlae compress`` / ``vlae decompress``
(:mod:`vlae_tf.codec_cli`).
"""

from __future__ import annotations

import hashlib
import math

import constriction
import numpy as np
import tensorflow as tf

from vlae_tf import codec_format
from vlae_tf.codec_format import CodecError
from vlae_tf.codec_latent import LatentScheme, UnsupportedModel, check_codable
from vlae_tf.codec_pixels import PixelWalker, channel_models
from vlae_tf.model import VLAE

LOSSLESS, LOSSY = "lossless", "lossy"
DEFAULT_GROUP_SIZE = 64
DEFAULT_BIN_WIDTH_LOG2 = {LOSSLESS: 8, LOSSY: 1}
DEFAULT_LATENT_RANGE = 8.0
MAX_LATENT_SYMBOLS = 2 ** 13    # bins per latent dimension (see vlae_tf.codec_latent: leaks)
_INITIAL_SEED = 20170101

__all__ = ["compress", "decompress", "encode", "CodecError", "UnsupportedModel", "LOSSLESS",
           "LOSSY"]


def _constriction_version():
  try:
    from importlib.metadata import version
    return version("constriction")
  except Exception:  # noqa: BLE001
    return "unknown"


def _minor(version):
  return ".".join(str(version).split(".")[:2])


def _model(model):
  if isinstance(model, str):
    from vlae_tf import zoo_keras
    return zoo_keras.load_keras(model)
  if not isinstance(model, VLAE):
    raise TypeError(f"model must be a vlae_tf VLAE (vlae_tf.zoo.load_keras(name)) or a zoo model "
                    f"name, got {type(model).__name__}")
  return model


def _model_name(model):
  card = getattr(model, "zoo_card", None)
  return (card or {}).get("name") or model.vlae_config.get("name") or "vlae"


def check_images(model, images) -> np.ndarray:
  """``images`` as uint8 ``[N, H, W, C]``; :class:`CodecError` naming what is wrong."""
  x = np.asarray(images)
  h, w, c = model.image_shape
  top = model.num_levels - 1
  shapes = f"[N, {h}, {w}, {c}]" + (f" or [N, {h}, {w}]" if c == 1 else "")
  if x.dtype == bool:
    x = x.astype(np.uint8)
  if x.dtype.kind not in "iu":
    raise CodecError(f"images must be an integer (uint8) array of shape {shapes}, got dtype "
                     f"{x.dtype}")
  if c == 1 and x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[1:] != (h, w, c):
    raise CodecError(f"images must have shape {shapes} for this model, got {list(x.shape)}")
  if len(x) == 0:
    raise CodecError("no images to compress (N = 0)")
  lo, hi = int(x.min()), int(x.max())
  if lo < 0 or hi > top:
    raise CodecError(f"pixel values must be in [0, {top}] for this model "
                     f"({'binary' if top == 1 else f'{top + 1} levels'}), got values in "
                     f"[{lo}, {hi}]")
  return x.astype(np.uint8)


def _images_sha256(x):
  return hashlib.sha256(np.ascontiguousarray(x, np.uint8).tobytes()).hexdigest()


def _initial_words(count, seed=_INITIAL_SEED):
  """``count`` pseudo-random nonzero words, reversed: the coder reads them in seed order."""
  rng = np.random.Generator(np.random.PCG64(seed))
  return rng.integers(1, 2 ** 32, size=count, dtype=np.uint64).astype(np.uint32)[::-1].copy()


class _Coder:
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
def _encode_lossless(cod, x, progress):
  n_total = len(x)
  hw = cod.shape[0] * cod.shape[1]
  lik = cod.model.likelihood
  num_init = cod.g * cod.latent.d + 256
  init = _initial_words(num_init)
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


def _decode_lossless(cod, header, payload, progress):
  hw = cod.shape[0] * cod.shape[1]
  lik = cod.model.likelihood
  init = _initial_words(int(header["initial_words"]))
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
  if _images_sha256(x) != header["images_sha256"]:
    raise CodecError("decoding failed: the decoded images do not match the sha256 stored in "
                     "the file (probabilities not reproduced bit-exactly on this machine)")
  return x


# -------------------------------------------------------------------- lossy
def _group_sizes(n_total, g):
  return [min(g, n_total - s) for s in range(0, n_total, g)]


def _encode_lossy(cod, x, progress):
  coder = constriction.stream.stack.AnsCoder()
  groups = _group_sizes(len(x), cod.g)
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


def _mode(c, kind, params):
  del c
  return (params >= 0.5).astype(np.int64) if kind == "bernoulli" else np.argmax(params, -1)


def _decode_lossy(cod, header, payload, progress):
  lik = cod.model.likelihood
  coder = constriction.stream.stack.AnsCoder(payload)
  out, done = [], 0
  for n in reversed(header["groups"]):
    k = cod.latent.prior_walk(lambda i, mean, std: cod.full(coder.decode(cod.q_family, mean[:n],
                                                                          std[:n]), n))
    _, z, _, _ = cod.latent.z_walk(lambda i, s, ls: k[:, i])
    x = cod.pixels.walk(z, lambda p, raw: channel_models(lik, raw, _mode))
    out.append(x.reshape((cod.g,) + cod.shape)[:n])
    done += n
    if progress is not None:
      progress(done, int(header["count"]))
  if not coder.is_empty():
    raise CodecError("decoding failed: bits left over after the last image (the file was made "
                     "with other probabilities)")
  return np.concatenate(out[::-1]).astype(np.uint8)


# ------------------------------------------------------------------- public
def encode(model, images, lossy=False, group_size=None, bin_width_log2=None,
           latent_range=DEFAULT_LATENT_RANGE, progress=None):
  """Compresses ``images``; returns ``(file bytes, stats)``.

  ``stats``: ``num_images``, ``num_dims`` (per image), ``file_bytes``,
  ``payload_bits`` (the ANS words), ``initial_bits`` (the initial words the
  coder read, included in the payload; lossless only), ``net_bits`` (payload
  minus initial bits: what the images themselves cost), ``bits_per_dim`` and
  ``bits_per_dim_with_initial`` (per image dimension), ``file_bits_per_dim``.
  ``progress(done, total)`` is called after each group of images.
  """
  model = _model(model)
  mode = LOSSY if lossy else LOSSLESS
  x = check_images(model, images)
  original_shape = list(np.asarray(images).shape)
  group_size = int(group_size or DEFAULT_GROUP_SIZE)
  if not 1 <= group_size <= 4096:
    raise CodecError(f"group_size must be in [1, 4096], got {group_size}")
  b = int(DEFAULT_BIN_WIDTH_LOG2[mode] if bin_width_log2 is None else bin_width_log2)
  if not -4 <= b <= 16:
    raise CodecError(f"bin_width_log2 must be in [-4, 16], got {b}")
  if not 0 < latent_range and 2 * latent_range * 2.0 ** b > MAX_LATENT_SYMBOLS:
    raise CodecError(f"latent_range {latent_range} with bins of 2^-{b} makes "
                     f"{int(2 * latent_range * 2.0 ** b)} bins per latent dimension; at most "
                     f"{MAX_LATENT_SYMBOLS} (lower bin_width_log2 or latent_range)")
  cod = _Coder(model, group_size, b, latent_range)
  payload, info = (_encode_lossy if lossy else _encode_lossless)(cod, x, progress)
  header = {
      "mode": mode, "model": _model_name(model),
      "weights_sha256": codec_format.weights_fingerprint(model),
      "image_shape": list(cod.shape), "input_shape": original_shape, "count": len(x),
      "dtype": "uint8", "group_size": group_size, "bin_width_log2": b,
      "latent_range": float(latent_range), "latent_size": int(model.latent_size),
      "constriction": _constriction_version(), **info,
  }
  if not lossy:
    header["images_sha256"] = _images_sha256(x)
    header["initial_seed"] = _INITIAL_SEED
  data = codec_format.pack(header, payload)
  dims = len(x) * int(np.prod(cod.shape))
  payload_bits = 32 * len(payload)
  net = payload_bits - info["initial_bits"]
  stats = {"num_images": len(x), "num_dims": int(np.prod(cod.shape)), "file_bytes": len(data),
           "payload_bits": payload_bits, "initial_bits": info["initial_bits"], "net_bits": net,
           "bits_per_dim": net / dims, "bits_per_dim_with_initial": payload_bits / dims,
           "file_bits_per_dim": 8 * len(data) / dims, "bits_per_image": payload_bits / len(x),
           "mode": mode, "groups": len(info["groups"])}
  return data, stats


def compress(model, images, lossy=False, **kwargs) -> bytes:
  """The ``.vlae`` file bytes of ``images`` (uint8 ``[N, H, W(, C)]``); see :func:`encode`."""
  return encode(model, images, lossy=lossy, **kwargs)[0]


def read_header(data, what="the input") -> dict:
  """The header of a ``.vlae`` file's bytes (checked as :func:`decompress` does)."""
  return codec_format.unpack(data, what)[0]


def decompress(model, data, progress=None, what="the input") -> np.ndarray:
  """The images of a ``.vlae`` file's bytes, uint8 in the shape given to :func:`compress`."""
  header, payload = codec_format.unpack(data, what)
  model = _model(model) if not isinstance(model, str) else _model(model)
  fp = codec_format.weights_fingerprint(model)
  if header.get("weights_sha256") != fp:
    raise CodecError(f"{what} was compressed with model {header.get('model')!r} "
                     f"(weights {str(header.get('weights_sha256'))[:12]}...), not with this "
                     f"model {_model_name(model)!r} (weights {fp[:12]}...)")
  if list(header.get("image_shape", [])) != list(model.image_shape):
    raise CodecError(f"{what} holds images of shape {header.get('image_shape')}, the model "
                     f"{list(model.image_shape)}")
  if _minor(header.get("constriction")) != _minor(_constriction_version()):
    raise CodecError(f"{what} was coded with constriction {header.get('constriction')}; this "
                     f"installation has {_constriction_version()} (install the same minor "
                     "version)")
  mode = header.get("mode")
  if mode not in (LOSSLESS, LOSSY):
    raise CodecError(f"{what} has an unknown coding mode {mode!r}")
  try:
    cod = _Coder(model, header["group_size"], header["bin_width_log2"], header["latent_range"])
    x = (_decode_lossy if mode == LOSSY else _decode_lossless)(cod, header, payload, progress)
    return x.reshape(header["input_shape"])
  except CodecError:
    raise
  except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, AssertionError) as e:
    raise CodecError(f"decoding failed: {what} does not decode with this model "
                     f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def negative_elbo_bits_per_dim(model, images, batch_size=256, seed=0):
  """The model's mean -ELBO in bits/dim on ``images`` (one posterior sample each, fixed seed)."""
  model = _model(model)
  x = check_images(model, images).astype(np.float32)
  total = 0.0
  for s in range(0, len(x), batch_size):
    t = model.elbo_terms(tf.constant(x[s:s + batch_size]),
                         seed=tf.constant([seed, s], tf.int64))
    total += float(np.sum(-t["elbo"].numpy()))
  return total / (len(x) * int(np.prod(model.image_shape)) * math.log(2.0))
