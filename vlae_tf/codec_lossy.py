"""What the receiver of a lossy (z-only) ``.vlae`` file makes of the latent: ``lossy_decode``.

A lossy file holds only ``k``, the posterior mean's latent rounded to bins
(:mod:`vlae_tf.codec_chain`), so the receiver knows ``z(k)`` and must choose
pixels. For squared error the best choice given z is the conditional mean
``E[x | z]``; for the fraction of wrong binary pixels, each pixel's marginal
majority ``round(E[x_p | z])``. Neither has a closed form for an
autoregressive ``p(x | z)``: ``E[x_p | z]`` sums over every context the pixels
before p can take. The rules (the header's ``lossy_decode``):

``"expectation"`` (the default of new files)
  ``round(mean_s x^(s))`` over ``S = EXPECTATION_SAMPLES`` (16) draws
  ``x^(s) ~ p(x | z)`` of the cached sampler (:mod:`vlae_tf.sampling`), each
  draw with its own pseudo-random uniforms from a PCG64 seeded by the file's
  ``lossy_seed``, the group and s (:func:`draw_uniforms`): a Monte Carlo
  estimate of ``E[x | z]`` (its error adds about ``Var[x | z] / S`` to the
  squared error of the exact mean), rounded half to even, per sub-pixel. For
  binary images that is the majority of the 16 draws (8 of 16 gives 0). Each
  draw conditions on its *own* earlier pixels, which is what the model's
  ``p(x | z)`` means; the average never feeds a guess back. The same file
  decodes to the same images on the same machine and TensorFlow build; on
  another CPU a draw may flip where a uniform lands within float rounding of
  a bin edge (the latents themselves always decode exactly).
``"mode"`` / ``"mean"`` / ``"sample"`` (files written before; still decoded as then)
  Greedy: each sub-pixel is set to its distribution's mode / rounded mean /
  a seeded draw *given the pixels chosen before it*, by the step-by-step
  walker of :mod:`vlae_tf.codec_pixels`.

Why the greedy rules fail on CIFAR-10 (shipped ``cifar10`` v4 weights, 16
evenly spaced test images, z = the posterior mean; ``bench/README.md`` §12
has the command and the table on 100 images):

* ``mode``: a logistic broad enough to leave doubt puts its whole tail below
  0 (above 255) into the edge bin 0 (255), which then outweighs every inner
  bin; once a pixel is 0 the next one, predicted mostly from its neighbours,
  is too: 46% of sub-pixels end at 0 and 13% at 255 (6.3 dB PSNR).
* ``mean`` (13.4 dB) and single draws (~11 dB) drift: the decoder
  predicts a pixel mainly from its neighbours, so whatever colour the first
  pixels take spreads. With the *true* neighbours the model's per-pixel mean
  is at 30.9 dB; fed a flat grey context it gives 13.7 dB, the same as a flat
  grey image (13.7 dB), whatever z is.
* z holds little that the decoder can use *without* the true context: the
  16 draws of one z have mean colours up to 130 levels apart, and
  ``log p(x | z)`` is higher for a flat grey image (2.72 bits/dim) than for
  the image itself (3.36): z's ~400 nats (the card's rate) go to texture
  *relative to* the neighbours (with another image's z, the true image costs
  7,800 bits more), not to where a colour is. So ``E[x | z]`` itself is only
  ~14.5 dB, below filling each image with its own mean colour (15.8 dB on
  those 16 images): no decode of this model's z alone reaches that. The
  expectation rule is the MSE-optimal reconstruction the model defines; it
  removes the collapse to 0 / 255 and the drift of any single path.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlae_tf import sampling

EXPECTATION = "expectation"
EXPECTATION_SAMPLES = 16
BATCH_RULES = (EXPECTATION,)      # rules that run here, not on the step-by-step walker
_UNIFORM_EPS = 1e-6               # as vlae_tf.likelihoods.uniform_noise: uniforms in (eps, 1 - eps)


def draw_uniforms(model, batch, seed, group, draw):
  """The uniforms of draw ``draw`` of group ``group``: float32 ``[batch, H, W, noise channels]``
  from a PCG64 seeded by ``(seed, group, draw)`` (NumPy, so the same on every machine)."""
  h, w, _ = model.image_shape
  rng = np.random.Generator(np.random.PCG64([int(seed), int(group), int(draw)]))
  u = rng.random((batch, h, w, model.likelihood.noise_channels()))
  return (_UNIFORM_EPS + (1.0 - 2.0 * _UNIFORM_EPS) * u).astype(np.float32)


class Reconstructor:
  """The batch rules for one model: ``reconstruct(rule, z, seed, group)`` -> uint8 images."""

  def __init__(self, model, samples=EXPECTATION_SAMPLES):
    self.model = model
    self.samples = int(samples)
    h, w, _ = model.image_shape
    k = model.likelihood.noise_channels()
    self._draw = tf.function(
        lambda z, u: sampling.sample_x_given_z(model, z, noise=u), autograph=False,
        input_signature=[tf.TensorSpec([None, model.latent_size], tf.float32),
                         tf.TensorSpec([None, h, w, k], tf.float32)])

  def draws(self, z, seed, group):
    """The ``S`` draws ``x^(s) ~ p(x | z)``: float ``[S, B, H, W, C]`` for latents ``[B, D]``."""
    z = tf.constant(np.asarray(z, np.float32))
    return np.stack([self._draw(z, tf.constant(draw_uniforms(self.model, z.shape[0], seed, group,
                                                             s))).numpy()
                     for s in range(self.samples)])

  def expectation(self, z, seed, group):
    """``round(mean of S draws from p(x | z))``: uint8 ``[B, H, W, C]`` for latents ``[B, D]``."""
    mean = self.draws(z, seed, group).astype(np.float64).mean(0)
    return np.clip(np.rint(mean), 0, self.model.num_levels - 1).astype(np.uint8)

  def reconstruct(self, rule, z, seed, group):
    if rule != EXPECTATION:
      raise ValueError(f"no batch rule {rule!r}; expected one of {BATCH_RULES}")
    return self.expectation(z, seed, group)
