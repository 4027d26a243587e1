"""Train, evaluate or export a VLAE (see docs/TRAINING.md).

  python train.py --config=zoo/mnist.py --workdir=runs/mnist --config.train.steps=200000
  python train.py --config=zoo/mnist.py --workdir=runs/mnist --strategy=mirrored
  python train.py --flagfile=runs/mnist.flags
  python train.py --workdir=runs/mnist --mode=eval --eval_iwae_samples=100 --eval_num_examples=1000
  python train.py --workdir=runs/mnist --mode=export --export_dir=saved_models/mnist \
      --command="python train.py --config=zoo/mnist.py ..." --hardware="2 CPU cores"

Data: set VLAE_DATA_DIR to a folder of .npz files (layout in vlae_tf/data_readers.py) or let TFDS
download.
"""

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from vlae_tf import config as vconfig
from vlae_tf import data_readers, quiet_tf
from vlae_tf.datasets import DataError

# Reading the flags imports no TensorFlow (the zoo configs and vlae_tf.config do not), so main
# sets the switches TensorFlow reads when it is imported -- TF_ENABLE_ONEDNN_OPTS=0 for
# --deterministic, the log level for --verbose -- and only then imports it (docs/TRAINING.md,
# "Determinism").
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
# A --config file of your own may import TensorFlow while the flags are read: it starts quietly.
quiet_tf.install_import_hook()

config_flags.DEFINE_config_file("config", None, "Config file, e.g. zoo/mnist.py (train mode: "
                                "required; eval/export: defaults to <workdir>/config.json).")
flags.DEFINE_string("workdir", None, "Work directory: config.json, checkpoints, TensorBoard, "
                    "eval.json.", required=True)
flags.DEFINE_enum("mode", "train", ["train", "eval", "export"], "What to do.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy (multi_worker reads TF_CONFIG).")
flags.DEFINE_integer("num_cpu_devices", 0, "mirrored: split the CPU into this many logical "
                     "devices instead of using GPUs (testing).")
flags.DEFINE_string("tpu", "", "tpu: TPU name or address ('' = local / from the environment).")
flags.DEFINE_bool("deterministic", False, "tf.config.experimental.enable_op_determinism() "
                  "and TF_ENABLE_ONEDNN_OPTS=0 (bitwise-reproducible runs and resumes on CPU; "
                  "about 2x slower, see bench/determinism.py).")
flags.DEFINE_integer("eval_iwae_samples", None, "eval: override config.eval.iwae_samples.")
flags.DEFINE_integer("eval_num_examples", None, "eval: override config.eval.num_examples "
                     "(first n test examples).")
flags.DEFINE_integer("eval_iwae_examples", None, "eval: IWAE on an evenly spaced subset of "
                     "this many test examples (ELBO still on all); override "
                     "config.eval.iwae_examples.")
flags.DEFINE_string("export_dir", None, "export: the zoo model folder to write, e.g. "
                    "saved_models/mnist (SavedModel, Keras weights, card; the card's numbers come "
                    "from <workdir>/eval.json: run --mode=eval first).")
flags.DEFINE_string("eval_json", None, "export: the evaluation for the card (default "
                    "<workdir>/eval.json; of the exported checkpoint's step).")
flags.DEFINE_string("command", None, "export: the exact training command, for the card.")
flags.DEFINE_string("hardware", None, "export: the training machine, e.g. '2 CPU cores (Xeon)'.")
flags.DEFINE_float("wall_time_hours", None, "export: the training wall time, for the card.")
flags.DEFINE_float("paper_nll", None, "export: override the config's paper_nll (nats).")
flags.DEFINE_string("notes", None, "export: free text for the card.")
flags.DEFINE_string("learning_curve", None, "export: a PNG of experiments/learning_curve.py to "
                    "package beside the card.")
flags.DEFINE_integer("version", 1, "export: the SavedModel's version folder (TF Serving).")
flags.DEFINE_integer("num_examples", 8, "export: test images to bundle (0: none).")
flags.DEFINE_bool("ema", True, "export: the EMA weights (--noema: the raw weights).")
flags.DEFINE_bool("overwrite", False, "export: replace an existing model folder.")
flags.DEFINE_bool("verbose", False, "Show TensorFlow's start-up and C++ log lines and absl INFO "
                  "logging (hidden by default: see vlae_tf/quiet_tf.py).")
flags.DEFINE_string("init_from", None, "train: start a new run from a pretrained zoo model's "
                    "weights, zoo:<name> (fine-tuning; the config must have its architecture).")
flags.DEFINE_list("init_skip", [], "train, with --init_from: parts NOT loaded from the zoo model "
                  "(decoder: a new decoder on the zoo model's encoder, conditioning and prior; "
                  "its model.decoder_* settings may differ).")

FLAGS = flags.FLAGS


class UsageError(Exception):
  """A command-line mistake found in main (one line, exit 2; absl's UsageError prints the help)."""


