"""Claim 1: a full PixelCNN decoder makes a VAE ignore z; VLAE's local decoder does not.

Three models on statically binarized MNIST with the same encoder, conditioning
network, AF prior and training budget (zoo ``mnist_vae_factorized``,
``mnist_vae_pixelcnn_full``, ``mnist``; at the default run size each scaled
down exactly as ``zoo/mnist_cpu.py`` scales ``mnist``):

* ``factorized``      p(x|z) = prod_ij Bernoulli(x_ij | z): z must carry everything.
* ``pixelcnn_full``   every earlier pixel is visible, no free bits: the decoder
                      can model p(x) alone, so the ELBO's optimum has
                      KL(q(z|x) || p(z)) = 0 ("posterior collapse"). As deep
                      as VLAE's decoder (``--full_decoder_layers``, default 6:
                      a full-image window, then 5 mask-B 3x3 layers).
* ``vlae``            a 6-layer 3x3 PixelCNN (local receptive field) + free bits.

Reported on the test set: ELBO, IWAE NLL (k samples), total KL (rate) and KL
per latent dimension (one bar plot per model), active units and I(x; z); and
the training rate over steps (``kl_over_training.png``, from each model's
``metrics.jsonl``), which shows whether a model is heading to collapse.

With ``--decoder_alone`` (default on) a fourth model answers *why* the
full-PixelCNN VAE does or does not collapse: the same VAE trained with
beta = 8, which drives its rate to ~0, so its NLL is what the full decoder
achieves *without* z. Collapse is the ELBO's optimum only if that is no worse
than the beta = 1 VAE's NLL; the report gives the paired difference.

Expected shape (each checked from the measured numbers, see ``CHECKS``):
the full-PixelCNN VAE's KL is near 0 on every dimension; VLAE's total KL is
clearly > 0; VLAE's NLL is better (lower) than the factorized VAE's, by more
than twice the standard error of the paired difference.

  VLAE_DATA_DIR=/path/to/data python experiments/posterior_collapse.py --workdir=runs/exp/collapse
  python experiments/posterior_collapse.py --workdir=/tmp/pc --smoke        # seconds, synthetic

``--sweep`` (issue 20, item 2): collapse shown over decoder strength. The
gated decoders of the zoo (``mnist_gated_full_cpu``: full context, and
``mnist_gated_cpu``: the local-context VLAE), each at every size of
``--sweep_sizes`` (``layers x filters``, shallow to deep/wide) and with every
regularizer variant of ``--sweep_variants`` (``none``; ``free_bits``: 0.03
nats per latent dimension, ``mnist``'s; ``warmup``: the KL weight ramped
from 0 to 1 over ``--kl_warmup_steps``; ``both``), all trained for the same
CPU budget (``--cpu_minutes``, fresh processes, bfloat16) and evaluated on the
same evenly spaced test images. Writes ``--out`` (default
``experiments/results/collapse.json``)::

    {"runs": [{"context", "layers", "filters", "free_bits", "warmup", "rate",
               "nll", "cpu_seconds", "kl_per_dim", ...}], "target": {...}}

(``rate``: KL(q(z|x) || p(z)) per image, nats, on the test images;
``kl_per_dim`` its Monte-Carlo split over the latent dimensions) and the
figure ``--figure`` (default ``docs/figures/collapse.png``: rate vs decoder
strength, one line per context and variant). The target: some full-context
configuration with rate <= 1 nat while the local-context VLAE of the same size
and variant keeps >= 5 nats. Resumable per run (:mod:`experiments.budget_study`;
rerun the same command to go on). Run from the repository root (each run is a
``python -m experiments.posterior_collapse`` process)::

  VLAE_DATA_DIR=/work/shared/data python -m experiments.posterior_collapse --sweep \
      --workdir=/work/runs/collapse_sweep
"""

from __future__ import annotations

import json
import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

import vlae_tf  # noqa: E402

