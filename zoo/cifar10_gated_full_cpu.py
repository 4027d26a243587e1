"""Baseline: ``cifar10_gated_cpu`` with a decoder that sees every earlier pixel, no free bits.

The strong full-context VAE of the gated decoder family on CIFAR-10
(:mod:`vlae_tf.gated_decoder`, context ``gated_full``): the first layer's
kernels cover every row above and the whole row to the left; the rest of the
network, the latent, the prior and the recipe are ``cifar10_gated_cpu``'s.
Free bits are off, since they would hide a posterior collapse.
"""

from vlae_tf.zoo import cifar10_gated_cpu


def get_config():
  c = cifar10_gated_cpu.get_config()
  c.name = "cifar10_gated_full_cpu"
  c.description = ("Baseline VAE, full-context gated decoder, no free bits, CIFAR-10 "
                   "(CPU-sized)")
  c.paper_bits_per_dim = None
  c.model.decoder_context = "gated_full"
  c.objective.free_bits = 0.0
  return c
