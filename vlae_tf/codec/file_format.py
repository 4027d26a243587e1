"""The ``.vlae`` file: what a compressed file holds and how it is checked.

Layout (all integers little-endian)::

  MAGIC              8 bytes  b"\\x89VLAE\\r\\n\\x1a" (binary-safe, like PNG's)
  format version     uint16   FORMAT_VERSION
  header length      uint32   L
  header             L bytes  UTF-8 JSON (below)
  payload            4 * W    the ANS words (uint32), W = header["payload_words"]
  checksum           32 bytes sha256 of every byte before it

The header holds the model (``model``: name; ``weights_sha256``: a hash of
its weights, :func:`weights_fingerprint`), the images (``input_shape`` as
given, ``count``, ``dtype``; ``images_sha256`` of the pixels for lossless
files), and the coding parameters (``mode``, ``group_size``, ``groups``,
``bin_width_log2``, ``latent_range``, the initial-bits parameters, the
``constriction`` version) and, from format version 2 on, the numeric mode the
probabilities were computed in (``numeric_mode``: :mod:`vlae_tf.codec.numeric_mode`'s
canonical mode with the TensorFlow and NumPy versions, or a process's own mode).
Version 3 adds ``lossy_side`` to lossy headers: the side information in the
payload (:func:`check_lossy_side`, :mod:`vlae_tf.codec.side_info`). Older files
unpack with ``numeric_mode`` None (version 1, written before the mode was
recorded: :func:`vlae_tf.codec.decompress` decodes a lossy one, refuses a
lossless one in one line) and ``lossy_side`` None (versions 1-2, decoded as
before). A new layout or field meaning takes a new version; old readers stay.
:func:`unpack` checks the magic, version, length and checksum, then every
header field (:func:`check_header`: types, ranges and the relations between
fields, against what the encoder can write), before anything is decoded, so
a truncated, corrupted, foreign or crafted file ends in a one-line
:class:`CodecError` naming the problem. The checksum is no
signature: anyone can reseal a file, so nothing trusts a header because the
checksum matches. What a header cannot bound, how many bits decoding consumes,
the decoder checks as it goes (:func:`lowest_words`, :mod:`vlae_tf.codec.chain`).

Longer than 400 lines: every header field's check lives here, beside the layout,
so that one module says all a file may hold (the lossy side information included).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import struct

import numpy as np

from vlae_tf import atomic

MAGIC = b"\x89VLAE\r\n\x1a"
FORMAT_VERSION = 3
READ_VERSIONS = (1, 2, 3)   # version 1: no numeric_mode in the header; 1, 2: no lossy_side
# The numeric modes a file can record (vlae_tf.codec.numeric_mode): the canonical one, or the
# coding process's own. The canonical mode's name changes with its settings or with the code that
# computes the coded probabilities ("canonical-1": NumPy's float64 distributions; "canonical-2":
# TensorFlow's, inside the cached walk; "canonical-3": the latent walks' MADE evaluated
# incrementally, vlae_tf.made.MADESteps, and the mixture's level masses from float32 CDFs,
# vlae_tf.codec.pixels.mixture_pmf); a file of another one names it.
CANONICAL_MODE, PROCESS_MODE = "canonical-3", "process"
_FIXED = len(MAGIC) + 2 + 4
_DIGEST = 32
DEFAULT_GROUP_SIZE = 64   # images coded side by side unless asked (stored in each file's header)
# Latent bins of 2^-B unless asked (stored in each file's header); lossless: see
# vlae_tf.codec.latent ("The leak") for why not finer.
DEFAULT_BIN_WIDTH_LOG2 = {"lossless": 6, "lossy": 1}
DEFAULT_LATENT_RANGE = 8.0


class CodecError(ValueError):
  """A file or input the codec cannot use; the message is one line naming the problem."""


def weights_fingerprint(model) -> str:
  """sha256 over every variable's shape and bytes, in the model's order.

  Not the variables' paths: Keras numbers layer names per process
  (``conv2d_7``), so the same weights loaded twice have different paths.
  """
  h = hashlib.sha256()
  for v in model.variables:
    arr = np.ascontiguousarray(v.numpy())
    h.update(f"{arr.dtype}:{arr.shape};".encode())
    h.update(arr.tobytes())
  return h.hexdigest()


def pack(header: dict, payload: np.ndarray) -> bytes:
  payload = np.asarray(payload, dtype="<u4")
  header = dict(header, payload_words=int(payload.size))
  text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
  body = MAGIC + struct.pack("<HI", FORMAT_VERSION, len(text)) + text + payload.tobytes()
  return body + hashlib.sha256(body).digest()


def file_version(data: bytes):
  """The format version of a file's bytes, or None if they do not start like a ``.vlae`` file."""
  if len(data) < _FIXED or data[:len(MAGIC)] != MAGIC:
    return None
  return struct.unpack("<H", data[len(MAGIC):len(MAGIC) + 2])[0]


