"""Side information of a lossy file: what the encoder, which knows the image, adds to z.

Why. A z-only decode of the shipped ``cifar10`` model cannot beat filling each
image with its own mean colour (:mod:`vlae_tf.codec.lossy`): its decoder takes
colour from its neighbours, and z says little about where which colour is. So
the encoder, which has the image, sends a few numbers the receiver cannot
infer, chosen to minimise the squared error of what the receiver will decode
from them: encoder-side rate-distortion optimisation, as JPEG's and WebP's
encoders pick their modes. (Nothing here changes the latent code or the
model; the decode rule is still ``expectation``.)

What, per image (the header's ``lossy_side``, :func:`vlae_tf.codec.file_format.check_lossy_side`):

* the **block means** of each channel on a ``grid`` x ``grid`` grid (``grid`` 1:
  the image's mean colour), each quantized to ``2^mean_bits`` levels (bin
  centres; 8 bits: the rounded mean itself);
* a **gain** applied to the detail of ``e``, the ``expectation`` rule's float
  estimate of ``E[x | z]`` (the mean of its 16 seeded draws): with ``B(a)`` the
  block means of ``a`` placed at the block centres and interpolated
  bilinearly (clamped at the borders; constant for ``grid`` 1),
  ``d = e - B(e)`` and ``dn = d / rms(d)`` (0 if ``d`` is 0), the receiver
  decodes ::

      x_hat = clip(rint(B(m) + dn @ G), 0, 255)

  with ``m`` the sent block means and ``G`` a C x C matrix: ``"none"``: 0
  (the upsampled block means alone), ``"alpha"``: ``a * I`` with one ``a`` from
  ``{-h, ..., h} * gain_step`` (``h = (gain_levels - 1) / 2``), ``"matrix"``:
  each of the C x C entries from that set (a colour transform: z's detail has
  the wrong colours, but its three channels carry three spatial patterns the
  encoder can mix into each output channel).

The encoder's choice: the block means are the image's, quantized to the
nearest level; ``"alpha"`` tries every level and keeps the one whose decoded
image has the least squared error (ties: the smaller ``|a|``); ``"matrix"``
quantizes the least-squares C x C matrix (``dn`` onto ``x - B(m)``, each entry
rounded to the step and clipped to the range) and keeps it only if its decode
has less squared error than ``G = 0``. So a decode is never worse, in squared
error, than the block means alone (``G = 0`` is always a candidate), and with
``grid`` 1, 8 bits and ``G = 0`` it *is* the rounded mean colour.

In the payload each group's symbols are pushed (after the group's latents are
computed, before they are pushed, so the receiver pops the latents first):
the block means, image by image, raster order, channels last, each under
constriction's ``Uniform(2^mean_bits)``, then the gain indices under
``Uniform(gain_levels)``: fixed width, ``grid^2 * C * mean_bits +
K * log2(gain_levels)`` bits per image, ``K`` = 0, 1 or C^2 (:func:`nominal_bits`).
The default (``lossy_side="auto"``) is :data:`DEFAULT` for models of more than 2
levels decoded with ``expectation``, and none for binary ones (a binary
image's block means and gains buy nothing the latent does not: the lossy
``mnist`` code keeps its numbers). Measured on 100 CIFAR-10 test images with
the shipped ``cifar10`` weights in ``bench/README.md`` section 12
(``python -m experiments.lossy_cifar10``).

Everything here is NumPy float64 on the receiver's ``e``, which the file's
numeric mode reproduces (:mod:`vlae_tf.codec.numeric_mode`), so a decode is
deterministic; the encoder computes the same ``e`` (the same seeded draws of
the same ``z(k)``) to choose.
"""

from __future__ import annotations

import constriction
import numpy as np

from vlae_tf.codec.file_format import CodecError, check_lossy_side

DEFAULT = {"grid": 1, "mean_bits": 6, "gain": "matrix", "gain_step": 8, "gain_levels": 33}


