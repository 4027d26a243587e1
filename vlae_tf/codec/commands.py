"""``vlae compress`` and ``vlae decompress``: the codec of :mod:`vlae_tf.codec` on files.

::

  vlae compress --model=mnist --data=IN.npz --out=OUT.vlae [--lossy]
  vlae decompress OUT.vlae --out=BACK.npz

``IN.npz`` holds one uint8 array ``x`` of shape ``[N, H, W]`` or ``[N, H, W, C]``
in the model's data scale ({0, 1} for the binary models, 0..255 for CIFAR-10);
``--data=test`` takes the model's bundled images (``examples.npz`` of its zoo
folder). ``BACK.npz`` gets ``x`` back with the same shape and dtype. Both
commands print the same sizes for a file (:func:`describe_sizes`): *payload*
bits (the ANS words; lossless: also *net* of the initial bits) and *file* bits
(every byte, the 500-600-byte header included), per image and per dimension,
beside the model's -ELBO, and a progress bar on stderr. The model comes from
the zoo as a Keras model (:func:`vlae_tf.pretrained.keras_weights.load_keras`); ``decompress``
finds it by the name stored in the file (``--model`` overrides) and refuses a
model whose weights differ from the compressing one's. The coding parameters,
the file's header and ``--out``'s folder (it must exist and be writable) are
checked before any work; a user mistake ends in one line ``vlae <command>:
error: ...`` and exit status 2, and nothing is written. Outputs are written
atomically (a ``.vlae`` file gets the usual mode under the umask, e.g. 0644).
The sub-parsers are in :mod:`vlae_tf.cli` (so ``vlae --help`` needs no TensorFlow);
:data:`COMMANDS` joins :data:`vlae_tf.cli_commands.COMMANDS`.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from vlae_tf import atomic, data_readers
from vlae_tf.codec import api, file_format
from vlae_tf.codec.file_format import CodecError, check_command
from vlae_tf.pretrained import keras_weights, store


class _Progress:
  """A one-line progress bar on stderr."""

  def __init__(self, label, width=30):
    self.label, self.width, self.shown = label, width, False

  def __call__(self, done, total):
    if total <= 1:
      return
    filled = int(self.width * done / total)
    sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                     f"{done}/{total} images")
    sys.stderr.flush()
    self.shown = True

  def close(self):
    if self.shown:
      sys.stderr.write("\n")


def read_images(path, model_dir=None):
  """``x`` of an .npz (one uint8 array), or the bundled examples for ``'test'``.

  The file is read by :func:`vlae_tf.data_readers.read_npz` (never unpickled): a
  missing file, a file that is no .npz or has no array ``x`` is one line naming it.
  """
  if path == "test":
    card = store.read_card(model_dir)
    if not card.get("examples"):
      raise CodecError(f"model at {model_dir} bundles no example images")
    path = os.path.join(model_dir, card["examples"])
  x, _ = data_readers.read_npz(path, ["x"])
  if x.dtype != np.uint8:
    raise CodecError(f"{path}: 'x' must be uint8 (the model's data scale), got {x.dtype}")
  return x


def write_npz(path, x):
  """``np.savez(path, x=x)``, atomically (:func:`vlae_tf.atomic.open_for_writing`)."""
  with atomic.open_for_writing(path) as f:
    np.savez(f, x=x)


def _load(name, args):
  return keras_weights.load_keras(name, args.zoo_dir, verify_checksums=not args.no_verify)


def describe_sizes(header, file_bytes):
  """The sizes both commands print for a file, from its header
  (:func:`vlae_tf.codec.size_summary`)."""
  s = api.size_summary(header, file_bytes)
  if header["mode"] == api.LOSSY:
    return (f"{s['payload_bits_per_image']:.1f} payload bits/image "
            f"({s['file_bits_per_image']:.1f} file bits/image incl. header) = "
            f"{s['payload_bits_per_dim']:.4f} payload bits/dim")
  return (f"{s['bits_per_dim']:.4f} net bits/dim ({s['payload_bits_per_dim']:.4f} payload "
          f"bits/dim incl. {s['initial_bits']} initial bits; {s['file_bits_per_image']:.1f} file "
          f"bits/image = {s['file_bits_per_dim']:.4f} file bits/dim incl. header)")


# The user's mistakes in these commands: a bad file or header (CodecError), an uncodable model
# (UnsupportedModel), --out or a missing input (OSError), an unknown or damaged model (ZooError).
_USER_ERRORS = (ValueError, OSError, store.ZooError)


def _exit_2_on_user_errors(command):
  """Runs ``command``; a user mistake is one line ``vlae <command>: error: ...`` and exit status 2."""
  def run(args):
    try:
      return command(args)
    except _USER_ERRORS as e:
      msg = str(e)
      if isinstance(e, OSError) and not isinstance(e, atomic.OutputError) and e.filename:
        msg = f"{e.filename}: {e.strerror}"
      print(f"vlae {args.command}: error: {' '.join(msg.split())}", file=sys.stderr)
      return 2
  run.__name__ = run.__qualname__ = command.__name__
  run.__doc__ = command.__doc__
  return run


def cmd_compress(args):
  check_command(args)
  model_dir = store.model_dir(args.model, args.zoo_dir)
  x = read_images(args.data, model_dir)
  model = _load(args.model, args)
  bar = _Progress("compress")
  try:
    data, _ = api.encode(model, x, lossy=args.lossy, group_size=args.group_size,
                           bin_width_log2=args.bin_width_log2, lossy_decode=args.lossy_decode,
                           seed=args.seed, lossy_side=args.lossy_side, progress=bar)
  finally:
    bar.close()
  file_format.write_atomic(args.out, data)
  header = api.read_header(data)
  elbo = api.negative_elbo_bits_per_dim(model, x)
  print(f"wrote {args.out}: {len(x)} images, {len(data)} bytes, {header['mode']}; "
        f"{describe_sizes(header, len(data))}; model {header['model']} lossless -ELBO "
        f"{elbo:.4f} bits/dim on these images")
  return 0


def cmd_decompress(args):
  data = check_command(args)
  header = api.read_header(data, args.file)
  model = _load(args.model or header["model"], args)
  bar = _Progress("decompress")
  try:
    x = api.decompress(model, data, progress=bar, what=args.file)
  finally:
    bar.close()
  write_npz(args.out, x)
  sizes = describe_sizes(header, len(data))
  if header["mode"] == api.LOSSY:
    print(f"wrote {args.out}: {len(x)} lossy decodes {list(x.shape)} from {len(data)} bytes; "
          f"{sizes}")
  else:
    elbo = api.negative_elbo_bits_per_dim(model, x)
    print(f"wrote {args.out}: {len(x)} images {list(x.shape)}, exact, from {len(data)} bytes; "
          f"{sizes}; model {header['model']} lossless -ELBO {elbo:.4f} bits/dim on these images")
  return 0


COMMANDS = {"compress": _exit_2_on_user_errors(cmd_compress),
            "decompress": _exit_2_on_user_errors(cmd_decompress)}
