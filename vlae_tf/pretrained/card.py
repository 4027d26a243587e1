"""The trust of a zoo model card: its schema, and the checksum that covers it.

``card.json`` (see :mod:`vlae_tf.pretrained.store`) lists the sha256 of every other
file of a model folder; ``card.sha256`` (one ``<sha256>  card.json`` line, as
``sha256sum`` writes it) covers the card itself, so an edited card is caught
like an edited weight file. :func:`check_card` is the schema every card must
pass before anything in it is used, checksums or not: a JSON object whose
``version`` is a plain numeric folder name, whose ``files`` (and ``examples``)
are relative paths that stay inside the model folder (no ``..``, no absolute
path, no symbolic link that leads out), each with a 64-hex-digit sha256, and
whose numbers are finite numbers (or null). Extra keys, and extra files listed
in ``files``, are allowed.

A checksum only proves that the card was not changed *after* ``card.sha256`` was
written: a card edited and re-summed would still load and misdescribe the model.
So :func:`check_card_config` also holds the card's ``config`` to the config
schema (:func:`vlae_tf.config.validate_config`: no unknown keys, valid values)
and to the config the SavedModel itself was exported with (its ``info_json``,
read from the variables without loading the graph:
:func:`vlae_tf.pretrained.store.saved_model_config`). This module imports no TensorFlow.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import pathlib
import re

from vlae_tf import atomic
from vlae_tf import config as vconfig

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


def first_line(e) -> str:
  """``"<ExceptionType>: <its first line>"`` (at most 300 characters of it)."""
  text = " ".join(str(e).strip().split("\n")[0].split())[:300]
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


def short_repr(name: str) -> str:
  """``repr(name)``, or its first 40 characters and its length when it is longer than 80."""
  return repr(name) if len(name) <= 80 else f"{name[:40]!r}... ({len(name)} characters)"


def has_card(d: pathlib.Path) -> bool:
  """``d/card.json`` is a file (False, not OSError, for a name too long for the file system)."""
  try:
    return (pathlib.Path(d) / CARD).is_file()
  except (OSError, ValueError):      # ENAMETOOLONG, a NUL byte
    return False


def card_config(card, d) -> dict:
  """``card["config"]``, held to the config schema; else :class:`ZooError` (one line)."""
  where = pathlib.Path(d) / CARD
  config = card.get("config")
  if not isinstance(config, dict):
    raise ZooError(f"{where} has no config (a JSON object): re-package the model")
  try:
    vconfig.validate_config(vconfig.from_json(vconfig.with_defaults(config)))
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ZooError(f"{where}: the card's config does not fit the config schema ("
                   f"{'; '.join(str(e).splitlines()[1:] or [str(e)]).strip()})") from None
  return config


def check_card_config(card, d, stored) -> None:
  """Raises :class:`ZooError` (one line) unless ``card["config"]`` is a valid config
  (:func:`card_config`) equal to the SavedModel's own, ``stored`` (read by
  :func:`vlae_tf.pretrained.store.saved_model_config`, or the loaded SavedModel's)."""
  where = pathlib.Path(d) / CARD
  config = card_config(card, d)
  ours, model = (vconfig.flatten(vconfig.with_defaults(c)) for c in (config, stored))
  diffs = sorted(k for k in set(ours) | set(model) if ours.get(k) != model.get(k))
  if diffs:
    shown = "; ".join(f"{k}: card {ours.get(k, '<missing>')!r}, model "
                      f"{model.get(k, '<missing>')!r}" for k in diffs[:6])
    raise ZooError(f"{where} does not describe the model it ships: its config differs from the "
                   f"one stored in the SavedModel {card['version']}/ in {len(diffs)} key(s) ("
                   f"{shown}{'; ...' if len(diffs) > 6 else ''}); re-package the model with "
                   "`train.py --mode=export`")


def card_checksum_problem(d):
  """None if ``card.sha256`` matches ``card.json``, else what is wrong."""
  d = pathlib.Path(d)
  try:
    stored = (d / CARD_SUM).read_text(encoding="utf-8").split()
  except FileNotFoundError:
    return (f"{d / CARD_SUM} is missing: the card is not covered by a checksum (re-package the "
            "model with `train.py --mode=export`)")
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
           "card_checksum_problem", "write_card_checksum", "card_config",
           "check_card_config", "first_line", "short_repr", "has_card"]
