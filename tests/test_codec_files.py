"""Crafted and damaged .vlae files, and the codec commands' output files (issue 21).

A crafted file carries a valid checksum (anyone can recompute it: it is no signature), so
every header field must be checked against what the encoder writes before any work, and
the decoder must stop once the payload cannot hold what the header claims.
"""

import functools
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import vlae_tf
from helpers import NAME, tiny_config
from vlae_tf import cli, codec
from vlae_tf.codec import api, chain, file_format, numeric_mode

# pytest's process is not in the codec's canonical numeric mode (vlae_tf.codec.numeric_mode):
# files made here record its own mode and decode here (tests/test_codec_portable.py covers the
# real thing).
compress = functools.partial(codec.compress, portable=False)
encode = functools.partial(codec.encode, portable=False)

_MODEL = {}
_QUICK_S = 20.0      # a refused file costs at most a Coder's set-up (TF tracing), never a decode


def tiny_model():
  if "m" not in _MODEL:
    keras.utils.set_random_seed(0)
    _MODEL["m"] = vlae_tf.build_model(tiny_config())
  return _MODEL["m"]


def binary_images(n, seed=0):
  return (np.random.default_rng(seed).random((n, 4, 4, 1)) < 0.4).astype(np.uint8)


@pytest.fixture(scope="module")
def files():
  m = tiny_model()
  x = binary_images(16, seed=3)
  return {"lossless": compress(m, x, group_size=4),
          "lossy": compress(m, x[:4], lossy=True, group_size=2, bin_width_log2=2)}


def _split(data):
  """(header dict, payload bytes) of a file, read by hand (not through file_format)."""
  length = struct.unpack("<I", data[10:14])[0]
  return json.loads(data[14:14 + length]), data[14 + length:-32]


def _seal(text, payload, length=None):
  """A file around header ``text`` whose checksum is recomputed as the format does."""
  text = text.encode() if isinstance(text, str) else text
  body = (file_format.MAGIC + struct.pack("<HI", file_format.FORMAT_VERSION,
                                           len(text) if length is None else length)
          + text + payload)
  return body + hashlib.sha256(body).digest()


def craft(data, **changes):
  """``data`` with header fields changed (``RAW:<json>`` puts literal JSON), resealed."""
  header, payload = _split(data)
  header.update(changes)
  text = json.dumps(header, sort_keys=True)
  for v in changes.values():
    if isinstance(v, str) and v.startswith("RAW:"):
      text = text.replace(json.dumps(v), v[4:])
  return _seal(text, payload)


def refused(data, match, model=None):
  """Decompressing ``data`` ends quickly in a one-line CodecError matching ``match``."""
  start = time.perf_counter()
  with pytest.raises(codec.CodecError, match=match) as info:
    codec.decompress(model or tiny_model(), data, what="crafted.vlae")
  assert "\n" not in str(info.value)
  assert time.perf_counter() - start < _QUICK_S
  return str(info.value)


def _field(name):
  return f"header field '{name}'"


