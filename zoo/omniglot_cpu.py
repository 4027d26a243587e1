"""The shipped ``omniglot`` zoo weights: ``omniglot`` scaled down like ``mnist_cpu``.

Our split is Omniglot's original background (train) / evaluation (test) split,
not the IWAE ``chardata.mat`` split of the paper's table.
"""

from vlae_tf.zoo import mnist_cpu, omniglot


def get_config():
  c = omniglot.get_config()
  small = mnist_cpu.get_config()
  c.model = small.model
  c.train = small.train
  c.name = "omniglot_cpu"
  c.description = ("VLAE, Omniglot 28x28 (background/evaluation split), 6-layer 3x3 local "
                   "PixelCNN + AF prior (CPU-sized)")
  return c
