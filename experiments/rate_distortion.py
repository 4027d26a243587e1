"""Claim 3: beta (and the free-bits floor) move a VLAE along the rate-distortion curve.

Each point is the VLAE (zoo ``mnist``; scaled as ``zoo/mnist_cpu.py`` at the
default run size) trained with the loss ``D + beta * sum_g max(R_g, lambda)``
(:mod:`vlae_tf.objective`) and evaluated on the test set with the true ELBO:

    D = E[-log p(x|z)],   R = E[log q(z|x) - log p(z)],   ELBO = -(D + R).

The beta sweep uses free-bits floor ``--free_bits`` (default 0: the plain
beta-weighted ELBO, so beta alone sets the trade-off); ``--free_bits_floors``
adds points at beta = 1 with those floors. The figure plots D against R with
iso-ELBO lines ``D + R = c`` (slope -1): points on one line have the same ELBO,
and the beta = 1 point (the ELBO's own optimum) is marked.

Expected shape (computed over the beta points, sorted by beta): the rate does
not increase and the distortion does not decrease as beta grows, and beta = 1
has the best test ELBO of the sweep.

  VLAE_DATA_DIR=/path/to/data python experiments/rate_distortion.py --workdir=runs/exp/rd
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from experiments import harness  # noqa: E402

NAME = "rate_distortion"
TITLE = "Rate-distortion trade-off of VLAE under beta and free bits (static MNIST)"
# The points need only D and R (one-sample ELBO terms): IWAE is off unless --iwae_samples is given.
BUDGETS = {"cpu": harness.Budget(steps=600, eval_examples=1000, iwae_samples=0),
           "smoke": dataclasses.replace(harness.SMOKE_BUDGET, iwae_samples=0),
           "full": harness.Budget(steps=None, eval_examples=-1, iwae_samples=0)}
DEFAULT_BETAS = ("0.25", "0.5", "1", "2", "4")
SMOKE_BETAS = (0.5, 1.0)


def define_flags(fv=flags.FLAGS):
  harness.define_common_flags(fv)
  flags.DEFINE_list("betas", list(DEFAULT_BETAS), "beta values of the sweep (--smoke: 0.5,1 "
                    "unless given).", flag_values=fv)
  flags.DEFINE_float("free_bits", 0.0, "Free-bits floor lambda (nats per group) of the beta "
                     "sweep.", flag_values=fv)
  flags.DEFINE_list("free_bits_floors", [], "Extra points at beta = 1 with these free-bits "
                    "floors.", flag_values=fv)


def _key(beta, floor):
  return f"beta_{beta:g}_fb_{floor:g}"


def points_plan(betas, free_bits, floors):
  """``[(beta, floor, sweep)]`` without duplicates, ``sweep`` in {"beta", "free_bits"}."""
  plan, seen = [], set()
  for b in betas:
    if b <= 0 or not math.isfinite(b):
      raise ValueError(f"every beta must be a positive number, got {b}")
    if (b, free_bits) not in seen:
      plan.append((b, free_bits, "beta"))
      seen.add((b, free_bits))
  for f in floors:
    if f < 0:
      raise ValueError(f"free-bits floors must be >= 0, got {f}")
    if (1.0, f) not in seen:
      plan.append((1.0, f, "free_bits"))
      seen.add((1.0, f))
  if not plan:
    raise ValueError("nothing to run: give --betas and/or --free_bits_floors")
  return plan


def monotone(values, increasing, tol=0.0):
  """Whether ``values`` never move against the direction by more than ``tol``."""
  d = np.diff(np.asarray(values, np.float64))
  return bool(np.all(d >= -tol) if increasing else np.all(d <= tol))


def plot(points, path, caption):
  plt = harness.pyplot()
  fig, ax = plt.subplots(figsize=(6.0, 4.6))
  r = np.array([p["rate"] for p in points])
  d = np.array([p["distortion"] for p in points])
  pad_r, pad_d = max(1.0, 0.15 * np.ptp(r)), max(1.0, 0.15 * np.ptp(d))
  r_lo, r_hi = max(0.0, r.min() - pad_r), r.max() + pad_r
  d_lo, d_hi = d.min() - pad_d, d.max() + pad_d
  s_lo, s_hi = r_lo + d_lo, r_hi + d_hi
  step = 10 ** math.floor(math.log10(max((s_hi - s_lo) / 6, 1e-9)))
  step *= 5 if (s_hi - s_lo) / step > 30 else 2 if (s_hi - s_lo) / step > 12 else 1
  rr = np.array([r_lo, r_hi])
  for c in np.arange(math.ceil(s_lo / step) * step, s_hi, step):
    ax.plot(rr, c - rr, color="0.85", lw=0.8, zorder=0)
    x_lab = min(r_hi, c - d_lo)
    if r_lo <= x_lab and d_lo <= c - x_lab <= d_hi:
      ax.annotate(f"-ELBO={c:g}", (x_lab, c - x_lab), fontsize=6, color="0.5", ha="right",
                  va="bottom")
  for sweep, marker, colour in (("beta", "o", "tab:blue"), ("free_bits", "s", "tab:green")):
    pts = [p for p in points if p["sweep"] == sweep]
    if pts:
      ax.plot([p["rate"] for p in pts], [p["distortion"] for p in pts], marker=marker,
              color=colour, ls="-" if sweep == "beta" else "none",
              label="beta sweep" if sweep == "beta" else "free-bits floors (beta = 1)")
    for p in pts:
      label = f"β={p['beta']:g}" if sweep == "beta" else f"λ={p['free_bits']:g}"
      ax.annotate(label, (p["rate"], p["distortion"]), fontsize=7, xytext=(4, 4),
                  textcoords="offset points")
  one = [p for p in points if p["beta"] == 1.0 and p["sweep"] == "beta"] or \
        [p for p in points if p["beta"] == 1.0]
  if one:
    ax.plot([one[0]["rate"]], [one[0]["distortion"]], marker="*", ms=16, color="tab:red",
            ls="none", label="β = 1 (the ELBO)", zorder=5)
  ax.set_xlim(r_lo, r_hi)
  ax.set_ylim(d_lo, d_hi)
  ax.set_xlabel("rate R = E[KL(q(z|x) || p(z))]  [nats]")
  ax.set_ylabel("distortion D = E[-log p(x|z)]  [nats]")
  ax.legend(fontsize=7)
  return harness.save_figure(fig, path, caption)


def run(workdir, size="cpu", betas=None, free_bits=0.0, free_bits_floors=(), **common):
  if betas is None:
    betas = SMOKE_BETAS if size == "smoke" else [float(b) for b in DEFAULT_BETAS]
  plan = points_plan([float(b) for b in betas], float(free_bits),
                     [float(f) for f in free_bits_floors])
  exp = harness.Experiment(NAME, TITLE, workdir, size, BUDGETS, **common)
  points, per_point = [], {}
  for beta, floor, sweep in plan:
    key = _key(beta, floor)
    cfg = exp.config("mnist")
    cfg.objective.beta = beta
    cfg.objective.free_bits = floor
    cfg.name = f"{cfg.get('name', 'mnist')}_{key}"
    exp.train(key, cfg)
    t, per_point[key] = exp.test_metrics(key)
    points.append({"key": key, "beta": beta, "free_bits": floor, "sweep": sweep,
                   "rate": t["rate"], "distortion": t["distortion"], "elbo": t["elbo"],
                   "elbo_stderr": t["elbo_stderr"], "iwae_nll": t.get("iwae_nll"),
                   "kl_total": t["kl_total"], "active_units": t["active_units"],
                   "latent_size": t["latent_size"],
                   "mutual_information": t["mutual_information"],
                   "steps": exp.models[key]["steps"]})

  # ELBO of every point minus the beta = 1 point's, paired over the same test images: much
  # tighter than the per-point standard errors, which mostly measure how hard the images are.
  ref = next((p for p in points if p["beta"] == 1.0 and p["free_bits"] == float(free_bits)),
             next((p for p in points if p["beta"] == 1.0), None))
  for p in points:
    p["elbo_minus_beta1"] = p["elbo_minus_beta1_stderr"] = None
    if ref is not None:
      p["elbo_minus_beta1"], p["elbo_minus_beta1_stderr"] = harness.paired_difference(
          per_point[p["key"]]["elbo"], per_point[ref["key"]]["elbo"])

  sweep = sorted((p for p in points if p["sweep"] == "beta"), key=lambda p: p["beta"])
  if len(sweep) >= 2:
    rates, dists = [p["rate"] for p in sweep], [p["distortion"] for p in sweep]
    exp.check("rate falls as beta grows", monotone(rates, increasing=False),
              "rates by increasing beta: " + ", ".join(f"{v:.2f}" for v in rates))
    exp.check("distortion grows as beta grows", monotone(dists, increasing=True),
              "distortions by increasing beta: " + ", ".join(f"{v:.2f}" for v in dists))
  ones = [p for p in sweep if p["beta"] == 1.0]
  if ones and len(sweep) >= 2:
    best = max(sweep, key=lambda p: p["elbo"])
    runner_up = max((p for p in sweep if p is not ones[0]), key=lambda p: p["elbo"])
    exp.check("beta = 1 has the best test ELBO", best["beta"] == 1.0,
              f"best ELBO {best['elbo']:.3f} at beta {best['beta']:g}; beta = 1: "
              f"{ones[0]['elbo']:.3f} ± {ones[0]['elbo_stderr']:.3f}; next best beta "
              f"{runner_up['beta']:g} is {-runner_up['elbo_minus_beta1']:.3f} ± "
              f"{runner_up['elbo_minus_beta1_stderr']:.3f} nats worse (paired)")

  floors_run = any(p["sweep"] == "free_bits" for p in points)
  caption = ("Test-set distortion D against rate R for VLAEs trained with different beta "
             "(circles)" + (" and free-bits floors at beta = 1 (squares)" if floors_run else "")
             + "; grey lines are iso-ELBO lines D + R = const (ELBO = -(D + R)); the red star "
             "is beta = 1.")
  plot(points, exp.figure("rate_distortion.png", caption), caption)
  columns = ["sweep", "beta", "free bits λ", "steps", "rate R", "distortion D", "ELBO = -(D+R)",
             "± stderr", "ELBO - ELBO(β=1), paired", "± stderr", "active units", "I(x;z)"]
  rows = [[p["sweep"], p["beta"], p["free_bits"], p["steps"], p["rate"], p["distortion"],
           p["elbo"], p["elbo_stderr"], p["elbo_minus_beta1"], p["elbo_minus_beta1_stderr"],
           f"{p['active_units']}/{p['latent_size']}", p["mutual_information"]] for p in points]
  table = "Test set, nats per image:\n\n" + harness.markdown_table(columns, rows)
  return exp.finish({"points": points}, table,
                    paper={"source": "Chen et al., ICLR 2017 (free bits; no rate-distortion "
                           "table in the paper)"})


def options(fv=flags.FLAGS):
  opts = harness.common_options(fv)
  betas = None if fv["betas"].using_default_value and opts["size"] == "smoke" else fv.betas
  return dict(opts, betas=None if betas is None else harness.parse_floats(betas, "betas"),
              free_bits=fv.free_bits,
              free_bits_floors=harness.parse_floats(fv.free_bits_floors, "free_bits_floors"))


if __name__ == "__main__":
  define_flags()
  app.run(harness.make_main(run, options))