# --------------------------------------------------- the header, field by field
LOSSLESS_CASES = [
    # (changes, the field the message must name); the crashes first
    ({"payload_words": "RAW:1e400"}, _field("payload_words")),       # was OverflowError
    ({"bin_width_log2": 2000}, _field("bin_width_log2")),            # was ZeroDivisionError
    ({"initial_words": 2 ** 40}, _field("initial_words")),           # was MemoryError
    ({"latent_range": -8.0}, _field("latent_range")),                # was a PanicException
    ({"latent_range": 2.0 ** 18}, _field("latent_range")),           # was a PanicException
    ({"latent_range": "RAW:NaN"}, "unreadable header.*NaN"),
    ({"latent_range": "RAW:Infinity"}, "unreadable header.*Infinity"),
    ({"latent_range": "RAW:1e400"}, _field("latent_range")),
    ({"latent_range": 1e-9}, _field("latent_range")),                # one bin: a panic too
    ({"group_size": True}, _field("group_size")),                    # bool is not int
    ({"group_size": 0}, _field("group_size")),
    ({"group_size": 4.0}, _field("group_size")),
    ({"bin_width_log2": 6.5}, _field("bin_width_log2")),
    ({"count": 17}, _field("count")),
    ({"count": True, "groups": [1], "input_shape": [1, 4, 4, 1]}, _field("count")),
    ({"groups": [1, 4, 4, 7]}, _field("groups")),                    # a group over group_size
    ({"groups": [4, 4, 4, 4]}, _field("groups")),                    # lossless starts with 1
    ({"groups": "RAW:400"}, _field("groups")),
    ({"input_shape": [16, 4, 4, 2]}, _field("input_shape")),
    ({"input_shape": [True, 4, 4, 1], "count": 1, "groups": [1]}, _field("input_shape")),
    ({"image_shape": "abc"}, _field("image_shape")),
    ({"dtype": "float32"}, _field("dtype")),
    ({"skipped_words": 10 ** 6}, _field("skipped_words")),
    ({"initial_bits": 7}, _field("initial_bits")),
    ({"initial_seed": 1}, _field("initial_seed")),
    ({"images_sha256": "00"}, _field("images_sha256")),
    ({"weights_sha256": 12}, _field("weights_sha256")),
    ({"model": ["mnist"]}, _field("model")),
    ({"mode": "best"}, _field("mode")),
    ({"lossy_seed": 0}, "lossy_seed"),                               # a field lossless lacks
    ({"payload_words": 3}, _field("payload_words")),
]


@pytest.mark.parametrize("changes,match", LOSSLESS_CASES,
                         ids=[f"{next(iter(c))}={str(next(iter(c.values())))[:12]}"
                              for c, _ in LOSSLESS_CASES])
def test_a_crafted_lossless_header_is_refused_naming_the_field(files, changes, match):
  refused(craft(files["lossless"], **changes), match)


LOSSY_CASES = [
    ({"lossy_decode": "bogus"}, _field("lossy_decode")),             # was silently "sample"
    ({"lossy_seed": -1}, _field("lossy_seed")),
    ({"lossy_seed": 1.5}, _field("lossy_seed")),
    ({"groups": [1, 1, 2], "count": 4}, _field("groups")),           # lossy groups are fixed
    ({"initial_bits": 32}, _field("initial_bits")),
    ({"images_sha256": "0" * 64}, "images_sha256"),                  # a lossless field
    ({"lossy_side": {"grid": 1, "mean_bits": 99, "gain": "none"}}, _field("lossy_side")),
    ({"lossy_side": "RAW:[1e400]"}, _field("lossy_side")),
    ({"lossy_side": {"grid": 1, "mean_bits": 8, "gain": "none"}},     # valid, but the model is
     _field("lossy_side") + ": side information is for models of more than 2 levels"),  # binary
]


@pytest.mark.parametrize("changes,match", LOSSY_CASES,
                         ids=[next(iter(c)) for c, _ in LOSSY_CASES])
def test_a_crafted_lossy_header_is_refused_naming_the_field(files, changes, match):
  refused(craft(files["lossy"], **changes), match)


def test_a_header_that_is_not_a_json_object_is_refused(files):
  header, payload = _split(files["lossless"])
  refused(_seal(json.dumps(list(header.items())), payload), "header that is a JSON list")
  refused(_seal("[" * 100000 + "]" * 100000, payload), "unreadable header")  # RecursionError


def test_a_header_length_beyond_the_file_is_refused(files):
  header, payload = _split(files["lossless"])
  text = json.dumps(header).encode()
  refused(_seal(text, payload, length=len(text) + len(payload) + 64), "leaves -")
  refused(_seal(text, payload, length=len(text) + 1), "not a whole number of 4-byte words")


def test_the_file_is_checked_before_the_model_is_loaded(files):
  """read_header (what `vlae decompress` runs before loading the named model) checks every field."""
  with pytest.raises(codec.CodecError, match=_field("latent_range")):
    codec.read_header(craft(files["lossless"], latent_range=-8.0))


