"""The VLAE model: encoder q(z|x), AF prior p(z), local decoder p(x|z).

``build_model(config)`` turns a zoo config (see ``zoo/``) into a built
``keras.Model``. Pixels are passed in *data scale* everywhere in the public
API (binary {0, 1}, or 0..2**num_bits - 1); the model normalizes them itself.

Latent shapes: a *vector* latent is ``[B, D]``; a *spatial* one is
``[B, h, w, c]`` and is flattened to ``D = h * w * c`` for the prior, the
posterior flow and the rate.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from vlae_tf import objective
from vlae_tf.config import (DECODER_CONTEXTS, GATED_DECODER_CONTEXTS, POSTERIORS, PRECISIONS,
                            PRIORS, check_choice, with_defaults)
from vlae_tf.af_prior import AFPrior, IAFPosterior, StandardNormalPrior, std_normal_log_prob
from vlae_tf.encoder import Conditioning, Encoder
from vlae_tf.gated_decoder import GatedDecoder
from vlae_tf.likelihoods import make_likelihood
from vlae_tf.local_decoder import LocalDecoder
from vlae_tf.validation import expected_batch, expected_pixels


_ACCEPTED = (tf.uint8, tf.int32, tf.int64, tf.float16, tf.float32, tf.float64)


def check_image_tensor(x, image_shape, num_levels, name="x"):
  """Validates an NHWC batch of model inputs and returns it as float32 in data scale.

  The graph form of :func:`vlae_tf.validation.image_array` (the same expectation, in its
  words): static problems (rank, image size, dtype) raise ``ValueError`` /
  ``TypeError`` at trace time; value problems (empty batch, NaN, pixel range,
  non-integer levels) raise ``tf.errors.InvalidArgumentError`` at run time, eagerly
  or inside a graph. ``num_levels``: 2 for binary images, 256 for 8-bit ones.
  """
  h, w, c = image_shape
  expected, batch = expected_pixels(num_levels), expected_batch(image_shape)
  if not tf.is_tensor(x):
    try:
      x = tf.convert_to_tensor(x)
    except (TypeError, ValueError) as e:
      raise TypeError(f"{name} must be a numeric array of images, got {type(x).__name__}: {e}")
  if x.dtype not in _ACCEPTED:
    raise TypeError(f"{name} has dtype {x.dtype.name}; expected uint8 or float pixels "
                    f"({expected}) of shape {batch}")
  shape = x.shape
  if shape.rank is not None and shape.rank != 4:
    raise ValueError(f"{name} must be a rank-4 NHWC batch of shape {batch}, got shape {shape}")
  if shape.rank == 4 and any(
      got is not None and got != want for got, want in zip(shape[1:], (h, w, c))):
    raise ValueError(f"{name} has images of shape {tuple(shape[1:])}; this model expects {batch}")
  xf = tf.cast(x, tf.float32)
  checks = [
      tf.debugging.assert_greater(
          tf.shape(x)[0], 0,
          message=f"{name} is an empty batch; expected at least one image of shape "
                  f"[{h}, {w}, {c}]"),
      tf.debugging.assert_equal(
          tf.reduce_all(tf.math.is_finite(xf)), True,
          message=f"{name} has NaN or infinite pixel values; expected {expected}"),
      tf.debugging.assert_equal(
          tf.reduce_all((xf >= 0.0) & (xf <= float(num_levels - 1))), True,
          message=f"{name} has pixel values outside [0, {num_levels - 1}]; expected {expected}"),
      tf.debugging.assert_equal(
          tf.reduce_all(tf.equal(xf, tf.round(xf))), True,
          message=f"{name} has non-integer pixel values; expected {expected}"),
  ]
  with tf.control_dependencies(checks):
    return tf.identity(xf)


@contextlib.contextmanager
def _dtype_policy(precision):
  """Layers built inside compute in ``precision`` (variables stay float32); restores the policy."""
  check_choice("precision", precision, PRECISIONS)
  old = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
  try:
    yield
  finally:
    keras.config.set_dtype_policy(old)


def _normal_sample(shape, seed):
  if seed is None:
    return tf.random.normal(shape)
  return tf.random.stateless_normal(shape, seed)


@keras.saving.register_keras_serializable(package="vlae_tf")
class VLAE(keras.Model):
  """Variational Lossy Autoencoder (Chen et al., ICLR 2017).

  ``precision="bfloat16"`` (training only: ``train.precision``) makes the
  encoder, the conditioning network and the decoder compute in bfloat16 with
  float32 variables (Keras mixed precision); their outputs (mu, sigma, the
  likelihood parameters) are float32, and the likelihood, the prior, the KL
  and the loss are computed in float32. The weights are the same variables
  in both precisions, so checkpoints move freely between them.
  """

  def __init__(self, config, precision="float32", **kwargs):
    super().__init__(**kwargs)
    self.precision = precision
    cfg = with_defaults(config)   # keys the config lacks: vlae_tf.config.default_config()
    self._config_dict = cfg
    m, d = cfg["model"], cfg["data"]
    # validate_config checked the choice fields; a config that skipped it gets the same words here
    # (and from the layers: likelihood, latent kind, decoder context)
    check_choice("model.prior", m["prior"], PRIORS)
    check_choice("model.posterior", m["posterior"], POSTERIORS)
    self.image_shape = tuple(int(v) for v in d["image_shape"])
    h, w, c = self.image_shape
    self.num_dims = h * w * c
    self.likelihood = make_likelihood(m["likelihood"], c, m["num_mixtures"],
                                      m["num_bits"])
    self.num_levels = self.likelihood.num_levels
    n = int(m["num_resolution_changes"])
    if m["latent_kind"] == "vector":
      self.latent_shape = (int(m["latent_dim"]),)
    else:
      self.latent_shape = (h // 2 ** n, w // 2 ** n, int(m["latent_channels"]))
    self.latent_size = int(np.prod(self.latent_shape))
    posterior = m["posterior"]
    context_size = int(m["posterior_context"]) if posterior == "iaf" else 0
    with _dtype_policy(precision):
      self.encoder = Encoder(m["latent_kind"], m["latent_dim"], m["latent_channels"],
                             filters=m["encoder_filters"], num_blocks=m["encoder_blocks"],
                             num_downsamples=n, context_size=context_size, name="encoder")
      self.conditioning = Conditioning(m["latent_kind"], (h, w), filters=m["cond_filters"],
                                       num_blocks=m["cond_blocks"], num_upsamples=n,
                                       name="conditioning")
      self.decoder = _make_decoder(m, self.image_shape, self.likelihood.num_params())
    if m["prior"] == "af":
      self.prior = AFPrior(self.latent_size, m["prior_steps"], m["prior_hidden"], name="prior")
    else:                                                          # "normal"
      self.prior = StandardNormalPrior(self.latent_size, name="prior")
    self.posterior_flow = (IAFPosterior(self.latent_size, m["posterior_steps"],
                                        m["posterior_hidden"], context_size, name="posterior")
                           if posterior == "iaf" else None)        # "gaussian": no flow
    obj = cfg["objective"]
    self.free_bits = float(obj["free_bits"])
    self.free_bits_groups = int(obj["free_bits_groups"])
    self.beta = float(obj["beta"])
    self.kl_warmup_steps = int(obj["kl_warmup_steps"])

  # ---------------------------------------------------------------- config
  @property
  def vlae_config(self):
    return self._config_dict

  def get_config(self):
    return {"config": self._config_dict, "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def build(self, input_shape=None):
    x = tf.zeros((1,) + self.image_shape)
    self.elbo_terms(x)
    self.built = True

  # ---------------------------------------------------------------- pieces
  def check_inputs(self, x, name="x"):
    """Validates ``x`` (see :func:`check_image_tensor`); returns float32."""
    return check_image_tensor(x, self.image_shape, self.num_levels, name=name)

  def normalize(self, x):
    return self.likelihood.normalize(x)

  def encode(self, x_f):
    """q0(z|x): ``(mu, sigma, context)``; mu and sigma flat ``[B, D]``."""
    mu, sigma, context = (None if t is None else tf.cast(t, tf.float32)
                          for t in self.encoder(self.normalize(x_f)))
    b = tf.shape(mu)[0]
    return tf.reshape(mu, [b, self.latent_size]), tf.reshape(sigma, [b, self.latent_size]), context

  def posterior_from_noise(self, mu, sigma, context, eps):
    """z ~ q(z|x) from standard-normal ``eps``; returns ``(z_flat, log q per dim)``."""
    z0 = mu + sigma * eps
    log_q = std_normal_log_prob(eps) - tf.math.log(sigma)
    if self.posterior_flow is None:
      return z0, log_q
    z, ldj = self.posterior_flow.forward(z0, context)
    return z, log_q - ldj

  def conditioning_features(self, z_flat):
    z = tf.reshape(z_flat, (-1,) + self.latent_shape)
    return self.conditioning(z)

  def decoder_raw(self, x_f, z_flat=None, cond=None):
    """Raw likelihood parameters ``[B, H, W, P]`` of p(x|z) at every pixel."""
    if cond is None:
      cond = self.conditioning_features(z_flat)
    return tf.cast(self.decoder(self.normalize(x_f), cond), tf.float32)

  def log_px_given_z(self, x_f, z_flat):
    return self.likelihood.log_prob(self.decoder_raw(x_f, z_flat), x_f)

  # ---------------------------------------------------------------- ELBO
  def _terms(self, x_f, seed=None, eps=None):
    mu, sigma, context = self.encode(x_f)
    if eps is None:
      eps = _normal_sample(tf.shape(mu), seed)
    z, log_q = self.posterior_from_noise(mu, sigma, context, eps)
    distortion = -self.log_px_given_z(x_f, z)
    rate_per_dim = log_q - self.prior.log_prob_per_dim(z)
    return distortion, rate_per_dim, z

  def elbo_terms(self, x, seed=None):
    """Per-example one-sample ELBO terms in nats (and bits/dim).

    Returns a dict of ``[B]`` tensors: ``elbo``, ``rate``, ``distortion`` (nats)
    and ``bits_per_dim`` (of -elbo). ``seed``: optional ``[2]`` int stateless seed.
    """
    x_f = self.check_inputs(x)
    distortion, rate_per_dim, _ = self._terms(x_f, seed)
    rate = tf.reduce_sum(rate_per_dim, -1)
    elbo = -distortion - rate
    return {"elbo": elbo, "rate": rate, "distortion": distortion,
            "bits_per_dim": objective.nats_to_bits_per_dim(-elbo, self.num_dims)}

  def call(self, x, training=False):
    return self.elbo_terms(x)

  def training_loss(self, x, step=0, seed=None, eps=None):
    """The minibatch loss (mean over examples) with beta, warm-up and free bits.

    Returns ``(loss, metrics)`` where metrics holds per-example ``elbo``,
    ``rate``, ``distortion`` and the ``[B, D]`` ``rate_per_dim``. ``eps``:
    optional pre-drawn ``[B, D]`` standard-normal noise of z ~ q(z|x) (used
    instead of ``seed``; lets a distributed trainer give every example the
    same noise whatever the number of replicas).
    """
    x_f = self.check_inputs(x)
    distortion, rate_per_dim, _ = self._terms(x_f, seed, eps)
    beta_t = objective.kl_weight(step, self.beta, self.kl_warmup_steps)
    loss = objective.training_loss(distortion, rate_per_dim, beta_t, self.free_bits,
                                   self.free_bits_groups)
    rate = tf.reduce_sum(rate_per_dim, -1)
    return loss, {"elbo": -distortion - rate, "rate": rate, "distortion": distortion,
                  "rate_per_dim": rate_per_dim, "beta": beta_t}

  def log_weights(self, x_f, num_samples, seed=None):
    """``[S, B]`` importance log-weights ``log p(x, z_s) - log q(z_s | x)``."""
    mu, sigma, context = self.encode(x_f)
    b = tf.shape(mu)[0]
    eps = _normal_sample([num_samples, b, self.latent_size], seed)
    tile = lambda t: tf.reshape(tf.tile(t[None], [num_samples] + [1] * len(t.shape)),
                                tf.concat([[num_samples * b], tf.shape(t)[1:]], 0))
    ctx = tile(context) if context is not None else None
    z, log_q = self.posterior_from_noise(tile(mu), tile(sigma), ctx,
                                         tf.reshape(eps, [num_samples * b, self.latent_size]))
    log_px = self.log_px_given_z(tile(x_f), z)
    log_w = log_px + self.prior.log_prob(z) - tf.reduce_sum(log_q, -1)
    return tf.reshape(log_w, [num_samples, b])

  # ---------------------------------------------------------------- prior
  def sample_prior(self, num, seed=None, temperature=1.0):
    """``num`` latents from p(z), flat ``[num, D]`` (the AF prior: its exact incremental sampler)."""
    eps = _normal_sample([num, self.latent_size], seed) * temperature
    return self.prior.sample_from_noise(eps)


def _make_decoder(m, image_shape, num_params):
  """The decoder named by ``model.decoder_context`` (a model config section)."""
  check_choice("model.decoder_context", m["decoder_context"], DECODER_CONTEXTS)
  if m["decoder_context"] in GATED_DECODER_CONTEXTS:
    return GatedDecoder(m["decoder_context"], image_shape, num_params,
                        filters=m["decoder_filters"], num_layers=m["decoder_layers"],
                        num_blocks=m["decoder_blocks"], name="decoder")
  return LocalDecoder(m["decoder_context"], image_shape, num_params,
                      filters=m["decoder_filters"], num_layers=m["decoder_layers"],
                      kernel_size=m["decoder_kernel"], window=m["decoder_window"],
                      num_blocks=m["decoder_blocks"], name="decoder")


def build_model(config, precision="float32") -> VLAE:
  """Builds (creates all weights of) the VLAE described by a zoo config.

  ``precision``: ``"float32"`` (evaluation, export, the codec: always) or
  ``"bfloat16"`` (mixed-precision training, see :class:`VLAE`).
  """
  model = VLAE(config, precision)
  model.build()
  return model

