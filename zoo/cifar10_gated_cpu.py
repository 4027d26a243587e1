"""VLAE on CIFAR-10 with the gated two-stream local decoder, CPU-sized.

``cifar10_cpu`` with its 7x4-window decoder swapped for
:mod:`vlae_tf.gated_decoder` (PixelCNN++ parts: vertical 2x3 and horizontal
2x2 gated stacks, z in every block, no blind spot). ``decoder_layers = 4``
bounds the receptive field to rows i-4 .. i-1, columns j-4 .. j+4 and the 4
pixels to the left: a 9x4 window, the smallest gated window that holds the
paper's 7x4 one. The rest (encoder, 8x8x8 latent, AF prior, 5-component
logistic mixture, recipe) is ``cifar10_cpu``'s.
"""

from vlae_tf.zoo import cifar10_cpu


def get_config():
  c = cifar10_cpu.get_config()
  c.name = "cifar10_gated_cpu"
  c.description = ("VLAE, CIFAR-10, gated 2-stream local decoder (9x4 window) + logistic "
                   "mixture + AF prior (CPU-sized)")
  c.model.decoder_context = "gated"
  c.model.decoder_layers = 4
  c.model.decoder_blocks = 1
  return c
