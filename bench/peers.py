"""Equal-compute peers on static binarized MNIST: what would a user pick instead of the VLAE?

Run (the real comparison: 3 x 60 CPU-minutes of training, then the evaluation)::

    VLAE_DATA_DIR=/work/shared/data python bench/peers.py --workdir=/tmp/peers
    python bench/peers.py --smoke --workdir=/tmp/peers_smoke   # seconds, synthetic 8x8 data
    VLAE_DATA_DIR=/work/shared/data python bench/peers.py --calibrate   # how the PixelCNN was sized

Three contenders, each trained for the same CPU budget (``--cpu_minutes``) on
the same training stream (``vlae_tf.data.train_dataset`` of the ``mnist_cpu``
config: same batches of 32 in the same order):

* ``vlae``: the ``mnist_cpu`` zoo config (6-layer masked 3x3 decoder, AF
  prior, free bits), trained by ``vlae_tf.training.train``;
* ``vae_factorized``: the ``mnist_vae_factorized`` zoo config scaled down to
  CPU size exactly as ``mnist_cpu`` scales ``mnist``
  (``experiments.harness.scale_like``): same encoder, conditioning network,
  prior and recipe, and a decoder that sees no pixels,
  ``p(x|z) = prod_ij Bernoulli(x_ij | z)``;
* ``pixelcnn``: ``tfp.distributions.PixelCNN`` (PixelCNN++: gated ResNet
  vertical/horizontal stacks, ``PIXELCNN`` below), no latent variable, with
  ``low=0, high=1`` and one logistic: for a pixel ``x in {0, 1}`` the
  quantized logistic puts ``P(x=0) = sigma((0.5 - mu) / s)`` and ``P(x=1) = 1 -
  P(x=0)``, a Bernoulli with logit ``(mu - 0.5) / s``, so ``-log_prob`` is the
  exact NLL of the binary image in nats, the same quantity the VAEs bound.
  Trained with Adam (1e-3, gradient clip 100, EMA 0.999 like the VAEs) by a
  plain ``tf.GradientTape`` loop over ``dist.trainable_variables``.

  tfd.PixelCNN makes its convolutions causal only through Keras *kernel
  constraints*, which a Keras optimizer applies after an update; a freshly
  built network is NOT causal (the "probabilities" of the 16 binary 2x2 images
  summed to 1.14 for one randomly initialised network). So the loop projects
  every constrained kernel onto its mask once before training and again after
  every update (:func:`project_masks`), whatever the optimizer does;
  ``tests/test_peers.py`` checks that the probabilities of all 2^4 binary 2x2
  images sum to 1 before and after training steps.

Fairness. Each contender trains in its own fresh process, one after the other
(not concurrently: three TensorFlow processes on 2 cores would mostly measure
each other), until the process has used ``--cpu_minutes`` of CPU time (user +
system seconds of the whole process from its start, ``time.process_time()``:
Python start-up, TF import, graph tracing and the steps); the step running when
the budget is reached completes, so each overshoots by at most one step (the
CPU seconds actually used are reported). Evaluation runs after training in the
same process and is not counted. The machine is shared: CPU time, not wall
time, is the budget, and the load average at the start and end of each
training is recorded.

Evaluation. The same ``--eval_examples`` test images, evenly spaced over the
test split (``vlae_tf.evaluation.iwae_subset``: the test set is sorted by
class), for all three: the exact NLL for the PixelCNN; the IWAE bound with
``k = --iwae_samples`` for both VAEs (an upper bound on their NLL), with the
ELBO beside it (``experiments.harness.test_set_metrics``, EMA weights). ``±``
is the standard error of the mean over the images; "vs VLAE" is the mean of
the per-image difference ``NLL_contender - NLL_vlae`` with its standard error
(paired: same images).

Output: a Markdown table on stdout and in ``<workdir>/peers.md``, everything in
``<workdir>/peers.json``, both headed by ``bench/machine_info.header`` (the
command). A contender whose ``<workdir>/<name>/peer.json`` exists is reused,
not retrained (so a crashed evaluation can be rerun); a contender directory
left half-trained is an error (its CPU count would be wrong): remove it.

``--smoke``: a tiny budget (3 CPU-seconds, which start-up alone exceeds: one
training step each), tiny models on synthetic 8x8 binary images, 8 test images,
k = 4. It proves the script runs end to end; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, ROOT):
  if _p not in sys.path:
    sys.path.insert(0, _p)

from machine_info import header  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
import keras  # noqa: E402
import tf_keras  # noqa: E402

import vlae_tf  # noqa: E402
from vlae_tf import data as vdata  # noqa: E402
from vlae_tf import atomic, training  # noqa: E402
from vlae_tf import workdir as vwork  # noqa: E402
from experiments import harness  # noqa: E402

TITLE = "Equal-compute peers on static binarized MNIST: VLAEs vs VAEs vs tfd.PixelCNN"
CONTENDERS = ("vlae_gated", "vlae", "vae_full", "vae_factorized", "pixelcnn")
DEFAULT_CONTENDERS = CONTENDERS
# Each VAE contender's zoo config (CPU-sized) and every contender's kind in peers.json.
ZOO = {"vlae_gated": "mnist_gated_cpu", "vlae": "mnist_cpu", "vae_full": "mnist_gated_full_cpu",
       "vae_factorized": "mnist_vae_factorized"}
KINDS = {"vlae_gated": "vlae", "vlae": "vlae", "vae_full": "vae_full",
         "vae_factorized": "vae_factorized", "pixelcnn": "pixelcnn"}
LABELS = {"vlae_gated": "VLAE, gated local decoder (`mnist_gated_cpu`)",
          "vlae": "VLAE, masked 3x3 stack (`mnist_cpu`)",
          "vae_full": "VAE, full-context gated decoder (`mnist_gated_full_cpu`)",
          "vae_factorized": "VAE, factorized decoder (`mnist_vae_factorized`, CPU-sized)",
          "pixelcnn": "tfd.PixelCNN (PixelCNN++)"}
# tfd.PixelCNN at CPU size: 3 resolutions (28, 14, 7), one gated ResNet layer per stack and
# resolution, no dropout (a CPU-hour sees ~5 epochs), no weight norm (its data-dependent init
# is a Keras-2 fit-time feature). num_filters: matched CPU seconds per training step to the
# VLAE's at the same batch, so both see about as many examples (``--calibrate``: 32 / 48 / 64
# filters cost 2.3x / 4.4x / 7.1x the VLAE's step; bench/README.md, section 8).
PIXELCNN = dict(num_resnet=1, num_hierarchies=3, num_filters=16, num_logistic_mix=1,
                receptive_field_dims=(3, 3), resnet_activation="concat_elu", dropout_p=0.0,
                use_weight_norm=False)
PIXELCNN_SMOKE = dict(PIXELCNN, num_filters=8, num_hierarchies=2)
PIXELCNN_LR, PIXELCNN_CLIP, EMA_DECAY = 1e-3, 100.0, 0.999
SMOKE = dict(cpu_minutes=0.05, eval_examples=8, iwae_samples=4)
RESULT, PER_EXAMPLE, TRAINED = "peer.json", "per_example.npz", "train.json"


# ==================================================================== configs
def apply_settings(cfg, settings):
  """Sets each ``"section.key=value"`` of ``settings`` (``--set``; the value parsed as JSON)."""
  flat = vlae_tf.config.flatten(cfg)
  for item in settings:
    key, sep, raw = item.partition("=")
    if not sep or key not in flat:
      raise SystemExit(f"error: --set {item!r}: expected section.key=value with a config key")
    try:
      value = json.loads(raw)
    except json.JSONDecodeError:
      value = raw
    vlae_tf.config.shrink(cfg, {key: tuple(value) if isinstance(value, list) else value})
  return cfg


def vae_config(name, smoke=False, data_dir="", seed=0, settings=()):
  """The VAE contender ``name``'s config: CPU-sized, evaluation-free training."""
  cfg = vlae_tf.zoo.get_config(ZOO[name])
  if name == "vae_factorized":
    cfg, _ = harness.scale_like(cfg, "mnist", "mnist_cpu")
  apply_settings(cfg, settings)
  if smoke:
    cfg = harness.make_tiny(cfg)
  if data_dir:
    cfg.data.data_dir = data_dir
  cfg.seed = int(seed)
  # Everything the budget buys goes into steps: no periodic eval, one checkpoint at the end.
  cfg.eval.periodic_examples = 0
  cfg.eval.num_images = 0
  cfg.train.eval_every = 0
  cfg.train.checkpoint_every = 10**9
  return cfg


