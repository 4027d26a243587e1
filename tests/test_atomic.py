"""vlae_tf.atomic: the one home of temp-then-rename writes (files, JSON, folders)."""

import json
import os
import pathlib
import re

import pytest

from vlae_tf import atomic

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_write_json_round_trips_with_a_final_newline(tmp_path):
  path = tmp_path / "a.json"
  atomic.write_json(path, {"b": 1, "a": [1.5, None]})
  text = path.read_text()
  assert text.endswith("\n") and text.index('"a"') < text.index('"b"')    # sorted keys
  assert json.loads(text) == {"a": [1.5, None], "b": 1}
  atomic.write_json(path, {"b": 1, "a": 2}, sort_keys=False)
  assert path.read_text().index('"b"') < path.read_text().index('"a"')


def test_write_json_that_fails_keeps_the_previous_file(tmp_path):
  path = tmp_path / "a.json"
  atomic.write_json(path, {"ok": True})
  with pytest.raises(TypeError):
    atomic.write_json(path, {"bad": object()})
  assert json.loads(path.read_text()) == {"ok": True}
  assert os.listdir(tmp_path) == ["a.json"]          # no temporary left behind


def _fill(folder, text):
  (pathlib.Path(folder) / "f.txt").write_text(text)


def test_folder_replace_swaps_a_whole_folder_and_leaves_nothing_else(tmp_path):
  target = tmp_path / "model"
  with atomic.folder(target) as tmp:
    _fill(tmp, "old")
  with pytest.raises(OSError):
    with atomic.folder(target) as tmp:               # without replace an existing folder stays
      _fill(tmp, "new")
  with atomic.folder(target, replace=True) as tmp:
    _fill(tmp, "new")
  assert (target / "f.txt").read_text() == "new"
  assert sorted(os.listdir(tmp_path)) == ["model"]
  assert oct(target.stat().st_mode & 0o777) != oct(0o700)   # readable by a server, not mkdtemp's 0700


def test_folder_replace_that_fails_keeps_the_previous_folder(tmp_path):
  target = tmp_path / "model"
  with atomic.folder(target) as tmp:
    _fill(tmp, "old")
  with pytest.raises(RuntimeError):
    with atomic.folder(target, replace=True) as tmp:
      _fill(tmp, "half")
      raise RuntimeError("export failed")
  assert (target / "f.txt").read_text() == "old"
  assert sorted(os.listdir(tmp_path)) == ["model"]


# Writing a temporary and renaming it is atomic.py's job; elsewhere only moving damaged
# checkpoint files aside (checkpoints.py) renames files.
_RENAMES = re.compile(r"os\.replace\(|os\.rename\(|\.rename\(|\.replace\(tmp|mkdtemp\(|mkstemp\(")


def test_temp_then_rename_lives_only_in_atomic_py():
  offenders = []
  for path in sorted((ROOT / "vlae_tf").rglob("*.py")):
    if path.name == "atomic.py":
      continue
    for n, line in enumerate(path.read_text().splitlines(), 1):
      if _RENAMES.search(line) and not (path.name == "checkpoints.py" and "ckpt_dir" in line):
        offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
  assert not offenders, "hand-made atomic writes (use vlae_tf.atomic):\n" + "\n".join(offenders)
