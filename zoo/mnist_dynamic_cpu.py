"""``mnist_dynamic`` at the CPU size of ``mnist_cpu`` (the shipped ``mnist_dynamic`` weights).

The same network as ``mnist_cpu`` (6 masked 3x3 layers with 32 filters, 32-d
latent, AF prior with 2 MADE steps of (256, 256)), so its run started from the
static-MNIST mnist v3 weights (``--init_from=zoo:mnist`` with the zoo of before
mnist v4; today's ``zoo:mnist`` is ``mnist_gated_cpu``'s: start from it with
``mnist_dynamic_gated_cpu``); trained on
MNIST re-binarized every epoch and evaluated on one fixed binarization of the
test set (``data.binarization_seed``).
"""

from vlae_tf.zoo import mnist_cpu, mnist_dynamic


def get_config():
  c = mnist_cpu.get_config()
  d = mnist_dynamic.get_config()
  c.name = "mnist_dynamic_cpu"
  c.description = "VLAE, dynamically binarized MNIST, 6-layer 3x3 local PixelCNN + AF prior (CPU-sized)"
  c.paper_nll = d.paper_nll
  c.data = d.data
  return c
