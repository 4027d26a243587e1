"""The ``vlae`` command: sample, reconstruct and interpolate with pretrained zoo models.

Examples::

  vlae list
  vlae sample --model=mnist --num=64 --out=samples.png
  vlae reconstruct --model=mnist --out=recon.png            # bundled test images
  vlae reconstruct --model=mnist --data=test --out=recon.png  # the test split ($VLAE_DATA_DIR / TFDS)
  vlae interpolate --model=mnist --out=interp.png
  vlae info --model=mnist
  vlae compress --model=mnist --data=test --out=digits.vlae   # lossless (bits-back); --lossy
  vlae decompress digits.vlae --out=digits.npz                # see vlae_tf.codec_cli

``--model`` is a zoo name (looked up in ``--zoo_dir``, ``$VLAE_ZOO_DIR`` or the
repository's ``saved_models/``) or the path of a model folder. Images are
written as PNG grids; binary images are shown with 1 = white.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np
import tensorflow as tf

from vlae_tf import atomic
from vlae_tf import config as vconfig
from vlae_tf import zoo, zoo_store
from vlae_tf.export import example_images

from vlae_tf import codec_cli



# -------------------------------------------------------------------- PNGs
def to_display(images, num_levels):
  """Data-scale pixels -> uint8 0..255 for display."""
  x = np.asarray(images, np.float64)
  return np.clip(np.round(x * (255.0 / (num_levels - 1))), 0, 255).astype(np.uint8)


def image_grid(images, ncol=None, pad=2, pad_value=128, scale=1):
  """Tiles ``[N, H, W, C]`` (or ``[rows, cols, H, W, C]``) uint8 images into one ``[h, w, C]`` array."""
  x = np.asarray(images)
  if x.ndim == 5:
    ncol = x.shape[1]
    x = x.reshape((-1,) + x.shape[2:])
  if x.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C] or [rows, cols, H, W, C], got {x.shape}")
  n, h, w, c = x.shape
  if scale > 1:
    x = x.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = h * scale, w * scale
  ncol = int(ncol or int(np.ceil(np.sqrt(n))))
  nrow = int(np.ceil(n / ncol))
  grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, np.uint8)
  for k in range(n):
    i, j = divmod(k, ncol)
    top, left = pad + i * (h + pad), pad + j * (w + pad)
    grid[top:top + h, left:left + w] = x[k]
  return grid


def save_png(grid, path):
  """Writes a PNG atomically: a failure (full disk, ...) leaves no partial file and the old one."""
  from PIL import Image
  grid = np.asarray(grid, np.uint8)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid,
                        mode="L" if grid.shape[-1] == 1 else "RGB")
  with atomic.open_for_writing(path, "wb") as f:
    img.save(f, format="PNG")


# -------------------------------------------------------------------- data
def load_images(model, data, data_key=None, num=8):
  """Test images for reconstruct / interpolate.

  ``data``: None (the model's bundled ``examples.npz``), ``"test"`` (evenly
  spaced images of the test split of the model's config, read through
  :mod:`vlae_tf.data`, i.e. from ``$VLAE_DATA_DIR`` or TFDS), or the path
  of an ``.npz`` with model-ready images (``--data_key`` names the array;
  default ``x_test``, else ``x``).
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
    with np.load(data, allow_pickle=False) as f:
      keys = [data_key] if data_key else [k for k in ("x_test", "x") if k in f.files]
      if not keys or keys[0] not in f.files:
        raise KeyError(f"--data {data!r} has arrays {f.files}; name one with --data_key")
      x = f[keys[0]][:num]
  x = np.asarray(x)
  if x.ndim == 3 and model.image_shape[-1] == 1:
    x = x[..., None]
  return x[:num]


# ---------------------------------------------------------------- commands
def _load(args):
  return zoo.load(args.model, args.zoo_dir, verify_checksums=not args.no_verify)


