"""Latent traversals of a shipped zoo model: global (z) vs local (decoder noise) variation.

The paper's "global-local disentanglement" (issue 20, item 3), on a packaged
zoo model. For ``--num_images`` evenly spaced test images:

* z: the posterior mean ``mu(x)``; its point in the AF prior's *base space*,
  ``eps0 = f^{-1}(mu(x))`` where ``z = f(eps)`` is the prior's flow
  (``AFPrior.sample_from_noise`` is ``f``; :func:`base_noise` is its exact
  inverse, one parallel MADE pass per flow step);
* traversals: one base coordinate ``p`` at a time is set to each value of
  ``--grid`` (in units of the base distribution's std, which is 1), the other
  coordinates stay at ``eps0``, and the path is mapped back, ``z = f(eps)``.
  The path stays where the prior has mass (a straight line in z need not).
  Every image of one test image's traversals is decoded with the *same*
  decoder noise (pre-drawn uniforms of :func:`vlae_tf.sampling.draw_noise`);
* resamples: ``z = mu(x)`` fixed, ``--num_resamples`` independent draws of the
  decoder's noise (the first is the noise the traversals use).

Directions: the ``--num_directions`` base coordinates with the largest KL
(``vlae_tf.evaluation.kl_per_dim``; the AF prior's split of ``log p(z)``
credits the base term of coordinate ``p`` to latent dimension ``perm[p]``,
:func:`base_positions`, so a base coordinate's KL is that of its latent
dimension), or with ``--rank_by=variance`` the largest variance of
``eps0_p`` over test images. The coordinate with the smallest KL is traversed
too, as a control (numbers only, not in the figure).

The number (:func:`change_stats`), in [0, 1] pixel units: the mean absolute
change between decodes one grid step apart (a traversal step) and between two
decodes of the same z (a noise resample), on the images as drawn and after a
``--block`` x ``--block`` average pool (the low-passed image: the layout, not
the texture). A global change survives the low-pass; local detail averages
out. *Coarseness* = low-passed change / full-resolution change, per change
type; the paired per-image difference "traversal minus resample" is the claim
in one number (positive: traversals move coarse structure, noise moves detail).
Standard errors are over test images (directions averaged within an image).

  VLAE_DATA_DIR=/work/shared/data python experiments/traversals.py --model=mnist \\
      --out=docs/figures/traversals_mnist.png --json=experiments/results/traversals.json

Bad input: a one-line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

DEFAULT_GRID = (-2.0, -1.0, 0.0, 1.0, 2.0)


# ------------------------------------------------------------------ base space
def base_noise(prior, z):
  """``eps = f^{-1}(z)``: the prior's base noise of flat latents ``[B, D]`` (inverse of
  ``prior.sample_from_noise``; the identity for a standard-normal prior)."""
  import tensorflow as tf
  z = tf.convert_to_tensor(z, tf.float32)
  if not hasattr(prior, "bijector"):
    return z
  return prior.bijector().inverse(z)


def base_positions(prior):
  """``perm``: base coordinate ``p`` is credited to latent dimension ``perm[p]``.

  The order the AF prior's :meth:`log_prob_per_dim` undoes its reversals in:
  the base term of ``eps_p`` is reported under ``z_{perm[p]}`` (for two flow
  steps ``perm`` is the reversal). Identity for a standard-normal prior.
  """
  d = int(prior.event_size)
  perm = np.arange(d)
  for i in reversed(range(int(getattr(prior, "num_steps", 1)))):
    if i > 0:
      perm = perm[prior._reverse]
  return perm


def traversal_base_path(eps0, dims, grid):
  """``[N, M, K, D]`` base points: ``eps0[n]`` with coordinate ``dims[m]`` set to ``grid[k]``."""
  eps0 = np.asarray(eps0, np.float32)
  dims, grid = np.asarray(dims, int), np.asarray(grid, np.float32)
  n, d = eps0.shape
  path = np.broadcast_to(eps0[:, None, None, :], (n, len(dims), len(grid), d)).copy()
  for m, p in enumerate(dims):
    path[:, m, :, p] = grid[None, :]
  return path


# ------------------------------------------------------------------ decoding
def make_decoder(model):
  """``decode(z [B, D], noise [B, H, W, N]) -> [B, H, W, C]`` float images.

  The exact cached sampler of :mod:`vlae_tf.sampling`, traced once.
  """
  import tensorflow as tf
  from vlae_tf import sampling
  fn = tf.function(lambda z, u: sampling.sample_x_given_z(model, z, noise=u),
                   input_signature=[tf.TensorSpec([None, model.latent_size], tf.float32),
                                    tf.TensorSpec([None, *model.image_shape[:2],
                                                   model.likelihood.noise_channels()],
                                                  tf.float32)])
  return lambda z, u: fn(tf.convert_to_tensor(z, tf.float32),
                         tf.convert_to_tensor(u, tf.float32)).numpy()


def decode_in_batches(decode, z, noise, batch=128):
  return np.concatenate([decode(z[i:i + batch], noise[i:i + batch])
                         for i in range(0, len(z), batch)], axis=0)


def traverse(prior, decode, draw_noise, z_mean, dims, grid, num_resamples, batch=128):
  """Traversal and resample decodes of posterior means ``z_mean [N, D]``.

  ``draw_noise(count, index)``: ``count`` independent decoder noises (a
  ``[count, H, W, N]`` array) for image ``index``. Image ``n``'s traversals all
  use its first noise; its resamples use all ``num_resamples``. Returns a
  dict: ``traversals [N, M, K, H, W, C]``, ``resamples [N, R, H, W, C]``,
  ``eps0 [N, D]``, ``eps_path`` and ``z_path`` ``[N, M, K, D]``.
  """
  z_mean = np.asarray(z_mean, np.float32)
  n, d = z_mean.shape
  m, k, r = len(dims), len(grid), int(num_resamples)
  eps0 = np.asarray(base_noise(prior, z_mean))
  eps_path = traversal_base_path(eps0, dims, grid)
  z_path = np.asarray(prior.sample_from_noise(eps_path.reshape(-1, d))).reshape(eps_path.shape)
  noises = np.stack([np.asarray(draw_noise(r, i)) for i in range(n)])     # [N, R, H, W, N]
  trav_noise = np.broadcast_to(noises[:, None, :1], (n, m, k) + noises.shape[2:])
  z_all = np.concatenate([z_path.reshape(-1, d), np.repeat(z_mean, r, axis=0)])
  u_all = np.concatenate([trav_noise.reshape((-1,) + noises.shape[2:]),
                          noises.reshape((-1,) + noises.shape[2:])])
  x_all = decode_in_batches(decode, z_all, u_all, batch)
  img = x_all.shape[1:]
  return {"traversals": x_all[:n * m * k].reshape((n, m, k) + img),
          "resamples": x_all[n * m * k:].reshape((n, r) + img),
          "eps0": eps0, "eps_path": eps_path, "z_path": z_path}


# ------------------------------------------------------------------ numbers
def block_mean(x, block):
  """``[..., H, W, C]`` -> ``[..., H/block, W/block, C]``: the low-passed (average-pooled) image."""
  from experiments.layout_check import block_mean as _block_mean
  return _block_mean(np.asarray(x, np.float64), block)


def _mean_abs(a, b):
  return np.abs(a - b).mean(axis=(-3, -2, -1))


def _summary(v):
  v = np.asarray(v, np.float64)
  se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
  return {"mean": float(v.mean()), "stderr": se}


def change_stats(traversals, resamples, num_levels, block):
  """Per-image changes of traversal steps and noise resamples, full and low-passed.

  ``traversals [N, M, K, H, W, C]`` (fixed noise along each row),
  ``resamples [N, R, H, W, C]`` (fixed z); data-scale pixels. Returns
  ``(summary, per_image)``: ``per_image[scale][kind]`` are ``[N]`` arrays
  (``kind``: ``step`` = adjacent grid points, ``sweep`` = first vs last grid
  point, both averaged over directions; ``resample`` = mean over pairs of
  resamples), ``per_image["coarseness"][kind]`` = low-passed / full, and
  ``summary`` their means ± standard errors over images, the paired
  ``coarseness step - resample`` and the per-image ratios step / resample.
  """
  t = np.asarray(traversals, np.float64) / (num_levels - 1)
  s = np.asarray(resamples, np.float64) / (num_levels - 1)
  r = s.shape[1]
  if r < 2 or t.shape[2] < 2:
    raise ValueError("need at least two grid points and two resamples")
  pairs = [(a, b) for a in range(r) for b in range(a + 1, r)]
  per_image = {}
  for scale, f in (("full", lambda v: v), (f"block{block}", lambda v: block_mean(v, block))):
    tt, ss = f(t), f(s)
    per_image[scale] = {
        "step": _mean_abs(tt[:, :, 1:], tt[:, :, :-1]).mean(axis=(1, 2)),
        "sweep": _mean_abs(tt[:, :, -1], tt[:, :, 0]).mean(axis=1),
        "resample": np.mean([_mean_abs(ss[:, a], ss[:, b]) for a, b in pairs], axis=0),
        "step_per_direction": _mean_abs(tt[:, :, 1:], tt[:, :, :-1]).mean(axis=2)}
  full, low = per_image["full"], per_image[f"block{block}"]
  with np.errstate(divide="ignore", invalid="ignore"):
    per_image["coarseness"] = {k: low[k] / full[k] for k in ("step", "sweep", "resample")}
  summary = {}
  for scale in ("full", f"block{block}"):
    p = per_image[scale]
    with np.errstate(divide="ignore", invalid="ignore"):
      ratio = p["step"] / p["resample"]
    summary[scale] = {"step": _summary(p["step"]), "sweep": _summary(p["sweep"]),
                      "resample": _summary(p["resample"]),
                      "step_over_resample": _summary(ratio),
                      "step_per_direction": [_summary(v) for v in p["step_per_direction"].T]}
  c = per_image["coarseness"]
  summary["coarseness"] = {"step": _summary(c["step"]), "sweep": _summary(c["sweep"]),
                           "resample": _summary(c["resample"]),
                           "step_minus_resample": _summary(c["step"] - c["resample"]),
                           "fraction_step_coarser": float(np.mean(c["step"] > c["resample"]))}
  return summary, per_image


def cell_locality(traversals, cells, stride):
  """Where a spatial latent's traversal step changes the image: ``[N, M]`` ratios.

  ``cells[m] = (i, j)``: the latent position of direction ``m``, which the
  conditioning network upsamples onto the ``stride x stride`` pixel cell
  ``(i, j)``. The ratio is the mean |change| of a grid step inside that cell
  over its mean on the whole image (1: no more there than anywhere else).
  """
  t = np.asarray(traversals, np.float64)
  change = np.abs(t[:, :, 1:] - t[:, :, :-1]).mean(axis=(2, -1))          # [N, M, H, W]
  out = np.empty(change.shape[:2])
  for m, (i, j) in enumerate(cells):
    cell = change[:, m, i * stride:(i + 1) * stride, j * stride:(j + 1) * stride]
    with np.errstate(divide="ignore", invalid="ignore"):
      out[:, m] = cell.mean(axis=(1, 2)) / change[:, m].mean(axis=(1, 2))
  return out


# ------------------------------------------------------------------ directions
def rank_directions(model, x, rank_by, num_directions, kl_samples=16, seed=0):
  """Base coordinates ``[M]`` to traverse, the control (smallest KL), and per-coordinate scores.

  ``kl`` of coordinate ``p``: the KL per dimension (nats) of the latent
  dimension ``perm[p]`` it is credited to (:func:`base_positions`);
  ``variance``: ``Var_x eps0_p(x)`` over the images ``x``.
  """
  from vlae_tf import evaluation
  mu, _ = evaluation.posterior_stats(model, x)
  perm = base_positions(model.prior)
  kl = evaluation.kl_per_dim(model, x, num_samples=kl_samples, seed=seed)[perm]
  var = np.var(np.asarray(base_noise(model.prior, mu), np.float64), axis=0)
  score = kl if rank_by == "kl" else var
  order = np.argsort(-score, kind="stable")
  return order[:num_directions], int(np.argmin(kl)), {"kl": kl, "variance": var, "perm": perm}


def latent_index_name(model, dim):
  """``"z[i]"`` for a vector latent, ``"z[row, col, channel]"`` for a spatial one."""
  if len(model.latent_shape) == 1:
    return f"z[{dim}]"
  return "z[" + ", ".join(str(int(v)) for v in np.unravel_index(dim, model.latent_shape)) + "]"


# ------------------------------------------------------------------ figure
def figure_grid(x, traversals, resamples, per_row, num_levels):
  """``[rows, cols, H, W, C]`` grid: blocks of ``per_row`` test images side by side.

  A block is ``1 + M`` rows of ``1 + K`` images: the test image, then the
  resamples (first row) or the traversal of one direction (one row each).
  Blocks are separated by a white column; needs ``K == R``.
  """
  n, m, k = traversals.shape[:3]
  if resamples.shape[1] != k:
    raise ValueError("the figure needs as many resamples as grid points")
  blank = np.full(x.shape[1:], num_levels - 1, np.float32)
  rows = []
  for start in range(0, n, per_row):
    for row in range(1 + m):
      cells = []
      for i in range(start, start + per_row):
        if cells:
          cells.append(blank)
        if i >= n:
          cells += [blank] * (1 + k)
          continue
        cells.append(x[i])
        cells += list(resamples[i] if row == 0 else traversals[i, row - 1])
      rows.append(np.stack(cells))
  return np.stack(rows)


# ------------------------------------------------------------------ CLI
class UsageError(ValueError):
  """Bad command-line input: one line on stderr, exit status 2."""


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model", default="mnist", help="zoo model name (or a model folder path)")
  p.add_argument("--out", required=True, help="PNG of the figure")
  p.add_argument("--json", default="", help="JSON file of the numbers (this model's entry is "
                 "replaced, other models' entries kept)")
  p.add_argument("--num_images", type=int, default=100,
                 help="evenly spaced test images for the numbers")
  p.add_argument("--figure_images", type=int, default=4, help="of them, shown in the figure")
  p.add_argument("--per_row", type=int, default=2, help="test images side by side in the figure")
  p.add_argument("--num_directions", type=int, default=4, help="base coordinates traversed")
  p.add_argument("--rank_by", default="kl", help="kl or variance")
  p.add_argument("--grid", default=",".join(f"{g:g}" for g in DEFAULT_GRID),
                 help="base-space values of the traversed coordinate (prior std units)")
  p.add_argument("--num_resamples", type=int, default=len(DEFAULT_GRID),
                 help="decoder-noise draws for z fixed (= grid points, for the figure)")
  p.add_argument("--block", type=int, default=4, help="side of the average pool (low-pass)")
  p.add_argument("--kl_images", type=int, default=1000, help="test images for the KL ranking")
  p.add_argument("--seed", type=int, default=0)

  def error(message):
    raise UsageError(message)
  p.error = error
  a = p.parse_args(argv)
  try:
    a.grid = [float(v) for v in a.grid.split(",")]
  except ValueError:
    raise UsageError(f"--grid must be a comma-separated list of numbers, got {a.grid!r}") from None
  if len(a.grid) < 2 or not all(math.isfinite(g) for g in a.grid):
    raise UsageError(f"--grid needs at least two finite numbers, got {a.grid}")
  if a.rank_by not in ("kl", "variance"):
    raise UsageError(f"--rank_by must be kl or variance, got {a.rank_by!r}")
  for name, lo in (("num_images", 2), ("figure_images", 1), ("per_row", 1),
                   ("num_directions", 1), ("num_resamples", 2), ("block", 1), ("kl_images", 1)):
    if getattr(a, name) < lo:
      raise UsageError(f"--{name} must be at least {lo}, got {getattr(a, name)}")
  if a.figure_images > a.num_images:
    raise UsageError(f"--figure_images={a.figure_images} exceeds --num_images={a.num_images}")
  if a.num_resamples != len(a.grid):
    raise UsageError(f"--num_resamples={a.num_resamples} must equal the number of grid points "
                     f"({len(a.grid)}): the figure puts them in the same columns")
  if not a.out.endswith(".png"):
    raise UsageError(f"--out must name a .png file, got {a.out!r}")
  return a


def run(a, argv):
  import tensorflow as tf
  import vlae_tf
  from experiments import figures
  from experiments.trained import test_images
  from vlae_tf import atomic, sampling
  from vlae_tf import config as vconfig
  from vlae_tf.pretrained.card import ZooError

  start = time.time()
  try:
    model = vlae_tf.zoo.load_keras(a.model)
  except (ZooError, FileNotFoundError, ValueError) as e:
    raise UsageError(f"--model={a.model}: {' '.join(str(e).split())}") from None
  cfg = vconfig.from_json(model.zoo_card["config"])
  h, w, _ = model.image_shape
  if h % a.block or w % a.block:
    raise UsageError(f"--block={a.block} must divide the image size {h}x{w}")
  if a.num_directions >= model.latent_size:
    raise UsageError(f"--num_directions={a.num_directions} must be below the latent size "
                     f"{model.latent_size}")
  try:
    x_kl = test_images(cfg, a.kl_images)
    x = test_images(cfg, a.num_images)
  except (FileNotFoundError, OSError, ValueError) as e:
    raise UsageError(f"test images of {a.model}: {' '.join(str(e).split())} "
                     "(set VLAE_DATA_DIR to the .npz datasets)") from None
  num_levels = model.num_levels
  dims, control, scores = rank_directions(model, x_kl, a.rank_by, a.num_directions, seed=a.seed)
  mu, _ = vlae_tf.evaluation.posterior_stats(model, x)
  decode = make_decoder(model)

  def draw_noise(count, index):
    return sampling.draw_noise(model, count, tf.constant([a.seed, index], tf.int64)).numpy()

  res = traverse(model.prior, decode, draw_noise, mu, list(dims) + [control], a.grid,
                 a.num_resamples)
  trav, resamples = res["traversals"][:, :-1], res["resamples"]
  summary, per_image = change_stats(trav, resamples, num_levels, a.block)
  control_stats, _ = change_stats(res["traversals"][:, -1:], resamples, num_levels, a.block)

  locality = None
  if len(model.latent_shape) == 3:
    cells = [np.unravel_index(int(scores["perm"][p]), model.latent_shape)[:2] for p in dims]
    locality = cell_locality(trav, cells, h // model.latent_shape[0])

  # figure: evenly spaced among the measured images (binarized MNIST's test set is sorted by class)
  f = a.figure_images
  shown = vlae_tf.evaluation.iwae_subset(len(x), f)
  grid = figure_grid(x[shown], trav[shown], resamples[shown], a.per_row, num_levels)
  labels = []
  for _ in range(0, f, a.per_row):
    labels.append(f"z fixed, {a.num_resamples} noise draws")
    labels += [f"eps[{p}] -> {latent_index_name(model, int(scores['perm'][p]))} "
               f"(KL {scores['kl'][p]:.2f})" for p in dims]
  cols = (["test"] + [f"{g:+g}" for g in a.grid] + [""]) * a.per_row
  caption = (f"{a.model}: for each test image (left of each block), the first row decodes its "
             f"posterior mean z with {a.num_resamples} independent draws of the decoder's noise "
             f"(the first draw is the one every traversal in the block uses); each further row "
             f"sets one coordinate of the AF prior's base noise eps = f^-1(z) to the value on "
             f"top (prior std units), keeps the others, and decodes f(eps) with that fixed "
             f"noise. Directions: the {len(dims)} base coordinates with the largest "
             f"{'KL per dimension' if a.rank_by == 'kl' else 'posterior-mean variance'} "
             f"(KL in nats, over {len(x_kl)} test images, of the latent dimension z[...] each "
             f"base coordinate is credited to).")
  figures.save_image_grid(a.out, grid, num_levels, caption, row_labels=labels,
                          col_labels=cols[:-1])

  b = f"block{a.block}"
  out = {
      "model": a.model, "config_name": model.zoo_card.get("config_name"),
      "command": "python experiments/traversals.py " + " ".join(argv),
      "environment": {"VLAE_DATA_DIR": os.environ.get("VLAE_DATA_DIR", ""),
                      "tensorflow": tf.__version__, "cpu_count": os.cpu_count()},
      "figure": a.out, "num_images": len(x), "figure_images": [int(i) for i in shown],
      "grid": a.grid,
      "num_resamples": a.num_resamples, "block": a.block, "rank_by": a.rank_by,
      "latent_shape": list(model.latent_shape), "kl_images": len(x_kl),
      "units": "mean |pixel difference|, pixels in [0, 1]; ± = standard error over test images",
      "directions": [{"base_coordinate": int(p), "latent_dim": latent_index_name(
          model, int(scores["perm"][p])), "kl_nats": float(scores["kl"][p]),
          "base_posterior_mean_variance": float(scores["variance"][p]),
          "step_full": summary["full"]["step_per_direction"][i],
          f"step_{b}": summary[b]["step_per_direction"][i],
          **({} if locality is None else {"own_cell_change_over_image_mean":
                                           _summary(locality[:, i])})}
                     for i, p in enumerate(dims)],
      "control_direction": {"base_coordinate": control, "latent_dim": latent_index_name(
          model, int(scores["perm"][control])), "kl_nats": float(scores["kl"][control]),
          "step_full": control_stats["full"]["step"], f"step_{b}": control_stats[b]["step"]},
      "total_kl_nats": float(scores["kl"].sum()),
      "base_noise_of_posterior_means": {"mean": float(res["eps0"].mean()),
                                        "std": float(res["eps0"].std())},
      "results": summary,
      "wall_seconds": round(time.time() - start, 1),
  }
  if a.json:
    old = {}
    if os.path.exists(a.json):
      with open(a.json) as fh:
        old = json.load(fh)
    old[a.model] = out
    atomic.write_text(a.json, json.dumps(old, indent=1) + "\n")
  return out


def report(out):
  b = f"block{out['block']}"
  r = out["results"]
  fmt = lambda s: f"{s['mean']:.4f} ± {s['stderr']:.4f}"
  lines = [f"{out['model']}: {out['num_images']} test images, {len(out['directions'])} base "
           f"directions by {out['rank_by']}, grid {out['grid']}, {out['num_resamples']} resamples",
           "| scale | traversal step | traversal sweep | noise resample | step / resample |",
           "| --- | --- | --- | --- | --- |"]
  for scale in ("full", b):
    s = r[scale]
    lines.append(f"| {scale} | {fmt(s['step'])} | {fmt(s['sweep'])} | {fmt(s['resample'])} | "
                 f"{fmt(s['step_over_resample'])} |")
  c = r["coarseness"]
  lines.append(f"coarseness ({b} / full): step {fmt(c['step'])}, resample {fmt(c['resample'])}, "
               f"paired step - resample {fmt(c['step_minus_resample'])}, step coarser in "
               f"{100 * c['fraction_step_coarser']:.0f}% of images")
  for d in out["directions"]:
    lines.append(f"  eps[{d['base_coordinate']}] -> {d['latent_dim']}: KL {d['kl_nats']:.3f} "
                 f"nats, step full {fmt(d['step_full'])}, {b} {fmt(d['step_' + b])}"
                 + (f", own cell / image mean {fmt(d['own_cell_change_over_image_mean'])}"
                    if "own_cell_change_over_image_mean" in d else ""))
  c = out["control_direction"]
  lines.append(f"  control eps[{c['base_coordinate']}] (smallest KL {c['kl_nats']:.4f}): step "
               f"full {fmt(c['step_full'])}, {b} {fmt(c['step_' + b])}")
  return "\n".join(lines)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  try:
    a = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = run(a, argv)
  except UsageError as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  print(report(out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
