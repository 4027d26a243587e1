"""The shipped ``cifar10`` zoo weights: ``cifar10`` scaled down to train on 2 CPU cores.

Same kind of model as the paper's CIFAR-10 VLAE (spatial latent, AF prior, the
paper's exact 7x4 local window, discretized logistic mixture), much smaller:
64 filters, one ResNet block per scale, an 8x8x8 latent, 5 mixture components
and a batch of 16. The recipe won a side-by-side study at equal CPU time
(bench/README.md, "Recipe study"): 64 filters with batch 16 matched 32 filters
with batch 32 after a third of the examples, so it learns more per example.

Like ``cifar10`` it trains on 45,000 images and measures its held-out curve on
the 5,000 carved out of the training split (``data.valid_split = "valid"``).
The shipped v4 weights predate that: they were trained with
``data.valid_split = ""`` (all 50,000; the curve on test images), which their
card keeps and which resumes their run.
"""

from vlae_tf import config
from vlae_tf.zoo import cifar10


def get_config():
  c = cifar10.get_config()
  config.shrink(c, config.CPU_SIZES)
  c.name = "cifar10_cpu"
  c.description = "VLAE, CIFAR-10, 7x4-window local PixelCNN + logistic mixture + AF prior (CPU-sized)"
  c.model.num_mixtures = 5
  c.model.latent_channels = 8
  c.model.encoder_filters = 64
  c.model.cond_filters = 64
  c.model.decoder_filters = 64
  c.model.decoder_window = (7, 4)
  c.model.decoder_blocks = 2
  c.model.prior_hidden = (512,)
  c.objective.free_bits_groups = 8 * 8 * 8
  c.train.optimizer = "adam"     # cifar10's learning rate, 1e-3
  c.train.batch_size = 16
  return c
