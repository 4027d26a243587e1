"""z as features: a linear classifier of MNIST digits on encoder means, against raw pixels.

The paper's point is that z keeps the global, semantic content of an image while the
local decoder models texture. Measured here as linear separability of the digit class:
multinomial logistic regression (:func:`fit_logistic_regression`) trained on the labelled
MNIST train digits and scored on all 10,000 test digits, for three feature sets of the same
images:

* ``vlae``        the means of q(z|x) of the shipped ``mnist`` zoo model
                  (``vlae_tf.zoo.load(--zoo_model)``; 32-d), whatever weights it ships now.
* ``factorized``  the means of q(z|x) of the factorized-decoder VAE: zoo
                  ``mnist_vae_factorized`` scaled down exactly as ``zoo/mnist_cpu.py`` scales
                  ``mnist`` (:func:`experiments.harness.sized_config`), trained here on static
                  binarized MNIST for ``--steps`` (a rerun reuses it); 32-d.
* ``pixels``      the 784 binarized pixels.

Labelled data: the 8-bit MNIST with labels (``$VLAE_DATA_DIR/mnist/mnist.npz`` or
``--labelled_data``; arrays ``x_train`` / ``y_train`` (60,000), ``x_test`` / ``y_test``
(10,000)), binarized as the models expect binary digits: ONE fixed draw
``x_bin ~ Bernoulli(x / 255)`` (:func:`vlae_tf.data.fixed_binarization`, NumPy PCG64) with
seed ``--binarization_seed`` for the train split and that seed + 1 for the test split. The
classifier's training images are the first ``--probe_train_examples`` of MNIST's train split.
Both encoders were trained on binarized MNIST's train split (Larochelle & Murray), which is
made from the first 50,000 MNIST train digits: the probe's training digits overlap what the
encoders saw (under another binarization); its test digits were seen by no model.

Classifier: features standardised with the probe-train mean and std, then
``min_{W, b}  -1/n sum_i log softmax(x_i W + b)_{y_i} + lam / 2 ||W||^2``
(``lam = --l2``, the same for every feature set), solved by Nesterov's accelerated gradient
with step ``1 / L``, ``L = lam + lambda_max([X 1]^T [X 1]) / (2 n)`` (the softmax Hessian is
at most half the identity per example) and momentum ``(sqrt(L) - sqrt(lam)) / (sqrt(L) +
sqrt(lam))``, until the gradient's norm is below ``--tol`` or ``--max_iters``; the final
gradient norm is reported so convergence is visible.

  VLAE_DATA_DIR=/path/to/data nice python experiments/z_features.py --workdir=runs/exp/z_features
  python experiments/z_features.py --workdir=/tmp/zf --smoke     # tiny, synthetic labelled digits
"""

from __future__ import annotations

import os
import sys
import time

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from experiments import harness  # noqa: E402
import vlae_tf  # noqa: E402
from vlae_tf import data as vdata  # noqa: E402

NAME = "z_features"
TITLE = "z as features: logistic regression on encoder means vs raw pixels (MNIST digits)"
FEATURES = ("vlae", "factorized", "pixels")
LABELS = {"vlae": "VLAE z means (shipped `mnist` zoo model)",
          "factorized": "factorized-decoder VAE z means",
          "pixels": "raw binarized pixels"}
BUDGETS = {"cpu": harness.Budget(steps=1000, eval_examples=-1, iwae_samples=0)}
SMOKE_CLASSES, SMOKE_SIZES = 4, {"train": 64, "test": 32}


