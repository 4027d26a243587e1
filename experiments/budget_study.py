"""A study of models trained at the same CPU budget, resumable per row at any point.

``experiments/peers.py``, ``experiments/seed_table.py`` and
``experiments/posterior_collapse.py --sweep`` share this machinery: each row
(one model) trains in fresh processes until it has used the CPU budget
(:mod:`experiments.cpu_budget`), is evaluated, and is added to the study's
output JSON at once (rewritten atomically: a reader sees the old or the new
file, never a torn one). A rerun with the same settings keeps every row done
and runs only the others, so a study can be spread over sessions that end at
any moment:

* a row in the output JSON whose ``settings`` equal this run's is kept;
* a row whose ``result.json`` is finished under these settings is only gathered;
* a row whose training finished (``train.json``) under the same training
  settings is only evaluated again (e.g. with another k);
* a row stopped mid-training resumes from its last checkpoint, its CPU count
  carried over (the CPU ledger);
* a row folder trained under other settings, or an output JSON of a study
  with other study-wide settings, is refused with one line (exit status 2),
  never overwritten; two runs in one work folder at once are refused too.

Layout of a row ``r`` in the study's work folder::

    <workdir>/<r>/settings.json   the settings its training was started with
    <workdir>/<r>/run/            its vlae_tf work directory (+ cpu_ledger.json)
    <workdir>/<r>/train.json      its finished training: steps, CPU seconds, ...
    <workdir>/<r>/result.json     the finished row: settings, train, test, per-image values
    <workdir>/<r>.log             the output of its processes

A row may also take its training from another study's finished one
(:func:`find_trained`, e.g. ``seed_table.py --reuse_trained``): only a row
folder whose ``train.json`` says finished, at the same CPU budget, and whose
``run/config.json`` is exactly the config the row would train (every key,
seed included) counts; it is only read, and the row is evaluated on it
(:func:`run_row` with ``trained_in``), its record saying where it was trained.
When that folder also holds the same evaluation already (a peers contender's
``peer.json`` + ``per_example.npz``: the same function, images, k and seed),
the row takes it instead of computing it again (``evaluated_in`` in its test
record; :func:`reuse_evaluation`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time

import numpy as np

from experiments import cpu_budget
from experiments.metrics import test_set_metrics
from experiments.sizing import make_tiny, num_params
from experiments.trained import test_images
from vlae_tf import atomic
from vlae_tf import config as vconfig
from vlae_tf import workdir as vwork

SETTINGS, TRAINED, RESULT, LOCK = "settings.json", "train.json", "result.json", ".study.lock"


def fail(message):
  """A user's mistake (or a folder that needs the user's decision): one line, exit status 2."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  raise SystemExit(2)


def plain(value):
  """``value`` as JSON gives it back (tuples as lists): what settings are compared as."""
  return json.loads(json.dumps(value))


def read_json(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def differences(old, new):
  return ", ".join(f"{k} {old.get(k)!r} (now {new.get(k)!r})"
                   for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))


def apply_settings(cfg, settings):
  """Sets each ``"section.key=value"`` of ``settings`` (``--set``; the value parsed as JSON)."""
  flat = vconfig.flatten(cfg)
  for item in settings:
    key, sep, raw = item.partition("=")
    if not sep or key not in flat:
      fail(f"--set {item!r}: expected section.key=value with a config key")
    try:
      value = json.loads(raw)
    except json.JSONDecodeError:
      value = raw
    vconfig.shrink(cfg, {key: tuple(value) if isinstance(value, list) else value})
  return cfg


def budget_config(cfg, smoke=False, data_dir="", seed=0, checkpoint_steps=250):
  """``cfg`` made ready for a training at a CPU budget (smoke: tiny, synthetic data).

  Everything the budget buys goes into steps: no periodic evaluation, a
  checkpoint every ``checkpoint_steps`` steps (what a killed process can lose).
  """
  if smoke:
    cfg = make_tiny(cfg)
  if data_dir:
    cfg.data.data_dir = data_dir
  cfg.seed = int(seed)
  cfg.eval.periodic_examples = 0
  cfg.eval.num_images = 0
  cfg.train.eval_every = 0
  cfg.train.checkpoint_every = int(checkpoint_steps)
  cfg.train.keep_checkpoints = 2
  return cfg


