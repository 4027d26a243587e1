"""Baseline: a VAE with a factorized Bernoulli decoder on static MNIST.

Same encoder, conditioning network and AF prior as ``mnist``; the decoder sees
no pixels at all (p(x|z) = prod_ij Bernoulli(x_ij | z)).
"""

from vlae_tf.zoo import mnist


def get_config():
  c = mnist.get_config()
  c.name = "mnist_vae_factorized"
  c.description = "Baseline VAE, factorized decoder, static MNIST"
  c.paper_nll = None
  c.model.decoder_context = "none"
  c.model.decoder_blocks = 4
  return c