def unpack(data: bytes, what="the input") -> tuple[dict, np.ndarray]:
  """``(header, payload words)`` of a file's bytes; :class:`CodecError` if it is not a valid one.

  Every header field is checked (:func:`check_header`) before anything is decoded.
  """
  data = bytes(data)
  if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
    raise CodecError(f"{what} is not a VLAE compressed file (bad magic bytes)")
  if len(data) < _FIXED + _DIGEST:
    raise CodecError(f"{what} is truncated ({len(data)} bytes)")
  version, length = struct.unpack("<HI", data[len(MAGIC):_FIXED])
  if version not in READ_VERSIONS:
    raise CodecError(f"{what} has format version {version}; this vlae_tf reads versions "
                     f"{', '.join(map(str, READ_VERSIONS))}")
  if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
    if len(data) < _FIXED + length + _DIGEST:
      raise CodecError(f"{what} is truncated ({len(data)} bytes)")
    raise CodecError(f"{what} is corrupted or truncated (checksum mismatch)")
  payload_bytes = len(data) - _FIXED - length - _DIGEST
  if payload_bytes < 0 or payload_bytes % 4:
    raise CodecError(f"{what} is corrupted (a header of {length} bytes leaves {payload_bytes} "
                     "payload bytes, not a whole number of 4-byte words)")
  try:
    header = json.loads(data[_FIXED:_FIXED + length].decode("utf-8"),
                        parse_constant=_refuse_constant)
  except (UnicodeDecodeError, ValueError, RecursionError) as e:
    raise CodecError(f"{what} has an unreadable header ({_first_line(e)})") from None
  check_header(header, payload_bytes // 4, what, version)
  if version == 1:
    header = dict(header, numeric_mode=None)
  if version < 3 and header["mode"] == LOSSY:
    header = dict(header, lossy_side=None)
  words = data[_FIXED + length:-_DIGEST]
  return header, np.frombuffer(words, dtype="<u4").astype(np.uint32)


def _refuse_constant(name):
  raise ValueError(f"{name} is not a number the encoder writes")


def _first_line(e):
  text = str(e).strip()
  return " ".join(text.splitlines()[0].split())[:200] if text else type(e).__name__


# ------------------------------------------------------------- the header
# What the encoder (vlae_tf.codec.encode) writes, and nothing else: a file whose header asks for
# anything outside these ranges is refused before a model is loaded or a word decoded.
LOSSLESS, LOSSY = "lossless", "lossy"
LOSSY_DECODES = ("expectation", "mode", "mean", "sample")   # vlae_tf.codec.lossy
LOSSY_SIDE_GAINS = ("none", "alpha", "matrix")               # vlae_tf.codec.side_info
MAX_SIDE_MEAN_BITS = 8          # block means of 2^bits levels (8: the levels of uint8 pixels)
MAX_SIDE_GAIN = 255             # gain_step and gain_levels at most this
INITIAL_SEED = 20170101         # the seed of the lossless initial words (vlae_tf.codec.chain)
MAX_GROUP_SIZE = 4096
BIN_WIDTH_LOG2_RANGE = (-4, 16)
MAX_LATENT_SYMBOLS = 2 ** 12    # bins per latent dimension (see vlae_tf.codec.latent: leaks)
INITIAL_SLACK_WORDS = 256       # lossless initial words: group_size * latent_size + this
_MAX_DIM = 2 ** 16              # image height / width / channels, latent size
_MAX_SEED = 2 ** 64
_HEX64 = frozenset("0123456789abcdef")
_COMMON = ("mode", "model", "weights_sha256", "image_shape", "input_shape", "count", "dtype",
           "group_size", "bin_width_log2", "latent_range", "latent_size", "constriction",
           "groups", "initial_bits", "payload_words")
_KEYS = {LOSSLESS: frozenset(_COMMON + ("images_sha256", "initial_seed", "initial_words",
                                        "skipped_words")),
         LOSSY: frozenset(_COMMON + ("lossy_decode", "lossy_seed"))}


def _is_int(v):
  return isinstance(v, int) and not isinstance(v, bool)


def _show(v):
  text = json.dumps(v) if isinstance(v, (list, dict, str, bool)) or v is None else repr(v)
  return text if len(text) <= 60 else text[:57] + "..."


def _is_numeric_mode(m):
  """What :func:`vlae_tf.codec.numeric_mode.process_mode` writes: short strings, bools, int / str
  lists."""
  def short(v):
    return isinstance(v, str) and len(v) <= 2000
  name = m.get("name") if isinstance(m, dict) else None
  if not (isinstance(m, dict) and len(m) <= 16 and isinstance(name, str)
          and (name == PROCESS_MODE or re.fullmatch(r"canonical-[1-9][0-9]{0,5}", name))
          and short(m.get("tensorflow")) and short(m.get("numpy"))):
    return False
  return all(short(k) and (short(v) or isinstance(v, bool)
                           or (isinstance(v, list) and len(v) <= 64
                               and all(_is_int(e) or short(e) for e in v)))
             for k, v in m.items())


def check_coding_parameters(group_size, bin_width_log2, latent_range, field=str):
  """Raises :class:`CodecError` unless the encoder can code with these parameters.

  ``field(name)`` names a parameter in the message (the header field of a file, or the
  argument of :func:`vlae_tf.codec.encode`).
  """
  if not (_is_int(group_size) and 1 <= group_size <= MAX_GROUP_SIZE):
    raise CodecError(f"{field('group_size')} must be in [1, {MAX_GROUP_SIZE}] (an integer), got "
                     f"{_show(group_size)}")
  lo, hi = BIN_WIDTH_LOG2_RANGE
  b = bin_width_log2
  if not (_is_int(b) and lo <= b <= hi):
    raise CodecError(f"{field('bin_width_log2')} must be in [{lo}, {hi}] (an integer), got "
                     f"{_show(b)}")
  if not (isinstance(latent_range, numbers.Real) and not isinstance(latent_range, bool)
          and 0 < latent_range < math.inf):
    raise CodecError(f"{field('latent_range')} must be a positive number, got "
                     f"{_show(latent_range)}")
  bins = 2 * float(latent_range) * 2.0 ** b
  if bins > MAX_LATENT_SYMBOLS:
    raise CodecError(f"{field('latent_range')} {latent_range} with bins of 2^-{b} makes "
                     f"{bins:.0f} bins per latent dimension; at most {MAX_LATENT_SYMBOLS} "
                     "(lower bin_width_log2 or latent_range)")
  if round(float(latent_range) * 2.0 ** b) < 1:
    raise CodecError(f"{field('latent_range')} {latent_range} is under half a bin of 2^-{b}: "
                     "every latent would fall in one bin (raise bin_width_log2 or latent_range)")


def check_lossy_options(lossy_decode, seed):
  """Raises :class:`CodecError` unless a lossy file can store this decoding rule and seed."""
  if lossy_decode not in LOSSY_DECODES:
    raise CodecError(f"lossy_decode must be one of {LOSSY_DECODES}, got {lossy_decode!r}")
  if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
          and 0 <= seed < 2 ** 64):
    raise CodecError(f"seed must be an integer in [0, 2^64) (it seeds the receiver's draws), "
                     f"got {seed!r}")


