"""The trust of a zoo model card: its schema, and the checksum that covers it.

``card.json`` (see :mod:`vlae_tf.zoo_store`) lists the sha256 of every other
file of a model folder; ``card.sha256`` (one ``<sha256>  card.json`` line, as
``sha256sum`` writes it) covers the card itself, so an edited card is caught
like an edited weight file. :func:`check_card` is the schema every card must
pass before anything in it is used, checksums or not: a JSON object whose
``version`` is a plain numeric folder name, whose ``files`` (and ``examples``)
are relative paths that stay inside the model folder (no ``..``, no absolute
path, no symbolic link that leads out), each with a 64-hex-digit sha256, and
whose numbers are finite numbers (or null). Extra keys, and extra files listed
in ``files``, are allowed.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import pathlib
import re

from vlae_tf import atomic

CARD = "card.json"
CARD_SUM = "card.sha256"


class ZooError(RuntimeError):
  """A zoo model is missing, incomplete or fails its checksums."""


class ZooWarning(UserWarning):
  """A zoo folder entry that is skipped (e.g. a malformed card)."""


def sha256(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NUMBERS = {"results": ("elbo", "rate", "distortion", "iwae_nll", "bits_per_dim",
                        "elbo_bits_per_dim", "mutual_information", "iwae_nll_stderr",
                        "elbo_on_iwae_subset"),
            "paper": ("nll", "bits_per_dim")}
_INTEGERS = {"results": ("iwae_samples", "num_examples", "active_units", "latent_size",
                         "iwae_num_examples")}


def _inside(d: pathlib.Path, rel) -> bool:
  """``rel`` is a plain relative posix path naming something inside ``d`` (also after symlinks)."""
  if not isinstance(rel, str) or not rel or "\\" in rel or rel.startswith("/") or \
      any(part in ("", ".", "..") for part in rel.split("/")):
    return False
  root = d.resolve()
  target = (d / rel).resolve()
  return target == root or root in target.parents


def check_card(card, d) -> None:
  """Raises :class:`ZooError` naming ``d/card.json`` and every way ``card`` breaks the schema."""
  d = pathlib.Path(d)
  where = d / CARD
  if not isinstance(card, dict):
    raise ZooError(f"{where} is not a model card: expected a JSON object, got "
                   f"{type(card).__name__}")
  problems = []
  for key in ("name", "description", "config_name"):
    if key in card and not isinstance(card[key], str):
      problems.append(f"{key!r} must be a string, got {card[key]!r}")
  version = card.get("version")
  if not (isinstance(version, (str, int)) and re.fullmatch(r"[0-9]+", str(version))):
    problems.append(f"'version' must name a numeric SavedModel folder such as \"1\", "
                    f"got {version!r}")
  files = card.get("files")
  if not isinstance(files, dict) or not files:
    problems.append("'files' must map relative file paths to sha256 checksums")
  else:
    for rel, digest in files.items():
      if not _inside(d, rel):
        problems.append(f"file {rel!r} is not a relative path inside the model folder")
      if not (isinstance(digest, str) and _SHA256.match(digest)):
        problems.append(f"file {rel!r} has no sha256 (64 hex digits), got {digest!r}")
  examples = card.get("examples")
  if examples is not None and not (isinstance(examples, str) and _inside(d, examples)):
    problems.append(f"'examples' must be a file inside the model folder, got {examples!r}")
  for section, keys in (*_NUMBERS.items(), *_INTEGERS.items()):
    part = card.get(section, {})
    if not isinstance(part, dict):
      problems.append(f"{section!r} must be a JSON object, got {type(part).__name__}")
      continue
    ints = section in _INTEGERS and keys is _INTEGERS[section]
    for key in keys:
      v = part.get(key)
      ok = v is None or (isinstance(v, numbers.Integral) if ints else isinstance(v, numbers.Real))
      if isinstance(v, bool) or not ok or (v is not None and not math.isfinite(v)):
        problems.append(f"{section}.{key} must be a finite {'integer' if ints else 'number'} "
                        f"or null, got {v!r}")
  for key in ("config", "dataset", "training"):
    if key in card and not isinstance(card[key], dict):
      problems.append(f"{key!r} must be a JSON object, got {type(card[key]).__name__}")
  if problems:
    raise ZooError(f"{where} is not a valid model card:\n  " + "\n  ".join(problems))


def card_checksum_problem(d):
  """None if ``card.sha256`` matches ``card.json``, else what is wrong."""
  d = pathlib.Path(d)
  try:
    stored = (d / CARD_SUM).read_text(encoding="utf-8").split()
  except FileNotFoundError:
    return (f"{d / CARD_SUM} is missing: the card is not covered by a checksum (re-package the "
            "model with `python -m vlae_tf.export`)")
  except (OSError, UnicodeDecodeError) as e:
    return f"{d / CARD_SUM} cannot be read ({e})"
  if len(stored) != 2 or stored[1] != CARD or not _SHA256.match(stored[0]):
    return f"{d / CARD_SUM} is not a '<sha256>  {CARD}' line"
  actual = sha256(d / CARD)
  if actual != stored[0]:
    return (f"{d / CARD} was modified: its sha256 {actual[:12]}... does not match "
            f"{stored[0][:12]}... in {CARD_SUM}")
  return None


def write_card_checksum(d) -> str:
  """Writes ``card.sha256`` for the card in ``d`` (``sha256sum`` format); returns the digest."""
  d = pathlib.Path(d)
  digest = sha256(d / CARD)
  atomic.write_text(d / CARD_SUM, f"{digest}  {CARD}\n")
  return digest


__all__ = ["CARD", "CARD_SUM", "ZooError", "ZooWarning", "sha256", "check_card",
           "card_checksum_problem", "write_card_checksum"]
