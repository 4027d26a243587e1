"""Test-set metrics of the claim experiments, from the one evaluation path (:mod:`vlae_tf.evaluation`).

:func:`test_set_metrics` summarises the per-example values of
:func:`vlae_tf.evaluation.elbo_per_example` / :func:`~vlae_tf.evaluation.iwae_per_example`
(what :func:`vlae_tf.evaluate` summarises too), plus what a comparison needs:
standard errors of the means, the per-example values (for paired differences
between models evaluated on the same images) and the KL per latent dimension
(:func:`vlae_tf.kl_per_dim`).
"""

from __future__ import annotations

import math

import numpy as np

from vlae_tf import evaluation
from vlae_tf.objective import nats_to_bits_per_dim

from experiments.sizing import num_params

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