def check_lossy_side(side, image_shape, lossy_decode, field=str):
  """Raises :class:`CodecError` unless ``side`` is side information the lossy encoder writes
  (:mod:`vlae_tf.codec.side_info`) for images of ``image_shape`` decoded by ``lossy_decode``:
  None, or ``{"grid", "mean_bits", "gain"}`` (+ ``"gain_step"``, ``"gain_levels"`` unless the gain
  is ``"none"``), only with ``lossy_decode="expectation"`` (which it corrects)."""
  if side is None:
    return
  name, (h, w) = field("lossy_side"), image_shape[:2]
  if not isinstance(side, dict):
    raise CodecError(f"{name} must be null or an object (grid, mean_bits, gain, ...), got "
                     f"{_show(side)}")
  gain = side.get("gain")
  if not (isinstance(gain, str) and gain in LOSSY_SIDE_GAINS):
    raise CodecError(f"{name}: 'gain' must be one of {', '.join(map(repr, LOSSY_SIDE_GAINS))}, "
                     f"got {_show(gain)}")
  ranges = {"grid": (lambda t: 1 <= t <= min(h, w) and h % t == 0 and w % t == 0,
                     f"a number of blocks per side that divides the height {h} and width {w}"),
            "mean_bits": (lambda b: 1 <= b <= MAX_SIDE_MEAN_BITS,
                          f"an integer in [1, {MAX_SIDE_MEAN_BITS}]")}
  if gain != "none":
    ranges["gain_step"] = (lambda v: 1 <= v <= MAX_SIDE_GAIN, f"an integer in [1, {MAX_SIDE_GAIN}]")
    ranges["gain_levels"] = (lambda v: 3 <= v <= MAX_SIDE_GAIN and v % 2 == 1,
                             f"an odd integer in [3, {MAX_SIDE_GAIN}]")
  if set(side) != set(ranges) | {"gain"}:
    raise CodecError(f"{name} with gain {gain!r} must have exactly the keys "
                     f"{', '.join(sorted(set(ranges) | {'gain'}))}, got "
                     f"{', '.join(map(_show, sorted(side)))}")
  for key, (ok, expected) in ranges.items():
    if not (_is_int(side[key]) and ok(side[key])):
      raise CodecError(f"{name}: {key!r} must be {expected}, got {_show(side[key])}")
  if lossy_decode != "expectation":
    raise CodecError(f"{name}: side information corrects the 'expectation' decode, not "
                     f"{_show(lossy_decode)}")


