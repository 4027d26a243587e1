"""The old name of :mod:`vlae_tf.pretrained.store`, kept while the codec modules import it.

``vlae_tf.zoo_store`` is the very module ``vlae_tf.pretrained.store`` (one module
object, so a name set on one is seen through the other). New code imports
``vlae_tf.pretrained.store``.
"""

import sys

from vlae_tf.pretrained import store

sys.modules[__name__] = store
