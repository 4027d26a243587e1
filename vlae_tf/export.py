"""SavedModel export of a trained VLAE with a TF Serving contract.

``export_saved_model(model, config, "saved_models/mnist")`` writes a
self-contained SavedModel (graph + the model's variables, nothing else: no
optimizer state) into the TF Serving version folder ``saved_models/mnist/1``;
its named signatures need only TensorFlow (not ``vlae_tf``, TFP or any Keras
class). The full contract (input/output names, dtypes, shapes, bounds, seeds,
REST examples) is in ``docs/SERVING.md``; in short:

====================  ===========================================  =====================================
signature             inputs                                       outputs
====================  ===========================================  =====================================
``serving_default``,  ``images`` float32 [N, H, W, C]              ``elbo``, ``rate``, ``distortion``
``log_prob``                                                       (nats), ``bits_per_dim``; all [N]
``iwae``              ``images``, ``num_samples`` int32,           ``nll`` (nats), ``bits_per_dim``; [N]
                      ``seed`` int64
``encode``            ``images``, ``seed``                         ``mean``, ``std``, ``z``: [N, D]
``decode``            ``z`` float32 [N, D], ``seed``               ``images`` uint8 [N, H, W, C]
``reconstruct``       ``images``, ``seed``                         ``images``
``sample``            ``num`` int32, ``seed``, ``temperature``     ``images`` uint8 [num, H, W, C]
                      float32
====================  ===========================================  =====================================

Maths (per example, nats): ``elbo = log p(x|z) - [log q(z|x) - log p(z)]``
with one ``z ~ q(z|x)`` (``distortion = -log p(x|z)``, ``rate = log q - log p``);
``bits_per_dim = -elbo / (H W C log 2)``. ``iwae`` returns
``nll = -log (1/k) sum_s p(x, z_s) / q(z_s|x)`` (Burda et al. 2016), an upper
bound on ``-log p(x)`` that tightens as k grows, computed by
:func:`vlae_tf.evaluation.iwae_nll_graph` (the library's implementation:
chunks of at most ``IWAE_BUDGET // N`` samples, a running log-sum-exp).

Every input is validated inside the graph, so a bad request fails with an
``InvalidArgumentError`` naming the input and what was expected, in Python
and in TF Serving alike. The signatures declare their inputs with unknown
rank so that rank and size reach the graph's checks (with a readable
message), and ``images`` as float32 holding integer pixel values, so that
``0.5``, ``-1`` or ``300`` are rejected too: with a uint8 input, a NumPy
feed silently becomes 0, 255 and 44, and TF Serving stores JSON integers in
the proto's int32 field and casts them to uint8 (``-1`` -> 255, ``300`` -> 44).

Bounds per request (so one request cannot exhaust a server's memory or hold
it for hours): ``N <= MAX_BATCH`` images or latents for every signature but
``sample`` (``1 <= num <= MAX_SAMPLE_NUM``), ``num_samples <= MAX_IWAE_SAMPLES``
and ``N * num_samples <= MAX_IWAE_COST`` for ``iwae``, ``|z| <= MAX_ABS_Z`` for
``decode``; each is refused in the graph with an ``InvalidArgumentError``
stating the limit, and stored in ``info_json`` so that clients
(:class:`vlae_tf.pretrained.model.ZooModel`) split larger inputs into requests under it.

Scalar inputs (``num``, ``num_samples``, ``temperature``, ``seed``) may also be
given once per instance of a TF Serving row-format request (shape ``[N]``)
as long as every instance carries the same value. ``seed`` is either one
integer ``s`` (the stateless seed ``[s, s]``) or a stateless pair ``[2]``.

The SavedModel is the serving half of an export; the zoo layout around it (Keras
weights, model card, example images, checksums) is written by
:mod:`vlae_tf.pretrained.packaging` (``train.py --mode=export``).
"""

from __future__ import annotations

import json
import os
import sys

import tensorflow as tf

from vlae_tf import atomic
from vlae_tf import config as vconfig
from vlae_tf import evaluation, objective, sampling, validation

FORMAT_VERSION = 1
MAX_IWAE_SAMPLES = vconfig.MAX_IWAE_SAMPLES   # per call of the ``iwae`` signature
MAX_SAMPLE_NUM = 1024          # images per call of the ``sample`` signature
MAX_BATCH = 1024               # N: images (or latents) per call of every other signature
MAX_IWAE_COST = 65536          # N * num_samples: importance samples per call of ``iwae``
MAX_TEMPERATURE = 10.0
MAX_ABS_Z = 1e4                # |z| of ``decode``: the prior's mass is within a few units of 0
SIGNATURES = ("serving_default", "log_prob", "iwae", "encode", "decode", "reconstruct", "sample")

