"""The codec's canonical numeric mode: the same probabilities on every x86-64 CPU.

An entropy decoder must be fed *bit-identical* probabilities to its encoder's.
Three libraries under the codec pick code paths by the CPU at run time, and each
changes float results (measured on an AVX-512 machine, TF 2.21, NumPy 2.4,
glibc 2.36):

* TensorFlow's oneDNN kernels (on by default on x86), and even with
  ``TF_ENABLE_ONEDNN_OPTS=0`` its Eigen matmul / convolution, whose inner
  kernel is oneDNN's sgemm: a ``[64, 2000] x [2000, 48]`` matmul or a 3x3
  convolution gives other bits under ``ONEDNN_MAX_CPU_ISA=AVX2`` (what a CPU
  without AVX-512 gets) than by default;
* NumPy's SIMD dispatch (``np.exp``, ``np.tanh``, ``np.log1p``, ... have
  AVX2 / AVX-512 versions);
* glibc's libm (``exp``, ``log``, ``pow``, ... have FMA / AVX2 versions, chosen
  by ``ifunc``), which NumPy's fallbacks and constriction's Rust code call.

The canonical mode pins every one of them to a path that every x86-64 CPU able
to run TensorFlow has (TensorFlow's own Eigen code is compiled for one
instruction set, AVX, and does not dispatch), and fixes TensorFlow's thread
counts (sharded reductions sum in an order that depends on them). It is set in
the environment of a *new* process, before Python starts (glibc and NumPy read
it at start-up, TensorFlow at import):

====================================  =================================================
``TF_ENABLE_ONEDNN_OPTS=0``           no oneDNN graph rewrites: TensorFlow's Eigen kernels
``ONEDNN_MAX_CPU_ISA=SSE41``          the sgemm inside Eigen's matmul / conv at its
                                      SSE4.1 kernel, whatever the CPU
``NPY_DISABLE_CPU_FEATURES=...``      every dispatch target of this NumPy build off
                                      (its baseline code only)
``GLIBC_TUNABLES=glibc.cpu.hwcaps=``  libm's baseline (SSE2) variants
``-AVX2,-FMA,...``
``TF_NUM_INTRAOP_THREADS=1``,         one thread each (and :func:`configure_threads`
``TF_NUM_INTEROP_THREADS=1``          sets them before any op)
====================================  =================================================

:data:`MODE` names it; a ``.vlae`` file records it with the TensorFlow and NumPy
versions (header field ``numeric_mode``), and a file decodes only where the same
mode and versions are reproduced (:func:`mismatch` names what differs).

Who runs in it: ``vlae compress`` / ``vlae decompress`` re-run themselves in a
child process with :func:`canonical_environ` (the user's environment with the
settings above overriding theirs), unless they already are such a process.
:mod:`vlae_tf.codec` refuses to code in any other process with a one-line error
saying how to get the mode (the commands; ``python -m vlae_tf.codec.numeric_mode
script.py [args]``, which runs a script in it; or ``portable=False``, which
writes a file that records this process's own mode and decodes only where that
is reproduced, e.g. the same process or machine type). The child is as quiet as
the library: it is not handed the ``TF_CPP_MIN_LOG_LEVEL`` that vlae_tf set in
this process (:func:`vlae_tf.quiet_tf.child_environ`), so its ``import vlae_tf``
hides TensorFlow's start-up lines unless the user set the level themselves.

This module does not import TensorFlow, nor does the package around it (its
``__init__`` imports :mod:`vlae_tf.codec.api` on first use), so the ``vlae``
command decides on the mode before TensorFlow is imported (:func:`startable`
only looks in ``sys.modules``). Asked about the running process's TensorFlow
(:func:`process_mode`, :func:`configure_threads`), it imports TensorFlow if no
one has yet: ``from vlae_tf import codec`` no longer does.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
from numpy._core import _multiarray_umath

from vlae_tf import quiet_tf
from vlae_tf.codec import file_format
from vlae_tf.codec.file_format import CodecError

MODE = CANONICAL = file_format.CANONICAL_MODE    # its name (file_format says when it changes)
PROCESS = file_format.PROCESS_MODE
THREADS = 1
ONEDNN_ISA = "SSE41"
_MARKER = "VLAE_CODEC_NUMERIC_MODE"
_HWCAPS = "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4,-AVX512F,-AVX2_Usable,-FMA_Usable,-FMA4_Usable"
_HOW = ("use `vlae compress` / `vlae decompress`, run your script as `python -m "
        "vlae_tf.codec.numeric_mode script.py`, or pass portable=False (a file that decodes only "
        "where this process's mode is reproduced)")


def _numpy_dispatch():
  """The run-time dispatch targets NumPy was built with (``X86_V3``, ``AVX512_ICL``, ...)."""
  return list(_multiarray_umath.__cpu_dispatch__), dict(_multiarray_umath.__cpu_features__)


def canonical_environ(environ=None) -> dict:
  """``environ`` (default ``os.environ``) with the canonical mode's settings overriding its own."""
  env = dict(os.environ if environ is None else environ)
  dispatch, _ = _numpy_dispatch()
  tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":")
              if t and not t.startswith("glibc.cpu.hwcaps=")]
  env.update({
      "TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": ONEDNN_ISA,
      "NPY_DISABLE_CPU_FEATURES": " ".join(dispatch),
      "GLIBC_TUNABLES": ":".join(tunables + [_HWCAPS]),
      "TF_NUM_INTRAOP_THREADS": str(THREADS), "TF_NUM_INTEROP_THREADS": str(THREADS),
      _MARKER: MODE})
  env.pop("NPY_ENABLE_CPU_FEATURES", None)
  return env