def data_config(smoke=False, data_dir="", seed=0):
  """The config whose data (training stream and test split) all three contenders use."""
  return vae_config("vlae", smoke, data_dir, seed)


def pixelcnn(image_shape, arch=PIXELCNN):
  """A ``tfd.PixelCNN`` over binary images (``low=0, high=1``), its masks applied."""
  dist = tfp.distributions.PixelCNN(image_shape=tuple(image_shape), low=0, high=1, **arch)
  project_masks(dist)
  return dist


def project_masks(dist):
  """Applies every kernel constraint (tfd.PixelCNN's causal masks) to its variable."""
  for v in dist.network.trainable_weights:
    if getattr(v, "constraint", None) is not None:
      v.assign(v.constraint(v))


# ==================================================================== PixelCNN training
class PixelCNNTrainer:
  """Adam + gradient clipping + EMA on ``-mean log p(x)`` of a tfd.PixelCNN, masks kept."""

  def __init__(self, dist, learning_rate=PIXELCNN_LR, clip=PIXELCNN_CLIP, ema_decay=EMA_DECAY):
    self.dist = dist
    self.variables = list(dist.trainable_variables)
    if not self.variables:
      raise RuntimeError("tfd.PixelCNN exposes no trainable variables")
    self.constrained = [v for v in self.variables if getattr(v, "constraint", None) is not None]
    self.optimizer = tf_keras.optimizers.Adam(learning_rate)
    self.clip = float(clip)
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
    # Same schedule as the VAEs' EMA: decay min(ema_decay, (1 + n) / (10 + n)).
    self.ema = tf.train.ExponentialMovingAverage(ema_decay, num_updates=self.step)
    self.ema.apply(self.variables)                # shadows start at the (masked) initial weights
    self.train_step = tf.function(self._train_step)

  def _train_step(self, x):
    x = tf.cast(x, tf.float32)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(self.dist.log_prob(x))
    grads = tape.gradient(loss, self.variables)
    grads, _ = tf.clip_by_global_norm(grads, self.clip)
    self.optimizer.apply_gradients(zip(grads, self.variables))
    for v in self.constrained:
      v.assign(v.constraint(v))
    self.step.assign_add(1)
    self.ema.apply(self.variables)
    return loss

  def use_ema(self):
    """Puts the EMA weights into the network (they are masked: averages of masked kernels)."""
    for v in self.variables:
      v.assign(self.ema.average(v))
    project_masks(self.dist)


