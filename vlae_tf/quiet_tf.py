"""Importing TensorFlow without its start-up log noise (for the ``vlae`` command and ``train.py``).

On a CPU-only machine ``import tensorflow`` prints, twice (once per copy of absl
in TF's shared libraries), lines such as::

  WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
  I0000 00:00:... port.cc:153] oneDNN custom operations are on. ...
  I0000 00:00:... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

and the first device query adds ``E0000 ... failed call to cuInit: ... CUDA error``.
On CPUs without AVX-512 the first graph that transposes a bool tensor (the
input checks of an exported SavedModel do) logs, once per process and at error
severity, ``oneDNN supports DT_BOOL only on platforms with AVX-512. Falling
back to the default Eigen-based implementation``.
``TF_CPP_MIN_LOG_LEVEL`` cannot hide the import-time lines: they are written by
C++ static initialisers before absl's logging is initialised, straight to file
descriptor 2. So :func:`import_tensorflow` points fd 2 at a temporary file
while it imports TensorFlow, enumerates the physical devices (which runs
``cuInit``) and, with ``run_bool_graph=True``, runs one bool transpose in a
graph (which spends that once-per-process oneDNN line; it starts TensorFlow's
runtime, after which logical devices can no longer be configured, so only the
``vlae`` command asks for it, not ``train.py``), then restores fd 2 and writes back every captured line that is not
start-up noise (:func:`is_startup_noise`): real errors still reach the user.
Nothing about the devices changes: GPUs are found and used exactly as without
it (no ``CUDA_VISIBLE_DEVICES``, no ``TF_ENABLE_ONEDNN_OPTS``). Later C++ log
lines obey ``TF_CPP_MIN_LOG_LEVEL``, which is set to 2 (errors only) unless the
user set it. ``verbose=True`` does none of this.

The library is quiet too (:func:`quiet_library`, called by ``vlae_tf/__init__``):
unless the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves (any value: then TF
behaves exactly as it does without vlae_tf), ``import vlae_tf`` sets it to 2 and
puts a finder on ``sys.meta_path`` that wraps the first ``import tensorflow``
(by vlae_tf or by the user's own code after ``import vlae_tf``) in
:func:`filtered_stderr_fd`, with the device enumeration, and then removes
itself; :func:`spend_bool_line` is what ``zoo.load`` calls before a SavedModel's
first input check. ``import vlae_tf`` itself still imports no TensorFlow.

A child Python process (``python -m vlae_tf.codec.numeric_mode script.py``, the
``vlae`` codec commands' canonical child) inherits the environment, and with it
the ``TF_CPP_MIN_LOG_LEVEL=2`` vlae_tf set here: its own ``import vlae_tf`` would
take that for the user's and leave TensorFlow's start-up lines on. Such a child
is started with :func:`child_environ`, which leaves out the level vlae_tf set
(a level the user set is passed on), so the child is quiet the same way.

This module imports nothing heavy, so a command can parse its arguments and
answer ``--help`` before deciding to import TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile

LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
OWN_LEVEL = "2"   # what vlae_tf sets when the user has not (errors only)
# The user's level: as the environment had it when vlae_tf was imported (its __init__ imports this
# module before anything sets it), None when unset.
_USER_LEVEL = os.environ.get(LEVEL_ENV)

# absl's C++ log prefix: severity letter, MMDD, time (odd before absl is initialised), thread, file:line]
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \S+\s+\d+ [^\]\s]+:\d+\] (.*)$")
_PRE_INIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Error-severity lines that only say "no usable CUDA here" (or re-registering CUDA plugins), or
# that oneDNN falls back to Eigen for bool tensors on this CPU.
_CUDA_NOISE = re.compile(r"cuInit|CUDA error|cuda drivers|Unable to register cu(DNN|FFT|BLAS) "
                         r"factory|TF-TRT|could not find TensorRT|oneDNN supports DT_BOOL only",
                         re.IGNORECASE)


def is_startup_noise(line: str) -> bool:
  """True for TF's start-up info / warning lines and its "no CUDA here" errors."""
  line = line.rstrip("\n")
  if line.strip() == _PRE_INIT:
    return True
  m = _ABSL_LINE.match(line)
  if not m:
    return False
  severity, message = m.groups()
  return severity in "IW" or bool(_CUDA_NOISE.search(message))


@contextlib.contextmanager
def filtered_stderr_fd():
  """Captures file descriptor 2 in a temporary file; replays the non-noise lines on exit."""
  try:
    fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
  except (AttributeError, OSError, ValueError):  # no real stderr (embedded interpreters)
    yield
    return
  for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(Exception):
      stream.flush()
  saved = os.dup(fd)
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), fd)
    try:
      yield
    finally:
      with contextlib.suppress(Exception):
        sys.stderr.flush()
      os.dup2(saved, fd)
      os.close(saved)
      tmp.seek(0)
      kept = [l for l in tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
              if not is_startup_noise(l)]
      if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
  """Runs TensorFlow's own loader inside :func:`filtered_stderr_fd`, then finds the devices."""

  def __init__(self, loader):
    self.loader = loader

  def create_module(self, spec):
    return self.loader.create_module(spec)

  def exec_module(self, module):
    module.__loader__ = module.__spec__.loader = self.loader   # TF sees its own loader
    with filtered_stderr_fd():
      self.loader.exec_module(module)
      module.config.list_physical_devices()   # cuInit, inside the capture (devices unchanged)


