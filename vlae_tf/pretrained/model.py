"""``ZooModel``: a thin NumPy-in, NumPy-out wrapper over an exported VLAE SavedModel.

Every method calls one signature of the SavedModel (contract: docs/SERVING.md)
after converting Python / NumPy arguments to the signature's dtypes; all
validation of values happens inside the graph and surfaces as
``tf.errors.InvalidArgumentError`` naming the input. Methods never need
``vlae_tf``'s model code: the wrapper works on any SavedModel written by
:func:`vlae_tf.export.export_saved_model`.

Inputs larger than a signature's per-request bound (``max_batch`` images or
latents, ``max_sample_num`` samples, ``max_iwae_cost`` = N x k importance
samples; read from the SavedModel's ``info_json``, with the current export's
values for SavedModels exported before the bounds existed) are split into
consecutive chunks under the bound, one call each. Chunk 0 uses ``seed`` itself
(so a batch under the bound gets exactly the signature's answer); chunk
``c > 0`` uses the stateless seed ``fold_in(seed, c)``.

Images are NHWC in data scale: {0, 1} for binary models, 0..255 for 8-bit
ones. Inputs may be uint8, int or float arrays holding integer pixel values;
outputs are uint8. ``seed`` is an int ``s`` (the stateless seed ``[s, s]``) or a
pair of ints; the same seed gives the same result.
"""

from __future__ import annotations

import json
import math
import numbers

import numpy as np
import tensorflow as tf

from vlae_tf.data_readers import read_npz


# The bounds of vlae_tf.export, for SavedModels exported before info_json recorded them.
DEFAULT_LIMITS = {"max_batch": 1024, "max_iwae_cost": 65536, "max_sample_num": 1024,
                  "max_iwae_samples": 4096, "max_temperature": 10.0, "max_abs_z": 1e4}


def _seed(seed):
  arr = np.asarray(seed)
  if arr.dtype == bool or arr.dtype.kind not in "iu" or arr.shape not in ((), (2,)):
    raise TypeError(f"seed must be an int or a pair of ints, got {seed!r}")
  return tf.constant(arr.astype(np.int64))


def chunk_seed(seed, c):
  """The seed of chunk ``c``: ``seed`` itself for ``c = 0``, else ``fold_in([s0, s1], c)``."""
  if c == 0:
    return seed
  pair = tf.reshape(tf.broadcast_to(tf.reshape(seed, [-1]), [2]), [2])
  return tf.cast(tf.random.experimental.stateless_fold_in(pair, c), tf.int64)


def _int(value, name, lo, hi):
  if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
    raise TypeError(f"{name} must be an int, got {value!r}")
  if not lo <= int(value) <= hi:
    raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
  return tf.constant(int(value), tf.int32)


