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
``constriction`` version). :func:`unpack` checks the magic, version, length
and checksum before anything is decoded, so a truncated, corrupted or foreign
file ends in a one-line :class:`CodecError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile

import numpy as np

MAGIC = b"\x89VLAE\r\n\x1a"
FORMAT_VERSION = 1
_FIXED = len(MAGIC) + 2 + 4
_DIGEST = 32
DEFAULT_GROUP_SIZE = 64   # images coded side by side unless asked (stored in each file's header)
# Latent bins of 2^-B unless asked (stored in each file's header); lossless: see vlae_tf.codec_latent
# ("The leak") for why not finer.
DEFAULT_BIN_WIDTH_LOG2 = {"lossless": 6, "lossy": 1}


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


def unpack(data: bytes, what="the input") -> tuple[dict, np.ndarray]:
  """``(header, payload words)`` of a file's bytes; :class:`CodecError` if it is not a valid one."""
  data = bytes(data)
  if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
    raise CodecError(f"{what} is not a VLAE compressed file (bad magic bytes)")
  if len(data) < _FIXED + _DIGEST:
    raise CodecError(f"{what} is truncated ({len(data)} bytes)")
  version, length = struct.unpack("<HI", data[len(MAGIC):_FIXED])
  if version != FORMAT_VERSION:
    raise CodecError(f"{what} has format version {version}; this vlae_tf reads version "
                     f"{FORMAT_VERSION} only")
  if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
    if len(data) < _FIXED + length + _DIGEST:
      raise CodecError(f"{what} is truncated ({len(data)} bytes)")
    raise CodecError(f"{what} is corrupted or truncated (checksum mismatch)")
  try:
    header = json.loads(data[_FIXED:_FIXED + length].decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CodecError(f"{what} has an unreadable header ({e})") from None
  words = data[_FIXED + length:-_DIGEST]
  if len(words) != 4 * int(header.get("payload_words", -1)):
    raise CodecError(f"{what} is corrupted (payload of {len(words)} bytes, header says "
                     f"{header.get('payload_words')} words)")
  return header, np.frombuffer(words, dtype="<u4").astype(np.uint32)


def write_atomic(path, data: bytes):
  """Writes ``data`` to ``path`` via a temporary file in the same folder and a rename."""
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
