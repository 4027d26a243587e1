"""The command-line flags every claim experiment takes, and its absl ``main``."""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from vlae_tf import workdir as vwork


def define_common_flags(fv=flags.FLAGS):
  """The flags every experiment script takes (on ``fv``: scripts and tests use their own)."""
  flags.DEFINE_string("workdir", None, "Experiment folder: one sub-folder per trained model, "
                      "results.json, results.md and the PNG figures.", flag_values=fv)
  flags.DEFINE_bool("smoke", False, "Tiny models, a few steps and images: checks the script "
                    "runs end to end (numbers meaningless).", flag_values=fv)
  flags.DEFINE_bool("full", False, "Paper-size models, the configs' own step counts and the "
                    "whole test set (needs an accelerator).", flag_values=fv)
  flags.DEFINE_integer("steps", None, "Training steps of every model (default: the run size's "
                       "budget).", flag_values=fv)
  flags.DEFINE_integer("eval_examples", None, "Evaluate on n test images evenly spaced over the "
                       "split (-1: all; default: the run size's budget).", flag_values=fv)
  flags.DEFINE_integer("iwae_samples", None, "k of the IWAE NLL bound (0: skip IWAE; default: "
                       "the run size's budget).", flag_values=fv)
  flags.DEFINE_enum("smoke_data", "synthetic", ["synthetic", "real"], "--smoke data: synthetic "
                    "8x8 images (no files) or the real dataset.", flag_values=fv)
  flags.DEFINE_string("data_dir", "", "Folder of the .npz datasets (default: $VLAE_DATA_DIR, "
                      "else TFDS).", flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed of every model's training run and of the evaluation.",
                       flag_values=fv)


def run_size(smoke, full):
  if smoke and full:
    raise ValueError("--smoke and --full are exclusive")
  return "smoke" if smoke else "full" if full else "cpu"


def common_options(fv=flags.FLAGS):
  """Keyword arguments of :class:`Experiment` from the parsed common flags."""
  if not fv.workdir:
    raise ValueError("--workdir is required")
  return dict(workdir=fv.workdir, size=run_size(fv.smoke, fv.full), steps=fv.steps,
              eval_examples=fv.eval_examples, iwae_samples=fv.iwae_samples,
              smoke_data=fv.smoke_data, data_dir=fv.data_dir, seed=fv.seed,
              command=[os.path.basename(sys.executable)] + sys.argv)


def make_main(run, options):
  """An absl ``main(argv)`` calling ``run(**options(FLAGS))`` with TF's INFO chatter off."""
  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    try:
      opts = options(flags.FLAGS)
    except ValueError as e:                       # bad flag values: the message, no traceback
      raise app.UsageError(str(e)) from e
    try:
      run(**opts)
    except vwork.ConfigMismatch as e:             # a --workdir made by another config
      print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
      sys.exit(2)
  return main


def parse_floats(values, name):
  """A list of floats from a comma-list flag, with a clear error."""
  try:
    return [float(v) for v in values]
  except ValueError as e:
    raise ValueError(f"--{name} must be a comma-separated list of numbers, got {values!r}") from e
