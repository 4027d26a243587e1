"""The zoo folder and its model folders, read without TensorFlow: where a model is, its card,
its checksums, the list of models.

:mod:`vlae_tf.pretrained.store` (the layout, writing cards, ``load``) re-exports these; this
module is its TensorFlow-free part, so that ``vlae list`` and ``vlae info`` read cards
without starting TensorFlow (a card is JSON, its checks are :mod:`vlae_tf.pretrained.card`'s).
"""

from __future__ import annotations

import json
import os
import pathlib
import warnings

from vlae_tf.pretrained.card import (CARD, CARD_SUM, ZooError, ZooWarning, card_checksum_problem,
                                     check_card, has_card, sha256, short_repr)

ZOO_ENV = "VLAE_ZOO_DIR"


# ------------------------------------------------------------------- paths
def zoo_dir(path=None) -> pathlib.Path:
  """The zoo folder: ``path``, else ``$VLAE_ZOO_DIR``, else the repository's ``saved_models/``."""
  source = "the zoo_dir argument"
  if path is None:
    path, source = os.environ.get(ZOO_ENV) or None, f"${ZOO_ENV}"
  if path is not None:
    p = pathlib.Path(path).expanduser()
    if not p.is_dir():
      raise ZooError(f"zoo folder {str(p)!r} (from {source}) does not exist")
    return p
  package = pathlib.Path(__file__).resolve().parent.parent      # vlae_tf/ (this is pretrained/)
  repo = package.parent / "saved_models"
  if repo.is_dir():
    return repo
  raise ZooError(
      "cannot find the zoo weights: vlae_tf is not installed from a source checkout (no "
      f"saved_models/ next to the package at {package}). Clone the repository and "
      f"`pip install -e .`, or set {ZOO_ENV} to a folder holding <name>/card.json model folders.")


def is_path(name_or_path) -> bool:
  """True for what names a folder (``./mnist``, ``a/b``, ``/abs``, ``~/m``), False for a bare name."""
  text = os.fspath(name_or_path)
  return (isinstance(name_or_path, pathlib.PurePath) or "/" in text or os.sep in text
          or text.startswith((".", "~")) or os.path.isabs(text))


def model_dir(name_or_path, zoo=None, known_configs=()) -> pathlib.Path:
  """The folder of a zoo model given its name (looked up in the zoo folder only) or its path.

  ``known_configs``: the zoo's config names (``vlae_tf.zoo.list_configs()``), for a
  hint when ``name_or_path`` is a config that has not been trained and packaged.
  """
  if is_path(name_or_path):
    p = pathlib.Path(os.fspath(name_or_path)).expanduser()
    if not has_card(p):
      raise ZooError(f"{short_repr(str(p))} is not a zoo model folder (no {CARD})")
    return p
  root = zoo_dir(zoo)
  d = root / str(name_or_path)
  if not has_card(d):
    names = [m["name"] for m in list_models(root)]
    hint = (f" `{name_or_path}` is a config: train it (train.py --config=zoo/{name_or_path}.py) "
            "and package it with `train.py --mode=export`."
            if name_or_path in known_configs else "")
    raise ZooError(f"no pretrained model {short_repr(str(name_or_path))} in {root}; available: "
                   f"{', '.join(names) or 'none yet'}.{hint}")
  return d


# --------------------------------------------------------------- checksums
def _listed_files(d: pathlib.Path):
  """Every file under ``d`` except card.json and card.sha256, as sorted posix relative paths."""
  return sorted(p.relative_to(d).as_posix() for p in d.rglob("*")
                if p.is_file() and p.relative_to(d).as_posix() not in (CARD, CARD_SUM))


def compute_checksums(d) -> dict:
  d = pathlib.Path(d)
  return {rel: sha256(d / rel) for rel in _listed_files(d)}


def read_card(d) -> dict:
  """The card of model folder ``d``, checked against the schema (:func:`check_card`)."""
  d = pathlib.Path(d)
  try:
    with open(d / CARD, encoding="utf-8") as f:
      card = json.load(f)
  except FileNotFoundError:
    raise ZooError(f"{d} has no {CARD}; not a zoo model folder") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ZooError(f"{d / CARD} is not valid JSON: {e}") from None
  check_card(card, d)
  return card


def verify(d) -> dict:
  """Checks every file of a model folder against ``card.json``; returns the card.

  Raises :class:`ZooError` listing every missing, modified or unlisted file.
  """
  d = pathlib.Path(d)
  card = read_card(d)
  problem = card_checksum_problem(d)
  if problem:
    raise ZooError(f"zoo model at {d} failed verification: {problem}")
  listed = card["files"]
  problems = []
  for rel, want in sorted(listed.items()):
    p = d / rel
    if not p.is_file():
      problems.append(f"missing file {rel}")
    elif sha256(p) != want:
      problems.append(f"checksum mismatch for {rel} (expected sha256 {want[:12]}..., "
                      f"got {sha256(p)[:12]}...)")
  extra = [rel for rel in _listed_files(d) if rel not in listed and not _ignorable(rel)]
  problems += [f"unlisted file {rel}" for rel in extra]
  saved_model = f"{card.get('version', '?')}/saved_model.pb"
  if saved_model not in listed:
    problems.append(f"the card lists no SavedModel {saved_model}")
  if problems:
    raise ZooError(f"zoo model at {d} failed verification (re-download or re-package it):\n  "
                   + "\n  ".join(problems))
  return card


def _ignorable(rel):
  name = rel.rsplit("/", 1)[-1]
  return name in (".DS_Store",) or "__pycache__" in rel.split("/")


# ------------------------------------------------------------------- cards
def headline(card):
  r = card.get("results", {})
  paper = card.get("paper", {})
  parts = []
  if "iwae_nll" in r:
    n = r.get("iwae_num_examples", r.get("num_examples"))
    parts.append(f"test NLL {r['iwae_nll']:.2f} nats (IWAE k={r.get('iwae_samples')}, "
                 f"n={n})")
  if "elbo" in r:
    parts.append(f"ELBO {r['elbo']:.2f} (n={r.get('num_examples')})")
  if r.get("bits_per_dim") is not None and card.get("config", {}).get("data", {}).get(
      "image_shape", [0, 0, 1])[-1] == 3:
    parts.append(f"{r['bits_per_dim']:.3f} bits/dim")
  if paper.get("nll") is not None:
    parts.append(f"paper {paper['nll']} nats")
  if paper.get("bits_per_dim") is not None:
    parts.append(f"paper {paper['bits_per_dim']} bits/dim")
  return "; ".join(parts)


def list_models(zoo=None) -> list[dict]:
  """Packaged models: ``[{"name", "description", "headline", "path", ...}]`` sorted by name.

  Reads only the cards (no checksums, no TensorFlow). An empty list when the
  zoo folder holds no models yet.
  """
  root = zoo_dir(zoo)
  out = []
  for d in sorted(p for p in root.iterdir() if (p / CARD).is_file()):
    try:
      card = read_card(d)
      problem = card_checksum_problem(d)
      if problem:
        raise ZooError(problem)
    except ZooError as e:
      warnings.warn(f"skipping {d / CARD}: {' '.join(str(e).split())}", ZooWarning, stacklevel=2)
      continue
    r = card.get("results", {})
    out.append({"name": card.get("name", d.name), "description": card.get("description", ""),
                "headline": headline(card), "path": str(d), "iwae_nll": r.get("iwae_nll"),
                "iwae_samples": r.get("iwae_samples"), "elbo": r.get("elbo"),
                "num_examples": r.get("num_examples"), "paper": card.get("paper", {}),
                "config_name": card.get("config_name", "")})
  return out
