"""The shipped ``cifar10`` zoo weights: ``cifar10`` scaled down to train on 2 CPU cores.

Same kind of model as the paper's CIFAR-10 VLAE (spatial latent, AF prior, an
exact local window, discretized logistic mixture), much smaller: a 4x2 window,
32 filters, an 8x8x8 latent and 5 mixture components.
"""

from vlae_tf.zoo import cifar10, mnist_cpu


def get_config():
  c = mnist_cpu.shrink_for_cpu(cifar10.get_config())
  c.name = "cifar10_cpu"
  c.description = "VLAE, CIFAR-10, 4x2-window local PixelCNN + logistic mixture + AF prior (CPU-sized)"
  c.model.num_mixtures = 5
  c.model.latent_channels = 8
  c.model.decoder_window = (4, 2)
  c.model.decoder_blocks = 2
  c.model.prior_hidden = (512,)
  c.objective.free_bits_groups = 8 * 8 * 8
  return c
