"""Shared machinery of the claim experiments: run sizes, configs, training, metrics, reports.

Every experiment script trains what it needs with :func:`vlae_tf.training.train`
(one sub-directory of the experiment's ``--workdir`` per model, so a rerun
resumes unfinished models and reuses finished ones), evaluates the EMA weights
on the TEST split, and writes ``results.json`` (full precision), ``results.md``
(tables, the computed checks of the paper's expected shape, figures) and PNG
figures into ``--workdir``.

Run sizes
  ``smoke``  (``--smoke``) a tiny model (8 filters, 2-4 latent units), a
             couple of steps, a few test images: proves the script runs end
             to end in seconds. Synthetic 8x8 images by default
             (``--smoke_data=real``: the real dataset at its native size). Its
             numbers mean nothing and are labelled so.
  ``cpu``    (default) the zoo config scaled down exactly as ``zoo/mnist_cpu.py``
             / ``zoo/cifar10_cpu.py`` scale ``mnist`` / ``cifar10`` (see
             :func:`scale_like`), a step budget per script chosen for 2 CPU
             cores, and ``eval_examples`` test images evenly spaced over the
             test split (:func:`test_images`).
  ``full``   (``--full``) the paper-size zoo config with its own step count,
             the whole test set and the config's IWAE sample count
             (accelerator-sized).

Test-set metrics (:func:`test_set_metrics`) summarise the per-example values
of :func:`vlae_tf.evaluation.elbo_per_example` / :func:`~vlae_tf.evaluation.iwae_per_example`
(what :func:`vlae_tf.evaluation.evaluate` summarises too), plus what a comparison needs: standard errors of the means, the
per-example values (for paired differences between models evaluated on the
same images) and the KL per latent dimension (:func:`vlae_tf.kl_per_dim`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import textwrap
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

import vlae_tf  # noqa: E402
from vlae_tf import data as vdata  # noqa: E402
from vlae_tf import config as vconfig  # noqa: E402
from vlae_tf import evaluation, training  # noqa: E402
from vlae_tf import workdir as vwork  # noqa: E402
from vlae_tf.objective import nats_to_bits_per_dim  # noqa: E402

SIZES = ("smoke", "cpu", "full")
# Zoo reference config -> its CPU-sized variant (the pair whose difference scale_like applies).
CPU_VARIANTS = {"mnist": "mnist_cpu", "cifar10": "cifar10_cpu"}
RESULTS_JSON, RESULTS_MD = "results.json", "results.md"
SMOKE_WARNING = ("**SMOKE RUN**: a tiny model trained for a few steps on a few images. It only "
                 "proves the script runs end to end; none of its numbers is a result.")


@dataclasses.dataclass
class Budget:
  """Training and evaluation budget of one run size.

  ``steps``: training steps of every model (None: the config's own
  ``train.steps``). ``eval_examples``: n test images evenly spaced over the
  split (-1: all).
  ``iwae_samples``: k of the IWAE bound (None: ``config.eval.iwae_samples``;
  0: no IWAE). ``kl_examples`` / ``kl_samples``: test images and posterior
  samples of the KL-per-dimension estimate.
  """
  steps: int | None
  eval_examples: int
  iwae_samples: int | None
  kl_examples: int = 1000
  kl_samples: int = 16
  eval_batch_size: int = 100


SMOKE_BUDGET = Budget(steps=2, eval_examples=16, iwae_samples=2, kl_examples=16, kl_samples=2,
                      eval_batch_size=16)


# ==================================================================== flags
def define_common_flags(fv=flags.FLAGS):
  """The flags every experiment script takes (on ``fv``: scripts and tests use their own)."""
  flags.DEFINE_string("workdir", None, "Experiment folder: one sub-folder per trained model, "
                      "results.json, results.md and the PNG figures.", flag_values=fv)
  flags.DEFINE_bool("smoke", False, "Tiny models, a few steps and images: checks the script "
                    "runs end to end (numbers meaningless).", flag_values=fv)
  flags.DEFINE_bool("full", False, "Paper-size models, the configs' own step counts and the "
                    "whole test set (needs an accelerator).", flag_values=fv)
  flags.DEFINE_integer("steps", None, "Training steps of every model (default: the run size's "
                       "budget).", flag_values=fv)
  flags.DEFINE_integer("eval_examples", None, "Evaluate on n test images evenly spaced over the "
                       "split (-1: all; default: the run size's budget).", flag_values=fv)
  flags.DEFINE_integer("iwae_samples", None, "k of the IWAE NLL bound (0: skip IWAE; default: "
                       "the run size's budget).", flag_values=fv)
  flags.DEFINE_enum("smoke_data", "synthetic", ["synthetic", "real"], "--smoke data: synthetic "
                    "8x8 images (no files) or the real dataset.", flag_values=fv)
  flags.DEFINE_string("data_dir", "", "Folder of the .npz datasets (default: $VLAE_DATA_DIR, "
                      "else TFDS).", flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed of every model's training run and of the evaluation.",
                       flag_values=fv)


def run_size(smoke, full):
  if smoke and full:
    raise ValueError("--smoke and --full are exclusive")
  return "smoke" if smoke else "full" if full else "cpu"


def common_options(fv=flags.FLAGS):
  """Keyword arguments of :class:`Experiment` from the parsed common flags."""
  if not fv.workdir:
    raise ValueError("--workdir is required")
  return dict(workdir=fv.workdir, size=run_size(fv.smoke, fv.full), steps=fv.steps,
              eval_examples=fv.eval_examples, iwae_samples=fv.iwae_samples,
              smoke_data=fv.smoke_data, data_dir=fv.data_dir, seed=fv.seed,
              command=[os.path.basename(sys.executable)] + sys.argv)


def make_main(run, options):
  """An absl ``main(argv)`` calling ``run(**options(FLAGS))`` with TF's INFO chatter off."""
  def main(argv):
    from absl import app, logging
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    try:
      opts = options(flags.FLAGS)
    except ValueError as e:                       # bad flag values: the message, no traceback
      raise app.UsageError(str(e)) from e
    run(**opts)
  return main


