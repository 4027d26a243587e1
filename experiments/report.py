"""One run of a claim script (:class:`Experiment`): training, test metrics, checks, ``results.json`` / ``results.md``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import textwrap
import time

import numpy as np

from vlae_tf import config as vconfig
from vlae_tf import machine, training
from vlae_tf import workdir as vwork

from experiments.metrics import test_set_metrics
from experiments.sizing import SIZES, SMOKE_BUDGET, Budget, sized_config
from experiments.trained import test_images

RESULTS_JSON, RESULTS_MD = "results.json", "results.md"
SMOKE_WARNING = ("**SMOKE RUN**: a tiny model trained for a few steps on a few images. It only "
                 "proves the script runs end to end; none of its numbers is a result.")


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

  def test_metrics(self, key, model=None, cfg=None):
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
           "hardware": machine.hardware(), "wall_time_s": wall, "models": self.models,
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
