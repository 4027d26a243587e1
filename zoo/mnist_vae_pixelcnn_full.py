"""Baseline: a VAE whose decoder is a PixelCNN seeing every earlier pixel.

The posterior-collapse baseline: the paper argues that a decoder able to model
p(x) on its own makes the ELBO's optimum ignore z (KL -> 0). No free bits here,
since free bits would hide a collapse. Measured at CPU size (docs/RESULTS.md,
posterior collapse): this model did NOT collapse (KL about 4 nats, flat over
training); z still bought its smaller decoder more than the KL cost.

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
