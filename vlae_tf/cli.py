"""The ``vlae`` command: sample, reconstruct and interpolate with pretrained zoo models.

Examples::

  vlae list
  vlae sample --model=mnist --num=64 --out=samples.png
  vlae reconstruct --model=mnist --out=recon.png            # bundled test images
  vlae reconstruct --model=mnist --data=test --out=recon.png  # the test split ($VLAE_DATA_DIR / TFDS)
  vlae interpolate --model=mnist --out=interp.png
  vlae encode --model=mnist --data=images.npz --out=z.npz   # posterior means and stds
  vlae info mnist                                          # or --model=mnist
  vlae compress --model=mnist --data=test --out=digits.vlae   # lossless (bits-back); --lossy
  vlae decompress digits.vlae --out=digits.npz                # see vlae_tf.codec.commands

``--model`` is a zoo name (looked up in ``--zoo_dir``, ``$VLAE_ZOO_DIR`` or the
repository's ``saved_models/``) or the path of a model folder. Images are
written as PNG grids; binary images are shown with 1 = white.

Start-up: arguments are parsed (and ``--help`` or a usage error answered)
before TensorFlow is imported, and TensorFlow is imported through
:func:`vlae_tf.quiet_tf.import_tensorflow`, which keeps its start-up log lines
off the terminal unless ``--verbose``; ``list`` and ``info`` read the model cards and
never import TensorFlow (``info`` verifies every checksum unless ``--no_verify``, and
holds the card's config to the schema; ``vlae_tf.zoo.load`` also matches it to the
SavedModel's). Every user mistake -- a usage error, an
unknown or damaged model, unreadable data, an ``--out`` that cannot be written --
ends in one line ``vlae <command>: error: ...`` on stderr and exit status 2 (1
is left to bugs: a traceback); an ``--out`` that cannot be written is refused
before any work, and outputs are written atomically (:mod:`vlae_tf.atomic`).
A reader that closes stdout early (``vlae info mnist | head -3``) ends the command
silently with exit status 141 (128 + SIGPIPE, what a shell reports for a tool the
closed pipe killed, so ``set -o pipefail`` still sees that the output was cut):
no error line, no traceback.

The codec commands (``compress``, ``decompress``) compute in the codec's
canonical numeric mode (:mod:`vlae_tf.codec.numeric_mode`): unless this process was
started in it, they re-run themselves in a child process that is (same
arguments, stdin, stdout, stderr and exit status), whatever the user's
environment says about oneDNN, NumPy, libm or threads. A format-version-1 file
(no mode recorded) is handled in this process: a lossy one decodes, a lossless one
is refused in one line (:func:`vlae_tf.codec.decompress`).

Adding a command: add its sub-parser in :func:`build_parser` (here, so
``--help`` stays fast) and write ``cmd_<name>(args) -> exit status`` with its
entry in ``COMMANDS`` in :mod:`vlae_tf.cli_commands` (which may import anything; a
command that reads cards only goes into :data:`CARD_COMMANDS` here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from vlae_tf import atomic, quiet_tf, zoo
from vlae_tf.codec import file_format, numeric_mode
from vlae_tf.codec.file_format import DEFAULT_BIN_WIDTH_LOG2, DEFAULT_GROUP_SIZE
from vlae_tf.pretrained import card as zoo_card
from vlae_tf.pretrained import folders
from vlae_tf.pretrained.card import ZooError, ZooWarning


USER_ERROR = 2   # the exit status of every user mistake, usage errors included (argparse's 2)
CLOSED_STDOUT = 141   # stdout's reader went away: 128 + SIGPIPE, as a shell reports a killed tool


class _Parser(argparse.ArgumentParser):
  """argparse with one-line usage errors (sub-parsers inherit the class)."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
  p = _Parser(prog="vlae", description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True)

  def common(sp, model=True):
    sp.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and "
                    "C++ log lines")
    sp.add_argument("--zoo_dir", default=None, help="zoo folder (default $VLAE_ZOO_DIR or "
                    "the repository's saved_models/)")
    if model == "positional":
      sp.add_argument("name", nargs="?", default=None, help="zoo model name or model folder "
                      "(or --model)")
    if model:
      sp.add_argument("--model", required=model is True, help="zoo model name or model folder")
      sp.add_argument("--seed", type=int, default=0)
      sp.add_argument("--scale", type=_at_least(1), default=2, help="pixel upscaling of the PNG")
      sp.add_argument("--no_verify", action="store_true", help="skip the sha256 checks")

  common(sub.add_parser("list", help="list pretrained models"), model=False)
  common(sub.add_parser("info", help="print a model's card: vlae info mnist"), model="positional")
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
  s = sub.add_parser("encode", help="posterior means and stds of q(z|x) of images, as features")
  common(s)
  s.add_argument("--data", required=True, help="an .npz of model-ready images [N, H, W(, C)]")
  s.add_argument("--data_key", default=None, help="the array of --data (default: its only "
                 "array, else x_test, else x)")
  s.add_argument("--out", required=True, help="the .npz to write: arrays mean, std [N, D]")
  s.add_argument("--batch_size", type=_at_least(1), default=256)
  add_codec_parsers(sub, common)
  return p


