"""VLAE on CIFAR-10 whose decoder sees only the grayscale of earlier pixels.

The paper's "grayscale PixelCNN" decoder: colour can only come through z, so
decodes of the same z share colours while local detail varies.
"""

from vlae_tf.zoo import cifar10


def get_config():
  c = cifar10.get_config()
  c.name = "cifar10_grayscale"
  c.description = "VLAE, CIFAR-10, decoder context = grayscale of a 7x4 window"
  c.paper_bits_per_dim = None
  c.model.decoder_context = "grayscale"
  return c
