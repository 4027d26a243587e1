"""The pretrained-model store: zoo folders on disk, their cards, and the models loaded from them.

=================  ==================================================================
module             job
=================  ==================================================================
``store``          folder layout, writing cards, ``load`` (and ``folders``' names)
``folders``        finding a model folder, reading and verifying its card, ``list_models``
                   (no TensorFlow: ``vlae list`` and ``vlae info`` use it alone)
``card``           the trust of a card: its schema and ``card.sha256`` (no TensorFlow)
``model``          ``ZooModel``: the NumPy API of a loaded SavedModel
``keras_weights``  ``model.weights.h5``, ``load_keras``, ``train.py --init_from=zoo:``
``packaging``      a trained run -> a zoo folder (``train.py --mode=export``)
=================  ==================================================================

Users reach it through :mod:`vlae_tf.zoo` (``load``, ``load_keras``, ``list_models``),
which imports it on first use: this package imports nothing itself, and its
modules import TensorFlow, but for ``folders`` and ``card``.
"""