def parse_floats(values, name):
  """A list of floats from a comma-list flag, with a clear error."""
  try:
    return [float(v) for v in values]
  except ValueError as e:
    raise ValueError(f"--{name} must be a comma-separated list of numbers, got {values!r}") from e


# ==================================================================== configs
def _latent_size(cfg):
  m = cfg.model
  if m.latent_kind == "vector":
    return int(m.latent_dim)
  h, w, _ = cfg.data.image_shape
  n = 2 ** int(m.num_resolution_changes)
  return (h // n) * (w // n) * int(m.latent_channels)


def scale_like(cfg, reference, small, skip=("name", "description")):
  """Applies to ``cfg`` every change that zoo config ``small`` makes to zoo config ``reference``.

  A key is changed only where ``cfg`` still has the reference's value, so what
  ``cfg`` itself chose (e.g. the baselines' ``decoder_blocks = 4``, the
  grayscale context) is kept. Returns ``(cfg, applied)``, ``applied`` the list
  of ``(key, old, new)``.
  """
  ref_cfg = vlae_tf.zoo.get_config(reference)
  ref, sml = vconfig.flatten(ref_cfg), vconfig.flatten(vlae_tf.zoo.get_config(small))
  sizes = {key: sml[key] for key in sorted(set(ref) & set(sml))
           if key not in skip and ref[key] != sml[key]}
  return cfg, vconfig.shrink(cfg, sizes, unless_changed_from=ref_cfg)


def _reference_of(cfg):
  return "cifar10" if tuple(cfg.data.image_shape)[-1] == 3 else "mnist"


def make_tiny(cfg, real_data=False):
  """Shrinks ``cfg`` to a smoke-test model: same kinds of parts, 8 filters, 4 latent units on 8x8."""
  rgb = tuple(cfg.data.image_shape)[-1] == 3
  per_dim = int(cfg.objective.free_bits_groups) == _latent_size(cfg)
  vector = cfg.model.latent_kind == "vector"
  if not real_data:
    vconfig.shrink(cfg, {"data.dataset": "synthetic", "data.image_shape": (8, 8, 3 if rgb else 1),
                         "data.binarization": "none" if rgb else "static",
                         "data.synthetic_size": 64})
  vconfig.shrink(cfg, {
      "model.num_mixtures": min(int(cfg.model.num_mixtures), 2),
      "model.num_resolution_changes": 0 if vector else 2,
      "model.latent_dim": 4 if vector else 0, "model.latent_channels": 0 if vector else 1,
      "model.encoder_filters": 8, "model.cond_filters": 8, "model.decoder_filters": 8,
      # As few layers as the model allows: smoke runs are dominated by graph tracing.
      "model.encoder_blocks": 0, "model.cond_blocks": 0, "model.decoder_blocks": 0,
      "model.decoder_layers": min(int(cfg.model.decoder_layers), 2),
      "model.decoder_window": (3, 2), "model.prior_steps": 1, "model.posterior_steps": 1,
      # wide enough for af_vs_iaf to find an equal-count IAF width
      "model.prior_hidden": (64,), "model.posterior_hidden": (64,), "model.posterior_context": 1,
      "train.batch_size": 8, "train.warmup_steps": 0, "train.log_every": 1,
      "train.eval_every": 0, "train.checkpoint_every": 1000, "eval.periodic_examples": 0,
      "eval.num_images": 0, "eval.batch_size": SMOKE_BUDGET.eval_batch_size})
  cfg.objective.free_bits_groups = _latent_size(cfg) if per_dim else 1
  return cfg


def sized_config(zoo_name, size, steps=None, smoke_data="synthetic", data_dir="", seed=0):
  """The zoo config ``zoo_name`` at run size ``size`` (module doc), ``steps`` if given."""
  if size not in SIZES:
    raise ValueError(f"size must be one of {SIZES}, got {size!r}")
  cfg = vlae_tf.zoo.get_config(zoo_name)
  if size == "cpu":
    ref = _reference_of(cfg)
    cfg, _ = scale_like(cfg, ref, CPU_VARIANTS[ref])
  elif size == "smoke":
    cfg = make_tiny(cfg, real_data=smoke_data == "real")
  if steps is not None:
    if steps < 1:
      raise ValueError(f"--steps must be >= 1, got {steps}")
    cfg.train.steps = int(steps)
    cfg.train.warmup_steps = min(int(cfg.train.warmup_steps), max(int(steps) // 10, 0))
  if data_dir:
    cfg.data.data_dir = data_dir
  cfg.seed = int(seed)
  return cfg


def num_params(model):
  """Number of trainable parameters (scalars) of a Keras model or layer."""
  return int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))


# ==================================================================== evaluation
def _stderr(v):
  v = np.asarray(v, np.float64)
  return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def test_set_metrics(model, x, iwae_samples, batch_size=100, seed=0, kl_examples=1000,
                     kl_samples=16):
  """Test-set summary of :func:`vlae_tf.evaluation.evaluate` plus standard errors and KL per dim.

  Returns ``(summary, per_example)``: ``summary`` a JSON-ready dict (nats;
  ``*_stderr`` = sample std / sqrt(n); ``kl_per_dim`` a list of D floats
  whose sum ``kl_total`` is the Monte-Carlo rate on ``kl_examples`` images
  evenly spaced over ``x``; I(x; z) on at most 1000 images spaced the same
  way), ``per_example`` a dict of ``[N]`` arrays (``elbo``, ``rate``,
  ``distortion`` and, when ``iwae_samples > 0``, ``iwae_nll``).
  """
  x = np.asarray(x)
  if not len(x):
    raise ValueError("no test images to evaluate")
  per = evaluation.elbo_per_example(model, x, batch_size, seed)
  mu, sigma = per.pop("mu"), per.pop("sigma")
  if iwae_samples:
    per["iwae_nll"] = evaluation.iwae_per_example(model, x, int(iwae_samples), batch_size, seed)
  per = {k: v.astype(np.float64) for k, v in per.items()}
  xk = x[evaluation.iwae_subset(len(x), int(kl_examples))]
  nk = len(xk)
  kl = np.zeros(model.latent_size)
  for i in range(0, nk, batch_size):
    xb = xk[i:i + batch_size]
    kl += evaluation.kl_per_dim(model, xb, num_samples=kl_samples, seed=seed) * len(xb) / nk
  mi_idx = evaluation.iwae_subset(len(x), 1000)
  dims = model.num_dims
  au, _ = evaluation.active_units(mu)
  s = {"num_examples": int(len(x)), "num_params": num_params(model)}
  for k in ("elbo", "rate", "distortion"):
    s[k], s[k + "_stderr"] = float(per[k].mean()), _stderr(per[k])
  s["elbo_bits_per_dim"] = nats_to_bits_per_dim(-s["elbo"], dims)
  s["iwae_samples"] = int(iwae_samples or 0)
  if iwae_samples:
    s["iwae_nll"], s["iwae_nll_stderr"] = float(per["iwae_nll"].mean()), _stderr(per["iwae_nll"])
    s["bits_per_dim"] = nats_to_bits_per_dim(s["iwae_nll"], dims)
  s.update(active_units=au, latent_size=int(mu.shape[1]),
           mutual_information=evaluation.mutual_information(mu[mi_idx], sigma[mi_idx], seed),
           kl_examples=nk, kl_samples=int(kl_samples), kl_per_dim=[float(v) for v in kl],
           kl_total=float(kl.sum()))
  return s, per


def paired_difference(a, b):
  """``(mean(a - b), stderr(a - b))`` of per-example values of two models on the same images."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
  return float((a - b).mean()), _stderr(a - b)


def decode_consistency(originals, decodes, num_levels):
  """How much of an image one z keeps: distances between decodes of the same z and the originals.

  ``originals`` ``[N, H, W, C]``, ``decodes`` ``[N, M, H, W, C]`` (M >= 2 decodes
  of one z per image), data scale; distances are mean absolute differences of
  pixels scaled to [0, 1]:

  * ``own``: decode vs its own original;
  * ``other``: decode vs another image's original (image ``i`` against
    ``i + 1 mod N``): what an uninformative z would give;
  * ``resample``: decode vs another decode of the same z (local detail redrawn).

  A lossy code keeps the global content: ``own < other``, while ``resample > 0``.
  """
  x = np.asarray(originals, np.float64) / (num_levels - 1)
  d = np.asarray(decodes, np.float64) / (num_levels - 1)
  n, m = d.shape[:2]
  if n < 2 or m < 2 or x.shape != (n,) + d.shape[2:]:
    raise ValueError(f"need >= 2 images with >= 2 decodes each and matching originals, got "
                     f"originals {x.shape}, decodes {d.shape}")
  own = np.abs(d - x[:, None]).mean()
  other = np.abs(d - np.roll(x, -1, axis=0)[:, None]).mean()
  resample = np.mean([np.abs(d[:, i] - d[:, j]).mean() for i in range(m) for j in range(i + 1, m)])
  return {"own": float(own), "other": float(other), "resample": float(resample)}


# ==================================================================== trained models
class _InMemorySavedModel:
  """What :class:`vlae_tf.zoo_model.ZooModel` reads of a loaded SavedModel, without saving one."""

  def __init__(self, module):
    self.module = module
    self.signatures = module.signatures()
    self.info_json = module.info_json


def servable(model, config, name):
  """A trained in-memory model with the zoo API (``encode``, ``decode``, ``sample``, ...).

  The same signature functions as an exported SavedModel
  (:class:`vlae_tf.export.ServingModule`), so a work directory and a
  ``vlae_tf.zoo.load``-ed model behave identically (seeds included).
  """
  from vlae_tf import export, zoo_model
  return zoo_model.ZooModel(_InMemorySavedModel(export.ServingModule(model, config)),
                            card={"name": name})


def zoo_config(zmodel):
  """The training config stored in a loaded zoo model, as a ConfigDict."""
  return vconfig.from_json(zmodel.info["config"])


def test_images(cfg, num):
  """``num`` model-ready test images of a config, evenly spaced over the split (-1: all).

  Evenly spaced, not a prefix (as :func:`vlae_tf.evaluation.iwae_subset`):
  binarized MNIST's test set is sorted by class. The whole split is
  binarized first, so a dynamically binarized image is the same whatever
  ``num`` is.
  """
  x = vdata.load_split(cfg, cfg.data.test_split)
  return x[evaluation.iwae_subset(len(x), None if num is None or num < 0 else int(num))]


# ==================================================================== reports
def hardware():
  """What machine ran the experiment."""
  cpu = platform.processor() or "unknown"
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
  except OSError:
    pass
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  gpus = [g.name for g in tf.config.list_physical_devices("GPU")]
  return {"cpu": cpu, "usable_cores": cores, "gpus": gpus, "tensorflow": tf.__version__,
          "python": platform.python_version(), "load_average_at_end": os.getloadavg()[0]}


def markdown_table(columns, rows):
  """A Markdown table; floats with 3 decimals, None as '—'."""
  def fmt(v):
    if v is None:
      return "—"
    if isinstance(v, bool):
      return "yes" if v else "no"
    if isinstance(v, float):
      return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)
  lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
  lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


class Experiment:
  """One run of a claim script: sized configs, training, evaluation, checks and the report."""

  def __init__(self, name, title, workdir, size="cpu", budgets=None, steps=None,
               eval_examples=None, iwae_samples=None, smoke_data="synthetic", data_dir="",
               seed=0, command=None):
    if size not in SIZES:
      raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    self.name, self.title, self.workdir, self.size = name, title, workdir, size
    budgets = dict(budgets or {})
    budgets.setdefault("smoke", SMOKE_BUDGET)
    budgets.setdefault("full", Budget(steps=None, eval_examples=-1, iwae_samples=None))
    b = budgets[size]
    self.budget = dataclasses.replace(
        b, steps=b.steps if steps is None else steps,
        eval_examples=b.eval_examples if eval_examples is None else eval_examples,
        iwae_samples=b.iwae_samples if iwae_samples is None else iwae_samples)
    self.smoke_data, self.data_dir, self.seed = smoke_data, data_dir, int(seed)
    self.command = list(command) if command else None
    self.models, self.checks, self.figures = {}, [], []
    self.t0 = time.time()
    os.makedirs(workdir, exist_ok=True)

  def log(self, msg):
    print(f"[{self.name}] {msg}", flush=True)

  # ------------------------------------------------------------ models
  def config(self, zoo_name):
    """The zoo config ``zoo_name`` at this run's size, steps, data and seed."""
    return sized_config(zoo_name, self.size, self.budget.steps, self.smoke_data, self.data_dir,
                        self.seed)

  def model_dir(self, key):
    return os.path.join(self.workdir, key)

  def train(self, key, cfg):
    """Trains (or resumes, or reuses) model ``key`` in ``<workdir>/<key>`` with vlae_tf.training."""
    wd = self.model_dir(key)
    self.log(f"training {key!r} ({cfg.get('name', '?')}) for {cfg.train.steps} steps in {wd}")
    t = time.time()
    out = training.train(cfg, wd)
    rec = self.models.setdefault(key, {})
    rec.update(config_name=cfg.get("name", ""), workdir=wd, steps=int(out["step"]),
               train_wall_time_s=time.time() - t, trained_steps_now=int(out["trained_steps"]))
    return rec

  def load(self, key):
    """``(model, config, step)``: the EMA weights of a trained model."""
    return vwork.load_model_from_workdir(self.model_dir(key), use_ema=True)

  def evaluate(self, key, model=None, cfg=None):
    """Test-set metrics of model ``key`` (:func:`test_set_metrics`); saves per-example values."""
    if model is None:
      model, cfg, _ = self.load(key)
    b = self.budget
    k = int(cfg.eval.iwae_samples) if b.iwae_samples is None else int(b.iwae_samples)
    t = time.time()
    x = test_images(cfg, b.eval_examples)
    summary, per = test_set_metrics(model, x, k, b.eval_batch_size, self.seed, b.kl_examples,
                                    b.kl_samples)
    summary.update(test_split=cfg.data.test_split, dataset=cfg.data.dataset,
                   eval_wall_time_s=time.time() - t)
    np.savez(os.path.join(self.workdir, f"{key}_per_example.npz"), **per)
    self.models.setdefault(key, {})["test"] = summary
    nll = f"{summary['iwae_nll']:.3f}" if "iwae_nll" in summary else "(skipped)"
    self.log(f"{key}: test elbo {summary['elbo']:.3f}, iwae nll {nll}, kl "
             f"{summary['kl_total']:.3f}, "
             f"active units {summary['active_units']}/{summary['latent_size']}")
    return summary, per

  # ------------------------------------------------------------ report
  def check(self, name, passed, detail):
    """Records one computed check of the paper's expected shape."""
    self.checks.append({"check": name, "passed": bool(passed), "detail": detail})
    return bool(passed)

  def figure(self, filename, caption):
    self.figures.append({"file": filename, "caption": caption})
    return os.path.join(self.workdir, filename)

  def finish(self, results, tables_md, paper=None, notes=()):
    """Writes ``results.json`` and ``results.md``; returns the results dict."""
    wall = time.time() - self.t0
    observed = all(c["passed"] for c in self.checks) if self.checks else None
    out = {"experiment": self.name, "title": self.title, "size": self.size,
           "smoke": self.size == "smoke", "command": self.command,
           "budget": dataclasses.asdict(self.budget), "seed": self.seed,
           "hardware": hardware(), "wall_time_s": wall, "models": self.models,
           "checks": self.checks, "expected_shape_observed": observed,
           "figures": self.figures, "paper": paper or {}}
    out.update(results)
    out = vconfig.jsonable(out)
    with open(os.path.join(self.workdir, RESULTS_JSON) + ".tmp", "w") as f:
      json.dump(out, f, indent=2, sort_keys=True, allow_nan=True)
    os.replace(os.path.join(self.workdir, RESULTS_JSON) + ".tmp",
               os.path.join(self.workdir, RESULTS_JSON))
    hw = out["hardware"]
    md = [f"# {self.title}", ""]
    if self.size == "smoke":
      md += [SMOKE_WARNING, ""]
    steps = ", ".join(f"{k}: {v.get('steps')}" for k, v in self.models.items()) or "—"
    n_test = sorted({v["test"]["num_examples"] for v in self.models.values() if "test" in v})
    md += [f"Run size `{self.size}`; steps per model {steps}; test images evaluated "
           f"{', '.join(map(str, n_test)) or '—'}; seed {self.seed}. Hardware: {hw['cpu']}, "
           f"{hw['usable_cores']} cores, GPUs "
           f"{', '.join(hw['gpus']) or 'none'}, TF {hw['tensorflow']}. Wall time of this "
           f"invocation {wall:.0f} s.", ""]
    md += ["Command: `" + " ".join(self.command) + "`" if self.command else
           f"Called from Python: `experiments.{self.name}.run(...)`.", ""]
    md += [tables_md, ""]
    if self.checks:
      verdict = "OBSERVED" if observed else "NOT observed"
      md += [f"## Expected shape: {verdict}", ""]
      md += [f"- [{'x' if c['passed'] else ' '}] {c['check']}: {c['detail']}" for c in self.checks]
      md.append("")
    for n in notes:
      md += [textwrap.fill(n, 100), ""]
    if self.figures:
      md += ["## Figures", ""]
      for fig in self.figures:
        md += [f"![{fig['caption']}]({fig['file']})", "", textwrap.fill(fig["caption"], 100), ""]
    with open(os.path.join(self.workdir, RESULTS_MD), "w") as f:
      f.write("\n".join(md))
    self.log(f"wrote {os.path.join(self.workdir, RESULTS_MD)} ({wall:.0f} s)")
    return out