def nll_per_example(dist, x, batch_size=100):
  """Exact ``-log p(x)`` in nats per image of a tfd.PixelCNN over {0, 1} pixels."""
  fn = tf.function(lambda xb: -dist.log_prob(tf.cast(xb, tf.float32)))
  return np.concatenate([fn(x[i:i + batch_size]).numpy() for i in range(0, len(x), batch_size)])


# ==================================================================== one contender
def _load_avg():
  return os.getloadavg()[0]


class CPUBudget:
  """SIGTERMs this process, again and again, once it has used ``seconds`` of CPU time.

  ``vlae_tf.training.train`` takes SIGTERM as preemption: it finishes the step,
  checkpoints and raises ``Preempted``. Until its handler is installed (before
  the first step) SIGTERM is ignored here and resent, so the run always gets
  at least one step.
  """

  def __init__(self, seconds, interval=0.2):
    self.seconds, self.interval = float(seconds), interval
    self._stop = threading.Event()

  def __enter__(self):
    self._old = signal.signal(signal.SIGTERM, lambda *_: None)
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def _run(self):
    while not self._stop.wait(self.interval):
      if time.process_time() >= self.seconds:
        os.kill(os.getpid(), signal.SIGTERM)

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    signal.signal(signal.SIGTERM, self._old)