def check_output_folder(path):
  """Raises :class:`vlae_tf.atomic.OutputError` unless ``path``'s folder exists and is writable
  (the codec commands check it before any work: the output is written only at the end)."""
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise atomic.OutputError(f"--out {path}: the folder {folder} does not exist (create it "
                             "first)")
  if not os.access(folder, os.W_OK | os.X_OK):
    raise atomic.OutputError(f"--out {path}: the folder {folder} is not writable")


_FLAGS = ("group_size", "bin_width_log2")


def check_command(args):
  """The checks of ``vlae compress`` / ``vlae decompress`` that come before any work (and need no
  TensorFlow, so the command makes them before it starts its canonical process): ``--out``'s
  folder, the coding flags, and for ``decompress`` the file and its header. Returns the file's
  bytes for ``decompress``, else None."""
  check_output_folder(args.out)
  if args.command == "compress":
    mode = LOSSY if args.lossy else LOSSLESS
    check_coding_parameters(
        DEFAULT_GROUP_SIZE if args.group_size is None else args.group_size,
        DEFAULT_BIN_WIDTH_LOG2[mode] if args.bin_width_log2 is None else args.bin_width_log2,
        DEFAULT_LATENT_RANGE, field=lambda name: f"--{name}" if name in _FLAGS else name)
    if args.lossy:
      check_lossy_options(args.lossy_decode, args.seed)
    return None
  if not os.path.isfile(args.file):
    raise FileNotFoundError(f"no such file: {args.file}")
  with open(args.file, "rb") as f:
    data = f.read()
  unpack(data, args.file)
  return data