def cmd_list(args):
  with warnings.catch_warnings(record=True) as skipped:
    warnings.simplefilter("always", zoo_store.ZooWarning)
    models = zoo_store.list_models(args.zoo_dir)
  for w in skipped:
    if issubclass(w.category, zoo_store.ZooWarning):
      print(f"vlae list: warning: {w.message}", file=sys.stderr)
  root = zoo_store.zoo_dir(args.zoo_dir)
  if not models:
    print(f"No pretrained models in {root} yet.")
  for m in models:
    config = f" [config {m['config_name']}]" if m.get("config_name") else ""
    print(f"{m['name']:<24} {m['description']}{config}")
    if m["headline"]:
      print(f"{'':<24} {m['headline']}")
  packaged = {m["name"] for m in models} | {m.get("config_name") for m in models}
  rest = [c for c in zoo.list_configs() if c not in packaged]
  if rest:
    print(f"Configs without pretrained weights (train them with train.py): {', '.join(rest)}")
  return 0


def cmd_info(args):
  m = _load(args)
  card = dict(m.card)
  card.pop("config", None)
  card.pop("files", None)
  print(json.dumps(card, indent=2))
  print(m)
  return 0


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


def _at_least(lo):
  def parse(text):
    try:
      v = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}") from None
    if v < lo:
      raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {v}")
    return v
  parse.__name__ = f"integer >= {lo}"
  return parse


def _temperature(text):
  try:
    v = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
  if not 0 < v <= 10:                                   # False for NaN
    raise argparse.ArgumentTypeError(f"expected a temperature in (0, 10], got {text}")
  return v


def build_parser():
  p = argparse.ArgumentParser(prog="vlae", description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True)

  def common(sp, model=True):
    sp.add_argument("--zoo_dir", default=None, help="zoo folder (default $VLAE_ZOO_DIR or "
                    "the repository's saved_models/)")
    if model:
      sp.add_argument("--model", required=True, help="zoo model name or model folder")
      sp.add_argument("--seed", type=int, default=0)
      sp.add_argument("--scale", type=_at_least(1), default=2, help="pixel upscaling of the PNG")
      sp.add_argument("--no_verify", action="store_true", help="skip the sha256 checks")

  common(sub.add_parser("list", help="list pretrained models"), model=False)
  common(sub.add_parser("info", help="print a model's card"))
  s = sub.add_parser("sample", help="x ~ p(x): z from the prior, then x from p(x|z)")
  common(s)
  s.add_argument("--num", type=_at_least(1), default=64)
  s.add_argument("--temperature", type=_temperature, default=1.0)
  s.add_argument("--ncol", type=_at_least(1), default=None)
  s.add_argument("--out", default="samples.png")
  for name, help_ in (("reconstruct", "lossy reconstructions of test images"),
                      ("interpolate", "decode the line between two images' latents")):
    s = sub.add_parser(name, help=help_)
    common(s)
    s.add_argument("--data", default=None, help="an .npz of model-ready images, or 'test' for "
                   "the config's test split; default: the model's bundled examples")
    s.add_argument("--data_key", default=None)
    s.add_argument("--out", default=f"{name}.png")
    if name == "reconstruct":
      s.add_argument("--num", type=_at_least(1), default=8, help="number of test images")
      s.add_argument("--samples", type=_at_least(1), default=3, help="reconstructions per image")
    else:
      s.add_argument("--pairs", type=_at_least(1), default=4, help="rows (consecutive image pairs)")
      s.add_argument("--steps", type=_at_least(2), default=8)
  codec_cli.add_parsers(sub, common)
  return p


def graph_error_text(message):
  """The ``assertion failed: [...]`` line of a graph error, without TF's node details."""
  for line in message.splitlines():
    if "assertion failed:" in line:
      return line.split("assertion failed:", 1)[1].strip()
  return message.strip().splitlines()[0] if message.strip() else message


COMMANDS = {"list": cmd_list, "info": cmd_info, "sample": cmd_sample,
            "reconstruct": cmd_reconstruct, "interpolate": cmd_interpolate,
            **codec_cli.COMMANDS}


def main(argv=None):
  args = build_parser().parse_args(argv)
  try:
    if getattr(args, "out", None) is not None:
      atomic.check_output_path(args.out, "--out")       # before any work
    return COMMANDS[args.command](args)
  except (zoo_store.ZooError, ValueError, TypeError, KeyError, OSError, tf.errors.OpError) as e:
    msg = graph_error_text(e.message) if isinstance(e, tf.errors.OpError) else str(e)
    if isinstance(e, OSError) and not isinstance(e, atomic.OutputError) and e.filename:
      msg = f"{e.filename}: {e.strerror}"
    print(f"vlae {args.command}: error: {' '.join(msg.split())}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
