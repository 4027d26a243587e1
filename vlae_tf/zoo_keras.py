"""The old name of :mod:`vlae_tf.pretrained.keras_weights`, kept while the codec modules import it.

``vlae_tf.zoo_keras`` is the very module ``vlae_tf.pretrained.keras_weights``
(one module object); ``python -m vlae_tf.zoo_keras MODEL_DIR ...`` runs its
``main`` (the same as ``python -m vlae_tf.pretrained.keras_weights``). New code
imports ``vlae_tf.pretrained.keras_weights``.
"""

import sys

from vlae_tf.pretrained import keras_weights

if __name__ == "__main__":
  raise SystemExit(keras_weights.main())
sys.modules[__name__] = keras_weights