def check_header(header, payload_words, what="the input", version=FORMAT_VERSION):
  """Raises :class:`CodecError` naming the first header field the encoder could not have written.

  ``payload_words``: the number of payload words the file holds. Checks types (JSON
  ``true`` is not an integer), ranges and the relations between fields; what needs the
  model (its weights, image shape, latent size) is checked by :func:`vlae_tf.codec.decompress`.
  """
  if not isinstance(header, dict):
    raise CodecError(f"{what} has a header that is a JSON {type(header).__name__}, not an object")

  def field(name):
    return f"{what}: header field {name!r}"

  def bad(name, expected):
    raise CodecError(f"{field(name)} must be {expected}, got {_show(header[name])}")

  mode = header.get("mode")
  if mode not in _KEYS:
    raise CodecError(f"{field('mode')} must be {LOSSLESS!r} or {LOSSY!r}, got {_show(mode)}")
  keys = (_KEYS[mode] | ({"numeric_mode"} if version >= 2 else set())
          | ({"lossy_side"} if version >= 3 and mode == LOSSY else set()))
  missing = sorted(keys - header.keys())
  if missing:
    raise CodecError(f"{what}: header lacks the field(s) {', '.join(missing)}")
  unknown = sorted(header.keys() - keys)
  if unknown:
    raise CodecError(f"{what}: header has field(s) the {mode} encoder does not write: "
                     f"{', '.join(map(_show, unknown))}")
  if not _is_int(header["payload_words"]) or header["payload_words"] != payload_words:
    bad("payload_words", f"the {payload_words} words the file holds")
  if not (isinstance(header["model"], str) and 0 < len(header["model"]) <= 200
          and header["model"].isprintable()):
    bad("model", "a model name")
  for name in ("weights_sha256",) + (("images_sha256",) if mode == LOSSLESS else ()):
    if not (isinstance(header[name], str) and len(header[name]) == 64
            and set(header[name]) <= _HEX64):
      bad(name, "a sha256 (64 lowercase hex digits)")
  if not (isinstance(header["constriction"], str) and 0 < len(header["constriction"]) <= 64):
    bad("constriction", "a version string")
  if version >= 2 and not _is_numeric_mode(header["numeric_mode"]):
    bad("numeric_mode", "an object naming the numeric mode (name, tensorflow, numpy, ...)")
  if header["dtype"] != "uint8":
    bad("dtype", '"uint8"')
  shape = header["image_shape"]
  if not (isinstance(shape, list) and len(shape) == 3
          and all(_is_int(v) and 1 <= v <= _MAX_DIM for v in shape)):
    bad("image_shape", f"[height, width, channels], each an integer in [1, {_MAX_DIM}]")
  check_coding_parameters(header["group_size"], header["bin_width_log2"],
                          header["latent_range"], field)
  g, count, d = header["group_size"], header["count"], header["latent_size"]
  if not (_is_int(d) and 1 <= d <= _MAX_DIM):
    bad("latent_size", f"an integer in [1, {_MAX_DIM}]")
  groups = header["groups"]
  if not (isinstance(groups, list) and groups
          and all(_is_int(n) and 1 <= n <= g for n in groups)):
    bad("groups", f"a non-empty list of group sizes, each an integer in [1, group_size = {g}]")
  if not (_is_int(count) and count == sum(groups)):
    bad("count", f"the number of images in 'groups' ({sum(groups)})")
  h, w, c = shape
  allowed = [[count, h, w, c]] + ([[count, h, w]] if c == 1 else [])
  if not (isinstance(header["input_shape"], list)
          and all(_is_int(v) for v in header["input_shape"]) and header["input_shape"] in allowed):
    bad("input_shape", " or ".join(map(json.dumps, allowed)))
  if mode == LOSSY:
    if groups != group_sizes(count, g):
      bad("groups", f"{_show(group_sizes(count, g))} (lossy files group {count} images "
          f"{g} at a time)")
    if header["initial_bits"] != 0 or not _is_int(header["initial_bits"]):
      bad("initial_bits", "0 for a lossy file")
    if header["lossy_decode"] not in LOSSY_DECODES:
      bad("lossy_decode", " or ".join(map(repr, LOSSY_DECODES)))
    if not (_is_int(header["lossy_seed"]) and 0 <= header["lossy_seed"] < _MAX_SEED):
      bad("lossy_seed", "an integer in [0, 2^64)")
    if version >= 3:
      check_lossy_side(header["lossy_side"], shape, header["lossy_decode"], field)
    return
  if groups[0] != 1:
    bad("groups", "a list starting with 1 (the lossless encoder codes 1 image first)")
  if header["initial_seed"] != INITIAL_SEED or not _is_int(header["initial_seed"]):
    bad("initial_seed", str(INITIAL_SEED))
  init = g * d + INITIAL_SLACK_WORDS
  if header["initial_words"] != init or not _is_int(header["initial_words"]):
    bad("initial_words", f"group_size * latent_size + {INITIAL_SLACK_WORDS} = {init}")
  skip = header["skipped_words"]
  if not (_is_int(skip) and 0 <= skip <= init - 2):
    bad("skipped_words", f"an integer in [0, initial_words - 2 = {init - 2}]")
  if header["initial_bits"] != 32 * (init - skip) or not _is_int(header["initial_bits"]):
    bad("initial_bits", f"32 * (initial_words - skipped_words) = {32 * (init - skip)}")
  if skip + payload_words < lowest_words(skip):
    raise CodecError(f"{field('payload_words')} is {payload_words}: with skipped_words = {skip} "
                     f"a lossless payload holds at least {lowest_words(skip) - skip} words")


def lowest_words(skipped_words):
  """The fewest words a lossless message holds at any point of coding (the floor the decoder
  checks: below it the payload has run out).

  The encoder refuses to go under 4 words and skips all but the 2 words below its lowest
  point (or none), so a message never shrinks below ``max(4, skipped_words + 2)`` words.
  """
  return max(4, skipped_words + 2)


def group_sizes(n_total, g):
  """The groups of a lossy file: ``g`` images at a time, the last group shorter."""
  return [min(g, n_total - s) for s in range(0, n_total, g)]


def write_atomic(path, data: bytes):
  """Writes ``data`` to ``path`` through :func:`vlae_tf.atomic.write_bytes` (a temporary file
  in the same folder, then a rename; the mode a new file gets under the umask, e.g. 0644)."""
  atomic.write_bytes(path, data)