_ANY = tf.TensorShape(None)


def _assert(cond, *message):
  """A graph assertion whose error text is ``message`` (strings and tensors)."""
  return tf.debugging.Assert(cond, list(message), summarize=16)


def _after(checks, *tensors):
  with tf.control_dependencies(checks):
    out = tuple(tf.identity(t) for t in tensors)
  return out if len(out) > 1 else out[0]


def _scalar_input(x, name, what, nan_equal=False):
  """A scalar from a ``[]`` / ``[1]`` tensor, or a ``[N]`` one repeating one value.

  ``nan_equal``: NaN counts as equal to NaN (a float scalar NaN is then passed on,
  to be refused by the value check with a message about its value, not its shape).
  """
  flat = tf.reshape(x, [-1])
  first = tf.concat([flat, tf.zeros([1], x.dtype)], 0)[0]
  same = tf.equal(flat, first)
  if nan_equal:
    same |= tf.math.is_nan(flat) & tf.math.is_nan(first)
  ok = (tf.rank(x) <= 1) & (tf.size(flat) >= 1) & tf.reduce_all(same)
  check = _assert(ok, f"{name}: expected one {what} (a scalar; in a row-format request the same "
                  "value in every instance), got shape", tf.shape(x), "values", flat)
  return _after([check], first)


def stateless_seed(seed):
  """The ``[2]`` int64 stateless seed named by a ``seed`` input (see module doc)."""
  seed = tf.convert_to_tensor(seed, tf.int64)
  flat = tf.reshape(seed, [-1])
  rank, size = tf.rank(seed), tf.size(flat)
  shape = tf.concat([tf.shape(seed), [0, 0]], 0)
  padded = tf.concat([flat, tf.zeros([2], tf.int64)], 0)
  is_pair = tf.equal(rank, 1) & tf.equal(size, 2)
  is_scalar = (rank <= 1) & (size >= 1) & tf.reduce_all(tf.equal(flat, padded[0]))
  is_rows = tf.cond(tf.equal(rank, 2) & tf.equal(shape[1], 2) & (shape[0] >= 1),
                    lambda: tf.reduce_all(tf.equal(tf.reshape(flat, [-1, 2]), padded[None, :2])),
                    lambda: tf.constant(False))
  check = _assert(is_pair | is_scalar | is_rows,
                  "seed: expected an int64 scalar s (the stateless seed [s, s]) or a stateless "
                  "seed pair of shape [2] (in a row-format request: the same seed in every "
                  "instance), got shape", tf.shape(seed), "values", flat)
  pair = tf.where(is_pair | is_rows, padded[:2], tf.stack([padded[0], padded[0]]))
  return _after([check], pair)


