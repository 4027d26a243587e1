"""The shipped ``cifar10`` zoo weights: ``cifar10`` scaled down to train on 2 CPU cores.

Same kind of model as the paper's CIFAR-10 VLAE (spatial latent, AF prior, an
exact local window, discretized logistic mixture), much smaller: a 4x2 window,
32 filters, an 8x8x8 latent and 5 mixture components.
"""

from vlae_tf.zoo import cifar10


def get_config():
  c = cifar10.get_config()
  c.name = "cifar10_cpu"
  c.description = "VLAE, CIFAR-10, 4x2-window local PixelCNN + logistic mixture + AF prior (CPU-sized)"
  c.model.num_mixtures = 5
  c.model.latent_channels = 8
  c.model.encoder_filters = 32
  c.model.encoder_blocks = 1
  c.model.cond_filters = 32
  c.model.decoder_window = (4, 2)
  c.model.decoder_filters = 32
  c.model.decoder_blocks = 2
  c.model.prior_hidden = (512,)
  c.objective.free_bits_groups = 8 * 8 * 8
  c.train.optimizer = "adam"
  c.train.learning_rate = 1e-3
  c.train.warmup_steps = 200
  c.train.steps = 20_000
  c.train.checkpoint_every = 500
  c.train.log_every = 50
  c.train.eval_every = 2_000
  return c
