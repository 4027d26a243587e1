"""Baseline: a VAE with a factorized decoder on CIFAR-10, CPU-sized.

``cifar10_cpu``'s encoder, conditioning network, 8x8x8 latent, AF prior,
5-component logistic mixture and recipe; the decoder sees no pixels at all
(p(x|z) = prod_ij p(x_ij | z), the three channels of a pixel still dependent
through the mixture's linear R -> G -> B terms), with ``mnist_vae_factorized``'s
4 extra blocks in place of the context layers.
"""

from vlae_tf.zoo import cifar10_cpu


def get_config():
  c = cifar10_cpu.get_config()
  c.name = "cifar10_vae_factorized_cpu"
  c.description = "Baseline VAE, factorized decoder, CIFAR-10 (CPU-sized)"
  c.paper_bits_per_dim = None
  c.model.decoder_context = "none"
  c.model.decoder_blocks = 4
  return c
