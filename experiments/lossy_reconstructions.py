"""Claim 4: VLAE is a lossy code: z keeps the global shape, the decoder redraws local detail.

From a trained model (``--model_workdir``: a training work directory, EMA
weights; ``--zoo_model``: a packaged zoo SavedModel loaded with
``vlae_tf.zoo.load``; neither: the VLAE ``mnist`` is trained here at the run
size, in ``<workdir>/vlae``) it draws, for test images:

* ``decodes.png``         each test image, then ``--num_decodes`` draws of
                          x ~ p(x|z) for ONE z ~ q(z|x): same global shape,
                          different local detail;
* ``interpolations.png``  decodes of z_t = (1 - t) mu(x_a) + t mu(x_b) between
                          pairs of test images (mu: the mean of q0(z|x)), the
                          pixel noise shared along a row;
* ``prior_samples.png``   x ~ p(x|z), z ~ p(z).

Both kinds of model go through the same signature functions
(:class:`vlae_tf.export.ServingModule`), so results agree for the same weights
and seeds. Expected shape (computed with :func:`harness.decode_consistency`):
decodes are closer to their own test image than to another test image
(``own < other``: z carries the global content) and differ from each other
(``resample > 0``: local detail is redrawn).

  python experiments/lossy_reconstructions.py --workdir=runs/exp/lossy \\
      --model_workdir=runs/mnist_cpu
  python experiments/lossy_reconstructions.py --workdir=runs/exp/lossy --zoo_model=mnist
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from experiments import harness  # noqa: E402
import vlae_tf  # noqa: E402
from vlae_tf import workdir as vwork  # noqa: E402

NAME = "lossy_reconstructions"
TITLE = "Lossy codes: decodes of one z, latent interpolations and prior samples"
BUDGETS = {"cpu": harness.Budget(steps=1500, eval_examples=0, iwae_samples=0)}


def define_flags(fv=flags.FLAGS):
  harness.define_common_flags(fv)
  flags.DEFINE_string("model_workdir", "", "A training work directory to draw from (EMA "
                      "weights of its latest checkpoint).", flag_values=fv)
  flags.DEFINE_string("zoo_model", "", "A packaged zoo model name (or folder) for "
                      "vlae_tf.zoo.load.", flag_values=fv)
  flags.DEFINE_string("zoo_dir", "", "Where zoo models live (default $VLAE_ZOO_DIR, else "
                      "saved_models/).", flag_values=fv)
  flags.DEFINE_integer("num_images", 8, "Test images for the decodes figure.", flag_values=fv)
  flags.DEFINE_integer("num_decodes", 6, "Decodes of the same z per test image.", flag_values=fv)
  flags.DEFINE_integer("num_interpolations", 4, "Pairs of test images to interpolate between.",
                       flag_values=fv)
  flags.DEFINE_integer("interpolation_steps", 8, "Points per interpolation.", flag_values=fv)
  flags.DEFINE_integer("num_samples", 32, "Samples from the prior.", flag_values=fv)


def load_source(exp, model_workdir="", zoo_model="", zoo_dir=""):
  """``(zoo-API model, its config, description)`` for the chosen source (module doc)."""
  if model_workdir and zoo_model:
    raise ValueError("give --model_workdir or --zoo_model, not both")
  if zoo_model:
    zm = vlae_tf.zoo.load(zoo_model, zoo_dir or None)
    cfg = harness.zoo_config(zm)
    if exp.data_dir:
      cfg.data.data_dir = exp.data_dir
    return zm, cfg, f"zoo model {zoo_model!r}"
  if not model_workdir:
    cfg = exp.config("mnist")
    exp.train("vlae", cfg)
    model_workdir = exp.model_dir("vlae")
  model, cfg, step = vwork.load_model_from_workdir(model_workdir, use_ema=True)
  if exp.data_dir:
    cfg.data.data_dir = exp.data_dir
  exp.models.setdefault("source", {}).update(workdir=model_workdir, steps=step,
                                             config_name=cfg.get("name", ""))
  return (harness.servable(model, cfg, cfg.get("name", "vlae")), cfg,
          f"work directory {model_workdir} (step {step}, EMA weights)")


def _check_counts(**counts):
  for k, v in counts.items():
    if v < 1:
      raise ValueError(f"--{k} must be >= 1, got {v}")


def run(workdir, size="cpu", model_workdir="", zoo_model="", zoo_dir="", num_images=8,
        num_decodes=6, num_interpolations=4, interpolation_steps=8, num_samples=32, **common):
  _check_counts(num_images=num_images, num_interpolations=num_interpolations,
                num_samples=num_samples)
  if num_images < 2 or num_decodes < 2 or interpolation_steps < 2:
    raise ValueError("--num_images, --num_decodes and --interpolation_steps must be >= 2")
  exp = harness.Experiment(NAME, TITLE, workdir, size, BUDGETS, **common)
  zm, cfg, source = load_source(exp, model_workdir, zoo_model, zoo_dir)
  exp.log(f"drawing from {source}: {zm}")
  levels, seed = zm.num_levels, exp.seed
  x = harness.test_images(cfg, max(num_images, 2 * num_interpolations))
  if len(x) < max(num_images, 2 * num_interpolations):
    raise ValueError(f"the test split has only {len(x)} images")

  # One z per test image, decoded num_decodes times (each row of the batch gets its own noise).
  xs = x[:num_images]
  z = zm.encode(xs, seed=seed)["z"]
  dec = zm.decode(np.repeat(z, num_decodes, axis=0), seed=seed + 1)
  dec = dec.reshape((num_images, num_decodes) + zm.image_shape)
  consistency = harness.decode_consistency(xs, dec, levels)
  cap = (f"Left: test images. Right: {num_decodes} draws of x ~ p(x|z) for one z ~ q(z|x) per "
         f"row. Mean |pixel| distance to the own image {consistency['own']:.3f}, to another test "
         f"image {consistency['other']:.3f}, between two decodes {consistency['resample']:.3f}.")
  harness.save_image_grid(exp.figure("decodes.png", cap),
                          np.concatenate([xs[:, None], dec], 1), levels, cap,
                          col_labels=["test"] + [str(i + 1) for i in range(num_decodes)])

  a, b = x[0:2 * num_interpolations:2], x[1:2 * num_interpolations:2]
  inter = zm.interpolate(a, b, steps=interpolation_steps, seed=seed + 2)
  cap = (f"Rows: decodes of z_t = (1 - t) mu(x_a) + t mu(x_b) for t = 0 .. 1 in "
         f"{interpolation_steps} steps between two test images (outer columns), mu the mean of "
         "q0(z|x); pixel noise shared along a row.")
  harness.save_image_grid(exp.figure("interpolations.png", cap),
                          np.concatenate([a[:, None], inter, b[:, None]], 1), levels, cap,
                          col_labels=["x_a"] + [f"{t:.2f}" for t in
                                                np.linspace(0, 1, interpolation_steps)] + ["x_b"])

  samples = zm.sample(num=num_samples, seed=seed + 3)
  cols = min(8, num_samples)
  rows = -(-num_samples // cols)
  grid = np.zeros((rows * cols,) + zm.image_shape, np.uint8)
  grid[:num_samples] = samples
  cap = f"{num_samples} samples x ~ p(x|z), z ~ p(z) from the model's prior."
  harness.save_image_grid(exp.figure("prior_samples.png", cap),
                          grid.reshape((rows, cols) + zm.image_shape), levels, cap)

  exp.check("z keeps the global content (decodes closer to their own image)",
            consistency["own"] < consistency["other"],
            f"own {consistency['own']:.4f} < other {consistency['other']:.4f}")
  exp.check("local detail is redrawn (decodes of one z differ)", consistency["resample"] > 0,
            f"mean distance between two decodes of one z {consistency['resample']:.4f} > 0")
  table = ("Mean absolute pixel distance (pixels scaled to [0, 1]) of decodes of one z:\n\n"
           + harness.markdown_table(
               ["source", "images", "decodes each", "to own image", "to another image",
                "between decodes"],
               [[source, num_images, num_decodes, consistency["own"], consistency["other"],
                 consistency["resample"]]]))
  return exp.finish({"source": source, "decode_consistency": consistency}, table)


def options(fv=flags.FLAGS):
  return dict(harness.common_options(fv), model_workdir=fv.model_workdir,
              zoo_model=fv.zoo_model, zoo_dir=fv.zoo_dir, num_images=fv.num_images,
              num_decodes=fv.num_decodes, num_interpolations=fv.num_interpolations,
              interpolation_steps=fv.interpolation_steps, num_samples=fv.num_samples)


if __name__ == "__main__":
  define_flags()
  app.run(harness.make_main(run, options))