def train_vae(name, cfg, rundir, budget_s):
  """Trains a VAE contender with the library's trainer until the CPU budget; EMA model."""
  with CPUBudget(budget_s):
    try:
      out = training.train(cfg, rundir)
      step = int(out["step"])
    except training.Preempted:
      step = None
  cpu = time.process_time()
  model, _, ckpt_step = vwork.load_model_from_workdir(rundir, use_ema=True)
  return model, {"steps": step if step is not None else ckpt_step, "cpu_seconds": cpu,
                 "num_params": harness.num_params(model)}


def train_pixelcnn(cfg, budget_s, arch, learning_rate=PIXELCNN_LR):
  dist = pixelcnn(cfg.data.image_shape, arch)
  trainer = PixelCNNTrainer(dist, learning_rate=learning_rate)
  batches = iter(vdata.train_dataset(cfg, 0))
  steps = 0
  while True:                                      # at least one step, then until the budget
    loss = trainer.train_step(next(batches))
    steps += 1
    if steps % 100 == 0:
      print(f"pixelcnn step {steps}: loss {float(loss):.3f} nats, "
            f"{time.process_time():.0f} CPU s", flush=True)
    if time.process_time() >= budget_s:
      break
  cpu = time.process_time()
  trainer.use_ema()
  return dist, {"steps": steps, "cpu_seconds": cpu, "num_params": harness.num_params(dist),
                "optimizer": f"Adam {learning_rate}, clip {PIXELCNN_CLIP}, EMA {EMA_DECAY}",
                "architecture": arch}


def run_contender(name, args):
  """Trains and evaluates one contender in this (fresh) process; writes its peer.json."""
  d = os.path.join(args.workdir, name)
  if os.path.exists(os.path.join(d, RESULT)):
    return
  if os.path.exists(d) and not os.path.exists(os.path.join(d, TRAINED)):
    raise SystemExit(f"error: {d} holds an unfinished training run (its CPU count is lost); "
                     "remove it to rerun this contender")
  os.makedirs(d, exist_ok=True)
  budget_s = args.cpu_minutes * 60.0
  data_cfg = data_config(args.smoke, args.data_dir, args.seed)
  arch = dict(PIXELCNN_SMOKE if args.smoke else PIXELCNN)
  if args.pixelcnn_filters:
    arch["num_filters"] = args.pixelcnn_filters
  trained_path = os.path.join(d, TRAINED)
  if not os.path.exists(trained_path):
    t0, load0 = time.time(), _load_avg()
    if name == "pixelcnn":
      model, rec = train_pixelcnn(data_cfg, budget_s, arch, args.pixelcnn_lr)
      tf.train.Checkpoint(network=model.network).write(os.path.join(d, "ema_weights"))
    else:
      cfg = vae_config(name, args.smoke, args.data_dir, args.seed, args.set)
      model, rec = train_vae(name, cfg, os.path.join(d, "run"), budget_s)
      rec["config"] = cfg.name + "".join(f" --set {v}" for v in args.set)
    rec.update(budget_cpu_seconds=budget_s, wall_seconds=time.time() - t0,
               batch_size=int(data_cfg.train.batch_size),
               examples_seen=rec["steps"] * int(data_cfg.train.batch_size),
               load_average_start=load0, load_average_end=_load_avg())
    with open(trained_path + ".tmp", "w") as f:
      json.dump(rec, f, indent=2)
    os.replace(trained_path + ".tmp", trained_path)
  else:                                            # trained earlier, evaluation crashed
    with open(trained_path) as f:
      rec = json.load(f)
    if name == "pixelcnn":
      model = pixelcnn(data_cfg.data.image_shape, arch)
      tf.train.Checkpoint(network=model.network).read(
          os.path.join(d, "ema_weights")).assert_existing_objects_matched()
    else:
      model, _, _ = vwork.load_model_from_workdir(os.path.join(d, "run"), use_ema=True)

  x = harness.test_images(data_cfg, args.eval_examples)
  t0, c0 = time.time(), time.process_time()
  if name == "pixelcnn":
    nll = nll_per_example(model, x)
    ev = {"nll": float(nll.mean()), "nll_stderr": float(nll.std(ddof=1) / math.sqrt(len(nll))),
          "bound": "exact"}
    per = {"nll": nll}
  else:
    s, p = harness.test_set_metrics(model, x, args.iwae_samples, seed=args.seed,
                                    kl_examples=min(1000, len(x)))
    ev = {"nll": s["iwae_nll"], "nll_stderr": s["iwae_nll_stderr"],
          "bound": f"IWAE k={args.iwae_samples}", "elbo": s["elbo"],
          "elbo_stderr": s["elbo_stderr"], "rate": s["rate"], "distortion": s["distortion"],
          "active_units": s["active_units"], "latent_size": s["latent_size"]}
    per = {"nll": p["iwae_nll"], "elbo": p["elbo"]}
  ev.update(num_examples=int(len(x)), test_split=data_cfg.data.test_split,
            eval_wall_seconds=time.time() - t0, eval_cpu_seconds=time.process_time() - c0)
  np.savez(os.path.join(d, PER_EXAMPLE), **per)
  with open(os.path.join(d, RESULT) + ".tmp", "w") as f:
    json.dump({"name": name, "label": LABELS[name], "train": rec, "test": ev}, f, indent=2)
  os.replace(os.path.join(d, RESULT) + ".tmp", os.path.join(d, RESULT))
  print(f"{name}: {rec['steps']} steps in {rec['cpu_seconds']:.0f} CPU s; test NLL "
        f"{ev['nll']:.3f} ± {ev['nll_stderr']:.3f} ({ev['bound']}, {len(x)} images)", flush=True)