def prepare_row_dir(d, train_settings):
  """Makes row folder ``d`` for a training under ``train_settings``, or checks the one there."""
  marker = os.path.join(d, SETTINGS)
  if os.path.isdir(d) and os.listdir(d):
    old = read_json(marker)
    if old is None:
      fail(f"{d} holds a run without its settings (made by an older version); remove it to "
           "run it again")
    if old != train_settings:
      fail(f"{d} holds a training with other settings: {differences(old, train_settings)}; "
           "use another --workdir or remove it")
    return
  os.makedirs(d, exist_ok=True)
  atomic.write_text(marker, json.dumps(train_settings, indent=2) + "\n")


@contextlib.contextmanager
def workdir_lock(workdir):
  """Holds ``<workdir>/.study.lock``: two studies in one folder would train each other's rows."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, LOCK), "w") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      fail(f"another study is running in {workdir}; wait for it or use another --workdir")
    yield


def kept_rows(path, list_key, key_of, study):
  """``{key: row}`` of the rows already in the output JSON ``path`` ({} if there is none).

  ``study``: the study-wide settings (each row's ``settings`` holds them); a
  file with other ones is a different study, refused rather than mixed in.
  """
  saved = read_json(path)
  if saved is None:
    return {}
  kept = {}
  for row in saved.get(list_key, []):
    old = {k: row.get("settings", {}).get(k) for k in study}
    if old != study:
      fail(f"{path} holds a study with other settings: {differences(old, study)}; "
           "give another --out or remove it")
    kept[key_of(row)] = row
  return kept


def run_rows(keys, records, settings_of, result_path, child_argv, log_of, to_record, write,
             doing=lambda key: "training"):
  """Runs each row of ``keys`` not in ``records`` under its settings, one fresh process each.

  ``records`` (``{key: record}``, from :func:`kept_rows`) is updated and
  ``write(records)`` called after every row. ``child_argv(key)``: the
  arguments of the process that trains and evaluates row ``key`` (it writes
  ``result_path(key)``, a JSON with its ``settings``); ``to_record(key,
  result)``: the row as the output lists it. A row interrupted from outside
  stops the study with exit status 143 (rerun to resume). ``doing(key)``: what the
  log says the process does (default "training").
  """
  for key in keys:
    settings = settings_of(key)
    if records.get(key, {}).get("settings") == settings:
      print(f"{key}: kept from the output", flush=True)
      continue
    path = result_path(key)
    if (read_json(path) or {}).get("settings") == settings:
      print(f"{key}: gathering {path}", flush=True)
    else:
      log = log_of(key)
      print(f"{key}: {doing(key)} in a fresh process (log {log})", flush=True)
      rc, tail = cpu_budget.run_fresh_process(child_argv(key), log)
      if rc == cpu_budget.INTERRUPTED_EXIT:
        print(f"{key}: interrupted; rerun the same command to resume it", file=sys.stderr,
              flush=True)
        raise SystemExit(rc)
      if rc:
        fail(f"{key} failed (exit {rc}): {tail} (log {log})")
      print(tail, flush=True)
    records[key] = to_record(key, read_json(path))
    write(records)
  return records


def train_record(steps, budget_s, cfg, started):
  """The bookkeeping of a finished training: budget, batch, examples seen, wall time, load.

  ``started``: ``(time.time(), load average)`` when this process began training
  (wall time and load are of the last process's share only, if it was resumed).
  """
  batch = int(cfg.train.batch_size)
  return {"budget_cpu_seconds": budget_s, "wall_seconds": time.time() - started[0],
          "batch_size": batch, "examples_seen": int(steps) * batch,
          "load_average_start": started[1], "load_average_end": os.getloadavg()[0]}


def started():
  return time.time(), os.getloadavg()[0]


def train_at_budget(cfg, d, budget_s, train_settings, label=None):
  """Trains (or resumes) row folder ``d``'s VAE until ``budget_s`` CPU seconds.

  Returns ``(model, train)``: the EMA model and what ``train.json`` holds
  (``config``: ``label``, default the config's name).
  """
  trained = os.path.join(d, TRAINED)
  rundir = os.path.join(d, "run")
  if os.path.exists(trained):                      # trained earlier, evaluation stopped
    model, _, _ = vwork.load_model_from_workdir(rundir, use_ema=True)
    return model, read_json(trained)
  start = started()
  rec = cpu_budget.train_vae(cfg, rundir, budget_s, os.path.join(rundir, cpu_budget.LEDGER))
  model, _, _ = vwork.load_model_from_workdir(rundir, use_ema=True)
  rec.update(train_record(rec["steps"], budget_s, cfg, start), num_params=num_params(model),
             config=label or cfg.name, settings=train_settings)
  atomic.write_text(trained, json.dumps(rec, indent=2) + "\n")
  return model, rec


def candidate_rows(dirs):
  """The row folders of other studies in ``dirs``: each folder that is one (it holds a
  ``settings.json`` or ``train.json``), else its subfolders that are, sorted by name."""
  out = []
  for top in dirs:
    if any(os.path.exists(os.path.join(top, f)) for f in (SETTINGS, TRAINED)):
      out.append(os.path.abspath(top))
      continue
    for name in sorted(os.listdir(top)) if os.path.isdir(top) else ():
      d = os.path.join(top, name)
      if any(os.path.exists(os.path.join(d, f)) for f in (SETTINGS, TRAINED)):
        out.append(os.path.abspath(d))
  return out


def training_mismatch(d, cfg, budget_s):
  """Why row folder ``d`` does not hold a finished training of exactly ``cfg`` at ``budget_s``
  CPU seconds (one line), or None when it does: its ``train.json`` (finished), that budget,
  its last checkpoint at the recorded step, and ``run/config.json`` equal to ``cfg`` in every
  key (keys added to the schema since count at their defaults, as the library reads a run)."""
  train = read_json(os.path.join(d, TRAINED))
  if train is None:
    return "its training has not finished (no train.json)"
  rundir = os.path.join(d, "run")
  stored = read_json(os.path.join(rundir, vwork.CONFIG_FILE))
  if stored is None:
    return "not a vlae_tf training (no run/config.json)"
  if train.get("budget_cpu_seconds") != budget_s:
    return f"CPU budget {train.get('budget_cpu_seconds')!r} s (now {budget_s!r} s)"
  old = vconfig.flatten(vconfig.jsonable(vconfig.with_defaults(stored)))
  new = vconfig.flatten(vconfig.jsonable(cfg))
  keys = sorted((k for k in set(old) | set(new)
                 if old.get(k, "<missing>") != new.get(k, "<missing>")),
                key=lambda k: (k in ("name", "description"), k))      # what it trains, first
  if keys:
    shown = ", ".join(f"{k} {old.get(k, '<missing>')!r} (now {new.get(k, '<missing>')!r})"
                      for k in keys[:4])
    return f"other config: {shown}" + (f" and {len(keys) - 4} more keys" if len(keys) > 4 else "")
  step = cpu_budget.checkpoint_step(vwork.latest_checkpoint(rundir))
  if step != train.get("steps"):
    return f"its last checkpoint is at step {step}, train.json says {train.get('steps')}"
  return None


def find_trained(dirs, cfg, budget_s, label, exclude=None, prefer=None, log=print):
  """The first row folder of ``dirs`` (:func:`candidate_rows`; ``prefer`` first, if it is one)
  holding a finished training of exactly ``cfg`` at ``budget_s`` CPU seconds, or None.

  Each candidate passed over gets one line in ``log`` (``label``: the row), saying why;
  ``exclude``: the row's own folder, never a candidate. Nothing in ``dirs`` is written.
  """
  own = os.path.realpath(exclude) if exclude else None
  found = [d for d in candidate_rows(dirs) if os.path.realpath(d) != own]
  if prefer and os.path.abspath(prefer) in found:
    found.remove(os.path.abspath(prefer))
    found.insert(0, os.path.abspath(prefer))
  for d in found:
    why = training_mismatch(d, cfg, budget_s)
    if why is None:
      log(f"{label}: reusing the training in {d} (same config, CPU budget and seed)")
      return d
    log(f"{label}: not reusing {d}: {why}")
  return None


def reuse_training(cfg, src, budget_s, label=None):
  """``(model, train)`` of the finished training in row folder ``src``, only read.

  ``train``: its ``train.json`` record (steps, CPU seconds, load, ...) with
  ``trained_in`` (``src``), ``trained_as`` (its label there) and ``config``
  (``label``, default the config's name). Refused (one line) unless ``src``
  still holds exactly this training (:func:`training_mismatch`).
  """
  why = training_mismatch(src, cfg, budget_s)
  if why is not None:
    fail(f"{src} does not hold this row's training: {why}")
  model, _, step = vwork.load_model_from_workdir(os.path.join(src, "run"), use_ema=True)
  train = read_json(os.path.join(src, TRAINED))
  if step != train["steps"]:
    fail(f"{src}: restored step {step}, but its train.json says {train['steps']}")
  return model, dict(train, trained_in=os.path.abspath(src), trained_as=train.get("config"),
                     config=label or cfg.name)


def evaluate(model, cfg, num_images, iwae_samples, seed):
  """Test metrics of ``model`` on ``num_images`` evenly spaced test images: ``(test, per_image)``.

  ``test``: :func:`experiments.metrics.test_set_metrics`' summary (IWAE NLL
  with k = ``iwae_samples``, ELBO, rate, KL per dimension, active units,
  I(x; z)) plus the evaluation's CPU and wall seconds; ``per_image``:
  ``nll`` and ``elbo`` per image (for paired differences).
  """
  x = test_images(cfg, num_images)
  t0, c0 = time.time(), time.process_time()
  s, per = test_set_metrics(model, x, iwae_samples, seed=seed, kl_examples=min(1000, len(x)))
  s.update(test_split=cfg.data.test_split, eval_wall_seconds=time.time() - t0,
           eval_cpu_seconds=time.process_time() - c0)
  return s, {"nll": [float(v) for v in per["iwae_nll"]], "elbo": [float(v) for v in per["elbo"]]}


PEER, PER_EXAMPLE = "peer.json", "per_example.npz"      # experiments/peers.py's evaluation


def evaluation_mismatch(src, cfg, num_images, iwae_samples, seed):
  """Why row folder ``src`` (a peers contender, :data:`PEER`) holds no evaluation this row can
  take as its own (one line), or None when it does.

  It must be :func:`evaluate`'s very computation: ``test_set_metrics`` on the same evenly
  spaced test images (the same count of the same split; a ``--set`` of ``data.*`` there is
  refused, as peers evaluates on its unset data config), the same k and seed, its whole
  summary kept, and ``per_example.npz`` with an ``nll`` and ``elbo`` per image.
  """
  peer = read_json(os.path.join(src, PEER))
  if peer is None:
    return f"no {PEER}"
  st, ev = peer.get("settings", {}), peer.get("test", {})
  wanted = {"eval_examples": num_images, "iwae_samples": iwae_samples, "seed": seed}
  got = {k: st.get(k) for k in wanted}
  if got != wanted:
    return "evaluated with " + differences(got, wanted)
  if "summary" not in ev:
    return "its evaluation kept no test.summary (made before peers kept it)"
  if ev.get("bound") != f"IWAE k={iwae_samples}" or ev.get("test_split") != cfg.data.test_split:
    return f"its evaluation is {ev.get('bound')!r} on split {ev.get('test_split')!r}"
  if any(str(v).startswith("data.") for v in st.get("set", [])):
    return "its --set changes the data config, which peers does not evaluate on"
  n = len(test_images(cfg, num_images))
  if ev.get("num_examples") != n or ev["summary"].get("num_examples") != n:
    return f"evaluated on {ev.get('num_examples')} images (now {n})"
  path = os.path.join(src, PER_EXAMPLE)
  if not os.path.exists(path):
    return f"no {PER_EXAMPLE}"
  with np.load(path) as per:
    if any(k not in per or per[k].shape != (n,) for k in ("nll", "elbo")):
      return f"its {PER_EXAMPLE} does not hold an nll and elbo for each of {n} images"
  return None


def reuse_evaluation(src, cfg, num_images, iwae_samples, seed, label="row", log=print):
  """``(test, per_image)`` as :func:`evaluate` returns them, taken from the evaluation already
  in row folder ``src`` (only read) when :func:`evaluation_mismatch` finds none, else None
  (the reason logged). ``test`` says where: ``evaluated_in``, the path of its ``peer.json``."""
  why = evaluation_mismatch(src, cfg, num_images, iwae_samples, seed)
  if why is not None:
    log(f"{label}: evaluating here, not taking the evaluation in {src}: {why}")
    return None
  ev = read_json(os.path.join(src, PEER))["test"]
  test = dict(ev["summary"], test_split=ev["test_split"],
              eval_wall_seconds=ev.get("eval_wall_seconds"),
              eval_cpu_seconds=ev.get("eval_cpu_seconds"),
              evaluated_in=os.path.join(os.path.abspath(src), PEER))
  with np.load(os.path.join(src, PER_EXAMPLE)) as per:
    per_image = {k: [float(v) for v in per[k]] for k in ("nll", "elbo")}
  log(f"{label}: taking the evaluation in {test['evaluated_in']} (same images, k and seed)")
  return test, per_image


def run_row(cfg, d, budget_s, train_settings, settings, num_images, iwae_samples, seed,
            trained_in=None):
  """Trains (or resumes) and evaluates one row in this process; writes ``<d>/result.json``.

  ``trained_in``: a row folder of another study holding exactly this row's
  training (:func:`find_trained`): evaluated there without training; its evaluation is taken
  as it is when it is this very one (:func:`reuse_evaluation`), else made here.
  """
  if (read_json(os.path.join(d, RESULT)) or {}).get("settings") == settings:
    return read_json(os.path.join(d, RESULT))
  prepare_row_dir(d, train_settings)
  if trained_in:
    model, train = reuse_training(cfg, trained_in, budget_s)
  else:
    model, train = train_at_budget(cfg, d, budget_s, train_settings)
  taken = trained_in and reuse_evaluation(trained_in, cfg, num_images, iwae_samples, seed,
                                          os.path.basename(d))
  test, per = taken or evaluate(model, cfg, num_images, iwae_samples, seed)
  result = {"settings": settings, "train": train, "test": test, "per_image": per}
  atomic.write_text(os.path.join(d, RESULT), json.dumps(result, indent=2) + "\n")
  where = f" (trained in {train['trained_in']})" if train.get("trained_in") else ""
  print(f"{os.path.basename(d)}: {train['steps']} steps in {train['cpu_seconds']:.0f} CPU s"
        f"{where}; test NLL {test['iwae_nll']:.3f} ± {test['iwae_nll_stderr']:.3f} "
        f"(IWAE k={iwae_samples}, {test['num_examples']} images), rate {test['rate']:.3f}",
        flush=True)
  return result


__all__ = ["SETTINGS", "TRAINED", "RESULT", "fail", "plain", "read_json", "differences",
           "apply_settings", "budget_config",
           "prepare_row_dir", "workdir_lock", "kept_rows", "run_rows", "train_record", "started",
           "train_at_budget", "candidate_rows", "training_mismatch", "find_trained",
           "reuse_training", "evaluate", "PEER", "PER_EXAMPLE", "evaluation_mismatch",
           "reuse_evaluation", "run_row"]
