"""Baseline: a VAE whose decoder is a PixelCNN seeing every earlier pixel.

The posterior-collapse baseline: the decoder can model p(x) on its own, so the
optimum of the ELBO ignores z and the KL goes to 0. No free bits here, since
free bits would hide the collapse.
"""

from vlae_tf.zoo import mnist


def get_config():
  c = mnist.get_config()
  c.name = "mnist_vae_pixelcnn_full"
  c.description = "Baseline VAE, full-context PixelCNN decoder (collapses), static MNIST"
  c.paper_nll = None
  c.model.decoder_context = "full"
  c.model.decoder_blocks = 4
  c.objective.free_bits = 0.0
  return c