# ==================================================================== the comparison
def _fmt(mean, se):
  return "—" if mean is None else f"{mean:.2f} ± {se:.2f}"


def contender_record(name, res):
  """One contender as ``bench/results/peers.json`` lists it (nats; rate null for the PixelCNN)."""
  t, e = res["train"], res["test"]
  iwae = e["bound"].startswith("IWAE")
  return {"name": name, "kind": KINDS[name], "label": LABELS[name],
          "cpu_seconds": t["cpu_seconds"], "steps": t["steps"],
          "examples_seen": t["examples_seen"], "nll": e["nll"], "nll_stderr": e["nll_stderr"],
          "bound": e["bound"], "elbo": e.get("elbo"), "elbo_stderr": e.get("elbo_stderr"),
          "rate": e.get("rate"), "active_units": e.get("active_units"),
          "iwae_samples": int(e["bound"].split("=")[1]) if iwae else None,
          "num_images": e["num_examples"], "params": t["num_params"],
          "config": t.get("config") or f"tfd.PixelCNN {t.get('architecture')}, "
                                         f"{t.get('optimizer')}",
          "wall_seconds": t["wall_seconds"], "load_average": [t["load_average_start"],
                                                              t["load_average_end"]]}


def report(args, head):
  """The side-by-side table (Markdown) and the JSON of all contenders, paired differences."""
  names = [n for n in args.contenders if os.path.exists(os.path.join(args.workdir, n, RESULT))]
  res, per = {}, {}
  for name in names:
    d = os.path.join(args.workdir, name)
    with open(os.path.join(d, RESULT)) as f:
      res[name] = json.load(f)
    per[name] = dict(np.load(os.path.join(d, PER_EXAMPLE)))
  ref = next((n for n in names if KINDS[n] == "vlae"), names[0])
  paired = []
  for a in names:
    for b in names:
      if a != b and KINDS[a] == "vlae":
        mean, se = harness.paired_difference(per[a]["nll"], per[b]["nll"])
        paired.append({"a": a, "b": b, "nll_a_minus_b": mean, "stderr": se})
  rows = []
  for name in names:
    t, e = res[name]["train"], res[name]["test"]
    diff = (None, None) if name == ref else harness.paired_difference(per[name]["nll"],
                                                                       per[ref]["nll"])
    elbo = (-e["elbo"], e["elbo_stderr"]) if "elbo" in e else (None, None)
    rate = f"{e['rate']:.2f}" if "rate" in e else "—"
    rows.append(f"| {LABELS[name]} | {t['num_params']:,} | {t['steps']} | {t['examples_seen']:,} "
                f"| {t['cpu_seconds']:.0f} | {_fmt(e['nll'], e['nll_stderr'])} ({e['bound']}) "
                f"| {_fmt(*elbo)} | {rate} | {_fmt(*diff)} |")
  n = res[ref]["test"]["num_examples"]
  md = [f"Budget {args.cpu_minutes:g} CPU-minutes of training per contender, one after another, "
        f"each in a fresh process; test NLL in nats on the same {n} evenly spaced images of the "
        f"test split; ± = standard error over those images; rate = KL(q(z|x) || p(z)) in nats; "
        f"\"vs {ref}\" = mean paired difference (negative: better than {ref}).", "",
        f"| contender | params | steps | examples seen | training CPU s | test NLL | −ELBO | rate "
        f"| NLL vs {ref} |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"] + rows
  if args.set:
    md += ["", "VAE settings changed with --set: " + ", ".join(args.set)]
  if args.smoke:
    md = ["**SMOKE RUN**: tiny models, synthetic 8x8 images, a few steps; no number here is a "
          "result.", ""] + md
  text = head + "\n\n" + "\n".join(md)
  out = {"title": TITLE, "header": head, "command": [sys.executable] + sys.argv,
         "smoke": bool(args.smoke), "cpu_minutes": args.cpu_minutes,
         "eval_examples": args.eval_examples, "iwae_samples": args.iwae_samples,
         "order": "sequential", "contenders": [contender_record(n, res[n]) for n in names],
         "paired": paired, "table_md": "\n".join(md)}
  atomic.write_text(args.out or os.path.join(args.workdir, "peers.json"),
                            json.dumps(out, indent=2) + "\n")
  atomic.write_text(os.path.join(args.workdir, "peers.md"), text + "\n")
  print("\n".join(md), flush=True)
  return out


