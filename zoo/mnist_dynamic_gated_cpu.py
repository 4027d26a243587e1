"""``mnist_dynamic`` with the gated local decoder of ``mnist_gated_cpu`` (the shipped ``mnist_dynamic`` v2).

The network of ``mnist_gated_cpu`` (gated two-stream local decoder with the
13x6 window, 32-d latent, AF prior with 2 MADE steps of (256, 256)), so a run
can start from every weight of the shipped static-MNIST model
(``train.py --init_from=zoo:mnist``, mnist v4); trained on MNIST re-binarized
every epoch and evaluated on one fixed binarization of the test set
(``data.binarization_seed``), as ``mnist_dynamic_cpu``.
"""

from vlae_tf.zoo import mnist_dynamic, mnist_gated_cpu


def get_config():
  c = mnist_gated_cpu.get_config()
  d = mnist_dynamic.get_config()
  c.name = "mnist_dynamic_gated_cpu"
  c.description = ("VLAE, dynamically binarized MNIST, gated 2-stream local decoder (13x6 window) "
                   "+ AF prior (CPU-sized)")
  c.paper_nll = d.paper_nll
  c.data = d.data
  return c
