"""VLAE on dynamically binarized MNIST (paper Table 1: 78.53 nats).

Training images are re-binarized with a fresh Bernoulli(x / 255) draw every
epoch; the test set uses one fixed binarization (``data.binarization_seed``).
"""

from vlae_tf.zoo import mnist


def get_config():
  c = mnist.get_config()
  c.name = "mnist_dynamic"
  c.description = "VLAE, dynamically binarized MNIST, 6-layer 3x3 local PixelCNN + AF prior"
  c.paper_nll = 78.53
  c.data.dataset = "mnist"
  c.data.binarization = "dynamic"
  c.data.valid_split = ""
  return c
