"""A .vlae file decodes in another environment: the codec's canonical numeric mode (issue 21 §1).

The real thing runs real processes: ``python -m vlae_tf.cli compress`` under environments
that change TensorFlow's float results (the default, oneDNN off, ``ONEDNN_MAX_CPU_ISA=AVX2``
as on a CPU without AVX-512, one thread), on the shipped ``mnist`` and ``cifar10`` zoo
models: the files must be the same bytes, and decode under other environments to the same
images. mnist is written under all four and decoded under two; cifar10 written under one
and decoded under another (each process costs ~6 s of CPU, and the canonical child overrides
every variable the four differ in: test_every_environment_becomes_the_same_canonical_one checks
that without a process). The control shows the failure the mode prevents: the library coding
in each process's own mode (portable=False) with oneDNN on (pytest's process) and off writes
different payloads. Format-version-1 files (no mode recorded) are refused in one line.
"""

import hashlib
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vlae_tf import cli, codec
from vlae_tf.codec import file_format, numeric_mode
from vlae_tf.pretrained import keras_weights, store

_ENVS = {"default": {}, "onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
         "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
         "one_thread": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
                        "OMP_NUM_THREADS": "1"}}
_OURS = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "NPY_DISABLE_CPU_FEATURES",
         "NPY_ENABLE_CPU_FEATURES", "GLIBC_TUNABLES", "TF_NUM_INTRAOP_THREADS",
         "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "VLAE_CODEC_NUMERIC_MODE")


def _environ(name):
  env = {k: v for k, v in os.environ.items() if k not in _OURS}
  env.update(_ENVS[name])
  return env


def _vlae(args, env_name):
  r = subprocess.run([sys.executable, "-m", "vlae_tf.cli", *args], env=_environ(env_name),
                     capture_output=True, text=True, timeout=900)
  return r.returncode, r.stdout, r.stderr.strip()


def _examples(name, n):
  return np.load(os.path.join(store.model_dir(name), "examples.npz"))["x"][:n]


def test_every_environment_becomes_the_same_canonical_one():
  """What the four environments change, the canonical child's environment overrides; only
  OMP_NUM_THREADS stays as it was (OpenMP is not TensorFlow's CPU runtime, and the mnist file
  written under one_thread is checked to be the same bytes)."""
  base = numeric_mode.canonical_environ(_environ("default"))
  for name in _ENVS:
    env = numeric_mode.canonical_environ(_environ(name))
    assert {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"} == base, name


def _write(name, x, flags, envs, d):
  """``vlae compress`` of ``x`` under each of ``envs``: ``{env: the file's bytes}``."""
  data = d / "x.npz"
  np.savez(data, x=x)
  files = {}
  for env in envs:
    out = d / f"{env}.vlae"
    rc, _, err = _vlae(["compress", f"--model={name}", f"--data={data}", f"--out={out}", *flags],
                       env)
    assert rc == 0, err[-2000:]
    files[env] = out.read_bytes()
  return files


@pytest.fixture(scope="module")
def mnist_files(tmp_path_factory):
  """2 mnist test images coded by ``vlae compress`` under every environment (``(x, folder,
  {env: bytes})``); the script test decodes one of them too (each process costs ~6 s of CPU)."""
  d = tmp_path_factory.mktemp("mnist_files")
  x = _examples("mnist", 2)
  return x, d, _write("mnist", x, [], list(_ENVS), d)


def _check_same_file_decoded_elsewhere(x, d, files, readers):
  """Every writer wrote the same canonical bytes; each reader decodes another's file to ``x``."""
  first = next(iter(files.values()))
  header = codec.read_header(first)
  assert header["numeric_mode"]["name"] == numeric_mode.CANONICAL
  assert header["numeric_mode"]["tensorflow"] and header["numeric_mode"]["numpy"]
  assert all(f == first for f in files.values()), "the environments coded differently"
  writers = list(files)
  for i, env in enumerate(readers):
    maker = writers[i % len(writers)]
    assert maker != env
    back = d / f"{env}.npz"
    rc, out, err = _vlae(["decompress", str(d / f"{maker}.vlae"), f"--out={back}"], env)
    assert rc == 0, err[-2000:]
    assert "exact" in out
    np.testing.assert_array_equal(np.load(back)["x"], x)


@pytest.mark.slow
@pytest.mark.subprocess
def test_every_environment_writes_the_same_mnist_file_and_another_decodes_it(mnist_files):
  """Written under all four environments, decoded under AVX2 (and with oneDNN off in the script
  test below). The environments differ only in what the canonical child overrides, so a decode
  under each adds processes, not checks: the same bytes from all four already mean the same
  probabilities in all four."""
  x, d, files = mnist_files
  _check_same_file_decoded_elsewhere(x, d, files, ["avx2"])


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_cifar10_file_written_without_avx512_decodes_with_onednn_off(tmp_path):
  """The logistic mixture's pixels: an exact decode in another environment means that both
  processes computed every sub-pixel's probabilities to the same bits (the same bytes from
  several writers: the mnist test above, and test_codec_side's lossy cifar10 file)."""
  x = _examples("cifar10", 1)
  files = _write("cifar10", x, ["--group_size=1"], ["avx2"], tmp_path)
  _check_same_file_decoded_elsewhere(x, tmp_path, files, ["onednn_off"])


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_script_run_by_codec_mode_decodes_with_the_library(mnist_files, tmp_path):
  """``python -m vlae_tf.codec.numeric_mode script.py`` is the library's way into the mode."""
  x, d, _ = mnist_files
  f = d / "avx2.vlae"                             # written by `vlae compress` under AVX2
  script = tmp_path / "decode.py"
  script.write_text(textwrap.dedent("""
      import sys
      import numpy as np
      from vlae_tf import codec
      from vlae_tf.codec import numeric_mode
      print(numeric_mode.process_mode()["name"])
      np.save(sys.argv[2], codec.decompress("mnist", open(sys.argv[1], "rb").read()))
  """))
  r = subprocess.run([sys.executable, "-m", "vlae_tf.codec.numeric_mode", str(script), str(f),
                      str(tmp_path / "y.npy")], env=_environ("onednn_off"), capture_output=True,
                     text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.split() == [numeric_mode.CANONICAL]
  np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), x)


