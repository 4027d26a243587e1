"""Baseline: ``mnist_gated_cpu`` with a decoder that sees every earlier pixel, no free bits.

The strong full-context VAE of the gated decoder family
(:mod:`vlae_tf.gated_decoder`, context ``gated_full``): the first layer's
kernels cover every row above and the whole row to the left; the rest of the
network, the latent, the prior and the recipe are ``mnist_gated_cpu``'s. Free
bits are off, since they would hide a posterior collapse.
"""

from vlae_tf.zoo import mnist_gated_cpu


def get_config():
  c = mnist_gated_cpu.get_config()
  c.name = "mnist_gated_full_cpu"
  c.description = "Baseline VAE, full-context gated decoder, no free bits, static MNIST (CPU-sized)"
  c.paper_nll = None
  c.model.decoder_context = "gated_full"
  c.objective.free_bits = 0.0
  return c