# ------------------------------------------------- work bounded by the file
def test_groups_of_one_on_a_small_file_fail_fast(files):
  """The issue's hang: many one-image groups. The receiver recomputes the sender's group sizes
  from the bits each group popped, so the second group decoded already shows the lie."""
  n = 2000
  bad = craft(files["lossless"], groups=[1] * n, count=n, input_shape=[n, 4, 4, 1])
  assert len(bad) < 40_000
  refused(bad, _field("groups"))


def test_a_lossless_count_beyond_the_payload_fails_when_the_bits_run_out(files):
  """Group sizes the sender could have chosen, but more images than the payload holds."""
  n = 4 * 500 + 1
  bad = craft(files["lossless"], groups=[1] + [4] * 500, count=n, input_shape=[n, 4, 4, 1])
  msg = refused(bad, "'groups'|payload ran out")
  assert "count" in msg or "groups" in msg


def test_a_lossy_count_beyond_the_payload_fails_when_the_bits_run_out(files):
  n = 4000
  bad = craft(files["lossy"], groups=file_format.group_sizes(n, 2), count=n,
              input_shape=[n, 4, 4, 1])
  refused(bad, "payload ran out.*'count'")


def test_a_coder_panic_is_a_codec_error(files, monkeypatch):
  """constriction's panics are BaseExceptions (pyo3_runtime.PanicException); they become one
  line, never escape an `except Exception`."""
  import constriction
  try:
    constriction.stream.model.QuantizedGaussian(0, 0)
  except BaseException as e:  # noqa: BLE001  (the panic's class is not importable by name)
    panic = type(e)
  assert not issubclass(panic, Exception)

  def boom(*args):
    raise panic("assertion failed: support.end() > support.start()")

  monkeypatch.setattr(chain, "decode_lossless", boom)
  refused(files["lossless"], "entropy coder \\(constriction\\) refused its input")


def test_one_latent_bin_is_refused_by_the_encoder_not_a_panic():
  """Bins of 2^4 in +-8 round to a single bin, which made constriction panic mid-encode."""
  m = tiny_model()
  with pytest.raises(codec.CodecError, match="latent_range 8.0 is under half a bin"):
    encode(m, binary_images(2), lossy=True, bin_width_log2=-4)


def test_a_negative_lossy_seed_is_refused_before_coding():
  """The sampler's PCG64 cannot take it, so the file would never decode."""
  m = tiny_model()
  with pytest.raises(codec.CodecError, match="seed must be an integer in \\[0, 2\\^64\\)"):
    encode(m, binary_images(2), lossy=True, lossy_decode="sample", seed=-1)


def test_a_tampered_image_hash_says_so(files):
  m = tiny_model()
  msg = refused(craft(files["lossless"], images_sha256="0" * 64),
                "do not match the hash recorded in the file's header field 'images_sha256'",
                model=m)
  assert "tampered" in msg and "on this machine" not in msg


def test_every_file_the_encoder_writes_passes_the_header_checks(files):
  for data in files.values():
    header, payload = file_format.unpack(data)
    file_format.check_header(header, len(payload))


# --------------------------------------------------------------- the commands
def _run(argv, capfd):
  rc = cli.main(argv)
  out, err = capfd.readouterr()
  return rc, out, err.strip()


def test_compress_to_a_missing_folder_is_refused_before_any_work(zoo, tmp_path, capfd,
                                                                 monkeypatch):
  def no_work(*args, **kwargs):
    raise AssertionError("compressed before checking --out")

  monkeypatch.setattr(api, "encode", no_work)
  out = tmp_path / "missing" / "x.vlae"
  rc, _, err = _run(["compress", f"--zoo_dir={zoo.root}", f"--model={NAME}", "--data=test",
                     f"--out={out}"], capfd)
  assert rc == 2 and err.count("\n") == 0
  assert "does not exist" in err and str(tmp_path / "missing") in err and ".tmp" not in err
  assert list(tmp_path.iterdir()) == []