def add_codec_parsers(sub, common):
  """Adds ``compress`` and ``decompress`` (their bodies: :mod:`vlae_tf.codec.commands`)."""
  s = sub.add_parser("compress", help="compress images with a zoo model (lossless bits-back, "
                     "or --lossy: z only)")
  common(s, model=False)
  s.add_argument("--model", required=True, help="zoo model name or model folder")
  s.add_argument("--data", required=True, help="an .npz with one uint8 array 'x' [N,H,W(,C)], "
                 "or 'test' for the model's bundled images")
  s.add_argument("--out", required=True, help="the compressed file to write (.vlae)")
  s.add_argument("--lossy", action="store_true", help="transmit only the latents; the decoder "
                 "fills in the pixels (--lossy_decode)")
  s.add_argument("--lossy_decode", choices=("expectation", "mode", "mean", "sample"),
                 default="expectation",
                 help="--lossy: the receiver fills in the pixels with the rounded mean of 16 "
                 "draws from p(x|z) seeded by --seed (expectation: least squared error), or "
                 "greedily pixel by pixel with each one's most probable value (mode), its rounded "
                 "conditional mean (mean) or a seeded draw (sample)")
  s.add_argument("--seed", type=int, default=0, help="--lossy_decode=expectation/sample: the "
                 "stored seed")
  s.add_argument("--lossy_side", choices=("auto", "none"), default="auto",
                 help="--lossy_decode=expectation: side information the encoder adds, chosen "
                 "knowing the images (auto: each image's mean colour and a 3x3 colour gain for "
                 "models of more than 2 levels, none for binary ones; vlae_tf.codec.side_info)")
  s.add_argument("--bin_width_log2", type=int, default=None,
                 help="latent bins of width 2^-B (default "
                 f"{DEFAULT_BIN_WIDTH_LOG2['lossless']} lossless, "
                 f"{DEFAULT_BIN_WIDTH_LOG2['lossy']} lossy; lossy: smaller B = fewer bits, "
                 "more distortion)")
  s.add_argument("--group_size", type=int, default=None,
                 help="images coded side by side (the decoder's batch; stored in the file; "
                 f"default {DEFAULT_GROUP_SIZE})")
  s.add_argument("--no_verify", action="store_true", help="skip the sha256 checks of the model")
  d = sub.add_parser("decompress", help="decompress a .vlae file")
  common(d, model=False)
  d.add_argument("file", help="the compressed file (.vlae)")
  d.add_argument("--out", required=True, help="the .npz to write (array 'x')")
  d.add_argument("--model", default=None, help="zoo model name or folder (default: the name "
                 "stored in the file)")
  d.add_argument("--no_verify", action="store_true", help="skip the sha256 checks of the model")


def _model_of_info(parser, args):
  """``vlae info NAME`` or ``vlae info --model=NAME`` (not two different names, not none)."""
  if args.name is not None and args.model is not None and args.name != args.model:
    problem = f"two models given: {args.name!r} and --model={args.model!r}"
  elif args.name is None and args.model is None:
    problem = "the model is required: vlae info NAME (e.g. vlae info mnist) or --model=NAME"
  else:
    args.model = args.model if args.model is not None else args.name
    return
  parser.exit(2, f"vlae info: error: {problem} (see vlae info --help)\n")


