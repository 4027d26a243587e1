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
  :mod:`vlae_tf.codec.latent`, with the cost over -ELBO: the message grows by
  ``-log p(x | z(k)) - log P(k) + log Q(k | x)`` bits per image, -ELBO up to
  the discretization of k (``bin_width_log2``: bins of ``2^-b``). The first
  pops need bits already in the message: the coder starts from ``W``
  pseudo-random words (seeded, so the receiver regenerates them; only the
  part the coder actually reads is stored in the file and reported as the
  *initial bits*). The sender keeps that small by coding growing groups
  (1 image, then as many as the message can lend bits to, up to
  ``group_size``). Decoding runs the steps backwards, groups in reverse order,
  checking as it goes that each group is as large as the sender made it and
  that the message never drops below its lowest point (so a header claiming
  more images than the payload holds fails early), and ends by checking that
  the message is back at the initial words and that the images hash to the
  sha256 stored in the file.

Lossy (z only)
  The sender codes ``k = round(v(mu) / delta)`` under ``P(k)``, ``mu`` the
  posterior mean (no bits back, nothing else); the receiver decodes ``z(k)``
  and fills in x with the rounded mean of 16 draws from ``p(x | z)`` seeded
  by the file (``lossy_decode="expectation"``, the default: an estimate of
  ``E[x | z]``, the least squared error given z; :mod:`vlae_tf.codec.lossy`
  says why, with numbers), or greedily (files written before it still
  decode as then) with the **mode** of each sub-pixel's distribution given
  the pixels decoded before it, its rounded conditional **mean**
  (``"mean"``) or a **sample** drawn with a seed stored in the file
  (``"sample"``); for 256 levels greedy modes collapse to the edge levels 0
  and 255, whose bins hold the logistic's tails. For models of more than 2
  levels, new ``expectation`` files also carry side information the encoder
  chose knowing the image (its mean colour and a 3x3 gain on the
  expectation's detail, :mod:`vlae_tf.codec.side_info`): the decode is never worse
  than the mean colour in squared error. Coarser bins (smaller
  ``bin_width_log2``) give fewer bits and more distortion. Greedy modes can
  lose thin strokes: where every pixel's probability of ink stays below 1/2
  the mode is an empty image (seen on omniglot, see ``bench/README.md``).

Exactness (sender and receiver must compute bit-identical probabilities)
  Every probability that reaches the coder is computed by the same code on
  both sides from the same inputs with the same shapes: the latent walks of
  :mod:`vlae_tf.codec.latent` and the cached decoder of
  :mod:`vlae_tf.codec.pixels` (the sender runs it teacher-forced instead of a
  parallel pass, whose float sums differ), each one traced graph per group
  that calls the coder from inside (``tf.numpy_function``), the encoder on
  the same pixels, and float64 TensorFlow for the final distributions, which
  constriction quantizes to integers. TensorFlow sees each group at its own
  size, the same on both sides (the file records the groups; ``group_size``
  caps them), so a file's probabilities do not depend on how a caller
  batches. Same code is not enough across machines:
  TensorFlow (oneDNN), NumPy and libm pick kernels by the CPU at run time. So
  the codec codes only in its **canonical numeric mode**
  (:mod:`vlae_tf.codec.numeric_mode`: oneDNN off and its sgemm at one instruction set,
  NumPy and libm without CPU dispatch, one TensorFlow thread), which the
  ``vlae compress`` / ``vlae decompress`` commands start for themselves; the
  file records it with the TensorFlow and NumPy versions (header field
  ``numeric_mode``). Called in another process, :func:`encode` refuses with a
  one-line error saying how to get the mode, unless ``portable=False``: then
  the file records the process's own mode (oneDNN, threads, CPU features) and
  decodes only where that is reproduced. :func:`decompress` refuses a file
  whose recorded mode or versions differ from the process's, naming what
  differs. ``tests/test_codec_portable.py`` encodes and decodes in fresh
  processes under the default environment, oneDNN off,
  ``ONEDNN_MAX_CPU_ISA=AVX2`` and one thread, every pair, bit-identically.
  Format-version-1 files (before the mode was recorded) were coded with
  NumPy's float64 distributions at a padded batch, which this version no
  longer computes: a lossless one is refused with a one-line error naming the
  last vlae_tf that decodes it (commit 409a2ca, in an environment like the one
  that wrote it); a lossy one still decodes (its latents exactly, its pixels by
  the rule it names).

The chains themselves, group by group, are in :mod:`vlae_tf.codec.chain`.

API: :func:`compress` / :func:`decompress` take a Keras
:class:`vlae_tf.model.VLAE` (``vlae_tf.zoo.load_keras(name)``) or a zoo model
name; the SavedModel wrapper of ``vlae_tf.zoo.load`` cannot run the decoder
step by step. Command line: ``vlae compress`` / ``vlae decompress``
(:mod:`vlae_tf.codec.commands`).
"""

from __future__ import annotations

import importlib.metadata
import math
import numbers

import numpy as np
import tensorflow as tf

from vlae_tf import validation
from vlae_tf.codec import chain, file_format, numeric_mode, side_info
from vlae_tf.codec.file_format import CodecError, check_lossy_options
from vlae_tf.codec.latent import UnsupportedModel
from vlae_tf.model import VLAE
from vlae_tf.pretrained import keras_weights

LOSSLESS, LOSSY = file_format.LOSSLESS, file_format.LOSSY
DEFAULT_GROUP_SIZE = file_format.DEFAULT_GROUP_SIZE
DEFAULT_BIN_WIDTH_LOG2 = file_format.DEFAULT_BIN_WIDTH_LOG2
DEFAULT_LATENT_RANGE = file_format.DEFAULT_LATENT_RANGE
MAX_LATENT_SYMBOLS = file_format.MAX_LATENT_SYMBOLS    # bins per latent dimension (latent: leaks)

__all__ = ["compress", "decompress", "encode", "CodecError", "UnsupportedModel", "LOSSLESS",
           "LOSSY", "check_lossy_options"]


def _constriction_version():
  try:
    return importlib.metadata.version("constriction")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def _minor(version):
  return ".".join(str(version).split(".")[:2])


def _model(model):
  if isinstance(model, str):
    return keras_weights.load_keras(model)
  if not isinstance(model, VLAE):
    raise TypeError(f"model must be a vlae_tf VLAE (vlae_tf.zoo.load_keras(name)) or a zoo model "
                    f"name, got {type(model).__name__}")
  return model


_CODERS = {}    # (id(model), group_size, bin_width_log2, latent_range) -> (model, Coder)


def _coder(model, group_size, bin_width_log2, latent_range, legacy=False):
  """The :class:`vlae_tf.codec.chain.Coder` of these parameters, kept for the last few (model,
  parameters): its graphs are traced on first use (seconds), so a second file with the same model
  and parameters skips that. Keyed by the model object, which stays alive while it is kept."""
  key = (id(model), int(group_size), int(bin_width_log2), float(latent_range), bool(legacy))
  if key not in _CODERS or _CODERS[key][0] is not model:
    while len(_CODERS) >= 4:
      _CODERS.pop(next(iter(_CODERS)))
    _CODERS[key] = (model, chain.Coder(model, group_size, bin_width_log2, latent_range, legacy))
  return _CODERS[key][1]


def _model_name(model):
  card = getattr(model, "zoo_card", None)
  return (card or {}).get("name") or model.vlae_config.get("name") or "vlae"


def check_images(model, images) -> np.ndarray:
  """``images`` as uint8 ``[N, H, W, C]`` for ``model``: :func:`vlae_tf.validation.image_array`
  with integer pixels only, its one-line message in a :class:`CodecError`."""
  return validation.image_array(images, "images", model.image_shape, model.num_levels,
                                error=CodecError, integers_only=True)


# ------------------------------------------------------------------- public
def encode(model, images, lossy=False, group_size=None, bin_width_log2=None,
           latent_range=DEFAULT_LATENT_RANGE, lossy_decode="expectation", seed=0, progress=None,
           portable=True, lossy_side="auto"):
  """Compresses ``images``; returns ``(file bytes, stats)``.

  ``stats``: ``num_images``, ``num_dims`` (per image), ``file_bytes``,
  ``payload_bits`` (the ANS words), ``initial_bits`` (the initial words the
  coder read, included in the payload; lossless only), ``net_bits`` (payload
  minus initial bits: what the images themselves cost), ``bits_per_dim`` and
  ``bits_per_dim_with_initial`` (per image dimension), ``file_bits_per_dim``.
  ``progress(done, total)`` is called after each group of images. Lossy files
  decode to ``lossy_decode="expectation"``: the rounded mean of 16 draws from
  p(x | z) seeded by ``seed`` (stored in the file), or greedily to each
  sub-pixel's ``"mode"`` given the pixels before it, ``"mean"``: its rounded
  conditional mean, or ``"sample"``: a seeded draw. ``lossy_side``: the side information
  the encoder adds to an ``expectation`` file (:mod:`vlae_tf.codec.side_info`): ``"auto"``
  (the default: the image's mean colour and a 3x3 colour gain for models of more than 2
  levels, none for binary ones), ``None`` / ``"none"``, or a dict (``grid``,
  ``mean_bits``, ``gain``, ``gain_step``, ``gain_levels``); ``stats["side_bits_per_image"]``
  is its share of the payload. ``portable`` (default): code only in
  the canonical numeric mode (:class:`CodecError` in any other process);
  ``portable=False``: code in this process's own mode, recorded in the file,
  which then decodes only where that mode is reproduced.
  """
  model = _model(model)
  mode = LOSSY if lossy else LOSSLESS
  x = check_images(model, images)
  original_shape = list(np.asarray(images).shape)
  group_size = DEFAULT_GROUP_SIZE if group_size is None else _integer(group_size)
  b = DEFAULT_BIN_WIDTH_LOG2[mode] if bin_width_log2 is None else _integer(bin_width_log2)
  file_format.check_coding_parameters(group_size, b, latent_range)
  side = None
  if lossy:
    check_lossy_options(lossy_decode, seed)
    side = side_info.resolve(model, lossy_side, lossy_decode)
  coded_mode = numeric_mode.require_canonical(portable)
  with chain.coder_panics_as_errors("compression"):
    cod = _coder(model, group_size, b, latent_range)
    if lossy:
      payload, info = chain.encode_lossy(cod, x, progress, side, int(seed))
    else:
      payload, info = chain.encode_lossless(cod, x, progress)
  header = {
      "mode": mode, "model": _model_name(model),
      "weights_sha256": file_format.weights_fingerprint(model),
      "image_shape": list(cod.shape), "input_shape": original_shape, "count": len(x),
      "dtype": "uint8", "group_size": group_size, "bin_width_log2": b,
      "latent_range": float(latent_range), "latent_size": int(model.latent_size),
      "constriction": _constriction_version(), "numeric_mode": coded_mode, **info,
  }
  if lossy:
    header["lossy_decode"], header["lossy_seed"] = lossy_decode, int(seed)
    header["lossy_side"] = side
  else:
    header["images_sha256"] = chain.images_sha256(x)
    header["initial_seed"] = chain.INITIAL_SEED
  data = file_format.pack(header, payload)
  dims = len(x) * int(np.prod(cod.shape))
  payload_bits = 32 * len(payload)
  net = payload_bits - info["initial_bits"]
  stats = {"num_images": len(x), "num_dims": int(np.prod(cod.shape)), "file_bytes": len(data),
           "payload_bits": payload_bits, "initial_bits": info["initial_bits"], "net_bits": net,
           "bits_per_dim": net / dims, "bits_per_dim_with_initial": payload_bits / dims,
           "file_bits_per_dim": 8 * len(data) / dims, "bits_per_image": payload_bits / len(x),
           "file_bits_per_image": 8 * len(data) / len(x), "mode": mode,
           "groups": len(info["groups"]),
           "side_bits_per_image": side_info.nominal_bits(side, cod.shape)}
  return data, stats


def _integer(v):
  """``v`` as an int if it is an integer (NumPy's too, not bool); else as given, to be refused."""
  return int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v


def size_summary(header, file_bytes) -> dict:
  """Sizes of a file from its header, per image and per image dimension (both commands print
  these): ``payload_bits`` (the ANS words, initial bits included), ``net_bits`` (payload minus
  the initial bits: what the images cost), ``file_bits`` (every byte, header included)."""
  n = header["count"]
  dims = n * int(np.prod(header["image_shape"]))
  payload = 32 * header["payload_words"]
  net, file_bits = payload - header["initial_bits"], 8 * file_bytes
  return {"num_images": n, "file_bytes": file_bytes, "initial_bits": header["initial_bits"],
          "payload_bits_per_image": payload / n, "file_bits_per_image": file_bits / n,
          "bits_per_dim": net / dims, "payload_bits_per_dim": payload / dims,
          "file_bits_per_dim": file_bits / dims}


def compress(model, images, lossy=False, **kwargs) -> bytes:
  """The ``.vlae`` file bytes of ``images`` (uint8 ``[N, H, W(, C)]``); see :func:`encode`."""
  return encode(model, images, lossy=lossy, **kwargs)[0]


def read_header(data, what="the input") -> dict:
  """The header of a ``.vlae`` file's bytes, every field checked
  (:func:`vlae_tf.codec.file_format.unpack`)."""
  return file_format.unpack(data, what)[0]


def decompress(model, data, progress=None, what="the input") -> np.ndarray:
  """The images of a ``.vlae`` file's bytes, uint8 in the shape given to :func:`compress`."""
  header, payload = file_format.unpack(data, what)
  model = _model(model)
  fp = file_format.weights_fingerprint(model)
  if header["weights_sha256"] != fp:
    raise CodecError(f"{what} was compressed with model {header['model']!r} "
                     f"(weights {header['weights_sha256'][:12]}...), not with this "
                     f"model {_model_name(model)!r} (weights {fp[:12]}...)")
  if header["image_shape"] != list(model.image_shape):
    raise CodecError(f"{what} holds images of shape {header['image_shape']}, the model "
                     f"{list(model.image_shape)}")
  if header["latent_size"] != int(model.latent_size):
    raise CodecError(f"{what}: header field 'latent_size' is {header['latent_size']}; the model's "
                     f"latent has {int(model.latent_size)} dimensions")
  if _minor(header["constriction"]) != _minor(_constriction_version()):
    raise CodecError(f"{what} was coded with constriction {header['constriction']}; this "
                     f"installation has {_constriction_version()} (install the same minor "
                     "version)")
  if header["numeric_mode"] is None and header["mode"] == LOSSLESS:
    raise CodecError(f"{what} has format version 1: a lossless file whose probabilities this "
                     "vlae_tf no longer computes the same way (they were NumPy's, at a padded "
                     "batch, before the canonical numeric mode); decode it with vlae_tf at commit "
                     "409a2ca, where it was made or on a machine like it, and compress again")
  check_numeric_mode(header, what)
  mode = header["mode"]
  try:
    with chain.coder_panics_as_errors(f"decoding {what}"):
      cod = _coder(model, header["group_size"], header["bin_width_log2"], header["latent_range"],
                   legacy=header["numeric_mode"] is None)    # format version 1 (lossy)
      x = (chain.decode_lossy if mode == LOSSY else chain.decode_lossless)(
          cod, header, payload, progress)
    return x.reshape(header["input_shape"])
  except CodecError:
    raise
  except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, AssertionError) as e:
    raise CodecError(f"decoding failed: {what} does not decode with this model "
                     f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def check_numeric_mode(header, what="the input"):
  """Raises :class:`CodecError` unless this process reproduces the numeric mode and versions
  the file was coded in (a format-version-1 file records none and is let through)."""
  recorded = header["numeric_mode"]
  if recorded is None:
    return
  diff = numeric_mode.mismatch(recorded, numeric_mode.process_mode())
  if diff is None:
    return
  if recorded["name"] not in (numeric_mode.CANONICAL, numeric_mode.PROCESS):
    raise CodecError(f"{what} was coded in numeric mode {recorded['name']!r} of another vlae_tf "
                     f"version, whose probabilities this one ({numeric_mode.CANONICAL!r}) computes "
                     "otherwise: decode it with the vlae_tf that wrote it")
  if recorded["name"] == numeric_mode.CANONICAL:
    how = ("decode it with `vlae decompress` (it starts the mode) or in a script run as "
           "`python -m vlae_tf.codec.numeric_mode script.py`, with the same TensorFlow and NumPy "
           "versions")
  else:
    how = ("it was coded with portable=False and decodes only where that process's mode is "
           "reproduced")
  raise CodecError(f"{what} was coded in numeric mode {recorded['name']!r}, which this process "
                   f"does not reproduce ({diff}): {how}")


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
