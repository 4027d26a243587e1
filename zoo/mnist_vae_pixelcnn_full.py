"""Baseline: a VAE whose decoder is a PixelCNN seeing every earlier pixel.

The posterior-collapse baseline: the decoder can model p(x) on its own, so the
optimum of the ELBO ignores z and the KL goes to 0. No free bits here, since
free bits would hide the collapse.

The decoder has VLAE's depth (``mnist``: 6 x-reading layers, the same gated
blocks and filters); only its first layer differs: a window over the whole
image instead of a 3x3 mask-A kernel. So the two models differ in the
decoder's receptive field and nothing else.
"""

from vlae_tf.zoo import mnist


def get_config():
  c = mnist.get_config()
  c.name = "mnist_vae_pixelcnn_full"
  c.description = "Baseline VAE, full-context PixelCNN decoder, no free bits, static MNIST"
  c.paper_nll = None
  c.model.decoder_context = "full"
  c.objective.free_bits = 0.0
  return c
