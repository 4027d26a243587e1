"""VLAE on statically binarized MNIST (paper Table 1: 79.03 nats test NLL).

Decoder context: the paper's stack of 6 masked 3x3 convolutions (mask A then
5 x mask B), conditioned on a 32-d vector latent; AF prior; free bits.
"""

from vlae_tf import config


def get_config():
  c = config.default_config()   # the schema: every key, its default and its meaning
  c.name = "mnist"
  c.description = "VLAE, static binarized MNIST, 6-layer 3x3 local PixelCNN + AF prior"
  c.paper_nll = 79.03   # nats, VLAE paper Table 1 (static MNIST)
  c.model.latent_dim = 32
  c.model.posterior_context = 64
  c.objective.free_bits = 0.03         # nats per group (openai/iaf kl_min)
  c.objective.free_bits_groups = 32    # one group per latent dimension
  return c