def test_decompress_to_a_missing_folder_is_refused_before_decoding(zoo, tmp_path, capfd,
                                                                   monkeypatch, files):
  def no_work(*args, **kwargs):
    raise AssertionError("decoded before checking --out")

  monkeypatch.setattr(api, "decompress", no_work)
  f = tmp_path / "t.vlae"
  f.write_bytes(files["lossy"])
  rc, _, err = _run(["decompress", str(f), f"--zoo_dir={zoo.root}",
                     f"--out={tmp_path / 'missing' / 'b.npz'}"], capfd)
  assert rc == 2 and "does not exist" in err and err.count("\n") == 0
  assert list(tmp_path.iterdir()) == [f]


@pytest.mark.parametrize("flag,match", [("--group_size=0", "--group_size must be in \\[1, 4096\\]"),
                                        ("--group_size=-3", "--group_size must be in"),
                                        ("--bin_width_log2=17", "--bin_width_log2 must be in")])
def test_bad_coding_flags_are_refused_before_any_work(zoo, tmp_path, capfd, monkeypatch, flag,
                                                      match):
  monkeypatch.setattr(api, "encode", lambda *a, **k: pytest.fail("compressed anyway"))
  out = tmp_path / "x.vlae"
  rc, _, err = _run(["compress", f"--zoo_dir={zoo.root}", f"--model={NAME}", "--data=test",
                     f"--out={out}", flag], capfd)
  assert rc == 2 and re.search(match, err) and err.count("\n") == 0
  assert not out.exists()


def _damaged_npz(path):
  """An .npz whose array 'x' fails its CRC: the archive opens, the member does not read."""
  np.savez(path, x=np.zeros((64, 16), np.uint8))
  data = bytearray(path.read_bytes())
  data[200] ^= 0xFF
  path.write_bytes(bytes(data))


@pytest.mark.parametrize("make,match", [
    (None, r"in\.npz: no such file$"),
    (lambda p: p.write_text("not a zip"), r"in\.npz: expected a NumPy \.npz archive"),
    (lambda p: np.savez(p, images=np.zeros((1, 4, 4), np.uint8)),
     r"in\.npz has arrays \['images'\]; expected 'x'$"),
    (_damaged_npz, r"in\.npz key 'x': expected a readable NumPy \.npz archive \(BadZipFile"),
    (lambda p: np.savez(p, x=np.zeros((1, 4, 4), np.float32)),
     r"in\.npz: 'x' must be uint8 \(the model's data scale\), got float32$")])
def test_a_bad_data_file_is_one_line_naming_it(zoo, tmp_path, capfd, monkeypatch, make, match):
  """vlae compress reads --data through data_readers.read_npz, the one .npz reader.

  Run here: the command does not re-run itself in a canonical child (which would import
  TensorFlow for each case, ~6 s of CPU) since the data is read before any coding; a data error
  through that child is test_codec's test_cli_errors_are_one_line_and_write_nothing."""
  monkeypatch.setattr(numeric_mode, "startable", lambda: True)
  monkeypatch.setattr(numeric_mode, "configure_threads", lambda: None)
  monkeypatch.setattr(api, "encode", lambda *a, **k: pytest.fail("compressed anyway"))
  data, out = tmp_path / "in.npz", tmp_path / "x.vlae"
  if make:
    make(data)
  rc, _, err = _run(["compress", f"--zoo_dir={zoo.root}", f"--model={NAME}", f"--data={data}",
                     f"--out={out}"], capfd)
  assert rc == 2 and err.count("\n") == 0 and err.startswith("vlae compress: error: ")
  assert re.search(match, err), err
  assert not out.exists()


