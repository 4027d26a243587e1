"""TensorBoard: an install path that works with TensorFlow 2.21, and tags the docs name (issue 21).

TensorFlow 2.21 no longer installs the ``tensorboard`` viewer that
docs/TRAINING.md tells you to run, and the docs did not name the per-group KL
scalars that training writes.
"""

import ast
import glob
import os
import re

import pytest
import tensorflow as tf

from helpers import train_config
from vlae_tf import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _extras():
  tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
  call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
              and getattr(n.func, "id", "") == "setup")
  return ast.literal_eval(next(k.value for k in call.keywords if k.arg == "extras_require"))


def test_tensorboard_is_an_extra_and_the_docs_say_how_to_install_it():
  assert any(r.startswith("tensorboard>=") for r in _extras()["tensorboard"])
  docs = open(os.path.join(ROOT, "docs", "TRAINING.md")).read()
  assert 'pip install -e ".[tensorboard]"' in docs and "tensorboard --logdir" in docs


@pytest.mark.slow
def test_the_tags_the_docs_name_are_the_tags_training_writes(tmp_path):
  cfg = train_config(steps=2)
  cfg.objective.free_bits_groups = 3
  wd = str(tmp_path / "run")
  training.train(cfg, wd)
  written = set()
  for path in glob.glob(os.path.join(wd, "tensorboard", "**", "events.*"), recursive=True):
    for event in tf.compat.v1.train.summary_iterator(path):
      written |= {v.tag for v in event.summary.value}
  assert {"train/kl_per_group", "train_kl_per_group/000", "train_kl_per_group/002"} <= written
  docs = open(os.path.join(ROOT, "docs", "TRAINING.md")).read()
  section = docs[docs.index("TensorBoard: "):docs.index("## Training behaviour")]
  named = set(re.findall(r"`((?:train|eval|train_kl_per_group)/[a-z_0-9]+)`", section))
  assert {"train/kl_per_group", "train_kl_per_group/000", "train_kl_per_group/001"} <= named
  assert named - {"train_kl_per_group/001"} <= written, named - written