# ==================================================================== figures
def pyplot():
  """matplotlib.pyplot with the file-only Agg backend (``pip install -e '.[plots]'``)."""
  try:
    import matplotlib
  except ImportError as e:
    raise ImportError("the experiment figures need matplotlib: pip install -e '.[plots]'") from e
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig, path, caption):
  """Adds a wrapped caption under ``fig`` and writes it to ``path`` (PNG)."""
  width = max(40, int(fig.get_figwidth() * 15))                  # characters at 7 pt
  fig.text(0.5, -0.01, textwrap.fill(caption, width), ha="center", va="top", fontsize=7)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  pyplot().close(fig)
  return path


def save_image_grid(path, images, num_levels, caption, row_labels=None, col_labels=None):
  """Saves ``[rows, cols, H, W, C]`` data-scale images as one grid PNG with a caption."""
  plt = pyplot()
  images = np.asarray(images, np.float32) / float(num_levels - 1)
  rows, cols, h, w, c = images.shape
  pad = max(1, h // 14)
  grid = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad, c), np.float32)
  for i in range(rows):
    for j in range(cols):
      grid[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = images[i, j]
  scale = 0.45 if h <= 16 else 0.6
  fig, ax = plt.subplots(figsize=(max(3.0, cols * scale + 1.2), rows * scale + 0.9))
  ax.imshow(grid[..., 0] if c == 1 else grid, cmap="gray" if c == 1 else None, vmin=0.0,
            vmax=1.0, interpolation="nearest")
  ax.set_xticks([j * (w + pad) + w / 2 for j in range(cols)] if col_labels else [])
  ax.set_yticks([i * (h + pad) + h / 2 for i in range(rows)] if row_labels else [])
  if col_labels:
    ax.set_xticklabels(col_labels, fontsize=7)
    ax.xaxis.tick_top()
  if row_labels:
    ax.set_yticklabels(row_labels, fontsize=7)
  for s in ax.spines.values():
    s.set_visible(False)
  ax.tick_params(length=0)
  return save_figure(fig, path, caption)


__all__ = ["SIZES", "Budget", "SMOKE_BUDGET", "define_common_flags", "common_options",
           "run_size", "make_main", "parse_floats", "scale_like", "make_tiny", "sized_config",
           "num_params",
           "test_set_metrics", "paired_difference", "decode_consistency", "servable",
           "zoo_config", "test_images", "hardware", "markdown_table", "Experiment", "pyplot",
           "save_figure", "save_image_grid"]
