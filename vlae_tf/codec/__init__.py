"""The codec: images to ``.vlae`` files with a VLAE and back (design: :mod:`vlae_tf.codec.api`).

================  ===================================================================
module            job
================  ===================================================================
``api``           ``encode``, ``compress``, ``decompress``, ``read_header``: the header
                  a file gets and the checks before decoding
``chain``         the bits-back chain and the z-only chain, group by group
``latent``        the coded latent of the AF prior and its two walks
``pixels``        p(x|z) on the coder: the cached decoder's walk, one call per sub-pixel
``lossy``         what a z-only file decodes to (``lossy_decode``)
``side_info``     a lossy file's side information (header field ``lossy_side``)
``file_format``   the ``.vlae`` file: layout, every header field's check, ``CodecError``
``numeric_mode``  the canonical numeric mode; ``python -m vlae_tf.codec.numeric_mode
                  script.py`` runs a script in it
``commands``      the bodies of ``vlae compress`` / ``vlae decompress``
================  ===================================================================

Users write ``from vlae_tf import codec; codec.compress(model, x)``: the names below are
:mod:`vlae_tf.codec.api`'s, imported on first use (PEP 562), because ``api`` imports
TensorFlow and ``file_format`` / ``numeric_mode`` must not: the ``vlae`` command reads them
to decide, before TensorFlow is imported, which process codes (the canonical mode is set in
a new process's environment). So this package imports nothing itself; its modules import
each other as modules (``from vlae_tf.codec import chain``), never these names.
"""

import importlib as _importlib

# Today's public names of vlae_tf.codec, all defined in (or re-exported by) codec.api.
_API = ("encode", "compress", "decompress", "read_header", "size_summary", "check_images",
        "check_numeric_mode", "negative_elbo_bits_per_dim", "check_lossy_options", "CodecError",
        "UnsupportedModel", "LOSSLESS", "LOSSY", "DEFAULT_GROUP_SIZE", "DEFAULT_BIN_WIDTH_LOG2",
        "DEFAULT_LATENT_RANGE", "MAX_LATENT_SYMBOLS")

__all__ = ["compress", "decompress", "encode", "CodecError", "UnsupportedModel", "LOSSLESS",
           "LOSSY", "check_lossy_options"]


def __getattr__(name):
  if name in _API:   # not cached: codec.encode is always api.encode (tests patch api)
    return getattr(_importlib.import_module("vlae_tf.codec.api"), name)
  raise AttributeError(f"module 'vlae_tf.codec' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_API))