class ServingModule(tf.Module):
  """The exported object: the model's variables and the signature functions.

  Holds only ``tf.Variable`` s (the model weights and a JSON description);
  the Keras model is closed over by the functions, not tracked, so loading
  needs no Python classes from ``vlae_tf``.
  """

  def __init__(self, model, config=None, name="vlae"):
    super().__init__(name=name)
    self.model_variables = list(model.variables)
    h, w, c = model.image_shape
    info = dict(
        format_version=FORMAT_VERSION, image_shape=[h, w, c], num_levels=int(model.num_levels),
        latent_size=int(model.latent_size), latent_shape=list(model.latent_shape),
        max_iwae_samples=MAX_IWAE_SAMPLES, max_sample_num=MAX_SAMPLE_NUM,
        max_batch=MAX_BATCH, max_iwae_cost=MAX_IWAE_COST, max_abs_z=MAX_ABS_Z,
        max_temperature=MAX_TEMPERATURE, signatures=list(SIGNATURES),
        config=vconfig.jsonable(config if config is not None else model.vlae_config))
    self.info_json = tf.Variable(json.dumps(info, sort_keys=True), trainable=False,
                                 name="info_json")
    self._build_functions(model)

  # ------------------------------------------------------------------ inputs
  def _request_images(self, images, model):
    """The ``images`` input, checked in the graph (the serving form of
    :func:`vlae_tf.validation.image_array`; a binary model's words, ``integer values in
    {0, 1}``, are those of the shipped SavedModels and docs/SERVING.md)."""
    h, w, c = model.image_shape
    top = model.num_levels - 1
    values = "integer values in {0, 1}" if top == 1 else validation.expected_pixels(top + 1)
    expect = (f"images: expected a batch of shape {validation.expected_batch((h, w, c))} with "
              f"N >= 1 and {values}")
    s = tf.shape(images)
    dims = tf.concat([s, [-1, -1, -1, -1]], 0)
    shape_ok = tf.equal(tf.rank(images), 4) & tf.reduce_all(tf.equal(dims[1:4], [h, w, c]))
    check_shape = _assert(shape_ok, f"{expect}; got shape", s)
    with tf.control_dependencies([check_shape]):
      flat = tf.reshape(images, [-1])
      in_range = (flat >= 0.0) & (flat <= float(top))          # False for NaN
      integral = tf.equal(flat, tf.round(flat))
      first_bad = lambda ok: tf.concat([tf.boolean_mask(flat, ~ok), [0.0]], 0)[0]
      check_batch = _assert(s[0] >= 1, f"{expect}; got an empty batch of shape", s)
      check_size = _assert(s[0] <= MAX_BATCH, f"images: at most {MAX_BATCH} images per request "
                           "(split larger batches into several requests); got N =", s[0])
      check_range = _assert(tf.reduce_all(in_range), f"{expect}; got a pixel value of",
                            first_bad(in_range))
      check_int = _assert(tf.reduce_all(integral), f"{expect}; got a non-integer pixel value of",
                          first_bad(integral))
    x = _after([check_shape, check_batch, check_size, check_range, check_int], images)
    return tf.ensure_shape(x, [None, h, w, c])

  def _latents(self, z, model):
    d = model.latent_size
    expect = f"z: expected a finite float32 batch of latents of shape [N, {d}] with N >= 1"
    s = tf.shape(z)
    dims = tf.concat([s, [-1, -1]], 0)
    check_shape = _assert(tf.equal(tf.rank(z), 2) & tf.equal(dims[1], d) & (dims[0] >= 1),
                          f"{expect}; got shape", s)
    with tf.control_dependencies([check_shape]):
      check_size = _assert(s[0] <= MAX_BATCH, f"z: at most {MAX_BATCH} latents per request "
                           "(split larger batches into several requests); got N =", s[0])
      check_finite = _assert(tf.reduce_all(tf.math.is_finite(z)),
                             f"{expect}; got non-finite values (NaN or Inf)")
      big = tf.reduce_max(tf.abs(z))
      check_range = _assert(big <= MAX_ABS_Z, f"z: expected latents with |z| <= {MAX_ABS_Z:g} "
                            "(the prior puts them within a few units of 0); got |z| up to", big)
    return tf.ensure_shape(_after([check_shape, check_size, check_finite, check_range], z),
                           [None, d])

  def _bounded_int(self, x, name, lo, hi):
    v = _scalar_input(x, name, f"int32 in [{lo}, {hi}]")
    check = _assert((v >= lo) & (v <= hi), f"{name}: expected an integer in [{lo}, {hi}], got", v)
    return _after([check], v)

  def _temperature(self, t):
    v = _scalar_input(t, "temperature", f"float32 in (0, {MAX_TEMPERATURE:g}]", nan_equal=True)
    check = _assert(tf.math.is_finite(v) & (v > 0.0) & (v <= MAX_TEMPERATURE),
                    f"temperature: expected a float in (0, {MAX_TEMPERATURE:g}], got", v)
    return _after([check], v)

  # --------------------------------------------------------------- functions
  def _build_functions(self, model):
    img = tf.TensorSpec(_ANY, tf.float32, name="images")
    seed = tf.TensorSpec(_ANY, tf.int64, name="seed")
    elbo_seed = tf.constant([0, 0], tf.int64)

    @tf.function(input_signature=[img])
    def log_prob(images):
      x = self._request_images(images, model)
      t = model.elbo_terms(x, seed=elbo_seed)
      return {k: tf.identity(t[k], name=k) for k in ("elbo", "rate", "distortion", "bits_per_dim")}

    @tf.function(input_signature=[img, tf.TensorSpec(_ANY, tf.int32, name="num_samples"), seed])
    def iwae(images, num_samples, seed):
      x = self._request_images(images, model)
      k = self._bounded_int(num_samples, "num_samples", 1, MAX_IWAE_SAMPLES)
      cost = tf.cast(tf.shape(x)[0], tf.int64) * tf.cast(k, tf.int64)
      check_cost = _assert(cost <= MAX_IWAE_COST, f"iwae: at most N x num_samples = "
                           f"{MAX_IWAE_COST} importance samples per request (fewer images or "
                           "samples per request); got N x num_samples =", cost)
      x, k = _after([check_cost], x, k)
      nll = evaluation.iwae_nll_graph(model, x, k, stateless_seed(seed))
      return {"nll": nll, "bits_per_dim": objective.nats_to_bits_per_dim(nll, model.num_dims)}

    @tf.function(input_signature=[img, seed])
    def encode(images, seed):
      x = self._request_images(images, model)
      mu, sigma, context = model.encode(x)
      eps = tf.random.stateless_normal(tf.shape(mu), stateless_seed(seed))
      z, _ = model.posterior_from_noise(mu, sigma, context, eps)
      return {"mean": mu, "std": sigma, "z": z}

    @tf.function(input_signature=[tf.TensorSpec(_ANY, tf.float32, name="z"), seed])
    def decode(z, seed):
      z = self._latents(z, model)
      return {"images": _to_uint8(sampling.decode(model, z, stateless_seed(seed)))}

    @tf.function(input_signature=[img, seed])
    def reconstruct(images, seed):
      x = self._request_images(images, model)
      return {"images": _to_uint8(sampling.reconstruct(model, x, stateless_seed(seed)))}

    @tf.function(input_signature=[tf.TensorSpec(_ANY, tf.int32, name="num"), seed,
                                  tf.TensorSpec(_ANY, tf.float32, name="temperature")])
    def sample(num, seed, temperature):
      n = self._bounded_int(num, "num", 1, MAX_SAMPLE_NUM)
      t = self._temperature(temperature)
      return {"images": _to_uint8(sampling.sample(model, n, stateless_seed(seed), t))}

    self.log_prob, self.iwae, self.encode, self.decode = log_prob, iwae, encode, decode
    self.reconstruct, self.sample = reconstruct, sample

  def signatures(self):
    return {"serving_default": self.log_prob, "log_prob": self.log_prob, "iwae": self.iwae,
            "encode": self.encode, "decode": self.decode, "reconstruct": self.reconstruct,
            "sample": self.sample}


