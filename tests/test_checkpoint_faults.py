"""A damaged work directory never loses a run: checkpoints, their index, config.json, a full disk.

Real checkpoints damaged on disk (a missing or garbage index file, corrupted
or truncated data files), a real file-size limit (``RLIMIT_FSIZE``: writes past
it fail with EFBIG, as on a full disk), and the real ``train.py`` process where
the exit status matters (issues 11 and 21). A truncated ``.data-*`` file: TF's
checkpoint reader answers it with ``IndexError: Read less bytes than
requested``, which ``vlae_tf.checkpoints`` did not treat as an unrestorable
checkpoint: resume died with a traceback (exit 1) although the previous
checkpoint was intact.

``six_steps`` (shared_fixtures.py): a finished 6-step run, copied before it is damaged.
"""

import os
import shutil

import pytest
import tensorflow as tf

from helpers import (config_file_of, file_contents, file_size_limit, logged_steps, run_train_py,
                     train_config)
from vlae_tf import checkpoints, training
from vlae_tf import workdir as vwork

DATA = ".data-00000-of-00001"


def _copy(six_steps, tmp_path):
  """A private copy of the finished run ``six_steps``, free to damage."""
  wd = str(tmp_path / "run")
  shutil.copytree(six_steps, wd)
  return wd


def _truncate(ckpt_dir, name, keep):
  """Cuts ``<name>.data-*`` to ``keep(size)`` bytes; returns what is left of it."""
  path = os.path.join(ckpt_dir, name + DATA)
  with open(path, "r+b") as f:
    f.truncate(keep(os.path.getsize(path)))
  return open(path, "rb").read()


@pytest.mark.slow
@pytest.mark.parametrize("keep,process", [
    pytest.param(lambda n: n // 2, True, marks=pytest.mark.subprocess),
    (lambda n: n - 1, False)], ids=["half-train.py", "last_byte-in_process"])
def test_a_truncated_latest_data_file_is_set_aside_and_the_run_resumes(six_steps, tmp_path, keep,
                                                                       process, capfd):
  # One cut through train.py (its exit status, no traceback, no TF noise about the index file),
  # the other in this process (a train.py start costs ~10 s of CPU): the same resume.
  wd = _copy(six_steps, tmp_path)
  ckpt_dir = os.path.join(wd, "checkpoints")
  cut = _truncate(ckpt_dir, "ckpt-6", keep)
  if process:
    rc, out, err = run_train_py(f"--config={config_file_of(wd, tmp_path)}", f"--workdir={wd}",
                                "--config.train.steps=8")
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    assert "deprecated" not in err, err                         # no TF noise about the index file
  else:
    capfd.readouterr()
    assert training.train(train_config(steps=8), wd)["step"] == 8
    out = capfd.readouterr().out
  assert "skipping checkpoint" in out and "ckpt-6: it cannot be restored" in out, out
  assert "truncated" in out and "resumed from" in out and "ckpt-3 at step 3" in out, out
  assert logged_steps(wd) == list(range(1, 9))                  # steps 4..6 once, not twice
  kept = os.path.join(ckpt_dir, checkpoints.UNREADABLE_DIR, "ckpt-6" + DATA)
  assert open(kept, "rb").read() == cut                         # kept as it was, for inspection
  assert sorted(n for n in os.listdir(ckpt_dir) if n.endswith(".index")) == [
      "ckpt-3.index", "ckpt-6.index", "ckpt-8.index"]           # a new, whole ckpt-6


@pytest.mark.slow
def test_every_data_file_truncated_is_refused_not_a_traceback(six_steps, tmp_path):
  # TF's IndexError of a truncated file is the CheckpointError that train.py turns into one line
  # and exit 2 (its process: test_unreadable_checkpoints_are_refused_not_restarted_from_zero).
  wd = _copy(six_steps, tmp_path)
  ckpt_dir = os.path.join(wd, "checkpoints")
  for name in ("ckpt-3", "ckpt-6"):
    _truncate(ckpt_dir, name, lambda n: n // 3)
  before, metrics = file_contents(ckpt_dir), logged_steps(wd)
  with pytest.raises(checkpoints.CheckpointError) as e:
    training.train(train_config(steps=8), wd)
  err = str(e.value)
  assert "2 checkpoint(s) and none can be restored" in err, err
  assert "Read less bytes than requested" in err and "Refusing to start again" in err, err
  assert file_contents(ckpt_dir) == before
  assert logged_steps(wd) == metrics                            # nothing moved or rewritten
  assert not os.path.exists(os.path.join(ckpt_dir, checkpoints.UNREADABLE_DIR))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "empty", "garbage"])
def test_resume_finds_checkpoints_without_a_usable_index_file(six_steps, tmp_path, damage, capsys):
  # Defect: with the index file missing or unparseable, the run restarted at step 0, overwrote
  # ckpt-3 / ckpt-6 and appended steps 1.. again to metrics.jsonl (or died with a traceback).
  wd = _copy(six_steps, tmp_path)
  ckpt_dir = os.path.join(wd, "checkpoints")
  index = os.path.join(ckpt_dir, "checkpoint")
  if damage == "missing":
    os.remove(index)
  else:
    with open(index, "w") as f:
      f.write("" if damage == "empty" else "model_checkpoint_path: \x00{{{ not a proto")
  before = {k: v for k, v in file_contents(ckpt_dir).items() if k.startswith("ckpt-")}
  out = training.train(train_config(steps=8), wd)
  assert out["trained_steps"] == 2 and out["step"] == 8
  log = capsys.readouterr().out
  assert "resumed from" in log and "ckpt-6 at step 6" in log
  assert logged_steps(wd) == list(range(1, 9))                  # no step twice
  after = file_contents(ckpt_dir)
  for name, content in before.items():                          # nothing overwritten
    assert after[name] == content, name
  assert vwork.latest_checkpoint(wd).endswith("ckpt-8")
  assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-8")  # the index is whole again