def _environment_differences() -> list:
  """What of the canonical settings this process was not started with (before TF is imported)."""
  problems = []
  if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
    problems.append("oneDNN on (TF_ENABLE_ONEDNN_OPTS is not 0)")
  if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() != ONEDNN_ISA:
    problems.append(f"ONEDNN_MAX_CPU_ISA is not {ONEDNN_ISA}")
  if _HWCAPS not in os.environ.get("GLIBC_TUNABLES", ""):
    problems.append("libm's CPU-specific variants on (GLIBC_TUNABLES)")
  dispatch, features = _numpy_dispatch()
  active = [f for f in dispatch if features.get(f)]
  if active:
    problems.append(f"NumPy's SIMD dispatch on ({', '.join(active)})")
  return problems


def startable() -> bool:
  """True if this process was started in the canonical mode and TensorFlow can still join it
  (not imported yet, or imported with oneDNN off and one thread each)."""
  return not _environment_differences() and not _tensorflow_differences()


def _tensorflow_differences() -> list:
  tf = sys.modules.get("tensorflow")
  if tf is None:
    return []
  problems = []
  if _onednn_enabled():
    problems.append("TensorFlow's oneDNN on")
  threads = _threads(tf)
  if threads != (THREADS, THREADS):
    problems.append(f"TensorFlow's intra/inter-op threads {threads[0]}/{threads[1]} (0 = all "
                    f"cores), not {THREADS}/{THREADS}")
  return problems


def _threads(tf):
  """TensorFlow's intra- and inter-op thread counts: as set through ``tf.config.threading``,
  else as ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` set them when the process
  started (TensorFlow reads them when its runtime starts), else 0 (all cores)."""
  th = tf.config.threading
  counts = []
  for api, env in ((th.get_intra_op_parallelism_threads, "TF_NUM_INTRAOP_THREADS"),
                   (th.get_inter_op_parallelism_threads, "TF_NUM_INTEROP_THREADS")):
    n = api()
    if not n and os.environ.get(env, "").isdigit():
      n = int(os.environ[env])
    counts.append(n)
  return tuple(counts)


def _tensorflow():
  """TensorFlow, imported now if no one has (a canonical process has the mode's settings in its
  environment from the start, so importing it here joins the mode)."""
  return importlib.import_module("tensorflow")


def _onednn_enabled() -> bool:
  """Whether TensorFlow (imported) runs oneDNN kernels, as its own start-up line reports."""
  return bool(importlib.import_module("tensorflow.python.util._pywrap_util_port").IsMklEnabled())


def configure_threads():
  """Sets TensorFlow's intra- and inter-op threads to :data:`THREADS` (before any op runs).

  Does nothing when they are already set so; raises ``RuntimeError`` when TensorFlow's runtime
  started with other counts (they can no longer change).
  """
  tf = _tensorflow()
  if _threads(tf) == (THREADS, THREADS):
    return
  th = tf.config.threading
  th.set_intra_op_parallelism_threads(THREADS)
  th.set_inter_op_parallelism_threads(THREADS)