def test_a_crafted_file_on_the_command_line_is_one_line_and_exit_2(zoo, tmp_path, capfd):
  data = compress(zoo.model, zoo.examples, group_size=2)
  f = tmp_path / "crafted.vlae"
  f.write_bytes(craft(data, latent_range=-8.0))
  rc, _, err = _run(["decompress", str(f), f"--zoo_dir={zoo.root}",
                     f"--out={tmp_path / 'b.npz'}"], capfd)
  assert rc == 2 and err.count("\n") == 0
  assert err.startswith("vlae decompress: error: ") and _field("latent_range") in err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.vlae"]


def _sizes(text):
  """The numbers of every '<x> <what> bits/<unit>' in a command's output (not the -ELBO)."""
  return {m.group(2): float(m.group(1)) for m in re.finditer(
      r"([\d.]+) ((?:payload |file |net )?bits/(?:image|dim))", text.split("-ELBO")[0])}


@pytest.fixture(scope="module")
def commands(zoo, tmp_path_factory):
  """``vlae compress`` then ``vlae decompress`` of the tiny model's bundled images, lossless and
  lossy, as a user runs them (each re-runs itself in a canonical child process), under a 022
  umask: ``{lossy: (file, back.npz, compress's stdout, decompress's stdout)}``. Shared: each
  command costs a TensorFlow start (~6 s of CPU)."""
  d = tmp_path_factory.mktemp("commands")
  api_file = d / "api.vlae"
  out = {}
  for lossy in (False, True):
    f, back = d / f"t{int(lossy)}.vlae", d / f"b{int(lossy)}.npz"
    printed = []
    for argv in (["compress", f"--zoo_dir={zoo.root}", f"--model={NAME}", "--data=test",
                  f"--out={f}"] + (["--lossy"] if lossy else []),
                 ["decompress", str(f), f"--zoo_dir={zoo.root}", f"--out={back}"]):
      r = subprocess.run([sys.executable, "-m", "vlae_tf.cli", *argv], capture_output=True,
                         text=True, timeout=600, umask=0o022)
      assert r.returncode == 0, r.stderr[-2000:]
      printed.append(r.stdout)
    out[lossy] = (f, back, *printed)
  old = os.umask(0o022)
  try:
    file_format.write_atomic(api_file, b"bytes")
  finally:
    os.umask(old)
  out["api"] = api_file
  return out


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_commands_round_trip_the_images(commands, zoo):
  f, back, printed_c, printed_d = commands[False]
  assert "bits/dim" in printed_c and "-ELBO" in printed_c and "exact" in printed_d
  np.testing.assert_array_equal(np.load(back)["x"], zoo.examples)
  f, back, _, _ = commands[True]
  assert np.load(back)["x"].shape == zoo.examples.shape
  assert codec.read_header(f.read_bytes())["mode"] == api.LOSSY


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("lossy", [False, True])
def test_compress_and_decompress_print_the_same_sizes(commands, zoo, lossy):
  """One meaning per number: payload bits (the ANS words) vs file bits (header included)."""
  f, _, out_c, out_d = commands[lossy]
  sizes_c, sizes_d = _sizes(out_c), _sizes(out_d)
  assert sizes_c == sizes_d and "file bits/image" in sizes_c and "bits/dim" not in sizes_c
  n = len(zoo.examples)
  assert sizes_c["file bits/image"] == pytest.approx(8 * f.stat().st_size / n, abs=0.05)
  payload = 32 * codec.read_header(f.read_bytes())["payload_words"]
  if lossy:
    assert sizes_c["payload bits/image"] == pytest.approx(payload / n, abs=0.05)
  else:
    assert sizes_c["payload bits/dim"] == pytest.approx(payload / zoo.examples.size, abs=5e-5)


@pytest.mark.slow
@pytest.mark.subprocess
def test_vlae_files_get_the_mode_of_other_outputs(commands):
  """0644 under a 022 umask (the other outputs' mode), not mkstemp's private 0600."""
  for f in (commands[False][0], commands[True][0], commands["api"]):
    assert oct(f.stat().st_mode & 0o777) == oct(0o644), f
