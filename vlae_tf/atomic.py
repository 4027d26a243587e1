"""Atomic output files and folders: write under a temporary name, then rename into place.

``os.replace`` within one folder is atomic on POSIX: a reader sees the old
file or the complete new one, never a torn one. So a failure while writing (a
full disk, a read-only folder, an exception, SIGKILL) leaves the previous file
untouched and no partial file under the final name; the temporary
(``.<name>.<random>.tmp`` next to the target) is removed when Python can
still run, and is dot-hidden otherwise.

  with atomic.open_for_writing("samples.png", "wb") as f:
    f.write(png_bytes)

  with atomic.folder("saved_models/mnist/1") as tmp:   # fill tmp; renamed on success
    tf.saved_model.save(module, tmp)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile


class OutputError(OSError):
  """An output path that cannot be written (a folder, a read-only place, a full disk, ...)."""


def check_output_path(path, what="output"):
  """Raises :class:`OutputError` if ``path`` names a folder or its parent is not a folder."""
  path = os.fspath(path)
  if os.path.isdir(path):
    raise OutputError(f"{what} {path!r} is a directory; give a file name, e.g. "
                      f"{os.path.join(path, 'out.png')!r}")
  parent = os.path.dirname(os.path.abspath(path))
  if os.path.exists(parent) and not os.path.isdir(parent):
    raise OutputError(f"{what} {path!r}: {parent!r} is not a directory")


@contextlib.contextmanager
def open_for_writing(path, mode="wb", **kwargs):
  """Like ``open(path, mode)`` for writing, but the file appears at ``path`` only when complete."""
  path = os.fspath(path)
  check_output_path(path)
  parent = os.path.dirname(os.path.abspath(path))
  tmp = None
  try:
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    with os.fdopen(fd, mode, **kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    if os.path.exists(path):
      shutil.copymode(path, tmp)
    else:
      os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
  except BaseException as e:
    if tmp is not None:
      with contextlib.suppress(OSError):
        os.remove(tmp)
    if isinstance(e, OSError) and not isinstance(e, OutputError):
      raise _output_error(path, e) from e
    raise


def _output_error(path, e):
  err = OutputError(f"cannot write {path}: {e.strerror or e}"
                    + (" (the previous file is unchanged)" if os.path.exists(path) else ""))
  err.errno = e.errno
  return err


def write_bytes(path, data: bytes):
  with open_for_writing(path, "wb") as f:
    f.write(data)


def write_text(path, text: str):
  with open_for_writing(path, "w", encoding="utf-8") as f:
    f.write(text)


def write_json(path, obj, indent=2, sort_keys=True):
  """``json.dump(obj)`` to ``path`` atomically, with a final newline."""
  write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def folder(path, replace=False):
  """Yields a temporary sibling folder; on success it is renamed to ``path``. On failure it is
  deleted and ``path`` is left as it was.

  ``path`` must not exist or be empty, unless ``replace``: then an existing ``path`` is first
  renamed aside (so at every moment the old folder or the new one is whole under a name) and
  deleted once the new one is in place.
  """
  path = os.path.normpath(os.fspath(path))
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
  old = None
  try:
    yield tmp
    os.chmod(tmp, 0o777 & ~_umask())    # mkdtemp makes it private; servers must read it
    if os.path.isdir(path) and not os.listdir(path):
      os.rmdir(path)
    elif replace and os.path.exists(path):
      old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old.", dir=parent)
      os.rename(path, os.path.join(old, "previous"))
    os.rename(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if old is not None and not os.path.exists(path):   # put the previous folder back
      os.rename(os.path.join(old, "previous"), path)
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)
    raise
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


__all__ = ["OutputError", "check_output_path", "open_for_writing", "write_bytes", "write_text",
           "write_json", "folder"]