from experiments import budget_study, harness  # noqa: E402
from vlae_tf import atomic  # noqa: E402
from vlae_tf import workdir as vwork  # noqa: E402

NAME = "posterior_collapse"
TITLE = "Posterior collapse: factorized VAE vs full-PixelCNN VAE vs VLAE (static MNIST)"
MODELS = (("factorized", "mnist_vae_factorized"), ("pixelcnn_full", "mnist_vae_pixelcnn_full"),
          ("vlae", "mnist"))
LABELS = {"factorized": "VAE, factorized decoder", "pixelcnn_full": "VAE, full PixelCNN decoder",
          "vlae": "VLAE (local PixelCNN, AF prior)",
          "decoder_alone": "full PixelCNN decoder alone (beta = 8 switches z off)"}
DECODER_ALONE_BETA = 8.0          # KL cost so high that q(z|x) = p(z) is optimal from the start
BUDGETS = {"cpu": harness.Budget(steps=1200, eval_examples=1000, iwae_samples=50)}
# Thresholds of the expected shape (nats).
COLLAPSED_MAX_KL_PER_DIM = 0.05   # "near 0 on every dimension"
COLLAPSED_MAX_KL_TOTAL = 0.5
USED_MIN_KL_TOTAL = 1.0           # "clearly > 0"
PAPER = {"source": "Chen et al., ICLR 2017: Table 1 (static MNIST) and the posterior-collapse "
                   "argument",
         "vlae_nll": 79.03,
         "claim": "a VAE with a full PixelCNN decoder ignores z (KL -> 0); VLAE's local decoder "
                  "keeps information in z and beats the factorized VAE"}


# ==================================================================== the sweep (--sweep)
SWEEP_ZOO = {"gated_full": "mnist_gated_full_cpu", "gated": "mnist_gated_cpu"}
SWEEP_LABELS = {"gated_full": "full context (gated_full)", "gated": "local context, VLAE (gated)"}
VARIANTS = {"none": (False, False), "free_bits": (True, False), "warmup": (False, True),
            "both": (True, True)}
VARIANT_LABELS = {(False, False): "plain", (True, False): "free bits",
                  (False, True): "KL warm-up", (True, True): "free bits + warm-up"}
SWEEP_FREE_BITS = 0.03             # nats per latent dimension when free bits are on (mnist's)
TARGET_COLLAPSED, TARGET_USED = 1.0, 5.0   # nats per image
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
FIGURES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                           "figures")
SWEEP_DEFAULTS = {"cpu_minutes": 10.0, "eval_examples": 500, "iwae_samples": 100}
SWEEP_SMOKE = {"cpu_minutes": 0.05, "eval_examples": 8, "iwae_samples": 4}


def parse_sizes(text):
  """``"1x16,6x64"`` -> ``[(1, 16), (6, 64)]`` (decoder layers x filters)."""
  try:
    sizes = [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item]
  except ValueError:
    sizes = []
  if not sizes or any(len(t) != 2 or min(t) < 1 for t in sizes):
    raise ValueError(f"--sweep_sizes must be a comma-list of LAYERSxFILTERS, got {text!r}")
  return sizes


def sweep_key(context, layers, filters, variant):
  return f"{context}_{layers}x{filters}_{variant}"


def sweep_plan(opts):
  """The runs of the sweep: ``{key: (context, layers, filters, variant)}``, in plot order."""
  return {sweep_key(c, n, f, v): (c, n, f, v) for c in SWEEP_ZOO for v in opts["variants"]
          for n, f in opts["sizes"]}


def sweep_train_settings(run, opts):
  context, layers, filters, variant = run
  free_bits, warmup = VARIANTS[variant]
  return budget_study.plain({
      "smoke": opts["smoke"], "cpu_minutes": opts["cpu_minutes"], "seed": opts["seed"],
      "kl_warmup_steps": opts["kl_warmup_steps"], "config": SWEEP_ZOO[context],
      "context": context, "layers": layers, "filters": filters, "free_bits": free_bits,
      "warmup": warmup})


