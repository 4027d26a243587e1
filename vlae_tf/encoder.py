"""The encoder q(z|x): a ResNet to a diagonal Gaussian, and the z-conditioning network.

Encoder
  ``x -> conv -> [ResBlock, downsample by 2] x num_downsamples -> (mu, sigma)``.
  A *vector* latent (MNIST, Omniglot) flattens the last feature map into a
  dense layer; a *spatial* latent (CIFAR-10) is a ``(H/2^n, W/2^n, C_z)`` map.
  ``sigma = softplus(.) + 1e-4``. With an IAF posterior the encoder also
  returns a context vector ``h`` for the flow.

Conditioning network
  ``z -> feature map of shape (H, W, F)`` that enters every decoder layer. A
  vector ``z`` goes through a dense layer to ``(H/2^n, W/2^n, F)``; a spatial
  ``z`` through a 3x3 conv; then ``n`` times (upsample x2, ResBlock).

All activations are ELU: their derivative never vanishes, so receptive fields
measured by autodiff are never under-counted by a dead unit.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from vlae_tf.config import LATENT_KINDS, check_choice


@keras.saving.register_keras_serializable(package="vlae_tf")
class ResBlock(keras.layers.Layer):
  """``x + conv3x3(elu(conv3x3(elu(x))))``, unmasked (for x -> z and z -> features)."""

  def __init__(self, filters, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.c1 = keras.layers.Conv2D(filters, 3, padding="same")
    self.c2 = keras.layers.Conv2D(filters, 3, padding="same",
                                  kernel_initializer=keras.initializers.VarianceScaling(0.1))

  def call(self, x):
    return x + self.c2(tf.nn.elu(self.c1(tf.nn.elu(x))))

  def get_config(self):
    return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="vlae_tf")
class Encoder(keras.layers.Layer):
  """q(z|x) = N(mu(x), diag sigma(x)^2)."""

  def __init__(self, latent_kind, latent_dim, latent_channels, filters=64, num_blocks=1,
               num_downsamples=2, context_size=0, **kwargs):
    super().__init__(**kwargs)
    check_choice("model.latent_kind", latent_kind, LATENT_KINDS)
    self.latent_kind = latent_kind
    self.latent_dim = int(latent_dim)
    self.latent_channels = int(latent_channels)
    self.filters = int(filters)
    self.num_blocks = int(num_blocks)
    self.num_downsamples = int(num_downsamples)
    self.context_size = int(context_size)
    self.stem = keras.layers.Conv2D(filters, 3, padding="same")
    self.stages = []
    for s in range(self.num_downsamples + 1):
      blocks = [ResBlock(filters, name=f"res_{s}_{b}") for b in range(self.num_blocks)]
      down = (keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"down_{s}")
              if s < self.num_downsamples else None)
      self.stages.append((blocks, down))
    if latent_kind == "vector":
      self.flatten = keras.layers.Flatten()
      # The heads compute in float32 whatever the policy: mu, sigma and the IAF context feed
      # the KL, which stays float32 under bfloat16 training (vlae_tf.model.VLAE).
      self.head = keras.layers.Dense(2 * self.latent_dim, dtype="float32")
      self.context_head = (keras.layers.Dense(self.context_size, dtype="float32")
                           if self.context_size else None)
    else:                                                          # "spatial"
      self.head = keras.layers.Conv2D(2 * self.latent_channels, 3, padding="same",
                                      dtype="float32")
      self.context_head = None
      if self.context_size:
        raise ValueError("an IAF posterior needs a vector latent")

  def call(self, x_normalized):
    h = self.stem(x_normalized)
    for blocks, down in self.stages:
      for b in blocks:
        h = b(h)
      if down is not None:
        h = down(tf.nn.elu(h))
    h = tf.nn.elu(h)
    if self.latent_kind == "vector":
      h = self.flatten(h)
    out = self.head(h)
    mu, raw = tf.split(out, 2, axis=-1)
    sigma = tf.nn.softplus(raw) + 1e-4
    context = tf.nn.elu(self.context_head(h)) if self.context_head is not None else None
    return mu, sigma, context


@keras.saving.register_keras_serializable(package="vlae_tf")
class Conditioning(keras.layers.Layer):
  """z -> an (H, W, F) feature map at the image's resolution."""

  def __init__(self, latent_kind, image_hw, filters=64, num_blocks=1, num_upsamples=2, **kwargs):
    super().__init__(**kwargs)
    check_choice("model.latent_kind", latent_kind, LATENT_KINDS)
    self.latent_kind = latent_kind
    self.image_hw = tuple(int(v) for v in image_hw)
    self.filters = int(filters)
    self.num_blocks = int(num_blocks)
    self.num_upsamples = int(num_upsamples)
    f = 2 ** self.num_upsamples
    h, w = self.image_hw
    if h % f or w % f:
      raise ValueError(f"image size {h}x{w} is not divisible by 2**num_upsamples = {f}")
    self.base_hw = (h // f, w // f)
    if latent_kind == "vector":
      self.stem = keras.layers.Dense(self.base_hw[0] * self.base_hw[1] * filters)
    else:
      self.stem = keras.layers.Conv2D(filters, 3, padding="same")
    self.stages = []
    for s in range(self.num_upsamples + 1):
      blocks = [ResBlock(filters, name=f"res_{s}_{b}") for b in range(self.num_blocks)]
      up = (keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"up_{s}")
            if s < self.num_upsamples else None)
      self.stages.append((blocks, up))

  def call(self, z):
    h = self.stem(z)
    if self.latent_kind == "vector":
      h = tf.reshape(h, [-1, self.base_hw[0], self.base_hw[1], self.filters])
    for blocks, up in self.stages:
      for b in blocks:
        h = b(h)
      if up is not None:
        h = up(tf.nn.elu(h))
    return tf.nn.elu(h)
