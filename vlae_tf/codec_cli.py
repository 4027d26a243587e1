"""``vlae compress`` and ``vlae decompress``: the codec of :mod:`vlae_tf.codec` on files.

::

  vlae compress --model=mnist --data=IN.npz --out=OUT.vlae [--lossy]
  vlae decompress OUT.vlae --out=BACK.npz

``IN.npz`` holds one uint8 array ``x`` of shape ``[N, H, W]`` or ``[N, H, W, C]``
in the model's data scale ({0, 1} for the binary models, 0..255 for CIFAR-10);
``--data=test`` takes the model's bundled images (``examples.npz`` of its zoo
folder). ``BACK.npz`` gets ``x`` back with the same shape and dtype. Both
commands print the bits per dimension achieved beside the model's -ELBO on the
same images, and a progress bar on stderr. The model comes from the zoo as a
Keras model (:func:`vlae_tf.zoo_keras.load_keras`); ``decompress`` finds it by
the name stored in the file (``--model`` overrides) and refuses a model whose
weights differ from the compressing one's. Outputs are written atomically.
The sub-parsers are in :mod:`vlae_tf.cli` (so ``vlae --help`` needs no TensorFlow);
:data:`COMMANDS` joins :data:`vlae_tf.cli_commands.COMMANDS`.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from vlae_tf import atomic, codec, codec_format, zoo_keras, zoo_store
from vlae_tf.codec_format import CodecError


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
  """``x`` of an .npz (one uint8 array), or the bundled examples for ``'test'``."""
  if path == "test":
    card = zoo_store.read_card(model_dir)
    if not card.get("examples"):
      raise CodecError(f"model at {model_dir} bundles no example images")
    path = os.path.join(model_dir, card["examples"])
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no such file: {path}")
  try:
    with np.load(path, allow_pickle=False) as f:
      if "x" not in f.files:
        raise CodecError(f"{path} has no array 'x' (arrays: {', '.join(f.files) or 'none'})")
      x = f["x"]
  except (OSError, ValueError) as e:
    if isinstance(e, CodecError):
      raise
    raise CodecError(f"{path} is not a readable .npz file ({e})") from None
  if x.dtype != np.uint8:
    raise CodecError(f"{path}: 'x' must be uint8 (the model's data scale), got {x.dtype}")
  return x


def write_npz(path, x):
  """``np.savez(path, x=x)``, atomically (:func:`vlae_tf.atomic.open_for_writing`)."""
  with atomic.open_for_writing(path) as f:
    np.savez(f, x=x)


def _load(name, args):
  return zoo_keras.load_keras(name, args.zoo_dir, verify_checksums=not args.no_verify)


def cmd_compress(args):
  model_dir = zoo_store.model_dir(args.model, args.zoo_dir)
  x = read_images(args.data, model_dir)
  model = _load(args.model, args)
  bar = _Progress("compress")
  try:
    data, st = codec.encode(model, x, lossy=args.lossy, group_size=args.group_size,
                            bin_width_log2=args.bin_width_log2, lossy_decode=args.lossy_decode,
                            seed=args.seed, progress=bar)
  finally:
    bar.close()
  codec_format.write_atomic(args.out, data)
  elbo = codec.negative_elbo_bits_per_dim(model, x)
  name = codec._model_name(model)
  if args.lossy:
    print(f"wrote {args.out}: {st['num_images']} images, {st['file_bytes']} bytes; lossy "
          f"{st['bits_per_image']:.1f} bits/image = {st['bits_per_dim_with_initial']:.4f} "
          f"bits/dim (model {name}: lossless -ELBO {elbo:.4f} bits/dim on these images)")
  else:
    print(f"wrote {args.out}: {st['num_images']} images, {st['file_bytes']} bytes; "
          f"{st['bits_per_dim']:.4f} bits/dim ({st['bits_per_dim_with_initial']:.4f} with "
          f"{st['initial_bits']} initial bits, {st['file_bits_per_dim']:.4f} for the whole file) "
          f"vs model {name} -ELBO {elbo:.4f} bits/dim on these images")
  return 0


def cmd_decompress(args):
  if not os.path.isfile(args.file):
    raise FileNotFoundError(f"no such file: {args.file}")
  with open(args.file, "rb") as f:
    data = f.read()
  header = codec.read_header(data, args.file)
  model = _load(args.model or header["model"], args)
  bar = _Progress("decompress")
  try:
    x = codec.decompress(model, data, progress=bar, what=args.file)
  finally:
    bar.close()
  write_npz(args.out, x)
  dims = x.size
  bits = 8 * len(data)
  if header["mode"] == codec.LOSSY:
    print(f"wrote {args.out}: {len(x)} lossy decodes {list(x.shape)} from {bits / len(x):.1f} "
          f"bits/image ({bits / dims:.4f} bits/dim for the whole file)")
  else:
    elbo = codec.negative_elbo_bits_per_dim(model, x)
    payload = 32 * header["payload_words"] - header["initial_bits"]
    print(f"wrote {args.out}: {len(x)} images {list(x.shape)}, exact; {payload / dims:.4f} "
          f"bits/dim ({bits / dims:.4f} for the whole file) vs model {header['model']} -ELBO "
          f"{elbo:.4f} bits/dim on these images")
  return 0


COMMANDS = {"compress": cmd_compress, "decompress": cmd_decompress}
