"""What each ``vlae`` command does (the parser, quiet start and dispatch are in :mod:`vlae_tf.cli`).

``cmd_<name>(args) -> exit status`` for every command but ``list`` and ``info``
(which read cards only, in :mod:`vlae_tf.cli`, without TensorFlow); :data:`COMMANDS` maps
the names to them and :data:`USER_ERRORS` lists the exceptions that are the
user's mistake (reported as one line by :func:`vlae_tf.cli.main`). This module
imports TensorFlow: :mod:`vlae_tf.cli` imports it only after parsing the
arguments and after :func:`vlae_tf.quiet_tf.import_tensorflow`.
"""

from __future__ import annotations

import os
import sys
import zipfile

import numpy as np
import tensorflow as tf

from vlae_tf import atomic, data_readers
from vlae_tf import config as vconfig
from vlae_tf import zoo
from vlae_tf.codec import commands as codec_commands
from vlae_tf.datasets import DataError
from vlae_tf.pretrained import store as zoo_store
from vlae_tf.pretrained.packaging import example_images
from vlae_tf.images import image_grid, save_png, to_display


# -------------------------------------------------------------------- data
def load_images(model, data, data_key=None, num=8):
  """Test images for reconstruct / interpolate.

  ``data``: None (the model's bundled ``examples.npz``), ``"test"`` (evenly
  spaced images of the test split of the model's config, read through
  :mod:`vlae_tf.data`, i.e. from ``$VLAE_DATA_DIR`` or TFDS), or the path
  of an ``.npz`` with model-ready images (``--data_key`` names the array;
  default: its only array, else ``x_test``, else ``x``).
  """
  if data is None:
    x = model.examples()
  elif data == "test":
    config = vconfig.from_json(model.info["config"])
    try:
      x = example_images(config, num)
    except (OSError, RuntimeError, ValueError) as e:
      raise ValueError(f"--data=test: cannot read the {config.data.dataset} test split ("
                       f"{' '.join(str(e).split())}); set $VLAE_DATA_DIR to the folder of its "
                       ".npz files, give --data=<file.npz>, or omit --data") from None
  else:
    if not os.path.isfile(data):
      raise FileNotFoundError(f"--data {data!r}: no such file (give an .npz, 'test', or omit "
                              "it to use the model's bundled examples)")
    x = read_npz_images(data, data_key)[:num]
  x = np.asarray(x)
  if x.ndim == 3 and model.image_shape[-1] == 1:
    x = x[..., None]
  return x[:num]


def read_npz_images(path, key=None):
  """The image array ``key`` of an ``.npz`` (default: its only array, else ``x_test``, else ``x``)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--data {path!r}: no such file")
  try:
    return data_readers.read_npz(path, [key] if key else ["x_test", "x"],
                                 only_array=key is None)[0]
  except DataError as e:
    raise DataError(f"--data {e} (--data_key names the array)") from None


# ---------------------------------------------------------------- commands
def _load(args):
  return zoo.load(args.model, args.zoo_dir, verify_checksums=not args.no_verify)


def cmd_sample(args):
  m = _load(args)
  x = m.sample(num=args.num, seed=args.seed, temperature=args.temperature)
  save_png(image_grid(to_display(x, m.num_levels), ncol=args.ncol, scale=args.scale), args.out)
  print(f"wrote {args.out}: {args.num} samples from {m.name} (seed {args.seed}, "
        f"temperature {args.temperature})")
  return 0


def cmd_reconstruct(args):
  m = _load(args)
  x = load_images(m, args.data, args.data_key, args.num)
  rows = [x] + [m.reconstruct(x, seed=args.seed + r) for r in range(args.samples)]
  grid = image_grid(to_display(np.stack(rows), m.num_levels), scale=args.scale)
  save_png(grid, args.out)
  print(f"wrote {args.out}: top row {len(x)} test images, then {args.samples} rows of lossy "
        f"reconstructions x' ~ p(x|z), z ~ q(z|x)")
  return 0


def cmd_interpolate(args):
  m = _load(args)
  x = load_images(m, args.data, args.data_key, args.pairs + 1)
  if len(x) < 2:
    raise ValueError("interpolation needs at least 2 images")
  rows = m.interpolate(x[:-1], x[1:], steps=args.steps, seed=args.seed)
  save_png(image_grid(to_display(rows, m.num_levels), scale=args.scale), args.out)
  print(f"wrote {args.out}: {len(rows)} rows, each decoding {args.steps} points on the line "
        "between the posterior means of two test images")
  return 0


def cmd_encode(args):
  m = _load(args)
  x = np.asarray(read_npz_images(args.data, args.data_key))
  if x.ndim == len(m.image_shape) and m.image_shape[-1] == 1:
    x = x[..., None]
  if x.ndim != 4 or not len(x):
    raise ValueError(f"--data {args.data!r}: expected images [N, "
                     f"{', '.join(map(str, m.image_shape))}] with N >= 1, got shape {x.shape}")
  parts = [m.encode(x[i:i + args.batch_size], seed=args.seed)
           for i in range(0, len(x), args.batch_size)]
  mean = np.concatenate([p["mean"] for p in parts])
  std = np.concatenate([p["std"] for p in parts])
  with atomic.open_for_writing(args.out, "wb") as f:
    np.savez(f, mean=mean, std=std)
  print(f"wrote {args.out}: mean and std of q(z|x), each {list(mean.shape)}, for {len(x)} "
        f"images of {args.data} ({m.name})")
  return 0


def graph_error_text(message):
  """The ``assertion failed: [...]`` line of a graph error, without TF's node details."""
  for line in message.splitlines():
    if "assertion failed:" in line:
      return line.split("assertion failed:", 1)[1].strip()
  return message.strip().splitlines()[0] if message.strip() else message


COMMANDS = {"sample": cmd_sample,
            "reconstruct": cmd_reconstruct, "interpolate": cmd_interpolate, "encode": cmd_encode,
            **codec_commands.COMMANDS}
USER_ERRORS = (zoo_store.ZooError, ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile,
               tf.errors.OpError)


def one_line(e):
  """The message of a user error on one line (graph errors: just the failed assertion;
  OS errors other than :class:`vlae_tf.atomic.OutputError`: ``<file>: <reason>``)."""
  if isinstance(e, tf.errors.OpError):
    return graph_error_text(e.message)
  if isinstance(e, OSError) and not isinstance(e, atomic.OutputError) and e.filename:
    msg = f"{e.filename}: {e.strerror}"
  else:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
  return " ".join(str(msg).split()) or type(e).__name__