def _reseal(header, payload, version=file_format.FORMAT_VERSION):
  body = file_format.pack(header, payload)[:-32]
  body = body[:8] + struct.pack("<H", version) + body[10:]
  return body + hashlib.sha256(body).digest()


def _as_version_1(data):
  """The file as the format-version-1 encoder wrote it: no numeric_mode field."""
  header, payload = file_format.unpack(data)
  del header["numeric_mode"], header["payload_words"]
  return _reseal(header, payload, version=1)


def _with_mode(data, **mode):
  header, payload = file_format.unpack(data)
  del header["payload_words"]
  return _reseal(dict(header, numeric_mode=mode), payload)


@pytest.fixture(scope="module")
def here():
  """The shipped mnist, one image, and its file coded in this (pytest's, not canonical) process."""
  model = keras_weights.load_keras("mnist")
  x = _examples("mnist", 1)
  return model, x, codec.compress(model, x, group_size=1, portable=False)


def test_the_library_refuses_to_code_outside_the_canonical_mode(here):
  model, x, _ = here
  with pytest.raises(codec.CodecError) as e:
    codec.compress(model, x)
  msg = str(e.value)
  assert "\n" not in msg and "canonical numeric mode" in msg and "oneDNN on" in msg
  assert "python -m vlae_tf.codec.numeric_mode script.py" in msg and "portable=False" in msg


def test_a_process_mode_file_records_it_and_decodes_here(here):
  model, x, data = here
  mode = codec.read_header(data)["numeric_mode"]
  assert mode["name"] == numeric_mode.PROCESS and mode["onednn"] is True
  np.testing.assert_array_equal(codec.decompress(model, data), x)


def test_another_tensorflow_version_is_named(here):
  model, _, data = here
  mode = dict(codec.read_header(data)["numeric_mode"], tensorflow="2.0.0")
  with pytest.raises(codec.CodecError, match="tensorflow 2.0.0 in the file, 2\\.") as e:
    codec.decompress(model, _with_mode(data, **mode))
  assert "\n" not in str(e.value) and "not reproduce" in str(e.value)


def test_a_canonical_file_in_another_process_says_how_to_decode_it(here):
  model, _, data = here
  mode = codec.read_header(data)["numeric_mode"]
  crafted = _with_mode(data, name=numeric_mode.CANONICAL, tensorflow=mode["tensorflow"],
                       numpy=mode["numpy"])
  with pytest.raises(codec.CodecError, match=f"coded in numeric mode '{numeric_mode.CANONICAL}'.*"
                     f"name {numeric_mode.CANONICAL} in the file, process here.*vlae decompress"):
    codec.decompress(model, crafted)


