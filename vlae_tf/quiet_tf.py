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

This module imports nothing heavy, so a command can parse its arguments and
answer ``--help`` before deciding to import TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

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


def import_tensorflow(verbose: bool = False, run_bool_graph: bool = False):
  """``import tensorflow`` (and find its devices) without start-up noise unless ``verbose``.

  Returns the ``tensorflow`` module. Call it before anything else imports
  TensorFlow; once TensorFlow is imported it only returns the module.
  """
  if "tensorflow" in sys.modules:
    return sys.modules["tensorflow"]
  if verbose:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    import tensorflow as tf
    return tf
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with filtered_stderr_fd():
    import tensorflow as tf
    tf.config.list_physical_devices()  # initialises the device platforms (cuInit) inside the capture
    if run_bool_graph:
      # spends oneDNN's once-only DT_BOOL line (a 1x1 transpose is optimised away: 2x2)
      tf.function(lambda x: tf.transpose(x > 0))(tf.ones([2, 2]))
  return tf


__all__ = ["import_tensorflow", "is_startup_noise", "filtered_stderr_fd"]