# ----------------------------------------------------------------- helpers
def _to_uint8(x):
  """Sampled pixels -> uint8; refuses non-finite pixels (a cast would make them 0 silently)."""
  check = _assert(tf.reduce_all(tf.math.is_finite(x)), "the decoder produced non-finite pixel "
                  "values (NaN or Inf): the latents are far outside what the model was trained on")
  return tf.cast(tf.clip_by_value(tf.round(_after([check], x)), 0.0, 255.0), tf.uint8)


# ---------------------------------------------------------------- the export
def _layout(export_dir, version):
  """``(model_dir, saved_model_dir)``: a numeric last component is the version folder."""
  export_dir = os.path.normpath(os.fspath(export_dir))
  if os.path.basename(export_dir).isdigit():
    return os.path.dirname(export_dir) or ".", export_dir
  return export_dir, os.path.join(export_dir, str(int(version or 1)))


def export_saved_model(model, config, export_dir, version=None):
  """Writes ``model`` (already holding the weights to ship, e.g. EMA) as a SavedModel.

  Args:
    model: a built :class:`vlae_tf.model.VLAE`.
    config: its config (stored in the SavedModel's ``info_json`` variable).
    export_dir: the model folder, e.g. ``saved_models/mnist``: the SavedModel
      goes into its numeric version subfolder ``<version>`` (default 1), the
      layout TF Serving expects. A path ending in a number is taken as the
      version folder itself. The version folder must not exist or be empty.
    version: the version number when ``export_dir`` is a model folder.

  Returns:
    The SavedModel folder. Nothing else is written: the zoo's files around it
    (card, Keras weights, examples) are :func:`vlae_tf.pretrained.packaging.export_model`'s.
  """
  _, saved_model_dir = _layout(export_dir, version)
  if os.path.isdir(saved_model_dir) and os.listdir(saved_model_dir):
    raise FileExistsError(f"{saved_model_dir!r} exists and is not empty; export a new version "
                          "(--version) or remove it")
  module = ServingModule(model, config)
  with atomic.folder(saved_model_dir) as tmp:        # a failed save leaves no partial SavedModel
    tf.saved_model.save(module, tmp, signatures=module.signatures())
  return saved_model_dir


if __name__ == "__main__":   # the packaging command this module had moved to train.py
  print("python -m vlae_tf.export: packaging a run is now `python train.py --workdir=RUN "
        "--mode=export --export_dir=saved_models/NAME [--command=... --hardware=... "
        "--wall_time_hours=...]` (docs/TRAINING.md)", file=sys.stderr)
  raise SystemExit(2)