def define_flags(fv=flags.FLAGS):
  harness.define_common_flags(fv)
  flags.DEFINE_string("zoo_model", "mnist", "Zoo model (name or folder) whose encoder means "
                      "are the `vlae` features.", flag_values=fv)
  flags.DEFINE_string("zoo_dir", None, "Zoo folder (default $VLAE_ZOO_DIR or saved_models/).",
                      flag_values=fv)
  flags.DEFINE_string("labelled_data", "", "The labelled 8-bit MNIST .npz (default: "
                      "<data_dir or $VLAE_DATA_DIR>/mnist/mnist.npz).", flag_values=fv)
  flags.DEFINE_integer("binarization_seed", 0, "Seed of the fixed Bernoulli draw of the "
                       "labelled train digits (test digits: seed + 1).", flag_values=fv)
  flags.DEFINE_integer("probe_train_examples", 60000, "Labelled train digits the classifier "
                       "is fitted on (the first n).", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("l2", 1e-2, "L2 weight lam of the logistic regression.", flag_values=fv)
  flags.DEFINE_integer("max_iters", 1000, "Gradient steps of the logistic regression at most.",
                       flag_values=fv)
  flags.DEFINE_float("tol", 1e-3, "Stop when the gradient norm is below this.", flag_values=fv)


# ==================================================================== the classifier
def _logits_grad(xb, y, w, lam):
  """Loss and gradient of the regularised softmax cross-entropy (module doc); ``xb`` has a 1s column."""
  z = xb @ w
  z -= z.max(axis=1, keepdims=True)
  p = np.exp(z)
  p /= p.sum(axis=1, keepdims=True)
  n = len(xb)
  loss = -np.log(p[np.arange(n), y] + 1e-30).mean() + 0.5 * lam * float((w[:-1] ** 2).sum())
  p[np.arange(n), y] -= 1.0
  g = xb.T @ p / n
  g[:-1] += lam * w[:-1]
  return loss, g


def fit_logistic_regression(x, y, num_classes, lam=1e-3, max_iters=2000, tol=1e-4,
                            dtype=np.float32):
  """Multinomial logistic regression by accelerated gradient (module doc), in ``dtype``.

  Returns ``(predict, info)``: ``predict(x) -> labels``, ``info`` with the final loss,
  gradient norm and iterations.
  """
  x = np.asarray(x, np.float64)
  mean, std = x.mean(0), x.std(0)
  std[std == 0] = 1.0
  xb = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1).astype(dtype)
  y = np.asarray(y, np.int64)
  n, d = xb.shape
  v = np.random.default_rng(0).standard_normal(d).astype(dtype)  # power iteration: lambda_max
  for _ in range(50):
    v = xb.T @ (xb @ v)
    v /= np.linalg.norm(v)
  big_l = lam + float(v @ (xb.T @ (xb @ v))) / (2.0 * n) * 1.05  # 5% margin on the estimate
  mom = (np.sqrt(big_l) - np.sqrt(lam)) / (np.sqrt(big_l) + np.sqrt(lam)) if lam > 0 else 0.9
  w = np.zeros((d, num_classes), dtype)
  prev, it, gnorm, loss = w.copy(), 0, np.inf, np.inf
  for it in range(1, max_iters + 1):
    look = w + mom * (w - prev)
    loss, g = _logits_grad(xb, y, look, lam)
    prev, w = w, look - g / big_l
    gnorm = float(np.linalg.norm(g))
    if gnorm < tol:
      break
  loss, g = _logits_grad(xb, y, w, lam)

  def predict(x_new):
    xn = np.concatenate([(np.asarray(x_new, np.float64) - mean) / std,
                         np.ones((len(x_new), 1))], axis=1)
    return np.argmax(xn @ w, axis=1)

  return predict, {"loss": float(loss), "grad_norm": float(np.linalg.norm(g)), "iters": it,
                   "lipschitz": big_l}


# ==================================================================== data and features
def labelled_digits(path, seed, n_train):
  """``(x_train, y_train, x_test, y_test)``: binarized uint8 NHWC digits and labels (module doc)."""
  with np.load(path, allow_pickle=False) as z:
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
    if missing:
      raise ValueError(f"{path}: expected arrays x_train, y_train, x_test, y_test; missing "
                       f"{missing}")
    xtr, ytr, xte, yte = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
  xtr = vdata.check_split_images(xtr[:n_train], f"{path} key 'x_train'")
  xte = vdata.check_split_images(xte, f"{path} key 'x_test'")
  return (vdata.fixed_binarization(xtr, seed), ytr[:n_train].astype(np.int64),
          vdata.fixed_binarization(xte, seed + 1), yte.astype(np.int64))


def smoke_digits(workdir, seed=0, shape=(28, 28)):
  """A labelled synthetic set: class c = template c + 5% flipped pixels; saved as an .npz."""
  rng = np.random.default_rng(seed)
  templates = rng.random((SMOKE_CLASSES,) + shape) < 0.3
  out = {}
  for split, n in SMOKE_SIZES.items():
    y = np.arange(n) % SMOKE_CLASSES
    out[f"x_{split}"] = (templates[y] ^ (rng.random((n,) + shape) < 0.05)).astype(np.uint8) * 255
    out[f"y_{split}"] = y.astype(np.uint8)
  path = os.path.join(workdir, "smoke_digits.npz")
  np.savez(path, **out)
  return path


def encoder_means(model, x, batch_size=500):
  """Means of q0(z|x) of a Keras VLAE, ``[N, D]``."""
  out = []
  for i in range(0, len(x), batch_size):
    mu, _, _ = model.encode(model.check_inputs(x[i:i + batch_size]))
    out.append(np.asarray(mu).reshape(len(x[i:i + batch_size]), -1))
  return np.concatenate(out)


def zoo_means(zmodel, x, batch_size=500):
  """Means of q0(z|x) of a loaded zoo SavedModel (its ``encode`` signature), ``[N, D]``."""
  return np.concatenate([zmodel.encode(x[i:i + batch_size])["mean"]
                         for i in range(0, len(x), batch_size)])


