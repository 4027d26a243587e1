"""The pretrained zoo on disk: layout, model cards, checksums, ``load``.

Layout (one folder per model; TF Serving can mount ``<name>/`` directly, as
it serves the numeric version folders and ignores the other files)::

  $VLAE_ZOO_DIR/            default: the repository's saved_models/
    <name>/
      card.json             the model card (below) incl. the sha256 of every other file
      card.sha256           the sha256 of card.json (``sha256sum`` format)
      README.md             the card in words
      eval.json             the evaluation the card's numbers were copied from
      examples.npz          a handful of test images ("x", uint8 NHWC) for demos
      model.weights.h5      the same weights for Keras 3 (vlae_tf.pretrained.keras_weights.load_keras)
      1/                    the SavedModel (see vlae_tf.export / docs/SERVING.md)
        saved_model.pb, fingerprint.pb, variables/...

``card.json`` holds: ``name``, ``description``, ``config_name``, ``config``,
``dataset`` (name, eval split, number of eval examples), ``training``
(command, steps, hardware, wall time), ``results`` (test ELBO, rate,
distortion, IWAE NLL with its k, bits/dim: copied verbatim from
``eval.json``, never typed in), ``paper`` (the paper's number for the same
setting), ``version`` (the SavedModel folder) and ``files`` (relative path ->
sha256). :func:`write_card` writes a card (for :mod:`vlae_tf.pretrained.packaging`); :func:`load`
recomputes every checksum and refuses a model with a missing, extra or modified file.
Finding a model folder, reading and verifying its card and listing the zoo need no TensorFlow:
they are :mod:`vlae_tf.pretrained.folders` (re-exported here).

Trust: the card itself is covered by ``card.sha256``; every card (also with
``verify_checksums=False``, and in :func:`list_models`) is checked against the
schema of :func:`check_card`: a JSON object whose ``version`` is a plain
version-folder name and whose ``files`` are relative paths that stay inside the
model folder (no ``..``, no absolute paths, no symbolic links leading out), with
numbers where numbers belong. A bare name (``mnist``) is looked up only in the
zoo folder; a model folder elsewhere is named by a path (``./mnist``,
``/abs/path``, ``~/models/mnist``). :func:`list_models` skips a malformed card
with a :class:`ZooWarning` naming the file. All files are written atomically.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import pathlib

import numpy as np
import tensorflow as tf

from vlae_tf import atomic, quiet_tf
from vlae_tf import config as vconfig
from vlae_tf.pretrained.card import (CARD, ZooError, ZooWarning, check_card,  # noqa: F401
                                     check_card_config, first_line, sha256,
                                     write_card_checksum)
# The TensorFlow-free half (vlae list / vlae info use it alone), re-exported: store.<name> as before.
from vlae_tf.pretrained.folders import (ZOO_ENV, compute_checksums, headline,  # noqa: F401
                                        is_path, list_models, model_dir, read_card, verify,
                                        zoo_dir)
from vlae_tf.pretrained.model import ZooModel


EXAMPLES = "examples.npz"
EVAL = "eval.json"
KERAS_WEIGHTS = "model.weights.h5"   # Keras 3 weights of the same model (vlae_tf.pretrained.keras_weights)
LEARNING_CURVE = "learning_curve.png"  # experiments/learning_curve.py of the run, if packaged
CARD_FORMAT = 1
_REQUIRED_EVAL_KEYS = ("elbo", "iwae_nll", "iwae_samples", "num_examples")


def check_eval_results(eval_results) -> dict:
  """Validates an evaluation dict (as written by the evaluation driver) for a card."""
  if isinstance(eval_results, (str, os.PathLike)):
    with open(eval_results, encoding="utf-8") as f:
      eval_results = json.load(f)
  if not isinstance(eval_results, dict):
    raise ValueError(f"eval results must be a JSON object, got {type(eval_results).__name__}")
  missing = [k for k in _REQUIRED_EVAL_KEYS if k not in eval_results]
  if missing:
    raise ValueError(f"eval results lack {', '.join(missing)}: the card's numbers must come "
                     "from a real evaluation (vlae_tf.evaluate / train.py --mode=eval)")
  for k in ("elbo", "iwae_nll"):
    v = eval_results[k]
    if not isinstance(v, (int, float)) or not np.isfinite(v):
      raise ValueError(f"eval result {k!r} must be a finite number, got {v!r}")
  return eval_results


def _paper(config, paper_nll=None, paper_bits_per_dim=None, paper_source=None):
  nll = paper_nll if paper_nll is not None else _get(config, "paper_nll")
  bpd = paper_bits_per_dim if paper_bits_per_dim is not None else _get(config, "paper_bits_per_dim")
  return {"nll": nll, "bits_per_dim": bpd,
          "source": paper_source or "Chen et al., Variational Lossy Autoencoder, ICLR 2017"}


def _get(config, key, default=None):
  try:
    return config.get(key, default) if hasattr(config, "get") else getattr(config, key, default)
  except (AttributeError, KeyError):
    return default


def write_card(model_dir, *, config, eval_results, name=None, command=None, hardware=None,
               wall_time_hours=None, steps=None, version="1", examples=None, paper_nll=None,
               paper_bits_per_dim=None, paper_source=None, eval_split=None, notes=None,
               weights=None, workdir=None, signatures=()):
  """Writes ``card.json``, ``README.md``, ``eval.json`` and ``examples.npz`` into ``model_dir``.

  Numbers in the card come only from ``eval_results`` (a dict or the path of
  an ``eval.json``). The SavedModel must already be in ``model_dir/version``.
  ``signatures``: the SavedModel's signature names, listed in the card.
  Checksums of every file are computed last. Returns the card dict.
  """
  d = pathlib.Path(model_dir)
  if not (d / str(version) / "saved_model.pb").is_file():
    raise ZooError(f"no SavedModel at {d / str(version)}; export it first")
  eval_results = check_eval_results(eval_results)
  cfg = vconfig.jsonable(config)
  name = name or d.name
  data = cfg.get("data", {})
  results = {k: eval_results[k] for k in (
      "elbo", "rate", "distortion", "iwae_nll", "iwae_samples", "num_examples", "bits_per_dim",
      "elbo_bits_per_dim", "active_units", "latent_size", "mutual_information",
      "iwae_num_examples", "iwae_subset", "iwae_nll_stderr", "elbo_on_iwae_subset",
      "elbo_stderr", "elbo_on_iwae_subset_stderr", "mutual_information_examples")
             if k in eval_results}
  split = eval_split or eval_results.get("split") or data.get("test_split", "test")
  card = {
      "card_format": CARD_FORMAT,
      "name": name,
      "description": cfg.get("description", ""),
      "config_name": cfg.get("name", name),
      "dataset": {"name": data.get("dataset"), "eval_split": split,
                  "num_eval_examples": eval_results["num_examples"],
                  "binarization": data.get("binarization")},
      "training": {"command": command or "not recorded",
                   "config_file": f"zoo/{cfg.get('name', name)}.py", "workdir": workdir,
                   "steps": steps, "weights": weights or eval_results.get("weights"),
                   "hardware": hardware or "not recorded", "wall_time_hours": wall_time_hours},
      "results": results,
      "paper": _paper(cfg, paper_nll, paper_bits_per_dim, paper_source),
      "version": str(version),
      "signatures": list(signatures),
      "examples": EXAMPLES if examples is not None else None,
      "keras_weights": KERAS_WEIGHTS if (d / KERAS_WEIGHTS).is_file() else None,
      "learning_curve": LEARNING_CURVE if (d / LEARNING_CURVE).is_file() else None,
      "notes": notes,
      "packaged": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
      "config": cfg,
  }
  if examples is not None:
    examples = np.asarray(examples)
    if examples.ndim != 4 or examples.dtype != np.uint8 or not 1 <= len(examples) <= 64:
      raise ValueError("examples must be 1..64 uint8 NHWC images, got "
                       f"{examples.dtype} {examples.shape}")
  atomic.write_text(d / EVAL, json.dumps(eval_results, indent=2, sort_keys=True))
  if examples is not None:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=examples)
    atomic.write_bytes(d / EXAMPLES, buf.getvalue())
  atomic.write_text(d / "README.md", card_markdown(card))
  card["files"] = compute_checksums(d)
  check_card(card, d)
  atomic.write_text(d / CARD, json.dumps(card, indent=2, sort_keys=False) + "\n")
  write_card_checksum(d)
  return card


def card_markdown(card) -> str:
  """The short human-readable model card (README.md of the model folder)."""
  r, t, ds, paper = card["results"], card["training"], card["dataset"], card["paper"]
  fmt = lambda v, spec=".2f": "n/a" if v is None else format(v, spec)
  wall = t.get("wall_time_hours")
  iwae_n = (f"{r['iwae_num_examples']} evenly spaced images"
            if r.get("iwae_subset", "all") != "all" else f"all {ds['num_eval_examples']} images")
  lines = [
      f"# {card['name']}: {card['description']}",
      "",
      f"Config `{card['config_name']}` (full config in `card.json`). Dataset "
      f"`{ds['name']}` (binarization: {ds.get('binarization')}), evaluated on the "
      f"`{ds['eval_split']}` split, {ds['num_eval_examples']} examples.",
      "",
      "| metric | this model | paper |",
      "| --- | --- | --- |",
      f"| test NLL, IWAE k={r.get('iwae_samples')} on {iwae_n} (nats) | {fmt(r.get('iwae_nll'))}"
      + (f" ± {fmt(r.get('iwae_nll_stderr'))} (s.e.)" if r.get("iwae_nll_stderr") else "")
      + f" | {fmt(paper.get('nll'))} |",
      *([f"| test ELBO on the same {iwae_n} (nats) | {fmt(r.get('elbo_on_iwae_subset'))}"
         + (f" ± {fmt(r['elbo_on_iwae_subset_stderr'])}" if r.get("elbo_on_iwae_subset_stderr")
            else "") + " | |"]
        if r.get("iwae_subset", "all") != "all" else []),
      f"| test ELBO, all {ds['num_eval_examples']} images (nats) | {fmt(r.get('elbo'))}"
      + (f" ± {fmt(r['elbo_stderr'])}" if r.get("elbo_stderr") else "") + " | |",
      f"| rate / distortion, all images (nats) | {fmt(r.get('rate'))} / "
      f"{fmt(r.get('distortion'))} | |",
      f"| bits/dim (IWAE, {iwae_n}) | {fmt(r.get('bits_per_dim'), '.4f')} | "
      f"{fmt(paper.get('bits_per_dim'), '.2f')} |",
      f"| bits/dim (ELBO, all images) | {fmt(r.get('elbo_bits_per_dim'), '.4f')} | |",
      f"| active units | {r.get('active_units')} / {r.get('latent_size')} | |",
      "",
      f"Paper: {paper.get('source')}. The numbers above are copied from `eval.json`; ± is the "
      "standard error of the mean over the test images it names (how much the mean would move "
      "with other test images of the same kind), not a spread over training runs.",
      "",
      f"Training: `{t['command']}` (config `{t.get('config_file')}`); "
      f"{fmt(t.get('steps'), 'd')} steps on {t['hardware']}"
      + (f", {wall:.1f} h wall time" if isinstance(wall, (int, float)) else "")
      + f"; {t.get('weights') or 'unknown'} weights.",
      "",
      f"SavedModel in `{card['version']}/` with signatures "
      + ", ".join(f"`{s}`" for s in card["signatures"])
      + " (contract: docs/SERVING.md). Use it with `vlae_tf.zoo.load(\"" + card["name"]
      + "\")` or the `vlae` command line.",
  ]
  if card.get("learning_curve"):
    lines += ["", f"Learning curve (held-out ELBO against training hours and steps): "
              f"[`{card['learning_curve']}`]({card['learning_curve']})."]
  if card.get("notes"):
    lines += ["", str(card["notes"])]
  return "\n".join(lines) + "\n"


# -------------------------------------------------------------------- load
INFO_KEY = "info_json/.ATTRIBUTES/VARIABLE_VALUE"   # vlae_tf.export.ServingModule.info_json


def saved_model_config(d, version) -> dict:
  """The config stored in the SavedModel ``d/version`` (its ``info_json``), without loading it."""
  prefix = pathlib.Path(d) / str(version) / "variables" / "variables"
  try:
    info = json.loads(tf.train.load_checkpoint(str(prefix)).get_tensor(INFO_KEY))
    return info["config"]
  except Exception as e:  # noqa: BLE001 -- damaged files fail in many ways (IndexError, DataLoss..)
    raise ZooError(f"cannot read the config stored in the SavedModel {prefix} ({first_line(e)}); "
                   "its files may be damaged") from None


def load(name_or_path, zoo=None, verify_checksums=True, known_configs=()):
  """Loads a pretrained model; returns a :class:`ZooModel`.

  Args:
    name_or_path: a model name in the zoo folder (see :func:`zoo_dir`), or the
      path of a model folder holding ``card.json``.
    zoo: the zoo folder (default ``$VLAE_ZOO_DIR`` or the repo's ``saved_models/``).
    verify_checksums: recompute and check every file's sha256 (default True).
    known_configs: the zoo's config names, for the hint of an unknown name (see :func:`model_dir`).
  """
  d = model_dir(name_or_path, zoo, known_configs)
  card = verify(d) if verify_checksums else read_card(d)
  try:
    saved_model = tf.saved_model.load(str(d / str(card["version"])))
  except Exception as e:  # noqa: BLE001 -- damaged files fail in many ways (IndexError, DecodeError..)
    raise ZooError(f"cannot load the SavedModel in {d / str(card['version'])} ({first_line(e)}); "
                   "its files may be damaged"
                   + ("" if verify_checksums else ": load it without --no_verify / with "
                      "verify_checksums=True to check their sha256")) from None
  check_card_config(card, d, json.loads(saved_model.info_json.numpy().decode("utf-8"))["config"])
  if quiet_tf.is_quiet():
    quiet_tf.spend_bool_line()     # oneDNN's DT_BOOL line of the first input check, hidden
  return ZooModel(saved_model, card=card, path=d)
