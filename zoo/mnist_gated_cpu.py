"""VLAE on static binarized MNIST with the gated two-stream local decoder, CPU-sized.

``mnist_cpu`` with its decoder swapped for :mod:`vlae_tf.gated_decoder`
(PixelCNN++ parts: vertical 2x3 and horizontal 2x2 gated stacks, z in every
block, no blind spot). ``decoder_layers = n`` bounds the receptive field to
the window of width 2n + 1 and height n (here 6: rows i-6 .. i-1, columns
j-6 .. j+6, and the 6 pixels to the left), about the reach of the paper's 6
masked 3x3 layers without their blind spot.
"""

from vlae_tf.zoo import mnist_cpu


def get_config():
  c = mnist_cpu.get_config()
  c.name = "mnist_gated_cpu"
  c.description = ("VLAE, static binarized MNIST, gated 2-stream local decoder (13x6 window) "
                   "+ AF prior (CPU-sized)")
  c.model.decoder_context = "gated"
  c.model.decoder_layers = 6
  c.model.decoder_blocks = 1
  return c