def sweep_settings(run, opts):
  return dict(sweep_train_settings(run, opts), eval_examples=opts["eval_examples"],
              iwae_samples=opts["iwae_samples"])


def sweep_config(run, opts):
  """One run's config: the zoo config at the run's size, variant, bfloat16, the CPU budget."""
  context, layers, filters, variant = run
  free_bits, warmup = VARIANTS[variant]
  cfg = budget_study.budget_config(vlae_tf.zoo.get_config(SWEEP_ZOO[context]), opts["smoke"],
                                   opts["data_dir"], opts["seed"], opts["checkpoint_steps"])
  cfg.train.precision = "bfloat16"
  cfg.model.decoder_layers, cfg.model.decoder_filters = int(layers), int(filters)
  cfg.objective.free_bits = SWEEP_FREE_BITS if free_bits else 0.0
  cfg.objective.free_bits_groups = int(cfg.model.latent_dim)       # per latent dimension
  cfg.objective.kl_warmup_steps = int(opts["kl_warmup_steps"]) if warmup else 0
  return cfg


def sweep_record(key, result):
  """A finished run (``result.json``) as ``runs`` lists it."""
  s, t, e = result["settings"], result["train"], result["test"]
  return {"context": s["context"], "layers": s["layers"], "filters": s["filters"],
          "free_bits": s["free_bits"], "warmup": s["warmup"], "rate": e["rate"],
          "nll": e["iwae_nll"], "nll_stderr": e["iwae_nll_stderr"], "elbo": e["elbo"],
          "cpu_seconds": t["cpu_seconds"], "steps": t["steps"], "params": t["num_params"],
          "kl_per_dim": e["kl_per_dim"], "kl_total": e["kl_total"],
          "active_units": e["active_units"], "latent_size": e["latent_size"],
          "mutual_information": e["mutual_information"], "num_images": e["num_examples"],
          "iwae_samples": e["iwae_samples"], "config": t["config"],
          "training_processes": t["processes"], "cpu_estimated": t["cpu_estimated"],
          "key": key, "settings": s}


def collapse_target(runs):
  """Pairs (same size and variant) where the full context collapsed and the VLAE kept z."""
  local = {(r["layers"], r["filters"], r["free_bits"], r["warmup"]): r for r in runs
           if r["context"] == "gated"}
  met = []
  for r in runs:
    twin = local.get((r["layers"], r["filters"], r["free_bits"], r["warmup"]))
    if r["context"] == "gated_full" and twin is not None:
      if r["rate"] <= TARGET_COLLAPSED and twin["rate"] >= TARGET_USED:
        met.append({"full": r["key"], "local": twin["key"], "full_rate": r["rate"],
                    "local_rate": twin["rate"]})
  return {"collapsed_max_rate": TARGET_COLLAPSED, "local_min_rate": TARGET_USED,
          "met": bool(met), "pairs": met}


def sweep_figure(runs, path, caption_extra=""):
  """Rate vs decoder strength (the sweep's sizes in order), one line per context and variant."""
  plt = harness.pyplot()
  sizes = sorted({(r["layers"], r["filters"]) for r in runs}, key=lambda t: (t[0] * t[1], t))
  fig, ax = plt.subplots(figsize=(6.0, 3.6))
  styles = {(False, False): "-", (True, False): "--", (False, True): ":", (True, True): "-."}
  for context, color in (("gated_full", "tab:red"), ("gated", "tab:blue")):
    for (fb, wu), style in styles.items():
      line = sorted((sizes.index((r["layers"], r["filters"])), r["rate"]) for r in runs
                    if r["context"] == context and (r["free_bits"], r["warmup"]) == (fb, wu))
      if line:
        ax.plot(*zip(*line), style, marker="o", color=color,
                label=f"{SWEEP_LABELS[context]}, {VARIANT_LABELS[(fb, wu)]}")
  ax.axhline(TARGET_COLLAPSED, color="gray", lw=0.6)
  ax.set_xticks(range(len(sizes)))
  ax.set_xticklabels([f"{n}x{f}" for n, f in sizes])
  ax.set_xlabel("decoder strength (gated layers x filters)")
  ax.set_ylabel("rate = KL(q(z|x) || p(z)) [nats / image]")
  ax.set_ylim(bottom=0)
  ax.legend(fontsize=7)
  caption = ("Posterior collapse over decoder strength on static MNIST: test-set rate of VAEs "
             "with a full-context gated decoder (red) and of the local-context VLAE (blue) of "
             "the same size, equal CPU budget each; the gray line is the 1-nat collapse "
             "threshold. " + caption_extra)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  return harness.save_figure(fig, path, caption)


