"""What the receiver of a lossy (z-only) ``.vlae`` file makes of the latent: ``lossy_decode``.

A lossy file holds ``k``, the posterior mean's latent rounded to bins
(:mod:`vlae_tf.codec.chain`), and maybe side information the encoder chose
(below, :mod:`vlae_tf.codec.side_info`), so the receiver knows ``z(k)`` and must
choose pixels. For squared error the best choice given z is the conditional mean
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
  ``p(x | z)`` means; the average never feeds a guess back. The uniforms
  are NumPy's (the same everywhere) and the draws run in the numeric mode
  the file records (:mod:`vlae_tf.codec.numeric_mode`), like every other computation
  of a decode; where the float results of the sampler differed, a draw
  would flip only where a uniform lands within rounding of a bin edge (the
  latents themselves decode exactly or fail loudly).
``"mode"`` / ``"mean"`` / ``"sample"`` (files written before; still decoded as then)
  Greedy: each sub-pixel is set to its distribution's mode / rounded mean /
  a seeded draw *given the pixels chosen before it*, by the step-by-step
  walker of :mod:`vlae_tf.codec.pixels`.

Why the greedy rules fail on CIFAR-10, and why no rule alone reaches the mean
colour (shipped ``cifar10`` v4 weights, 100 evenly spaced test images, default
bins; ``python -m experiments.lossy_cifar10``, table in ``bench/README.md``
section 12):

* ``mode`` (6.0 dB PSNR): a logistic broad enough to leave doubt puts its
  whole tail below 0 (above 255) into the edge bin 0 (255), which then
  outweighs every inner bin; once a pixel is 0 the next one, predicted
  mostly from its neighbours, is too: 31% of sub-pixels end at 0, 22% at 255.
* ``mean`` (13.6 dB) and single draws (``sample``, 10.1 dB) follow one path
  whose colour drifts: the decoder predicts a pixel mainly from its
  neighbours. With the *true* neighbours (and z = the posterior mean) its
  per-sub-pixel mean is at 31.8 dB.
* z holds little that the decoder can use *without* the true neighbours:
  the 16 draws of one z have mean colours 86 levels apart on average (up to
  168), and ``log p(x | z)`` is higher for a flat grey image (2.62
  bits/dim) than for the image itself (3.17). z's ~400 nats (the card's
  rate) describe texture *relative to* the neighbours (under another
  image's z an image costs 7,400 bits more), not where which colour is.
  So ``E[x | z]`` itself is no better than a grey picture: ``expectation``
  alone gets 13.4 dB (the 16-draw average adds ``Var[x | z] / 16`` to the
  squared error; the greedy ``mean`` happens to be 0.2 dB higher), mid-grey
  13.1 dB, each image's own mean colour (24 bits) 14.8 dB, WebP's smallest
  file (736 bits) 22.1 dB.

What does beat the mean colour is side information the encoder chooses
knowing the image (:mod:`vlae_tf.codec.side_info`; new ``expectation`` files of
models with more than 2 levels carry it by default): the image's mean colour
and a 3x3 gain that maps the expectation's detail (its wrong colours, its
useful layout) onto the image's channels, picked to minimise the squared
error of the decode, never worse than the mean colour alone. The numbers, and
how much of the gain is this image's z rather than any image's, are in
``bench/README.md`` section 12.

``expectation`` is still the default: it is the least-squares reconstruction
the model defines, it never collapses to 0 / 255, and on binary MNIST (100
test digits, default bins) 5.1% of its pixels differ against 6.5% for the
greedy mode (binary files carry no side information).
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

  def mean(self, z, seed, group):
    """The mean of the ``S`` draws, float64 ``[B, H, W, C]``: the estimate of ``E[x | z]`` that
    :meth:`expectation` rounds and :mod:`vlae_tf.codec.side_info` corrects."""
    return self.draws(z, seed, group).astype(np.float64).mean(0)

  def expectation(self, z, seed, group):
    """``round(mean of S draws from p(x | z))``: uint8 ``[B, H, W, C]`` for latents ``[B, D]``."""
    mean = self.mean(z, seed, group)
    return np.clip(np.rint(mean), 0, self.model.num_levels - 1).astype(np.uint8)

  def reconstruct(self, rule, z, seed, group):
    if rule != EXPECTATION:
      raise ValueError(f"no batch rule {rule!r}; expected one of {BATCH_RULES}")
    return self.expectation(z, seed, group)