def calibrate(args):
  """CPU seconds per training step, VLAE vs tfd.PixelCNN sizes, side by side in this process.

  The VLAE side is a plain Adamax step on ``model.training_loss`` (the library's
  step adds gradient clipping and the EMA update, as the PixelCNN step does).
  """
  cfg = data_config(False, args.data_dir, args.seed)
  x = next(iter(vdata.train_dataset(cfg, 0)))
  model = vlae_tf.build_model(cfg)
  opt = keras.optimizers.Adamax(float(cfg.train.learning_rate))
  opt.build(model.trainable_variables)

  @tf.function
  def vlae_step():
    with tf.GradientTape() as tape:
      loss, _ = model.training_loss(x, step=1000, seed=tf.constant([0, 0]))
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                            model.trainable_variables))

  def cpu_per_step(step, n=args.calibrate_steps):
    step()                                          # trace
    t = time.process_time()
    for _ in range(n):
      step()
    return (time.process_time() - t) / n

  rows = [("vlae (mnist_cpu)", harness.num_params(model), cpu_per_step(vlae_step))]
  for f in [int(v) for v in args.calibrate_filters.split(",")]:
    trainer = PixelCNNTrainer(pixelcnn(cfg.data.image_shape, dict(PIXELCNN, num_filters=f)))
    rows.append((f"pixelcnn num_filters={f}", harness.num_params(trainer.dist),
                 cpu_per_step(lambda: trainer.train_step(x))))
  print(f"batch {cfg.train.batch_size}; CPU seconds per training step (mean of "
        f"{args.calibrate_steps} after one traced step), side by side in this process")
  print("| model | params | CPU s / step |\n| --- | --- | --- |")
  for r in rows:
    print(f"| {r[0]} | {r[1]:,} | {r[2]:.3f} |", flush=True)
  return rows