def write_sweep(opts, records):
  plan = sweep_plan(opts)
  runs = [records[k] for k in plan if k in records]
  runs += [r for k, r in records.items() if k not in plan]
  out = {"title": "Posterior collapse over decoder strength (static MNIST)",
         "command": [os.path.basename(sys.executable)] + sys.argv, "smoke": opts["smoke"],
         "cpu_minutes": opts["cpu_minutes"], "runs": runs, "target": collapse_target(runs)}
  atomic.write_text(opts["out"], json.dumps(out, indent=2) + "\n")
  return out


def sweep_argv(opts):
  """The flags that give a run's own process these options."""
  return ["--sweep", f"--workdir={opts['workdir']}", "--smoke" if opts["smoke"] else "--nosmoke",
          f"--seed={opts['seed']}", f"--data_dir={opts['data_dir']}",
          "--sweep_sizes=" + ",".join(f"{n}x{f}" for n, f in opts["sizes"]),
          "--sweep_variants=" + ",".join(opts["variants"]),
          f"--cpu_minutes={opts['cpu_minutes']!r}", f"--eval_examples={opts['eval_examples']}",
          f"--iwae_samples={opts['iwae_samples']}", f"--kl_warmup_steps={opts['kl_warmup_steps']}",
          f"--checkpoint_steps={opts['checkpoint_steps']}", f"--out={opts['out']}",
          f"--figure={opts['figure']}"]


def run_sweep(opts):
  """The sweep: every run of :func:`sweep_plan` not done yet, then collapse.json and the figure."""
  plan = sweep_plan(opts)
  if opts["run_key"]:
    if opts["run_key"] not in plan:
      budget_study.fail(f"--sweep_run={opts['run_key']}: not a run of this sweep")
    run = plan[opts["run_key"]]
    return budget_study.run_row(sweep_config(run, opts),
                                os.path.join(opts["workdir"], opts["run_key"]),
                                opts["cpu_minutes"] * 60.0, sweep_train_settings(run, opts),
                                sweep_settings(run, opts), opts["eval_examples"],
                                opts["iwae_samples"], opts["seed"])
  study = {k: sweep_settings(next(iter(plan.values())), opts)[k]
           for k in ("smoke", "cpu_minutes", "seed", "kl_warmup_steps", "eval_examples",
                     "iwae_samples")}
  with budget_study.workdir_lock(opts["workdir"]):
    records = budget_study.kept_rows(opts["out"], "runs", lambda r: r["key"], study)
    budget_study.run_rows(
        list(plan), records, lambda k: sweep_settings(plan[k], opts),
        lambda k: os.path.join(opts["workdir"], k, budget_study.RESULT),
        lambda k: ["-m", "experiments.posterior_collapse", f"--sweep_run={k}"] + sweep_argv(opts),
        lambda k: os.path.join(opts["workdir"], k + ".log"), sweep_record,
        lambda recs: write_sweep(opts, recs))
  out = write_sweep(opts, records)
  t = out["target"]
  sweep_figure(out["runs"], opts["figure"],
               ("SMOKE RUN: tiny models, synthetic data; no number here is a result. "
                if opts["smoke"] else "") + f"{opts['cpu_minutes']:g} CPU-minutes per run.")
  met = "met by " + ", ".join(p["full"] for p in t["pairs"]) if t["met"] else "not met"
  print(f"target (full-context rate <= {TARGET_COLLAPSED:g} nat while the same-size VLAE keeps "
        f">= {TARGET_USED:g}): {met}", flush=True)
  return out


