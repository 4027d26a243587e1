"""Claim 2: at an equal parameter count, an AF prior beats an IAF posterior.

Paper (Chen et al., ICLR 2017, statically binarized MNIST): AF prior
79.30 nats vs IAF posterior 79.88 nats. Both are VLAEs (zoo ``mnist``; at the
default run size scaled down as ``zoo/mnist_cpu.py``):

* ``af_prior``       p(z) = a MAF of ``prior_steps`` MADEs, q(z|x) diagonal Gaussian.
* ``iaf_posterior``  p(z) = N(0, I), q(z|x) = an IAF of ``prior_steps`` MADEs
                     of the same depth on top of the diagonal Gaussian,
                     conditioned on an encoder context vector.

The IAF side has the encoder's context head and the MADEs' context weights on
top, so its MADE width is chosen (:func:`match_iaf_width`) to make the two
models' total trainable parameter counts as equal as integer widths allow;
both counts are printed and reported. Everything else (encoder, decoder,
free bits, budget, seeds) is the same.

Expected shape (computed): the AF prior's test IWAE NLL is lower than the IAF
posterior's by more than twice the standard error of the paired difference,
at parameter counts within 1% of each other.

  VLAE_DATA_DIR=/path/to/data python experiments/af_vs_iaf.py --workdir=runs/exp/af_vs_iaf
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments import harness  # noqa: E402
from vlae_tf.made import MADE  # noqa: E402
from vlae_tf.model import build_model  # noqa: E402

NAME = "af_vs_iaf"
TITLE = "AF prior vs IAF posterior at an equal parameter count (static MNIST)"
BUDGETS = {"cpu": harness.Budget(steps=1500, eval_examples=1000, iwae_samples=50)}
MAX_RELATIVE_PARAM_GAP = 0.01
PAPER = {"source": "Chen et al., ICLR 2017: AF prior vs IAF posterior, static MNIST, equal "
                   "parameter count",
         "af_prior_nll": 79.30, "iaf_posterior_nll": 79.88}


def define_flags(fv=flags.FLAGS):
  harness.define_common_flags(fv)


def _made_params(event_size, width, depth, context_size):
  made = MADE(event_size, (width,) * depth, params=2, context_size=context_size)
  made.build((None, event_size))
  return harness.num_params(made)


def iaf_config(af_cfg, width):
  """The IAF-posterior twin of an AF-prior config, with MADEs ``(width,) * depth``."""
  cfg = af_cfg.copy_and_resolve_references()
  m = cfg.model
  m.prior, m.posterior = "normal", "iaf"
  m.posterior_steps = int(af_cfg.model.prior_steps)
  m.posterior_hidden = (int(width),) * len(af_cfg.model.prior_hidden)
  cfg.name = f"{af_cfg.get('name', 'vlae')}_iaf_posterior"
  return cfg


def match_iaf_width(af_cfg):
  """``(iaf_cfg, af_params, iaf_params)``: the IAF width whose total count is closest to the AF's.

  The IAF model's count is ``n(w) = n(w0) + S (made(w) - made(w0))`` with
  ``made(w)`` the count of one context-conditioned MADE of width ``w`` (built,
  not derived by formula), which increases with ``w``; a bisection finds the
  closest ``w``.
  """
  af_params = harness.num_params(build_model(af_cfg))
  w0 = int(af_cfg.model.prior_hidden[0])
  depth, steps = len(af_cfg.model.prior_hidden), int(af_cfg.model.prior_steps)
  probe = build_model(iaf_config(af_cfg, w0))
  d, c = probe.latent_size, int(af_cfg.model.posterior_context)
  base = harness.num_params(probe) - steps * _made_params(d, w0, depth, c)
  count = lambda w: base + steps * _made_params(d, w, depth, c)  # noqa: E731
  lo, hi = 1, max(2, 8 * w0)
  while lo < hi:                      # smallest w with count(w) >= af_params
    mid = (lo + hi) // 2
    if count(mid) >= af_params:
      hi = mid
    else:
      lo = mid + 1
  best = min({max(1, lo - 1), lo}, key=lambda w: abs(count(w) - af_params))
  return iaf_config(af_cfg, best), af_params, count(best)


def run(workdir, size="cpu", **common):
  exp = harness.Experiment(NAME, TITLE, workdir, size, BUDGETS, **common)
  af_cfg = exp.config("mnist")
  iaf_cfg, n_af, n_iaf = match_iaf_width(af_cfg)
  exp.log(f"parameters: AF prior {n_af} (MADE widths {tuple(af_cfg.model.prior_hidden)}), IAF "
          f"posterior {n_iaf} (MADE widths {tuple(iaf_cfg.model.posterior_hidden)})")
  tests, per = {}, {}
  for key, cfg in (("af_prior", af_cfg), ("iaf_posterior", iaf_cfg)):
    exp.train(key, cfg)
    tests[key], per[key] = exp.test_metrics(key)
  af, iaf = tests["af_prior"], tests["iaf_posterior"]
  gap = abs(af["num_params"] - iaf["num_params"]) / af["num_params"]
  exp.check("equal parameter counts", gap <= MAX_RELATIVE_PARAM_GAP,
            f"AF prior {af['num_params']}, IAF posterior {iaf['num_params']} trainable "
            f"parameters (relative gap {gap:.4%}, needs <= {MAX_RELATIVE_PARAM_GAP:.0%})")
  metric = "iwae_nll" if "iwae_nll" in per["af_prior"] else "elbo"
  sign = 1.0 if metric == "iwae_nll" else -1.0
  diff, err = harness.paired_difference(sign * per["af_prior"][metric],
                                        sign * per["iaf_posterior"][metric])
  exp.check("AF prior NLL lower than IAF posterior NLL", diff < -2 * err,
            f"paired difference AF - IAF = {diff:.3f} +- {err:.3f} nats "
            f"({'IWAE NLL' if metric == 'iwae_nll' else '-ELBO'}; needs < -2 stderr; paper: "
            f"{PAPER['af_prior_nll'] - PAPER['iaf_posterior_nll']:.2f})")

  columns = ["model", "MADE widths", "params", "steps", "test IWAE NLL", "± stderr", "test ELBO",
             "KL (rate)", "active units", "paper NLL"]
  rows = [["AF prior + Gaussian posterior", str(tuple(af_cfg.model.prior_hidden)),
           af["num_params"], exp.models["af_prior"]["steps"], af.get("iwae_nll"),
           af.get("iwae_nll_stderr"), af["elbo"], af["kl_total"],
           f"{af['active_units']}/{af['latent_size']}", PAPER["af_prior_nll"]],
          ["N(0, I) prior + IAF posterior", str(tuple(iaf_cfg.model.posterior_hidden)),
           iaf["num_params"], exp.models["iaf_posterior"]["steps"], iaf.get("iwae_nll"),
           iaf.get("iwae_nll_stderr"), iaf["elbo"], iaf["kl_total"],
           f"{iaf['active_units']}/{iaf['latent_size']}", PAPER["iaf_posterior_nll"]]]
  k = af["iwae_samples"]
  table = (f"Test set, nats per image (IWAE k = {k or '— (skipped)'}); paired difference AF - "
           f"IAF = {diff:.3f} ± {err:.3f} nats.\n\n" + harness.markdown_table(columns, rows))
  notes = ["The paper's numbers are for its full-size models after full training; compare the "
           "sign and rough size of the difference, not the absolute NLL, at smaller sizes."]
  return exp.finish({"num_params": {"af_prior": n_af, "iaf_posterior": n_iaf},
                     "made_widths": {"af_prior": list(af_cfg.model.prior_hidden),
                                     "iaf_posterior": list(iaf_cfg.model.posterior_hidden)},
                     "metric_compared": metric, "af_minus_iaf": [diff, err]},
                    table, paper=PAPER, notes=notes)


def options(fv=flags.FLAGS):
  return harness.common_options(fv)


if __name__ == "__main__":
  define_flags()
  app.run(harness.make_main(run, options))
