"""Finding, restoring and keeping the checkpoints of a training work directory.

A work directory's ``checkpoints/`` folder holds ``ckpt-<step>.index`` +
``ckpt-<step>.data-*`` (written by ``tf.train.CheckpointManager`` with
``checkpoint_number = step``) and the index file ``checkpoints/checkpoint``
naming the latest one. Resuming must never lose a run, so:

* The candidates are the union of what the index file names and every
  ``ckpt-<n>.index`` on disk, newest ``n`` first: a missing, empty or
  unparseable index file does not hide the checkpoints (TF's
  ``latest_checkpoint`` returns None then, and the run used to restart at
  step 0 over them).
* Each candidate is restored in turn; one that fails (``DataLossError`` of a
  corrupted file, the ``IndexError: Read less bytes than requested`` of a
  truncated one, a missing data shard, variables that do not match the
  model) is reported with the reason and moved to ``checkpoints/unreadable/``
  (kept, never overwritten by the resumed run's later saves), and the next
  older one is tried.
* When the folder holds checkpoints and none restores, :class:`CheckpointError`
  is raised: the run refuses to start rather than silently begin again at 0.
* ``ckpt-<n>_temp`` folders are what an interrupted save leaves behind (TF
  writes shards there, then renames them into place); they never hold a usable
  checkpoint and are removed before resuming. An interrupted save therefore
  leaves the previous checkpoint usable.
* The index file is rewritten (atomically, by TF) to list the checkpoints that
  are really there, so ``max_to_keep`` keeps counting them.
* ``metrics.jsonl`` lines of steps after the restored step are dropped (they
  are about to be recomputed), so a resumed run never duplicates a step.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import tensorflow as tf
from tensorflow.python.util import deprecation as tf_deprecation

from vlae_tf import atomic

INDEX_FILE = "checkpoint"
UNREADABLE_DIR = "unreadable"
_CKPT = re.compile(r"^ckpt-(\d+)\.index$")
# What restoring a damaged checkpoint raises: OpError (DataLossError of a flipped byte, NotFoundError
# of a missing shard), AssertionError / ValueError (variables that do not match the model), and
# IndexError ("Read less bytes than requested": TF's reader on a truncated .data-* file).
_UNRESTORABLE = (tf.errors.OpError, AssertionError, ValueError, IndexError)


class CheckpointError(RuntimeError):
  """Checkpoints that cannot be restored (none of them), or a checkpoint that cannot be written."""


def numbered_checkpoints(ckpt_dir) -> list[str]:
  """Every ``<ckpt_dir>/ckpt-<n>`` with an ``.index`` file, newest ``n`` first."""
  if not os.path.isdir(ckpt_dir):
    return []
  found = [(int(m.group(1)), m.group(0)[:-len(".index")])
           for m in map(_CKPT.match, os.listdir(ckpt_dir)) if m]
  return [os.path.join(ckpt_dir, name) for _, name in sorted(found, reverse=True)]


def indexed_checkpoint(ckpt_dir):
  """``(path or None, problem or None)``: what the index file names, and why it cannot be used."""
  index = os.path.join(ckpt_dir, INDEX_FILE)
  if not os.path.exists(index):
    return None, f"{index} is missing"
  try:
    state = tf.train.get_checkpoint_state(ckpt_dir)
  except Exception as e:  # noqa: BLE001 -- a damaged text proto raises parse errors of many kinds
    return None, f"{index} is damaged ({type(e).__name__}: {str(e).splitlines()[0]})"
  if state is None or not state.model_checkpoint_path:
    return None, f"{index} names no checkpoint"
  path = state.model_checkpoint_path
  return (path if os.path.isabs(path) else os.path.join(ckpt_dir, path)), None


def remove_debris(ckpt_dir, log=print):
  """Deletes the ``*_temp`` folders / files an interrupted save left in ``ckpt_dir``."""
  if not os.path.isdir(ckpt_dir):
    return
  for name in sorted(os.listdir(ckpt_dir)):
    if re.match(r"^ckpt-\d+_temp", name) or name.startswith(f"{INDEX_FILE}.tmp"):
      path = os.path.join(ckpt_dir, name)
      log(f"removing {path}: left by an interrupted checkpoint save")
      if os.path.isdir(path):
        shutil.rmtree(path)
      else:
        os.remove(path)


def _set_aside(prefix, log):
  """Moves every file of checkpoint ``prefix`` into ``unreadable/`` (nothing is deleted)."""
  ckpt_dir, name = os.path.split(prefix)
  target = os.path.join(ckpt_dir, UNREADABLE_DIR)
  os.makedirs(target, exist_ok=True)
  for f in sorted(os.listdir(ckpt_dir)):
    if f == name + ".index" or f.startswith(name + ".data-"):
      dest = os.path.join(target, f)
      n = 1
      while os.path.exists(dest):
        dest = os.path.join(target, f"{f}.{n}")
        n += 1
      os.replace(os.path.join(ckpt_dir, f), dest)
  log(f"moved the files of {name} to {target}/ (kept for inspection; not used)")


def latest(ckpt_dir):
  """The newest checkpoint on disk (named by the index file or found by listing), or None."""
  indexed, _ = indexed_checkpoint(ckpt_dir)
  found = numbered_checkpoints(ckpt_dir)
  if indexed and os.path.exists(indexed + ".index") and (
      not found or (_number(indexed) or 0) >= (_number(found[0]) or 0)):
    return indexed
  return found[0] if found else None


def restore(checkpoint, ckpt_dir, log=print, repair=True):
  """Restores the newest checkpoint of ``ckpt_dir`` that restores; returns its path or None.

  ``checkpoint`` is the ``tf.train.Checkpoint`` to restore into (every object
  it tracks must be matched). Unusable newer checkpoints are reported through
  ``log``. With ``repair`` (the training run that owns the folder, never a
  reader of a live run) save debris is removed, unusable newer checkpoints are
  moved to ``unreadable/`` and the index file is rewritten. None: the folder
  holds no checkpoint (a fresh run). Raises :class:`CheckpointError` when it
  holds some and none restores.
  """
  if repair:
    remove_debris(ckpt_dir, log)
  indexed, problem = indexed_checkpoint(ckpt_dir)
  listed = numbered_checkpoints(ckpt_dir)
  if problem and listed and "missing" not in problem:
    log(f"warning: {problem}; using the checkpoints found on disk instead")
  elif problem and listed:
    log(f"warning: {problem}; found {len(listed)} checkpoint(s) on disk: using them")
  candidates = list(listed)
  if indexed and indexed not in candidates and (
      os.path.exists(indexed + ".index") or not listed):
    candidates.insert(0, indexed)
  failures = []
  for path in candidates:
    try:
      status = checkpoint.restore(path)
      status.assert_existing_objects_matched()
      status.expect_partial()            # eval / export restore only the model and the EMA
    except _UNRESTORABLE as e:
      reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else e}"
      if isinstance(e, IndexError):
        reason += "; a data file is shorter than its index says: truncated"
      failures.append((path, reason))
      log(f"warning: skipping checkpoint {path}: it cannot be restored ({reason})")
      continue
    if repair:
      for bad, _ in failures:
        if os.path.exists(bad + ".index"):
          _set_aside(bad, log)
      if failures or problem or indexed != path:
        rewrite_index(ckpt_dir, path)
    return path
  if failures:
    raise CheckpointError(
        f"{ckpt_dir} holds {len(failures)} checkpoint(s) and none can be restored ("
        + "; ".join(f"{os.path.basename(p)}: {r}" for p, r in failures)
        + "). Refusing to start again from step 0 over them: repair or move the folder, or "
        "use a new --workdir.")
  return None


def save(manager, step):
  """``manager.save(checkpoint_number=step)``; a failed save (a full disk, ...) is a
  :class:`CheckpointError` that names the intact previous checkpoint."""
  try:
    manager.save(checkpoint_number=step)
  except (OSError, tf.errors.OpError) as e:
    raise CheckpointError(f"could not write the checkpoint of step {step} ("
                          f"{str(e).strip().splitlines()[0]}); the last good checkpoint "
                          f"{manager.latest_checkpoint} is intact") from e


def rewrite_index(ckpt_dir, latest):
  """Rewrites the index file to name ``latest`` and every older numbered checkpoint on disk."""
  older = [p for p in reversed(numbered_checkpoints(ckpt_dir)) if p != latest]
  step = _number(latest)
  older = [p for p in older if step is None or (_number(p) or 0) < step]
  # TF 2 has no public way to write the index file of checkpoints it did not save itself; the
  # v1 function logs a deprecation warning (twice: TF's logger and absl's) that a user cannot act on.
  with tf_deprecation.silence():
    tf.compat.v1.train.update_checkpoint_state(
        ckpt_dir, os.path.basename(latest),
        all_model_checkpoint_paths=[os.path.basename(p) for p in older + [latest]])


def _number(path):
  m = re.search(r"ckpt-(\d+)$", path)
  return int(m.group(1)) if m else None


def rewind_jsonl(path, step):
  """Drops the lines of ``path`` (JSON objects with a ``step``) after ``step``, and a torn last line.

  Returns the number of lines dropped. The file is rewritten atomically.
  """
  if not os.path.exists(path):
    return 0
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines(keepends=True)
  keep = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue                           # a line torn by a crash mid-write
    if isinstance(record, dict) and int(record.get("step", 0)) > step:
      continue
    keep.append(line if line.endswith("\n") else line + "\n")
  dropped = len(lines) - len(keep)
  if dropped:
    with atomic.open_for_writing(path, "w", encoding="utf-8") as f:
      f.writelines(keep)
  return dropped


__all__ = ["CheckpointError", "numbered_checkpoints", "indexed_checkpoint", "remove_debris",
           "latest", "restore", "save", "rewrite_index", "rewind_jsonl"]