def define_flags(fv=flags.FLAGS):
  harness.define_common_flags(fv)
  flags.DEFINE_bool("sweep", False, "Run the decoder-strength sweep (issue 20 item 2) instead "
                    "of the three-model experiment.", flag_values=fv)
  flags.DEFINE_string("sweep_sizes", "1x32,3x32,6x32,6x64", "--sweep: decoder sizes, "
                      "LAYERSxFILTERS, shallow to deep/wide.", flag_values=fv)
  flags.DEFINE_list("sweep_variants", ["none", "both"], "--sweep: regularizer variants, of "
                    f"{', '.join(VARIANTS)}.", flag_values=fv)
  flags.DEFINE_float("cpu_minutes", None, "--sweep: training CPU budget per run (default "
                     f"{SWEEP_DEFAULTS['cpu_minutes']:g}; --smoke {SWEEP_SMOKE['cpu_minutes']}).",
                     flag_values=fv)
  flags.DEFINE_integer("kl_warmup_steps", 1000, "--sweep: KL warm-up length of the warm-up "
                       "variants.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("checkpoint_steps", 250, "--sweep: checkpoint every n steps.",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_string("out", None, "--sweep: the JSON (default "
                      "experiments/results/collapse.json).", flag_values=fv)
  flags.DEFINE_string("figure", None, "--sweep: the figure (default "
                      "docs/figures/collapse.png).", flag_values=fv)
  flags.DEFINE_string("sweep_run", None, "internal: train and evaluate one run of the sweep.",
                      flag_values=fv)
  flags.DEFINE_integer("full_decoder_layers", None, "x-reading layers of the full-PixelCNN "
                       "baseline: the full-image window then mask-B 3x3 layers (default: the "
                       "zoo config's, 6 = VLAE's depth; 1 = a single full-context layer).",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_bool("decoder_alone", True, "Also train the full-PixelCNN VAE with beta = "
                    f"{DECODER_ALONE_BETA:g} (rate ~0): the NLL of its decoder without z.",
                    flag_values=fv)


def training_rate(workdir):
  """``(steps, rates)``: the training-batch rate (total KL, nats) logged by vlae_tf.training (metrics.jsonl)."""
  steps, rates = [], []
  path = os.path.join(workdir, vwork.METRICS_FILE)
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        row = json.loads(line)
        if "rate" in row and "step" in row:
          steps.append(int(row["step"]))
          rates.append(float(row["rate"]))
  return steps, rates


def run(workdir, size="cpu", full_decoder_layers=None, decoder_alone=True, **common):
  """Trains the three models (four with ``decoder_alone``), evaluates them, writes the report."""
  exp = harness.Experiment(NAME, TITLE, workdir, size, BUDGETS, **common)
  tests, per, curves = {}, {}, {}
  trained = MODELS + ((("decoder_alone", "mnist_vae_pixelcnn_full"),) if decoder_alone else ())
  for key, zoo_name in trained:
    cfg = exp.config(zoo_name)
    if zoo_name == "mnist_vae_pixelcnn_full" and full_decoder_layers is not None:
      cfg.model.decoder_layers = int(full_decoder_layers)
    if key == "decoder_alone":
      cfg.objective.beta = DECODER_ALONE_BETA
    exp.train(key, cfg)
    exp.models[key]["decoder_layers"] = int(cfg.model.decoder_layers)
    tests[key], per[key] = exp.test_metrics(key)
    curves[key] = training_rate(exp.model_dir(key))

  full, vlae, fact = tests["pixelcnn_full"], tests["vlae"], tests["factorized"]
  exp.check("full-PixelCNN VAE: KL near 0 on every dimension",
            max(full["kl_per_dim"]) < COLLAPSED_MAX_KL_PER_DIM
            and full["kl_total"] < COLLAPSED_MAX_KL_TOTAL,
            f"max KL per dim {max(full['kl_per_dim']):.4f} nats (needs < "
            f"{COLLAPSED_MAX_KL_PER_DIM}), total {full['kl_total']:.4f} nats (needs < "
            f"{COLLAPSED_MAX_KL_TOTAL})")
  exp.check("VLAE: total KL clearly > 0", vlae["kl_total"] > USED_MIN_KL_TOTAL,
            f"{vlae['kl_total']:.3f} nats (needs > {USED_MIN_KL_TOTAL}), "
            f"{vlae['active_units']}/{vlae['latent_size']} active units")
  metric = "iwae_nll" if "iwae_nll" in per["vlae"] else "elbo"
  sign = 1.0 if metric == "iwae_nll" else -1.0          # NLL = -ELBO
  metric_name = "IWAE NLL" if metric == "iwae_nll" else "-ELBO"
  diff, err = harness.paired_difference(sign * per["vlae"][metric],
                                        sign * per["factorized"][metric])
  exp.check("VLAE NLL better than the factorized VAE's", diff < -2 * err,
            f"paired difference VLAE - factorized = {diff:.3f} +- {err:.3f} nats "
            f"({metric_name}; needs < -2 stderr)")

  extra, notes = {}, []
  if decoder_alone:
    # Not a check of the paper's claim (it does not enter expected_shape_observed): a diagnostic.
    alone = tests["decoder_alone"]
    d_alone, e_alone = harness.paired_difference(sign * per["pixelcnn_full"][metric],
                                                 sign * per["decoder_alone"][metric])
    switched_off = alone["kl_total"] < COLLAPSED_MAX_KL_TOTAL
    extra["full_minus_decoder_alone"] = [d_alone, e_alone]
    extra["decoder_alone_switched_off"] = switched_off
    notes.append(
        f"Diagnostic (not part of the expected shape): the full-PixelCNN VAE trained with beta = "
        f"{DECODER_ALONE_BETA:g} has rate {alone['kl_total']:.4f} nats, so z is "
        f"{'switched off' if switched_off else 'NOT switched off (the comparison below is void)'}"
        f". NLL(full VAE, beta = 1) - NLL(its decoder alone) = {d_alone:.3f} +- {e_alone:.3f} "
        f"nats ({metric_name}, paired). Negative means z is "
        "worth more than its KL to this decoder at this budget, so collapse is not the ELBO's "
        "optimum here: collapse needs a decoder that models x alone as well as with z.")

  plt = harness.pyplot()
  fig, axes = plt.subplots(1, len(MODELS), figsize=(4.2 * len(MODELS), 3.2), sharey=True)
  for ax, (key, _) in zip(axes, MODELS):
    kl = tests[key]["kl_per_dim"]
    ax.bar(range(len(kl)), kl, color="tab:blue" if key == "vlae" else "tab:gray")
    ax.set_title(f"{LABELS[key]}\ntotal KL {tests[key]['kl_total']:.2f} nats", fontsize=9)
    ax.set_xlabel("latent dimension")
  axes[0].set_ylabel("KL(q(z_d|x) || p(z_d)) [nats]")
  caption = ("KL per latent dimension on the test set (Monte-Carlo, "
             f"{vlae['kl_examples']} images x {vlae['kl_samples']} samples), same encoder and "
             "budget for all three models. Posterior collapse = every bar at 0.")
  harness.save_figure(fig, exp.figure("kl_per_dim.png", caption), caption)

  fig, ax = plt.subplots(figsize=(5.5, 3.4))
  for key, _ in trained:
    ax.plot(*curves[key], label=LABELS[key], color={"vlae": "tab:blue", "factorized": "tab:gray",
                                                     "pixelcnn_full": "tab:red",
                                                     "decoder_alone": "tab:orange"}[key])
  ax.set_xlabel("training step")
  ax.set_ylabel("rate = KL(q(z|x) || p(z)) [nats]")
  ax.set_ylim(bottom=0)
  ax.legend(fontsize=8)
  caption = ("Rate (total KL) of the training batches over training, as logged every "
             "log_every steps (training-mode values, not test-set numbers). Collapse = the "
             "curve going to 0.")
  harness.save_figure(fig, exp.figure("kl_over_training.png", caption), caption)

  columns = ["model", "zoo config", "steps", "test ELBO", "IWAE NLL", "± stderr", "KL (rate)",
             "distortion", "active units", "I(x;z)", "params"]
  rows = []
  for key, zoo_name in trained:
    t = tests[key]
    rows.append([LABELS[key], zoo_name, exp.models[key]["steps"], t["elbo"], t.get("iwae_nll"),
                 t.get("iwae_nll_stderr"), t["kl_total"], t["distortion"],
                 f"{t['active_units']}/{t['latent_size']}", t["mutual_information"],
                 t["num_params"]])
  k = tests["vlae"]["iwae_samples"]
  table = (f"Test set, nats per image (IWAE with k = {k or '— (skipped)'}):\n\n"
           + harness.markdown_table(columns, rows))
  return exp.finish({"metric_compared": metric, "vlae_minus_factorized": [diff, err], **extra,
                     "training_rate": {k: {"step": c[0], "rate": c[1]} for k, c in curves.items()},
                     "full_decoder_layers": exp.models["pixelcnn_full"]["decoder_layers"]},
                    table, paper=PAPER, notes=notes)


def sweep_options(fv):
  """The options of ``--sweep`` from the parsed flags (ValueError: a usage error)."""
  if not fv.workdir:
    raise ValueError("--workdir is required")
  if fv.full:
    raise ValueError("--sweep runs at a CPU budget; --full does not apply")
  unknown = sorted(set(fv.sweep_variants) - set(VARIANTS))
  if unknown or not fv.sweep_variants:
    raise ValueError(f"--sweep_variants: unknown {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(VARIANTS)}")
  base = SWEEP_SMOKE if fv.smoke else SWEEP_DEFAULTS
  pick = lambda v, k: base[k] if v is None else v  # noqa: E731
  opts = {"workdir": fv.workdir, "smoke": bool(fv.smoke), "seed": fv.seed,
          "data_dir": fv.data_dir, "sizes": parse_sizes(fv.sweep_sizes),
          "variants": list(fv.sweep_variants), "cpu_minutes": pick(fv.cpu_minutes, "cpu_minutes"),
          "eval_examples": pick(fv.eval_examples, "eval_examples"),
          "iwae_samples": pick(fv.iwae_samples, "iwae_samples"),
          "kl_warmup_steps": fv.kl_warmup_steps, "checkpoint_steps": fv.checkpoint_steps,
          "out": fv.out or os.path.join(RESULTS_DIR, "collapse.json"),
          "figure": fv.figure or os.path.join(FIGURES_DIR, "collapse.png"),
          "run_key": fv.sweep_run}
  if opts["cpu_minutes"] <= 0 or opts["iwae_samples"] < 1:
    raise ValueError("--cpu_minutes must be > 0 and --iwae_samples >= 1 with --sweep")
  if opts["eval_examples"] == 0 or opts["eval_examples"] < -1:
    raise ValueError(f"--eval_examples must be -1 (all) or >= 1, got {opts['eval_examples']}")
  return {"sweep": opts}


def options(fv=flags.FLAGS):
  if fv.sweep or fv.sweep_run:
    return sweep_options(fv)
  return dict(harness.common_options(fv), full_decoder_layers=fv.full_decoder_layers,
              decoder_alone=fv.decoder_alone)


def main_run(sweep=None, **kwargs):
  """``--sweep``: :func:`run_sweep`; else the three-model experiment (:func:`run`)."""
  return run_sweep(sweep) if sweep is not None else run(**kwargs)


if __name__ == "__main__":
  define_flags()
  app.run(harness.make_main(main_run, options))