def _codec_process(args, argv):
  """For ``compress`` / ``decompress``: None to run here, else the exit status of the command
  run in a canonical child process (:mod:`vlae_tf.codec.numeric_mode`). The checks that need no
  TensorFlow come first, here (:func:`vlae_tf.codec.file_format.check_command`)."""
  try:
    data = file_format.check_command(args)
    if data is not None and file_format.file_version(data) == 1:
      return None                                   # no mode recorded: decode here, as before
    if numeric_mode.startable():
      return None
    return numeric_mode.rerun_canonical(argv)
  except (ValueError, OSError) as e:
    return _user_error(args, e)


def _user_error(args, e):
  """Prints ``vlae <command>: error: <e on one line>``; :data:`USER_ERROR`."""
  msg = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename else str(e)
  print(f"vlae {args.command}: error: {' '.join(msg.split())}", file=sys.stderr)
  return USER_ERROR


# ---------------------------------------------------- the commands that only read cards
def cmd_list(args):
  with warnings.catch_warnings(record=True) as skipped:
    warnings.simplefilter("always", ZooWarning)
    models = folders.list_models(args.zoo_dir)
  for w in skipped:
    if issubclass(w.category, ZooWarning):
      print(f"vlae list: warning: {w.message}", file=sys.stderr)
  root = folders.zoo_dir(args.zoo_dir)
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
  """The card (checksums verified unless --no_verify, its config held to the schema), without
  its config and file list, then the model's images and latent size as the card states them."""
  d = folders.model_dir(args.model, args.zoo_dir, known_configs=zoo.list_configs())
  card = folders.read_card(d) if args.no_verify else folders.verify(d)
  data = zoo_card.card_config(card, d).get("data", {})
  print(json.dumps({k: v for k, v in card.items() if k not in ("config", "files")}, indent=2))
  print(f"{card.get('name', d.name)}: images {list(data.get('image_shape', []))} "
        f"({data.get('dataset')}), latent size {card.get('results', {}).get('latent_size')}")
  return 0


# Commands that read cards only: no TensorFlow (the others: vlae_tf.cli_commands.COMMANDS).
CARD_COMMANDS = {"list": cmd_list, "info": cmd_info}


def _stdout_closed():
  """stdout's reader closed the pipe: the rest of the output goes nowhere, silently
  (Python's documented recipe: stdout pointed at devnull, so the flush at exit cannot fail
  again); :data:`CLOSED_STDOUT`."""
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, sys.stdout.fileno())
  os.close(devnull)
  return CLOSED_STDOUT


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = build_parser()
  args = parser.parse_args(argv)                    # --help and usage errors end here, without TF
  if args.command == "info":
    _model_of_info(parser, args)
  if getattr(args, "out", None) is not None:
    try:
      atomic.check_output_path(args.out, "--out")     # before any work (and before TF)
    except atomic.OutputError as e:
      print(f"vlae {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
      return USER_ERROR
  if args.command in CARD_COMMANDS:
    try:
      status = CARD_COMMANDS[args.command](args)
      sys.stdout.flush()            # a closed pipe shows here, not at the interpreter's exit
      return status
    except BrokenPipeError:
      return _stdout_closed()
    except (ZooError, ValueError, OSError) as e:
      return _user_error(args, e)
  canonical = False
  if args.command in ("compress", "decompress"):
    status = _codec_process(args, argv)
    if status is not None:
      return status
    canonical = numeric_mode.startable()
  quiet_tf.import_tensorflow(verbose=args.verbose, run_bool_graph=False)
  if canonical:
    numeric_mode.configure_threads()                  # before TensorFlow runs any op
  if not args.verbose:
    quiet_tf.spend_bool_line()
  from vlae_tf import cli_commands  # noqa: E402  (imports TensorFlow: only now, and quietly)
  try:
    status = cli_commands.COMMANDS[args.command](args)
    sys.stdout.flush()              # a closed pipe shows here, not at the interpreter's exit
    return status
  except BrokenPipeError:
    return _stdout_closed()
  except cli_commands.USER_ERRORS as e:
    print(f"vlae {args.command}: error: {cli_commands.one_line(e)}", file=sys.stderr)
    return USER_ERROR


if __name__ == "__main__":
  sys.exit(main())
