"""TensorBoard summaries that need only TensorFlow (the ``tensorboard`` package is optional).

TF 2.21 no longer depends on ``tensorboard``, and ``tf.summary.scalar`` /
``image`` / ``histogram`` raise without it. These helpers write the same event
records TensorBoard's v2 plugins write (``tf.summary.write`` with the plugin
name in the summary metadata), so TensorBoard shows them either way:

* scalars:    a float32 scalar, plugin ``scalars``;
* images:     a string vector ``[width, height, png_1, ...]``, plugin ``images``;
* histograms: a float64 ``[k, 3]`` tensor of (left edge, right edge, count),
  plugin ``histograms``.

Call them inside ``writer.as_default(step=...)``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin):
  return summary_pb2.SummaryMetadata(
      plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))


def scalar(name, value):
  tf.summary.write(name, tf.cast(value, tf.float32), metadata=_metadata("scalars"))


def image(name, images, max_outputs=3):
  """``[N, H, W, C]`` float images in [0, 1]."""
  x = tf.convert_to_tensor(np.asarray(images)[:max_outputs], tf.float32)
  x = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
  pngs = tf.map_fn(tf.image.encode_png, x, fn_output_signature=tf.string)
  dims = tf.stack([tf.as_string(tf.shape(x)[2]), tf.as_string(tf.shape(x)[1])])
  tf.summary.write(name, tf.concat([dims, pngs], 0), metadata=_metadata("images"))


def histogram(name, values, buckets=30):
  v = np.asarray(values, np.float64).ravel()
  if v.size == 0:
    return
  lo, hi = float(v.min()), float(v.max())
  if hi == lo:
    hi = lo + 1.0
  counts, edges = np.histogram(v, bins=buckets, range=(lo, hi))
  tensor = np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)
  tf.summary.write(name, tf.constant(tensor, tf.float64), metadata=_metadata("histograms"))


__all__ = ["scalar", "image", "histogram"]