def process_differences() -> list:
  """How this process differs from the canonical mode (empty: it is in it). Sets the thread
  counts first if TensorFlow's runtime has not started yet."""
  env = _environment_differences()
  if not env and "tensorflow" in sys.modules and not _onednn_enabled():
    try:
      configure_threads()
    except RuntimeError:
      pass
  return env + _tensorflow_differences()


def process_mode() -> dict:
  """The numeric mode of this process as a file records it (the ``numeric_mode`` header field).

  Canonical: ``{"name": MODE, "tensorflow": ..., "numpy": ...}``. Otherwise
  ``"name": "process"`` and what decides its float results here: oneDNN, its ISA cap, the
  thread counts, NumPy's active dispatch targets and the CPU's features.
  """
  tf = _tensorflow()
  mode = {"name": CANONICAL, "tensorflow": tf.__version__, "numpy": np.__version__}
  if process_differences():
    dispatch, features = _numpy_dispatch()
    mode.update(name=PROCESS, onednn=_onednn_enabled(),
                onednn_isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
                threads=list(_threads(tf)),
                numpy_dispatch=[f for f in dispatch if features.get(f)],
                cpu=",".join(sorted(k for k, v in features.items() if v)),
                glibc_tunables=os.environ.get("GLIBC_TUNABLES", ""))
  return mode


def require_canonical(portable=True) -> dict:
  """The mode to code in: :func:`process_mode` if it is canonical or ``portable`` is False;
  else raises :class:`vlae_tf.codec.file_format.CodecError` naming what differs and how to fix
  it."""
  mode = process_mode()
  if portable and mode["name"] != CANONICAL:
    raise CodecError(f"vlae_tf.codec codes only in its canonical numeric mode ({MODE}: oneDNN "
                     f"off, oneDNN ISA {ONEDNN_ISA}, {THREADS} TensorFlow thread, no NumPy / "
                     f"libm CPU dispatch), so that a file decodes on any x86-64 machine; this "
                     f"process has {'; '.join(process_differences())}: {_HOW}")
  return mode


def mismatch(recorded: dict, current: dict) -> str | None:
  """None if a file made in mode ``recorded`` decodes in mode ``current``; else what differs."""
  if recorded == current:
    return None
  keys = sorted(set(recorded) | set(current), key=lambda k: (k != "name", k))
  diffs = []
  for k in keys:
    a, b = recorded.get(k, "unset"), current.get(k, "unset")
    if a != b:
      show = lambda v: v if len(str(v)) <= 40 else str(v)[:37] + "..."
      diffs.append(f"{k} {show(a)} in the file, {show(b)} here")
  return ", ".join(diffs)


def _run_canonical(args) -> int:
  """``python ARGS`` in a child process in the canonical mode (sharing stdin, stdout and
  stderr; TensorFlow's start-up lines hidden there as here, module doc); its exit status. A
  process that was started for the mode and still is not in it raises :class:`CodecError`
  instead of starting another (no endless chain of children)."""
  if os.environ.get(_MARKER) == MODE:
    raise CodecError("could not start the codec's canonical numeric mode: the process started for "
                     f"it has {'; '.join(process_differences())}")
  for stream in (sys.stdout, sys.stderr):
    stream.flush()
  env = quiet_tf.child_environ(canonical_environ())   # not vlae_tf's own log level: quiet there too
  return subprocess.call([sys.executable, *args], env=env)


def rerun_canonical(argv) -> int:
  """Runs ``python -m vlae_tf.cli ARGV`` in a canonical child process; its exit status."""
  return _run_canonical(["-m", "vlae_tf.cli", *argv])


def main(argv=None) -> int:
  """``python -m vlae_tf.codec.numeric_mode script.py [args]``: runs a script in the canonical
  mode."""
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ("-h", "--help"):
    print("usage: python -m vlae_tf.codec.numeric_mode script.py [args]   (runs the script in the "
          "codec's canonical numeric mode)")
    return 0 if argv else 2
  try:
    return _run_canonical(argv)
  except CodecError as e:
    print(f"python -m vlae_tf.codec.numeric_mode: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
