"""vlae_tf: the Variational Lossy Autoencoder (Chen et al., ICLR 2017) in Keras 3 + TFP.

Public API::

    import vlae_tf
    cfg = vlae_tf.zoo.get_config("mnist")
    model = vlae_tf.build_model(cfg)
    terms = model.elbo_terms(x)            # per-example "elbo", "rate", "distortion" (nats)
    nll = vlae_tf.iwae_nll(model, x, num_samples=1000)
    mask = vlae_tf.receptive_field(model, pixel=(i, j))
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from vlae_tf.evaluation import active_units, evaluate, iwae_nll, kl_per_dim, mutual_information  # noqa: E402
from vlae_tf.model import VLAE, build_model  # noqa: E402
from vlae_tf.receptive_field import expected_receptive_field, receptive_field  # noqa: E402
from vlae_tf import zoo  # noqa: E402

__version__ = "0.1.0"

__all__ = ["VLAE", "build_model", "iwae_nll", "receptive_field", "expected_receptive_field",
           "evaluate", "active_units", "kl_per_dim", "mutual_information", "zoo"]
