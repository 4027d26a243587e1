"""The shipped ``mnist`` zoo weights: ``mnist`` scaled down to train on 2 CPU cores.

Same decoder geometry as the paper's (6 masked 3x3 layers: mask A, then 5 x
mask B) and the same AF prior / free bits; 32 filters instead of 64 and one
ResNet block per scale, so one Adam step on a batch of 64 takes about 0.4 s
on 2 CPU cores instead of about 3 s. Trained with Adamax (the paper's
optimizer) at 2e-3 on batches of 32: the best of three recipes at equal CPU
time (bench/README.md, "Recipe study").
"""

from vlae_tf import config
from vlae_tf.zoo import mnist


def get_config():
  c = mnist.get_config()
  config.shrink(c, config.CPU_SIZES)
  c.name = "mnist_cpu"
  c.description = "VLAE, static binarized MNIST, 6-layer 3x3 local PixelCNN + AF prior (CPU-sized)"
  c.model.encoder_filters = 32
  c.model.cond_filters = 32
  c.model.decoder_filters = 32
  c.model.decoder_blocks = 1
  c.model.prior_hidden = (256, 256)
  c.train.batch_size = 32        # mnist's Adamax at 2e-3
  return c