def parse(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", help="Folder of the contenders' runs, peers.json and peers.md.")
  p.add_argument("--cpu_minutes", type=float, default=None,
                 help="Training CPU budget per contender (default 60; --smoke 0.05).")
  p.add_argument("--eval_examples", type=int, default=None,
                 help="Evenly spaced test images (default 1000; --smoke 8; -1: all).")
  p.add_argument("--iwae_samples", type=int, default=None,
                 help="k of the VAEs' IWAE bound (default 1000; --smoke 4).")
  p.add_argument("--smoke", action="store_true",
                 help="Tiny models, synthetic data, a tiny budget: checks the script end to end.")
  p.add_argument("--data_dir", default="", help="Folder of the .npz datasets "
                 "(default $VLAE_DATA_DIR, else TFDS).")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--calibrate", action="store_true",
                 help="Only print CPU s/step of the VLAE and tfd.PixelCNN sizes.")
  p.add_argument("--calibrate_filters", default="32,48,64")
  p.add_argument("--calibrate_steps", type=int, default=5)
  p.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS),
                 help=f"Comma-separated subset of {', '.join(CONTENDERS)}.")
  p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                 help="Change a setting of every VAE contender's config (repeatable), e.g. "
                 "--set train.learning_rate=1e-3 --set model.decoder_layers=4.")
  p.add_argument("--pixelcnn_lr", type=float, default=PIXELCNN_LR)
  p.add_argument("--pixelcnn_filters", type=int, default=0, help="0: PIXELCNN's num_filters.")
  p.add_argument("--out", default="", help="peers.json path (default <workdir>/peers.json; "
                 "the published table is bench/results/peers.json).")
  p.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  defaults = SMOKE if args.smoke else dict(cpu_minutes=60.0, eval_examples=1000, iwae_samples=1000)
  for k, v in defaults.items():
    if getattr(args, k) is None:
      setattr(args, k, v)
  if not args.calibrate and not args.workdir:
    p.error("--workdir is required")
  args.contenders = [c for c in args.contenders.split(",") if c]
  unknown = sorted(set(args.contenders) - set(CONTENDERS))
  if unknown or not args.contenders:
    p.error(f"--contenders: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(CONTENDERS)}")
  if args.cpu_minutes <= 0:
    p.error(f"--cpu_minutes must be > 0, got {args.cpu_minutes}")
  if args.iwae_samples < 1:
    p.error(f"--iwae_samples must be >= 1, got {args.iwae_samples}")
  if args.eval_examples == 0 or args.eval_examples < -1:
    p.error(f"--eval_examples must be -1 (all) or >= 1, got {args.eval_examples}")
  return args


def main(argv=None):
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse(argv)
  if args.calibrate:
    print(header(TITLE + " (calibration)"), flush=True)
    return calibrate(args)
  if args.contender:
    return run_contender(args.contender, args)
  head = header(TITLE)
  print(head, flush=True)
  os.makedirs(args.workdir, exist_ok=True)
  for name in args.contenders:
    if os.path.exists(os.path.join(args.workdir, name, RESULT)):
      print(f"{name}: reusing {os.path.join(args.workdir, name, RESULT)}", flush=True)
      continue
    log = os.path.join(args.workdir, name + ".log")
    print(f"{name}: training for {args.cpu_minutes:g} CPU-minutes in a fresh process "
          f"(log {log})", flush=True)
    with open(log, "a") as f:
      rc = subprocess.run([sys.executable, os.path.abspath(__file__), f"--contender={name}"]
                          + argv, stdout=f, stderr=subprocess.STDOUT).returncode
    with open(log) as f:
      tail = f.read().strip().splitlines()[-1:] or [""]
    if rc:
      raise SystemExit(f"error: contender {name} failed (exit {rc}): {tail[0]} (log {log})")
    print(tail[0], flush=True)
  return report(args, head)


if __name__ == "__main__":
  main()