class _QuietFinder(importlib.abc.MetaPathFinder):
  """Finds ``tensorflow`` with the other finders, once, and hands it to :class:`_QuietLoader`."""

  def find_spec(self, fullname, path=None, target=None):
    if fullname != "tensorflow":
      return None
    remove_import_hook()
    for finder in sys.meta_path:
      spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
      if spec is not None:
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
          spec.loader = _QuietLoader(spec.loader)
        return spec
    return None


_STATE = {"finder": None, "level_is_ours": False, "bool_line_spent": False}


def quiet_library() -> bool:
  """Quiets TensorFlow's start-up for library users (module doc); True if it did.

  Nothing happens when the user set ``TF_CPP_MIN_LOG_LEVEL`` or TensorFlow is
  already imported.
  """
  if LEVEL_ENV in os.environ or "tensorflow" in sys.modules or _STATE["finder"] is not None:
    return False
  os.environ[LEVEL_ENV] = OWN_LEVEL
  _STATE["level_is_ours"] = True
  install_import_hook()
  return True


def install_import_hook():
  """Wraps the next ``import tensorflow``, by anyone, in :func:`filtered_stderr_fd` (module doc).

  :func:`quiet_library` calls it; ``train.py`` calls it before reading its flags,
  so a ``--config`` file that imports TensorFlow itself starts it quietly too
  (:func:`import_tensorflow`, called after the flags, removes it and decides for
  itself). Nothing happens once TensorFlow is imported.
  """
  if "tensorflow" not in sys.modules and _STATE["finder"] is None:
    _STATE["finder"] = _QuietFinder()
    sys.meta_path.insert(0, _STATE["finder"])


def remove_import_hook():
  """Takes the finder of :func:`quiet_library` off ``sys.meta_path`` (if it is there)."""
  finder, _STATE["finder"] = _STATE["finder"], None
  if finder is not None and finder in sys.meta_path:
    sys.meta_path.remove(finder)


def is_quiet() -> bool:
  """True while TensorFlow's log lines are being hidden for the library (:func:`quiet_library`)."""
  return _STATE["level_is_ours"] and os.environ.get(LEVEL_ENV) == OWN_LEVEL


def child_environ(environ=None) -> dict:
  """``environ`` (default ``os.environ``) for a child Python process, less vlae_tf's log level.

  Leaves out ``TF_CPP_MIN_LOG_LEVEL`` when vlae_tf set it (it was unset when
  vlae_tf was imported and is still :data:`OWN_LEVEL`), so that the child's
  ``import vlae_tf`` quiets TensorFlow's start-up as this process's did (module
  doc); a level the user set is passed on, and the child's TensorFlow then
  behaves as it does without vlae_tf.
  """
  env = dict(os.environ if environ is None else environ)
  if _USER_LEVEL is None and env.get(LEVEL_ENV) == OWN_LEVEL:
    del env[LEVEL_ENV]
  return env


def spend_bool_line():
  """Runs a bool transpose in a graph once per process, in :func:`filtered_stderr_fd`.

  oneDNN logs "supports DT_BOOL only on platforms with AVX-512" the first time one
  runs (a SavedModel's input checks do). This starts TensorFlow's runtime: after it
  logical devices can no longer be configured, so only call it where that has
  happened anyway (loading a SavedModel, the ``vlae`` command).
  """
  if _STATE["bool_line_spent"]:
    return
  tf = sys.modules["tensorflow"]
  with filtered_stderr_fd():
    tf.function(lambda x: tf.transpose(x > 0))(tf.ones([2, 2]))   # a 1x1 one is optimised away
  _STATE["bool_line_spent"] = True


def import_tensorflow(verbose: bool = False, run_bool_graph: bool = False):
  """``import tensorflow`` (and find its devices) without start-up noise unless ``verbose``.

  Returns the ``tensorflow`` module. Call it before anything else imports
  TensorFlow; once TensorFlow is imported it only returns the module.
  """
  remove_import_hook()                   # this import decides for itself
  if "tensorflow" in sys.modules:
    return sys.modules["tensorflow"]
  if verbose:
    if _STATE["level_is_ours"]:          # set by quiet_library, not by the user
      os.environ[LEVEL_ENV] = "0"
      _STATE["level_is_ours"] = False
    os.environ.setdefault(LEVEL_ENV, "0")
    import tensorflow as tf
    return tf
  os.environ.setdefault(LEVEL_ENV, OWN_LEVEL)
  with filtered_stderr_fd():
    import tensorflow as tf
    tf.config.list_physical_devices()  # initialises the device platforms (cuInit) inside the capture
  if run_bool_graph:
    spend_bool_line()
  return tf


__all__ = ["import_tensorflow", "is_startup_noise", "filtered_stderr_fd", "quiet_library",
           "install_import_hook", "remove_import_hook", "is_quiet", "child_environ",
           "spend_bool_line", "LEVEL_ENV", "OWN_LEVEL"]
