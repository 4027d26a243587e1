"""VLAE on Omniglot 28x28 (paper Table 2: 89.83 nats).

Our split is Omniglot's original background (train) / evaluation (test) split,
dynamically binarized, not the 24,345 / 8,070 ``chardata.mat`` split of the
IWAE / VLAE tables: numbers are close to, not equal to, the paper's.
"""

from vlae_tf.zoo import mnist


def get_config():
  c = mnist.get_config()
  c.name = "omniglot"
  c.description = "VLAE, Omniglot 28x28 (background/evaluation split), local PixelCNN + AF prior"
  c.paper_nll = 89.83
  c.data.dataset = "omniglot"
  c.data.binarization = "dynamic"
  c.data.train_split = "background"
  c.data.valid_split = ""
  c.data.test_split = "evaluation"
  return c
