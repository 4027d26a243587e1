"""vlae_tf: the Variational Lossy Autoencoder (Chen et al., ICLR 2017) in Keras 3 + TFP.

Public API::

    import vlae_tf
    cfg = vlae_tf.zoo.get_config("mnist")
    model = vlae_tf.build_model(cfg)
    terms = model.elbo_terms(x)            # per-example "elbo", "rate", "distortion" (nats)
    nll = vlae_tf.iwae_nll(model, x, num_samples=1000)
    mask = vlae_tf.receptive_field(model, pixel=(i, j))

The names that need TensorFlow are resolved on first use (PEP 562 module
``__getattr__``), so ``import vlae_tf`` -- and with it the ``vlae`` command's
``--help``, the zoo configs and ``train.py``'s flag parsing -- does not import
TensorFlow (4 s). When TensorFlow is imported, its start-up log lines are hidden
unless the user set ``TF_CPP_MIN_LOG_LEVEL`` (see :mod:`vlae_tf.quiet_tf`).
"""

import importlib as _importlib
import os as _os

from vlae_tf import quiet_tf as _quiet_tf

# TensorFlow's start-up lines (oneDNN, CUDA drivers, cuInit) are hidden when it is first imported,
# unless the user set TF_CPP_MIN_LOG_LEVEL themselves (vlae_tf/quiet_tf.py).
_quiet_tf.quiet_library()
_os.environ.setdefault(_quiet_tf.LEVEL_ENV, _quiet_tf.OWN_LEVEL)
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {"VLAE": "model", "build_model": "model", "iwae_nll": "evaluation",
         "evaluate": "evaluation", "active_units": "evaluation", "kl_per_dim": "evaluation",
         "mutual_information": "evaluation", "receptive_field": "receptive_field",
         "expected_receptive_field": "receptive_field"}

__all__ = ["VLAE", "build_model", "iwae_nll", "receptive_field", "expected_receptive_field",
           "evaluate", "active_units", "kl_per_dim", "mutual_information", "zoo"]


def __getattr__(name):
  if name == "zoo":  # the zoo's model store imports TensorFlow
    return _importlib.import_module("vlae_tf.zoo")
  if name in _LAZY:
    value = getattr(_importlib.import_module(f"vlae_tf.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'vlae_tf' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_LAZY) | {"zoo"})