def test_a_file_of_another_canonical_mode_names_it(here):
  """Another vlae_tf version's canonical mode (its probabilities computed otherwise)."""
  model, _, data = here
  mode = codec.read_header(data)["numeric_mode"]
  crafted = _with_mode(data, name="canonical-1", tensorflow=mode["tensorflow"], numpy=mode["numpy"])
  with pytest.raises(codec.CodecError, match="'canonical-1' of another vlae_tf version.*"
                     f"{numeric_mode.CANONICAL}") as e:
    codec.decompress(model, crafted)
  assert "\n" not in str(e.value)


def test_a_numeric_mode_the_encoder_cannot_write_is_refused(here):
  _, _, data = here
  with pytest.raises(codec.CodecError, match="header field 'numeric_mode' must be"):
    codec.read_header(_with_mode(data, name="fast"))


def test_a_process_started_for_the_mode_that_is_not_in_it_starts_no_other():
  """The marker of a canonical child with a non-canonical environment: one line and exit 2,
  not an endless chain of children."""
  env = dict(_environ("default"), VLAE_CODEC_NUMERIC_MODE=numeric_mode.MODE)
  r = subprocess.run([sys.executable, "-m", "vlae_tf.codec.numeric_mode", "-c", "print('ran')"],
                     env=env, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2 and r.stdout == ""
  assert r.stderr.count("\n") == 1
  assert "could not start the codec's canonical numeric mode" in r.stderr
  r = subprocess.run([sys.executable, "-m", "vlae_tf.codec.numeric_mode", "-c", "print('ran')"],
                     env=_environ("default"), capture_output=True, text=True, timeout=120)
  assert r.returncode == 0 and r.stdout == "ran\n"


def test_a_lossless_format_version_1_file_is_refused_in_one_line(here):
  model, _, data = here
  old = _as_version_1(data)
  assert file_format.file_version(old) == 1 and codec.read_header(old)["numeric_mode"] is None
  with pytest.raises(codec.CodecError, match="format version 1.*commit 409a2ca") as e:
    codec.decompress(model, old)
  assert "\n" not in str(e.value)


@pytest.mark.slow
@pytest.mark.subprocess
def test_without_the_canonical_mode_the_environments_code_differently(here, tmp_path, capfd):
  """The control: the same images coded by the library in each process's own mode
  (portable=False) with oneDNN on (this process, as a default environment has it) and in a fresh
  process with oneDNN off give other payloads, the failure the canonical mode prevents; and
  `vlae decompress` refuses a lossless format-version-1 file with one line and exit 2."""
  model, _, _ = here
  assert numeric_mode.process_mode()["onednn"] is True          # this process: oneDNN on
  script = tmp_path / "code_here.py"       # not code.py: that is a standard module
  script.write_text(textwrap.dedent("""
      import sys
      import numpy as np
      from vlae_tf import codec
      from vlae_tf.codec import file_format
      x = np.load(sys.argv[1])["x"]
      data = codec.compress("mnist", x, group_size=2, portable=False)
      np.save(sys.argv[2], file_format.unpack(data)[1])
  """))
  x = _examples("mnist", 2)
  data = tmp_path / "x.npz"
  np.savez(data, x=x)
  r = subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "onednn_off.npy")],
                     env=_environ("onednn_off"), capture_output=True, text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-2000:]
  here_file = codec.compress(model, x, group_size=2, portable=False)
  assert not np.array_equal(file_format.unpack(here_file)[1], np.load(tmp_path / "onednn_off.npy"))
  f = tmp_path / "old.vlae"
  f.write_bytes(_as_version_1(here_file))
  # A format-version-1 file records no mode: `vlae decompress` handles it in its own process
  # (no canonical child), here pytest's.
  capfd.readouterr()
  assert cli.main(["decompress", str(f), f"--out={tmp_path / 'b.npz'}"]) == 2
  err = capfd.readouterr().err.strip()
  assert err.splitlines()[-1].startswith("vlae decompress: error: ")
  assert "format version 1" in err.splitlines()[-1] and not (tmp_path / "b.npz").exists()
