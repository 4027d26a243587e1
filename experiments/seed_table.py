"""The seed table, one command: three models per dataset at an equal CPU budget (issue 20, item 1).

Per dataset, three models train for the same CPU budget (``--cpu_minutes`` of
process CPU time each, one after another in fresh processes; bfloat16 compute,
``--precision``) with the strongest decoders of the zoo:

==========  =====================================  ==============================
row         static binarized MNIST (``mnist_cpu``  CIFAR-10 (``cifar10_cpu``
            size)                                  size)
==========  =====================================  ==============================
vlae        ``mnist_gated_cpu`` (gated local)      ``cifar10_gated_cpu``
vae_full    ``mnist_gated_full_cpu`` (gated full)  ``cifar10_gated_full_cpu``
vae_factor  ``mnist_vae_factorized`` scaled like   ``cifar10_vae_factorized_cpu``
ized        ``mnist_cpu``
==========  =====================================  ==============================

Each is evaluated (EMA weights) on the same ``--num_images`` test images,
evenly spaced over the test split: the IWAE bound on the NLL with k =
``--iwae_samples`` (per dataset; k >= 1000 for MNIST, what the evaluation
budget allows for CIFAR-10), the ELBO, the rate KL(q(z|x) || p(z)), active
units and I(x; z) (:func:`experiments.metrics.test_set_metrics`).

Output: ``--out`` (default ``experiments/results/seed_table.json``)::

    {"rows": [{"dataset", "model", "nll", "nll_stderr", "elbo", "rate",
               "active_units", "mutual_information", "cpu_seconds", "num_images",
               "iwae_samples", "config", ...}], "table_md": ...}

(nats per image; ``bits_per_dim`` beside; ``paper`` the paper's number where
it has one), rewritten atomically after every row. Resumable per row at any
point (:mod:`experiments.budget_study`): rerun the same command to go on.

Run from the repository root (each row runs as ``python -m experiments.seed_table --row=...``)::

  VLAE_DATA_DIR=/work/shared/data python -m experiments.seed_table --workdir=/work/runs/seed_table
  python -m experiments.seed_table --smoke --workdir=/tmp/st --out=/tmp/st/seed_table.json

Reusing another study's trainings (``--reuse_trained=DIR[,DIR...]``). The
MNIST rows train exactly the configs of the peers study's ``vae_factorized``,
``vae_full`` and ``vlae_gated`` contenders (``experiments/peers.py``; the
seed table adds ``train.precision=bfloat16``, which peers gets with ``--set``).
With ``--reuse_trained``, a row looks in each DIR (a study's ``--workdir``, or
one row folder of it) for a finished training (``<DIR>/<row>/train.json``)
whose ``run/config.json`` equals the config this row would train in every key
(seed, ``--set``, ``--checkpoint_steps``, ``--data_dir`` included) at the same
CPU budget; the first such one is evaluated here (this table's images, k and
metrics) without training, and the row says where it was trained
(``trained_in`` in its settings and its record; ``train`` holds the original
``train.json``: steps, CPU seconds, load, ``trained_as``). Every candidate
passed over gets one line in the log saying why (e.g. ``other config:
train.precision 'float32' (now 'bfloat16')``). DIR is only read. When that
folder also holds the very evaluation this row would make (a peers VAE
contender evaluated by the same ``test_set_metrics`` on the same number of
evenly spaced images of the same split, with the same k and seed:
``--num_images`` = peers' ``--eval_examples``, ``--iwae_samples`` = its
``--iwae_samples``, the same ``--seed``), the row takes its summary and
per-image NLL/ELBO from ``peer.json`` and ``per_example.npz`` instead of
repeating it (about an hour of CPU per MNIST row at k=1000), and says so
(``evaluated_in``: that ``peer.json``, in its test record and its row);
otherwise the log says why not and the row is evaluated here. A row whose
training already finished in ``--workdir`` keeps it. Reuse is part of a
row's settings: a rerun keeps a reused row only with the same reuse (rerun
the same command), and a rerun without the flag trains that row here. The
command pair (both at 60 CPU-minutes, seed 0; give both the same further
``--set``, e.g. ``--set train.learning_rate=1e-3`` on each)::

  VLAE_DATA_DIR=/work/shared/data python -m experiments.peers --workdir=/work/runs/peers \
      --set train.precision=bfloat16
  VLAE_DATA_DIR=/work/shared/data python -m experiments.seed_table \
      --workdir=/work/runs/seed_table --reuse_trained=/work/runs/peers

  # the same in seconds, on synthetic data:
  python -m experiments.peers --smoke --contenders=vae_factorized \
      --set train.precision=bfloat16 --workdir=/tmp/peers_smoke
  python -m experiments.seed_table --smoke --datasets=mnist --workdir=/tmp/st \
      --out=/tmp/st/seed_table.json --reuse_trained=/tmp/peers_smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import vlae_tf
from experiments import budget_study, sizing
from vlae_tf import atomic

TITLE = "The seed table: factorized VAE vs full-context VAE vs VLAE at equal CPU"
DATASETS = ("mnist", "cifar10")
MODELS = ("vae_factorized", "vae_full", "vlae")
ZOO = {"mnist": {"vae_factorized": "mnist_vae_factorized", "vae_full": "mnist_gated_full_cpu",
                 "vlae": "mnist_gated_cpu"},
       "cifar10": {"vae_factorized": "cifar10_vae_factorized_cpu",
                   "vae_full": "cifar10_gated_full_cpu", "vlae": "cifar10_gated_cpu"}}
# The paper's numbers (Chen et al., ICLR 2017), full-size models: static MNIST NLL in nats
# (Table 1), CIFAR-10 in bits/dim (Table 3).
PAPER = {("mnist", "vlae"): {"nll": 79.03, "source": "Table 1, VLAE, static MNIST"},
         ("cifar10", "vlae"): {"bits_per_dim": 2.95, "source": "Table 3, VLAE, CIFAR-10"}}
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                           "seed_table.json")
STUDY_KEYS = ("smoke", "cpu_minutes", "num_images", "seed", "precision")
SMOKE = dict(cpu_minutes=0.05, num_images=8, iwae_samples="mnist:4,cifar10:4")


def row_key(dataset, model):
  return f"{dataset}_{model}"


def split_key(key):
  return next((d, m) for d in DATASETS for m in MODELS if row_key(d, m) == key)


def row_config(dataset, model, args):
  """The config of one row: the zoo config at CPU size, ``--precision``, ``--set``."""
  cfg = vlae_tf.zoo.get_config(ZOO[dataset][model])
  if ZOO[dataset][model] == "mnist_vae_factorized":
    cfg, _ = sizing.scale_like(cfg, "mnist", "mnist_cpu")
  cfg.train.precision = args.precision
  budget_study.apply_settings(cfg, args.set)
  return budget_study.budget_config(cfg, args.smoke, args.data_dir, args.seed,
                                    args.checkpoint_steps)


def training_settings(dataset, model, args):
  return budget_study.plain({"smoke": bool(args.smoke), "cpu_minutes": args.cpu_minutes,
                             "seed": args.seed, "precision": args.precision,
                             "config": ZOO[dataset][model], "set": list(args.set)})


def row_settings(dataset, model, args, trained_in=None):
  """What a row's result depends on; ``trained_in``: the other study's row folder whose
  training it reuses (absent when the row trains in ``--workdir``)."""
  s = dict(training_settings(dataset, model, args), num_images=args.num_images,
           iwae_samples=args.iwae_samples[dataset])
  return dict(s, trained_in=trained_in) if trained_in else s


def reused_trainings(keys, args, records):
  """``{key: row folder}`` of the rows whose training ``--reuse_trained`` holds.

  A row whose training finished in ``--workdir`` keeps it; otherwise the first
  exact match (:func:`experiments.budget_study.find_trained`: config, CPU
  budget, seed), the folder the row used before first. Every candidate passed
  over is logged with its reason, one line each.
  """
  found = {}
  for key in keys if args.reuse_trained else ():
    own = os.path.join(args.workdir, key)
    if os.path.exists(os.path.join(own, budget_study.TRAINED)):
      print(f"{key}: trained in {own}; not looking for a training to reuse", flush=True)
      continue
    before = (records.get(key, {}).get("settings", {}).get("trained_in")
              or (budget_study.read_json(os.path.join(own, budget_study.RESULT)) or {})
              .get("settings", {}).get("trained_in"))
    src = budget_study.find_trained(args.reuse_trained, row_config(*split_key(key), args),
                                    args.cpu_minutes * 60.0, key, exclude=own, prefer=before)
    if src:
      found[key] = src
    else:
      print(f"{key}: no training to reuse in {', '.join(args.reuse_trained)}; training it",
            flush=True)
  return found


def to_row(key, result):
  """A finished row (``result.json``) as ``rows`` lists it."""
  s, t, e = result["settings"], result["train"], result["test"]
  dataset, model = split_key(key)
  return {"dataset": dataset, "model": model, "nll": e["iwae_nll"],
          "nll_stderr": e["iwae_nll_stderr"], "elbo": e["elbo"], "elbo_stderr": e["elbo_stderr"],
          "rate": e["rate"], "distortion": e["distortion"], "bits_per_dim": e["bits_per_dim"],
          "active_units": e["active_units"], "latent_size": e["latent_size"],
          "mutual_information": e["mutual_information"], "cpu_seconds": t["cpu_seconds"],
          "steps": t["steps"], "examples_seen": t["examples_seen"], "params": t["num_params"],
          "num_images": e["num_examples"], "iwae_samples": e["iwae_samples"],
          "config": t["config"] + "".join(f" --set {v}" for v in s["set"]),
          "precision": s["precision"], "training_processes": t["processes"],
          "cpu_estimated": t["cpu_estimated"], "trained_in": t.get("trained_in"),
          "evaluated_in": e.get("evaluated_in"),
          "paper": PAPER.get((dataset, model)),
          "settings": s, "per_image_nll": result["per_image"]["nll"]}


def table(rows, smoke):
  """The Markdown table of the rows: ours beside the paper's."""
  lines = ["| dataset | model | config | steps | CPU s | test NLL (nats, IWAE) | bits/dim | −ELBO "
           "| rate | active units | I(x;z) | paper |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    p = r["paper"] or {}
    paper = (f"{p['nll']:.2f} nats" if "nll" in p else f"{p['bits_per_dim']:.2f} bits/dim"
             if p else "—")
    lines.append(f"| {r['dataset']} | {r['model']} | `{r['config']}` | {r['steps']:,} | "
                 f"{r['cpu_seconds']:.0f} | {r['nll']:.2f} ± {r['nll_stderr']:.2f} "
                 f"(k={r['iwae_samples']}, {r['num_images']} images) | {r['bits_per_dim']:.4f} | "
                 f"{-r['elbo']:.2f} | {r['rate']:.2f} | {r['active_units']}/{r['latent_size']} | "
                 f"{r['mutual_information']:.2f} | {paper} |")
  reused = [f"{r['dataset']} {r['model']} ({r['trained_in']})" for r in rows
            if r.get("trained_in")]
  if reused:
    lines += ["", "Trained by another study (the same config, CPU budget and seed; evaluated "
              "here, not trained again): " + "; ".join(reused)]
  if smoke:
    lines = ["**SMOKE RUN**: tiny models, synthetic 8x8 images; no number here is a result.",
             ""] + lines
  return "\n".join(lines)


def write(args, records):
  rows = [records[row_key(d, m)] for d in DATASETS for m in MODELS if row_key(d, m) in records]
  out = {"title": TITLE, "command": [os.path.basename(sys.executable)] + sys.argv,
         "smoke": bool(args.smoke), "cpu_minutes": args.cpu_minutes, "precision": args.precision,
         "reuse_trained": args.reuse_trained, "rows": rows, "table_md": table(rows, args.smoke)}
  atomic.write_text(args.out, json.dumps(out, indent=2) + "\n")
  return out


def run_one(key, args):
  """Trains (or resumes) and evaluates one row in this (fresh) process.

  ``--trained_in`` (set by the parent from ``--reuse_trained``): only evaluates
  the training in that folder, which is checked again and only read.
  """
  dataset, model = split_key(key)
  budget_study.run_row(row_config(dataset, model, args), os.path.join(args.workdir, key),
                       args.cpu_minutes * 60.0, training_settings(dataset, model, args),
                       row_settings(dataset, model, args, args.trained_in), args.num_images,
                       args.iwae_samples[dataset], args.seed, trained_in=args.trained_in)


def parse_iwae(text, datasets):
  """``"mnist:1000,cifar10:100"`` (or one number for all) -> ``{dataset: k}``."""
  try:
    if ":" not in text:
      return {d: int(text) for d in DATASETS}
    ks = {d: int(v) for d, v in (item.split(":") for item in text.split(",") if item)}
  except ValueError:
    raise ValueError(f"--iwae_samples: expected k or dataset:k,..., got {text!r}") from None
  missing = [d for d in datasets if d not in ks]
  if missing or any(k < 1 for k in ks.values()):
    raise ValueError(f"--iwae_samples {text!r}: need k >= 1 for {', '.join(datasets)}")
  return ks


def parse(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True, help="Folder of the rows' runs and logs.")
  p.add_argument("--out", default=DEFAULT_OUT, help="The table's JSON (default %(default)s).")
  p.add_argument("--datasets", default=",".join(DATASETS))
  p.add_argument("--models", default=",".join(MODELS))
  p.add_argument("--cpu_minutes", type=float, default=None,
                 help="Training CPU budget per model (default 60; --smoke 0.05).")
  p.add_argument("--num_images", type=int, default=None,
                 help="Evenly spaced test images (default 1000; --smoke 8; -1: all).")
  p.add_argument("--iwae_samples", default=None, help="IWAE k per dataset (default "
                 "mnist:1000,cifar10:100; one number: every dataset).")
  p.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
  p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                 help="Change a setting of every model's config (repeatable).")
  p.add_argument("--smoke", action="store_true", help="Tiny models, synthetic data.")
  p.add_argument("--data_dir", default="")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--checkpoint_steps", type=int, default=250)
  p.add_argument("--reuse_trained", default="", metavar="DIR[,DIR...]",
                 help="Work folders of other budget studies (e.g. a peers --workdir): a row whose "
                 "exact training (config, CPU budget, seed) finished there is evaluated on it "
                 "instead of trained again; they are only read.")
  p.add_argument("--row", help=argparse.SUPPRESS)
  p.add_argument("--trained_in", default=None, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  defaults = SMOKE if args.smoke else dict(cpu_minutes=60.0, num_images=1000,
                                           iwae_samples="mnist:1000,cifar10:100")
  for k, v in defaults.items():
    if getattr(args, k) is None:
      setattr(args, k, v)
  args.datasets = [d for d in args.datasets.split(",") if d]
  args.models = [m for m in args.models.split(",") if m]
  if not args.datasets or set(args.datasets) - set(DATASETS):
    p.error(f"--datasets: choose from {', '.join(DATASETS)}")
  if not args.models or set(args.models) - set(MODELS):
    p.error(f"--models: choose from {', '.join(MODELS)}")
  args.reuse_trained = [os.path.abspath(d) for d in args.reuse_trained.split(",") if d]
  missing = [d for d in args.reuse_trained if not os.path.isdir(d)]
  if missing:
    p.error(f"--reuse_trained: no folder {', '.join(missing)}")
  if args.cpu_minutes <= 0 or args.checkpoint_steps < 1:
    p.error("--cpu_minutes must be > 0 and --checkpoint_steps >= 1")
  if args.num_images == 0 or args.num_images < -1:
    p.error(f"--num_images must be -1 (all) or >= 1, got {args.num_images}")
  try:
    args.iwae_samples = parse_iwae(args.iwae_samples, args.datasets)
  except ValueError as e:
    p.error(str(e))
  return args


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse(argv)
  if args.row:
    return run_one(args.row, args)
  keys = [row_key(d, m) for d in args.datasets for m in args.models]
  study = budget_study.plain({k: getattr(args, k) for k in STUDY_KEYS})
  with budget_study.workdir_lock(args.workdir):
    records = budget_study.kept_rows(args.out, "rows", lambda r: row_key(r["dataset"],
                                                                          r["model"]), study)
    reused = reused_trainings(keys, args, records)
    budget_study.run_rows(
        keys, records, lambda k: row_settings(*split_key(k), args, reused.get(k)),
        lambda k: os.path.join(args.workdir, k, budget_study.RESULT),
        lambda k: ["-m", "experiments.seed_table", f"--row={k}"] + argv
        + ([f"--trained_in={reused[k]}"] if k in reused else []),
        lambda k: os.path.join(args.workdir, k + ".log"), to_row,
        lambda recs: write(args, recs),
        lambda k: f"evaluating the training in {reused[k]}" if k in reused else "training")
  out = write(args, records)
  print(out["table_md"], flush=True)
  return out


if __name__ == "__main__":
  main()