def _corrupt(prefix):
  data = prefix + ".data-00000-of-00001"
  blob = bytearray(open(data, "rb").read())
  for i in range(0, len(blob), 7):
    blob[i] ^= 0xFF
  with open(data, "wb") as f:
    f.write(bytes(blob))


@pytest.mark.slow
def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(six_steps, tmp_path, capsys):
  # Defect: a corrupted latest checkpoint ended in a DataLossError traceback although ckpt-3 was
  # intact. Now: ckpt-6 is reported and set aside (kept, not overwritten), the run resumes at 3
  # and the metrics of steps 4..6 are recomputed, not duplicated.
  wd = _copy(six_steps, tmp_path)
  ckpt_dir = os.path.join(wd, "checkpoints")
  _corrupt(os.path.join(ckpt_dir, "ckpt-6"))
  damaged = open(os.path.join(ckpt_dir, "ckpt-6.data-00000-of-00001"), "rb").read()
  out = training.train(train_config(steps=7), wd)
  log = capsys.readouterr().out
  assert "skipping checkpoint" in log and "ckpt-6: it cannot be restored" in log
  assert "checksum does not match" in log
  assert "resumed from" in log and "ckpt-3 at step 3" in log
  assert out["trained_steps"] == 4 and logged_steps(wd) == list(range(1, 8))
  kept = os.path.join(ckpt_dir, checkpoints.UNREADABLE_DIR, "ckpt-6.data-00000-of-00001")
  assert open(kept, "rb").read() == damaged
  assert vwork.latest_checkpoint(wd).endswith("ckpt-7")


@pytest.mark.slow
@pytest.mark.subprocess
def test_unreadable_checkpoints_are_refused_not_restarted_from_zero(six_steps, tmp_path):
  wd = _copy(six_steps, tmp_path)
  ckpt_dir = os.path.join(wd, "checkpoints")
  for n in (3, 6):
    _corrupt(os.path.join(ckpt_dir, f"ckpt-{n}"))
  os.remove(os.path.join(ckpt_dir, "checkpoint"))
  before = file_contents(ckpt_dir)
  metrics_before = logged_steps(wd)
  with pytest.raises(checkpoints.CheckpointError, match=r"(?s)2 checkpoint\(s\) and none can be "
                     r"restored.*ckpt-6.*ckpt-3.*Refusing to start again from step 0"):
    training.train(train_config(steps=8), wd)
  assert file_contents(ckpt_dir) == before and logged_steps(wd) == metrics_before  # untouched
  # train.py: one line naming the problem, exit 2.
  rc, _, err = run_train_py(f"--config={config_file_of(wd, tmp_path)}", f"--workdir={wd}")
  assert rc == 2 and "none can be restored" in err and "Traceback" not in err, err
  assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
  assert file_contents(ckpt_dir) == before and logged_steps(wd) == metrics_before


@pytest.mark.slow
def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, capsys):
  # A checkpoint save that fails half way (here: the data file hits the file-size limit, as
  # on a full disk) stops the run with a clear error; the previous checkpoint stays usable and
  # the next start removes the *_temp debris and resumes from it.
  wd = str(tmp_path / "run")
  training.train(train_config(steps=3), wd)
  ckpt_dir = os.path.join(wd, "checkpoints")
  size = os.path.getsize(os.path.join(ckpt_dir, "ckpt-3.data-00000-of-00001"))
  with file_size_limit(size // 2):
    with pytest.raises(checkpoints.CheckpointError, match=r"checkpoint of step 6.*ckpt-3 is "
                       r"intact"):
      training.train(train_config(steps=6), wd)
  assert any(n.endswith("_temp") for n in os.listdir(ckpt_dir))     # what the failed save left
  assert vwork.latest_checkpoint(wd).endswith("ckpt-3")
  capsys.readouterr()
  out = training.train(train_config(steps=6), wd)
  assert "interrupted checkpoint save" in capsys.readouterr().out
  assert out["trained_steps"] == 3 and logged_steps(wd) == list(range(1, 7))
  assert not any("_temp" in n for n in os.listdir(ckpt_dir))


@pytest.mark.parametrize("content, message", [
    ("", "not valid JSON"), ("{\"seed\": 0,", "not valid JSON"),
    ("[1, 2]", "does not hold a config"), ("null", "does not hold a config")])
def test_invalid_config_json_is_a_clear_error(tmp_path, content, message):
  wd = tmp_path / "run"
  wd.mkdir()
  (wd / "config.json").write_text(content)
  with pytest.raises(ValueError, match=f"work directory .*{message}"):
    training.train(train_config(), str(wd))
  with pytest.raises(ValueError, match=message):
    vwork.load_model_from_workdir(str(wd))
