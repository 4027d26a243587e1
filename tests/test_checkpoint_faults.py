"""A truncated checkpoint data file, through the real ``train.py`` process (issue 21).

TF's checkpoint reader answers a ``.data-*`` file cut short with
``IndexError: Read less bytes than requested``, which ``vlae_tf.checkpoints``
did not treat as an unrestorable checkpoint: resume died with a traceback
(exit 1) although the previous checkpoint was intact.
"""

import os
import shutil

import pytest

from test_faults import _config_file_of, _files, _run_train_py, _steps
from test_train import train_config
from vlae_tf import checkpoints, training

DATA = ".data-00000-of-00001"


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory):
  """A finished 6-step run (checkpoints 3 and 6) to copy and truncate."""
  wd = str(tmp_path_factory.mktemp("base") / "run")
  training.train(train_config(steps=6), wd)
  return wd


def _truncate(ckpt_dir, name, keep):
  """Cuts ``<name>.data-*`` to ``keep(size)`` bytes; returns what is left of it."""
  path = os.path.join(ckpt_dir, name + DATA)
  with open(path, "r+b") as f:
    f.truncate(keep(os.path.getsize(path)))
  return open(path, "rb").read()


@pytest.mark.parametrize("keep", [lambda n: n // 2, lambda n: n - 1], ids=["half", "last_byte"])
def test_a_truncated_latest_data_file_is_set_aside_and_the_run_resumes(six_steps, tmp_path, keep):
  wd = str(tmp_path / "run")
  shutil.copytree(six_steps, wd)
  ckpt_dir = os.path.join(wd, "checkpoints")
  cut = _truncate(ckpt_dir, "ckpt-6", keep)
  rc, out, err = _run_train_py(f"--config={_config_file_of(wd, tmp_path)}", f"--workdir={wd}",
                               "--config.train.steps=8")
  assert rc == 0 and "Traceback" not in err, err[-3000:]
  assert "skipping checkpoint" in out and "ckpt-6: it cannot be restored" in out, out
  assert "truncated" in out and "resumed from" in out and "ckpt-3 at step 3" in out, out
  assert _steps(wd) == list(range(1, 9))                        # steps 4..6 once, not twice
  kept = os.path.join(ckpt_dir, checkpoints.UNREADABLE_DIR, "ckpt-6" + DATA)
  assert open(kept, "rb").read() == cut                         # kept as it was, for inspection
  assert sorted(n for n in os.listdir(ckpt_dir) if n.endswith(".index")) == [
      "ckpt-3.index", "ckpt-6.index", "ckpt-8.index"]           # a new, whole ckpt-6
  assert "deprecated" not in err, err                           # no TF noise about the index file


def test_every_data_file_truncated_is_refused_with_one_line_and_exit_2(six_steps, tmp_path):
  wd = str(tmp_path / "run")
  shutil.copytree(six_steps, wd)
  ckpt_dir = os.path.join(wd, "checkpoints")
  for name in ("ckpt-3", "ckpt-6"):
    _truncate(ckpt_dir, name, lambda n: n // 3)
  before, metrics = _files(ckpt_dir), _steps(wd)
  rc, _, err = _run_train_py(f"--config={_config_file_of(wd, tmp_path)}", f"--workdir={wd}",
                             "--config.train.steps=8")
  assert rc == 2 and len(err.strip().splitlines()) == 1, err[-3000:]
  assert err.startswith("error: ") and "2 checkpoint(s) and none can be restored" in err, err
  assert "Read less bytes than requested" in err and "Refusing to start again" in err, err
  assert _files(ckpt_dir) == before and _steps(wd) == metrics   # nothing moved or rewritten
  assert not os.path.exists(os.path.join(ckpt_dir, checkpoints.UNREADABLE_DIR))