# ==================================================================== the experiment
def run(workdir, size="cpu", zoo_model="mnist", zoo_dir=None, labelled_data="",
        binarization_seed=0, probe_train_examples=60000, l2=1e-2, max_iters=1000, tol=1e-3,
        **common):
  exp = harness.Experiment(NAME, TITLE, workdir, size, BUDGETS, **common)
  smoke = size == "smoke"
  if smoke:
    labelled_data = smoke_digits(workdir, exp.seed)
    num_classes = SMOKE_CLASSES
  else:
    root = exp.data_dir or os.environ.get(vdata.ENV_VAR, "")
    labelled_data = labelled_data or os.path.join(root, "mnist", "mnist.npz")
    num_classes = 10
  if not os.path.isfile(labelled_data):
    raise ValueError(f"labelled MNIST not found at {labelled_data!r}: set --labelled_data or "
                     f"${vdata.ENV_VAR} (a folder holding mnist/mnist.npz)")
  xtr, ytr, xte, yte = labelled_digits(labelled_data, binarization_seed, probe_train_examples)
  exp.log(f"labelled digits: {len(xtr)} train / {len(xte)} test from {labelled_data}, "
          f"Bernoulli(x/255) seeds {binarization_seed} / {binarization_seed + 1}")

  # The factorized VAE (smoke: a tiny one at 28x28, trained on the synthetic digits as a dataset
  # of our own through vlae_tf.data).
  cfg = exp.config("mnist_vae_factorized")
  if smoke:
    cfg = harness.make_tiny(vlae_tf.zoo.get_config("mnist_vae_factorized"), real_data=True)
    cfg.train.steps = exp.budget.steps
    cfg.data.dataset, cfg.data.data_dir = "z_features_smoke", labelled_data
    cfg.data.binarization = "threshold"
    vdata.resolve_data_config(cfg)
  exp.train("factorized", cfg)
  fmodel, fcfg, _ = exp.load("factorized")

  zmodel = vlae_tf.zoo.load(zoo_model, zoo_dir)
  if tuple(zmodel.image_shape) != xtr.shape[1:]:
    raise ValueError(f"zoo model {zoo_model!r} takes images {zmodel.image_shape}, the labelled "
                     f"digits are {xtr.shape[1:]}")
  exp.models["vlae"] = {"zoo_model": zoo_model, "card_name": zmodel.name,
                        "steps": zmodel.card.get("steps"),
                        "config_name": zmodel.info["config"].get("name", "")}
  features = {
      "vlae": lambda x: zoo_means(zmodel, x),
      "factorized": lambda x: encoder_means(fmodel, x),
      "pixels": lambda x: x.reshape(len(x), -1).astype(np.float32),
  }
  results = {}
  for key in FEATURES:
    t = time.time()
    ftr, fte = features[key](xtr), features[key](xte)
    t_feat = time.time() - t
    predict, info = fit_logistic_regression(ftr, ytr, num_classes, l2, max_iters, tol)
    acc_te = float((predict(fte) == yte).mean())
    acc_tr = float((predict(ftr) == ytr).mean())
    results[key] = dict(info, dim=int(ftr.shape[1]), test_accuracy=acc_te,
                        test_accuracy_stderr=float(np.sqrt(acc_te * (1 - acc_te) / len(yte))),
                        train_accuracy=acc_tr, feature_time_s=t_feat,
                        fit_time_s=time.time() - t - t_feat)
    exp.log(f"{key}: test accuracy {acc_te:.4f} (train {acc_tr:.4f}), {ftr.shape[1]}-d, "
            f"{info['iters']} iterations, final gradient norm {info['grad_norm']:.2e}")

  columns = ["features", "dim", "test accuracy", "± stderr", "train accuracy", "iterations",
             "final grad norm"]
  rows = [[LABELS[k], r["dim"], r["test_accuracy"], r["test_accuracy_stderr"],
           r["train_accuracy"], r["iters"], r["grad_norm"]] for k, r in results.items()]
  table = (f"Logistic regression (L2 lam = {l2:g}) on {len(xtr)} labelled train digits, "
           f"accuracy on {len(xte)} test digits:\n\n" + harness.markdown_table(columns, rows))
  notes = [f"Factorized VAE: {exp.models['factorized']['steps']} steps of batch "
           f"{fcfg.train.batch_size}, {exp.models['factorized']['train_wall_time_s']:.0f} s "
           f"wall in this invocation (0 when reused from an earlier one)."]
  return exp.finish({"features": results, "labelled_data": labelled_data,
                     "binarization_seeds": [binarization_seed, binarization_seed + 1],
                     "probe_train_examples": len(xtr), "l2": l2}, table, notes=notes)


def options(fv=flags.FLAGS):
  return dict(harness.common_options(fv), zoo_model=fv.zoo_model, zoo_dir=fv.zoo_dir,
              labelled_data=fv.labelled_data, binarization_seed=fv.binarization_seed,
              probe_train_examples=fv.probe_train_examples, l2=fv.l2, max_iters=fv.max_iters,
              tol=fv.tol)


if __name__ == "__main__":
  define_flags()
  app.run(harness.make_main(run, options))