def resolve(model, lossy_side, lossy_decode):
  """The side information a lossy file of ``model`` carries for the argument ``lossy_side``:
  ``"auto"`` (:data:`DEFAULT` for models of more than 2 levels decoded with ``expectation``,
  else none), ``None`` / ``"none"``, or a dict (checked). Returns a dict or None."""
  if isinstance(lossy_side, str) and lossy_side == "auto":
    auto = model.num_levels > 2 and lossy_decode == "expectation"
    return dict(DEFAULT) if auto else None
  if lossy_side is None or (isinstance(lossy_side, str) and lossy_side == "none"):
    return None
  if not isinstance(lossy_side, dict):
    raise CodecError(f"lossy_side must be 'auto', 'none', None or a dict (grid, mean_bits, "
                     f"gain, ...), got {lossy_side!r}")
  check_lossy_side(lossy_side, model.image_shape, lossy_decode)
  check_model(model, lossy_side)
  return dict(lossy_side)


def check_model(model, side, what="lossy_side"):
  """Raises :class:`CodecError` if ``side`` is given for a binary model (the encoder never
  writes it there)."""
  if side is not None and model.num_levels <= 2:
    raise CodecError(f"{what}: side information is for models of more than 2 levels, not this "
                     f"binary model")


def nominal_bits(side, image_shape):
  """Bits per image the side information ``side`` costs (0 for None): its symbols' widths."""
  if side is None:
    return 0.0
  c = image_shape[-1]
  return float(side["grid"] ** 2 * c * side["mean_bits"]
               + _num_gains(side, c) * np.log2(side.get("gain_levels", 1)))


def _num_gains(side, c):
  return {"none": 0, "alpha": 1, "matrix": c * c}[side["gain"]]