class ZooModel:
  """A loaded zoo model. ``card``: its model card; ``info``: shapes and bounds."""

  def __init__(self, saved_model, card=None, path=None):
    self.saved_model = saved_model
    self.signatures = saved_model.signatures
    self.card = dict(card or {})
    self.path = path
    self.info = json.loads(saved_model.info_json.numpy().decode("utf-8"))
    self.name = self.card.get("name") or self.info["config"].get("name", "vlae")
    self.image_shape = tuple(self.info["image_shape"])
    self.latent_size = int(self.info["latent_size"])
    self.num_levels = int(self.info["num_levels"])
    self.limits = {k: type(v)(self.info.get(k, v)) for k, v in DEFAULT_LIMITS.items()}

  def __repr__(self):
    return (f"ZooModel({self.name!r}, images {list(self.image_shape)} with values in "
            f"[0, {self.num_levels - 1}], latent size {self.latent_size})")

  # ------------------------------------------------------------ conversion
  def _images(self, images, name="images"):
    x = np.asarray(images)
    if x.dtype == bool:
      x = x.astype(np.uint8)
    if x.dtype.kind not in "iuf":
      raise TypeError(f"{name} must be a numeric array of pixels of shape "
                      f"[N, {', '.join(map(str, self.image_shape))}], got dtype {x.dtype}")
    return x.astype(np.float32)

  def _call(self, signature, **inputs):
    out = self.signatures[signature](**inputs)
    return {k: v.numpy() for k, v in out.items()}

  def _call_chunked(self, signature, name, batch, size, seed=None, **inputs):
    """Calls ``signature`` on consecutive chunks of at most ``size`` rows of input ``name``."""
    n = batch.shape[0] if batch.ndim else 0
    starts = range(0, n, size) if n > size else [0]
    outs = []
    for c, a in enumerate(starts):
      part = batch[a:a + size] if n > size else batch
      kw = dict(inputs, **{name: tf.constant(part)})
      if seed is not None:
        kw["seed"] = chunk_seed(seed, c)
      outs.append(self._call(signature, **kw))
    if len(outs) == 1:
      return outs[0]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

  # --------------------------------------------------------------- methods
  def log_prob(self, images):
    """Per-example one-sample ELBO terms (fixed internal seed): ``elbo``, ``rate``,
    ``distortion`` in nats and ``bits_per_dim``, each ``[N]``."""
    return self._call_chunked("log_prob", "images", self._images(images),
                              self.limits["max_batch"])

  def iwae(self, images, num_samples=1000, seed=0):
    """Per-example IWAE bound ``nll`` (nats) and ``bits_per_dim`` with k = ``num_samples``."""
    k = _int(num_samples, "num_samples", 1, self.limits["max_iwae_samples"])
    size = max(1, min(self.limits["max_batch"], self.limits["max_iwae_cost"] // int(num_samples)))
    return self._call_chunked("iwae", "images", self._images(images), size, seed=_seed(seed),
                              num_samples=k)

  def encode(self, images, seed=0):
    """``mean`` and ``std`` of q0(z|x) and a sample ``z`` of q(z|x), each ``[N, D]``."""
    return self._call_chunked("encode", "images", self._images(images),
                              self.limits["max_batch"], seed=_seed(seed))

  def decode(self, z, seed=0):
    """Images ``[N, H, W, C]`` uint8 drawn from p(x|z) for latents ``z`` ``[N, D]``."""
    z = np.asarray(z)
    if z.dtype.kind not in "iuf":
      raise TypeError(f"z must be a float array of shape [N, {self.latent_size}], got {z.dtype}")
    z = z.astype(np.float32)
    big = float(np.max(np.abs(z[np.isfinite(z)]), initial=0.0))
    if big > self.limits["max_abs_z"]:
      raise ValueError(f"z: expected latents with |z| <= {self.limits['max_abs_z']:g} (the prior "
                       f"puts them within a few units of 0); got |z| up to {big:g}")
    return self._call_chunked("decode", "z", z, self.limits["max_batch"],
                              seed=_seed(seed))["images"]

  def reconstruct(self, images, seed=0):
    """Lossy reconstructions: ``x' ~ p(x|z)`` with ``z ~ q(z|x)``; uint8 like ``images``."""
    return self._call_chunked("reconstruct", "images", self._images(images),
                              self.limits["max_batch"], seed=_seed(seed))["images"]

  def sample(self, num=16, seed=0, temperature=1.0):
    """``num`` images ``[num, H, W, C]`` uint8 from p(x) (prior noise scaled by ``temperature``)."""
    _int(num, "num", 1, 2 ** 31 - 1)
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
      raise TypeError(f"temperature must be a float, got {temperature!r}")
    top = self.limits["max_temperature"]
    if not (math.isfinite(temperature) and 0 < temperature <= top):
      raise ValueError(f"temperature must be a finite float in (0, {top:g}], got {temperature}")
    size, seed = self.limits["max_sample_num"], _seed(seed)
    t = tf.constant(float(temperature), tf.float32)
    return np.concatenate([
        self._call("sample", num=tf.constant(min(size, num - a), tf.int32),
                   seed=chunk_seed(seed, c), temperature=t)["images"]
        for c, a in enumerate(range(0, num, size))])

  def interpolate(self, start, end, steps=8, seed=0, shared_noise=True):
    """Decodes ``z_t = (1 - t) mu(start) + t mu(end)`` for ``steps`` values of t in [0, 1].

    ``mu`` is the mean of q0(z|x). ``start`` and ``end`` are single images
    ``[H, W, C]`` (result ``[steps, H, W, C]``) or batches ``[N, H, W, C]``
    (result ``[N, steps, H, W, C]``). With ``shared_noise`` every t is decoded
    by its own ``decode`` call with the same ``seed``, so all points of a row
    share the pixel noise and only z changes along it (``steps`` calls);
    otherwise one call decodes all points with independent noise.
    """
    if isinstance(steps, bool) or not isinstance(steps, (numbers.Integral, np.integer)) or \
        not 2 <= steps <= 256:
      raise ValueError(f"steps must be an int in [2, 256], got {steps!r}")
    a, b = np.asarray(start), np.asarray(end)
    single = a.ndim == len(self.image_shape)
    if single:
      a, b = a[None], b[None]
    if a.shape != b.shape:
      raise ValueError(f"start and end must have the same shape, got {a.shape} and {b.shape}")
    mu = self.encode(np.concatenate([a, b]), seed=seed)["mean"]
    n = len(a)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    z = (1.0 - t) * mu[:n, None] + t * mu[n:, None]                      # [N, steps, D]
    if shared_noise:
      x = np.stack([self.decode(z[:, i], seed=seed) for i in range(steps)], axis=1)
    else:
      x = self.decode(z.reshape(n * steps, -1), seed=seed).reshape((n, steps) + self.image_shape)
    return x[0] if single else x

  def examples(self):
    """The few bundled test images of the model card (``examples.npz``), uint8 NHWC."""
    if self.path is None or not self.card.get("examples"):
      raise FileNotFoundError(f"model {self.name!r} has no bundled example images")
    return read_npz(self.path / self.card["examples"], ["x"])[0]
