"""MADE: a masked autoencoder that is autoregressive in its input (Germain et al. 2015).

A Keras 3 layer (``tfb.AutoregressiveNetwork`` is a Keras-2 object and is not
tracked by Keras 3 models). Inputs ``x`` of shape ``[..., D]``; outputs of shape
``[..., D, P]`` such that output ``d`` depends only on inputs ``x_1 .. x_{d-1}``
(in the natural order; reverse the input to get the other order). So the
Jacobian ``d out_d / d x_e`` is zero for ``e >= d``: strictly lower triangular.

Degrees: input ``d`` has degree ``d`` (1-based); hidden unit ``k`` gets degree
``m_k in {1, .., D-1}`` (cyclically); a hidden unit sees inputs of degree
``<= m_k``; output ``d`` sees hidden units of degree ``< d``. With ``D = 1``
every hidden unit has degree 0, sees no input, and the output is a learned
constant (a one-dimensional flow step is then an affine map).

An optional ``context`` (e.g. the encoder's features for an IAF posterior)
enters every hidden unit unmasked; it does not break autoregressiveness in x.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def made_degrees(event_size: int, hidden_units: tuple[int, ...]):
  """The degrees ``[m_0 = 1..D, m_1, ..., m_n]`` of the inputs and of each hidden layer.

  Hidden unit k of a layer may depend on inputs ``1 .. m(k)``; output d on
  inputs ``1 .. d - 1``.
  """
  d = event_size
  degrees = [np.arange(1, d + 1, dtype=np.int32)]
  for h in hidden_units:
    if d > 1:
      degrees.append((np.arange(h) % (d - 1) + 1).astype(np.int32))
    else:
      degrees.append(np.zeros(h, np.int32))
  return degrees


def masks_from_degrees(degrees, xp=np):
  """Binary masks ``[D, H1], ..., [Hn, D]``: ``m_next >= m_prev`` between layers,
  ``d > m_n`` into output d. ``xp`` is numpy, or ``tf`` to build them in a graph."""
  def cmp(ok):
    return ok.astype(np.float32) if xp is np else tf.cast(ok, tf.float32)
  masks = [cmp(nxt[None, :] >= prev[:, None]) for prev, nxt in zip(degrees[:-1], degrees[1:])]
  masks.append(cmp(degrees[0][None, :] > degrees[-1][:, None]))
  return masks


@keras.saving.register_keras_serializable(package="vlae_tf")
class MADE(keras.layers.Layer):
  """Masked autoregressive dense network with ``params`` outputs per dimension."""

  def __init__(self, event_size, hidden_units=(256,), params=2, context_size=0,
               output_scale=0.01, **kwargs):
    super().__init__(**kwargs)
    self.event_size = int(event_size)
    self.hidden_units = tuple(int(h) for h in hidden_units)
    self.params = int(params)
    self.context_size = int(context_size)
    self.output_scale = float(output_scale)
    self._degrees = made_degrees(self.event_size, self.hidden_units)
    self._masks = masks_from_degrees(self._degrees)   # numpy (the attribute name is kept:
    # it is part of the layer's tracked state in existing checkpoints)

  def build(self, input_shape):
    sizes = (self.event_size,) + self.hidden_units
    self.kernels, self.biases, self.context_kernels = [], [], []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
      self.kernels.append(self.add_weight(name=f"w{i}", shape=(a, b), initializer="glorot_uniform"))
      self.biases.append(self.add_weight(name=f"b{i}", shape=(b,), initializer="zeros"))
      if self.context_size:
        self.context_kernels.append(self.add_weight(
            name=f"c{i}", shape=(self.context_size, b), initializer="glorot_uniform"))
    last = sizes[-1]
    # Small output weights: every flow step starts close to the identity.
    self.out_kernel = self.add_weight(
        name="w_out", shape=(last, self.event_size * self.params),
        initializer=keras.initializers.RandomNormal(stddev=self.output_scale))
    self.out_bias = self.add_weight(name="b_out", shape=(self.event_size * self.params,),
                                    initializer="zeros")

  @property
  def masks(self):
    """The binary masks ``[D, H1], ..., [Hn, D]`` as NumPy arrays (see :func:`masks_from_degrees`)."""
    return self._masks

  def effective_degrees(self):
    """For each hidden layer, 1 + the largest input index each unit depends on (0: none).

    Through the chain of masks, not just the unit's own degree: a unit of
    layer l depends on input e when some path of mask entries leads from e to it.
    A unit is *final* during sequential sampling once inputs ``0 .. e - 1`` are known.
    """
    masks = self._masks
    reach = masks[0].astype(bool)                                   # [D, H1]: input -> unit
    d = reach.shape[0]
    out = []
    for i, m in enumerate(masks[:-1]):
      if i > 0:
        reach = (reach.astype(np.float32) @ m) > 0
      idx = np.where(reach, np.arange(1, d + 1)[:, None], 0)
      out.append(idx.max(axis=0))
    return out

  def graph_masks(self):
    """The masks built in the graph from the degree vectors.

    Equal to :attr:`masks`; but a traced function (and so an exported SavedModel)
    then holds O(D + H) integers per MADE instead of O(D H) floats per mask and
    per call site (a D = 1024 prior made one SavedModel 20 MB of constants).
    """
    return masks_from_degrees([tf.constant(d) for d in self._degrees], xp=tf)

  def call(self, x, context=None):
    h = x
    masks = self.graph_masks()
    for i, (w, b) in enumerate(zip(self.kernels, self.biases)):
      h = tf.matmul(h, w * masks[i]) + b
      if self.context_size:
        if context is None:
          raise ValueError("this MADE was built with a context; pass context=")
        h = h + tf.matmul(context, self.context_kernels[i])
      h = tf.nn.elu(h)
    out_mask = tf.repeat(masks[-1], self.params, axis=1)  # [H, D*P], d-major
    y = tf.matmul(h, self.out_kernel * out_mask) + self.out_bias
    return tf.reshape(y, tf.concat([tf.shape(x), [self.params]], 0))

  def get_config(self):
    cfg = super().get_config()
    cfg.update(event_size=self.event_size, hidden_units=list(self.hidden_units),
               params=self.params, context_size=self.context_size,
               output_scale=self.output_scale)
    return cfg


class MADESteps:
  """A MADE (without context) evaluated one output at a time, exactly as inputs become known.

  What a sequential walk over the inputs needs (the codec's latent walks,
  :mod:`vlae_tf.codec.latent`): output ``d`` once inputs ``0 .. d - 1`` are fixed,
  for ``O(H)`` work per step (``O(H^2)`` with several hidden layers) instead of a
  whole MADE pass. The state is the pre-activation of every hidden unit ``[G, H_l]``
  per layer, each a running sum: fixing input ``d`` adds ``x_d W_1[d]`` to the first
  layer (the masked weights), and the units of degree ``d + 1`` (final now: every
  input they see is known) add their contributions to the layer above, one masked
  matmul per layer. Output ``d`` reads the last layer through the masked output
  weights, where only final units have non-zero weights. The sums run in another
  order than :meth:`MADE.call`, so the outputs agree with it up to float rounding;
  two walks that make the same calls compute the same bits.
  """

  def __init__(self, made):
    if made.context_size:
      raise ValueError("MADESteps evaluates a MADE without context")
    masks = made.graph_masks()
    d, p = made.event_size, made.params
    self.kernels = [tf.convert_to_tensor(k) * m for k, m in zip(made.kernels, masks[:-1])]
    self.biases = [tf.convert_to_tensor(b) for b in made.biases]
    w_out = tf.reshape(tf.convert_to_tensor(made.out_kernel), [-1, d, p]) * masks[-1][:, :, None]
    self.w_out = tf.transpose(w_out, [1, 0, 2])                        # [D, H_L, P]
    self.b_out = tf.reshape(tf.convert_to_tensor(made.out_bias), [d, p])
    self.degrees = [tf.constant(m) for m in made._degrees[1:]]

  def _propagate(self, pres, stage):
    """The units of degree ``stage`` (final once inputs ``0 .. stage - 1`` are known) feed the
    layer above, lowest layer first."""
    pres = list(pres)
    for l in range(len(pres) - 1):
      final = tf.cast(tf.equal(self.degrees[l], stage), tf.float32)
      pres[l + 1] = pres[l + 1] + tf.matmul(tf.nn.elu(pres[l]) * final, self.kernels[l + 1])
    return pres

  def initial(self, g):
    """The state of ``g`` rows before any input is known (the biases; degree-0 units fed on)."""
    pres = [tf.zeros(tf.stack([g, tf.shape(b)[0]])) + b for b in self.biases]
    return self._propagate(pres, 0)

  def output(self, pres, d):
    """Output ``d`` ``[G, P]`` (raw, as :meth:`MADE.call` gives it) of the state."""
    return tf.matmul(tf.nn.elu(pres[-1]), self.w_out[d]) + self.b_out[d]

  def update(self, pres, d, x_d):
    """The state once input ``d`` is fixed to ``x_d`` ``[G]``."""
    pres = list(pres)
    pres[0] = pres[0] + x_d[:, None] * self.kernels[0][d]
    return self._propagate(pres, d + 1)