# ------------------------------------------------------------------ the maths
def block_means(a, grid):
  """The means of ``a`` ``[B, H, W, C]`` over a ``grid`` x ``grid`` grid of blocks: ``[B, grid, grid, C]``."""
  b, h, w, c = a.shape
  return np.asarray(a, np.float64).reshape(b, grid, h // grid, grid, w // grid, c).mean(axis=(2, 4))


def _interpolation(n, grid):
  """``[n, grid]``: linear interpolation from ``grid`` block centres to ``n`` pixel centres,
  clamped at the borders (each row sums to 1)."""
  pos = np.clip((np.arange(n) + 0.5) * grid / n - 0.5, 0.0, grid - 1.0)
  lo = np.floor(pos).astype(np.int64)
  hi = np.minimum(lo + 1, grid - 1)
  frac = pos - lo
  w = np.zeros((n, grid))
  np.add.at(w, (np.arange(n), lo), 1.0 - frac)
  np.add.at(w, (np.arange(n), hi), frac)
  return w


def upsample(blocks, h, w):
  """Block values ``[B, t, t, C]`` at their block centres, interpolated bilinearly to ``[B, h, w, C]``."""
  t = blocks.shape[1]
  return np.einsum("it,btuc,ju->bijc", _interpolation(h, t), blocks, _interpolation(w, t))


def mean_indices(means, bits, levels=256):
  """Each mean's nearest of ``2^bits`` levels (the centres of equal bins of ``[0, levels)``)."""
  step = levels / 2 ** bits
  return np.clip(np.rint((np.asarray(means, np.float64) + 0.5) / step - 0.5), 0,
                 2 ** bits - 1).astype(np.int64)


def mean_values(indices, bits, levels=256):
  """The pixel values of mean indices: bin centres ``(i + 1/2) * levels / 2^bits - 1/2``."""
  return (np.asarray(indices, np.float64) + 0.5) * (levels / 2 ** bits) - 0.5


def detail(e, grid):
  """``dn``: the detail of the estimate ``e`` ``[B, H, W, C]`` (``e`` minus its upsampled block
  means) divided by its root mean square per image (0 where it is 0)."""
  e = np.asarray(e, np.float64)
  d = e - upsample(block_means(e, grid), e.shape[1], e.shape[2])
  rms = np.sqrt(np.mean(d * d, axis=(1, 2, 3), keepdims=True))
  return np.divide(d, rms, out=np.zeros_like(d), where=rms > 0)


def gain_matrices(side, indices, c):
  """The gain matrices ``[B, C, C]`` of gain indices (``[B, 0]``, ``[B, 1]`` or ``[B, C*C]``)."""
  indices = np.asarray(indices, np.int64).reshape(len(indices), -1)
  if side["gain"] == "none":
    return np.zeros((len(indices), c, c))
  values = (indices - (side["gain_levels"] - 1) // 2) * float(side["gain_step"])
  if side["gain"] == "alpha":
    return values[:, :1, None] * np.eye(c)
  return values.reshape(len(indices), c, c)


def reconstruct(side, e, means_idx, gains_idx, levels=256):
  """What the receiver decodes: uint8 ``[B, H, W, C]`` from the estimate ``e`` of ``E[x | z]``
  and the side information's block-mean indices ``[B, t, t, C]`` and gain indices ``[B, K]``."""
  e = np.asarray(e, np.float64)
  _, h, w, c = e.shape
  base = upsample(mean_values(means_idx, side["mean_bits"], levels), h, w)
  y = base + np.einsum("bhwc,bcd->bhwd", detail(e, side["grid"]),
                       gain_matrices(side, gains_idx, c))
  return np.clip(np.rint(y), 0, levels - 1).astype(np.uint8)


def _squared_errors(x, y):
  d = np.asarray(x, np.float64) - y
  return np.sum(d * d, axis=(1, 2, 3))


def gain_candidates(side, c):
  """The gain indices the encoder tries, ``[K_candidates, K]``, the smallest gains first."""
  if side["gain"] == "none":
    return np.zeros((1, 0), np.int64)
  h = (side["gain_levels"] - 1) // 2
  if side["gain"] == "alpha":
    order = sorted(range(-h, h + 1), key=lambda a: (abs(a), a))
    return np.array(order, np.int64)[:, None] + h
  return np.full((1, c * c), h, np.int64)        # G = 0; the least-squares matrix is added per image


def choose(side, x, e, levels=256):
  """The encoder's side information for images ``x`` uint8 ``[B, H, W, C]`` given the estimate
  ``e`` the receiver will compute: ``(block-mean indices [B, t, t, C], gain indices [B, K])``,
  each image's gain the candidate whose decode has the least squared error."""
  x = np.asarray(x)
  b, h, w, c = x.shape
  means_idx = mean_indices(block_means(x, side["grid"]), side["mean_bits"], levels)
  cands = np.repeat(gain_candidates(side, c)[None], b, axis=0)          # [B, K_cand, K]
  if side["gain"] == "matrix":
    cands = np.concatenate([cands, _least_squares(side, x, e, means_idx, levels)[:, None]], 1)
  errors = np.stack([_squared_errors(x, reconstruct(side, e, means_idx, cands[:, i], levels))
                     for i in range(cands.shape[1])], axis=1)            # [B, K_cand]
  return means_idx, cands[np.arange(b), np.argmin(errors, axis=1)]


def _least_squares(side, x, e, means_idx, levels):
  """Each image's least-squares C x C gain, quantized and clipped to the side's levels: ``[B, C*C]``."""
  b, h, w, c = x.shape
  target = (np.asarray(x, np.float64)
            - upsample(mean_values(means_idx, side["mean_bits"], levels), h, w))
  dn = detail(e, side["grid"])
  half = (side["gain_levels"] - 1) // 2
  out = np.empty((b, c * c), np.int64)
  for i in range(b):
    g = np.linalg.lstsq(dn[i].reshape(-1, c), target[i].reshape(-1, c), rcond=None)[0]
    out[i] = np.clip(np.rint(g / side["gain_step"]), -half, half).reshape(-1) + half
  return out


# ---------------------------------------------------------------- the payload
def _families(side):
  u = constriction.stream.model.Uniform
  return u(2 ** side["mean_bits"]), (u(side["gain_levels"]) if side["gain"] != "none" else None)


def push(coder, side, means_idx, gains_idx):
  """Pushes one group's side information so that :func:`pop` gives it back (means first)."""
  mean_family, gain_family = _families(side)
  gains = np.asarray(gains_idx, np.int32).reshape(-1)
  if gains.size:
    coder.encode_reverse(gains, gain_family)
  coder.encode_reverse(np.asarray(means_idx, np.int32).reshape(-1), mean_family)


def pop(coder, side, n, c):
  """Pops one group's side information for ``n`` images of ``c`` channels:
  ``(block-mean indices [n, t, t, c], gain indices [n, K])``."""
  mean_family, gain_family = _families(side)
  t = side["grid"]
  means = coder.decode(mean_family, n * t * t * c).reshape(n, t, t, c).astype(np.int64)
  k = _num_gains(side, c)
  gains = (coder.decode(gain_family, n * k).reshape(n, k).astype(np.int64) if k
           else np.zeros((n, 0), np.int64))
  return means, gains
