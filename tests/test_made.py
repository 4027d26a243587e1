"""MADESteps: a MADE evaluated one output at a time (the codec's latent walks) gives the MADE's
outputs, for one or several hidden layers and for a one-dimensional MADE."""

import numpy as np
import pytest
import tensorflow as tf

from vlae_tf.made import MADE, MADESteps


@pytest.mark.parametrize("d,hidden", [(6, (16,)), (7, (10, 9)), (5, (8, 8, 6)), (1, (4,))])
def test_step_by_step_outputs_are_the_mades(d, hidden):
  made = MADE(d, hidden, params=2, output_scale=1.0)
  x = np.random.default_rng(0).normal(size=(3, d)).astype(np.float32)
  made(tf.constant(x))
  for w in made.biases:
    w.assign(np.random.default_rng(1).normal(size=w.shape).astype(np.float32))
  want = made(tf.constant(x)).numpy()                                     # [3, D, 2]
  steps = MADESteps(made)
  state = steps.initial(3)
  for i in range(d):
    np.testing.assert_allclose(steps.output(state, i).numpy(), want[:, i], rtol=1e-5, atol=1e-5)
    state = steps.update(state, i, tf.constant(x[:, i]))