def parse_flags(argv):
  """absl's flag parsing, but a mistake is one line and exit status 2 (docs/TRAINING.md).

  absl prints ``FATAL Flags parsing error: ...`` plus a help hint and exits 1 for a bad
  value (``--config.train.learning_rate=abc``, ``--mode=bogus``), an unknown flag or a
  missing ``--workdir``; an override naming an unknown config key raises a KeyError /
  AttributeError here, before main.
  """
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _fail(f"bad command line: {e} (see python train.py --helpshort)")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    while len(e.args) == 1 and isinstance(e.args[0], BaseException):  # AttributeError(KeyError(..))
      e = e.args[0]
    _fail(f"bad command line: {e.args[0] if isinstance(e, KeyError) and e.args else e}")


def _fail(message):
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(2)


def start_tensorflow(deterministic, verbose):
  """Imports TensorFlow (quietly unless ``verbose``) after setting what it reads on import.

  ``deterministic``: ``TF_ENABLE_ONEDNN_OPTS=0`` before the import (oneDNN's CPU kernels are
  not bitwise reproducible), then ``enable_op_determinism()``. A ``--config`` file that
  imports TensorFlow itself leaves it too late: a usage error says so.
  """
  if deterministic and os.environ.get(ONEDNN_ENV) != "0":
    if "tensorflow" in sys.modules:
      raise UsageError(f"--deterministic: the --config file imported TensorFlow before oneDNN "
                       f"could be turned off; set {ONEDNN_ENV}=0 in the environment, or use a "
                       f"config file that does not import TensorFlow")
    os.environ[ONEDNN_ENV] = "0"
  tf = quiet_tf.import_tensorflow(verbose=verbose)
  if deterministic:
    tf.config.experimental.enable_op_determinism()
  return tf


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  config = FLAGS.config
  if FLAGS.mode == "train" and config is None:
    raise UsageError("--config is required to train (e.g. --config=zoo/mnist.py)")
  if FLAGS.mode == "export" and not FLAGS.export_dir:
    raise UsageError("--export_dir is required with --mode=export")
  if config is not None:
    vconfig.validate_config(config)   # every bad value, before TensorFlow is even imported
  if FLAGS.mode == "train":
    data_readers.check_local_training_data(config)   # missing or bad files: also before TF
  start_tensorflow(FLAGS.deterministic, FLAGS.verbose)
  if not FLAGS.verbose:
    logging.set_verbosity(logging.WARNING)  # TF's absl INFO chatter (checkpoint sharding, ...)
  # These import TensorFlow, so they come after start_tensorflow.
  from vlae_tf import checkpoints, data, distribute, training, workdir
  from vlae_tf.pretrained import keras_weights, packaging
  from vlae_tf.pretrained import store as zoo_store
  try:
    if config is not None:
      data.resolve_data_config(config)  # a dataset of your own: image shape from its data
    if FLAGS.mode == "train":
      if FLAGS.init_from:
        try:
          keras_weights.check_init_from(FLAGS.init_from, config, skip=FLAGS.init_skip)
        except (ValueError, zoo_store.ZooError) as e:
          raise UsageError(str(e)) from None
      strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices, FLAGS.tpu)
      training.train(config, FLAGS.workdir, strategy, init_from=FLAGS.init_from,
                     init_skip=FLAGS.init_skip)   # checks config against the workdir first
    elif FLAGS.mode == "eval":
      result = workdir.evaluate_workdir(FLAGS.workdir, config, FLAGS.eval_iwae_samples,
                                        FLAGS.eval_num_examples,
                                        iwae_examples=FLAGS.eval_iwae_examples,
                                        log=lambda line: print(line, flush=True))
      print(json.dumps(result, indent=2, sort_keys=True))
    else:
      card = {k: getattr(FLAGS, k) for k in ("command", "hardware", "wall_time_hours",
                                              "paper_nll", "notes")
              if getattr(FLAGS, k) is not None}
      target = packaging.package_run(
          FLAGS.workdir, FLAGS.export_dir, config, eval_json=FLAGS.eval_json,
          version=FLAGS.version, num_examples=FLAGS.num_examples, overwrite=FLAGS.overwrite,
          use_ema=FLAGS.ema, learning_curve=FLAGS.learning_curve, **card)
      print(f"wrote {target}\n  {zoo_store.headline(zoo_store.read_card(target))}")
  except (checkpoints.CheckpointError, training.TrainingError, zoo_store.ZooError) as e:
    _fail(e)   # no checkpoint restores, too many non-finite steps: one line, exit 2


if __name__ == "__main__":
  try:
    app.run(main, flags_parser=parse_flags)
  except DataError as e:  # bad data: file, array, expectation
    _fail(f"data: {e}")
  except (UsageError, ValueError, OSError) as e:  # config, workdir, data not found, full disk, ...
    _fail(e)
