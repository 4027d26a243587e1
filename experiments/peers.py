"""Equal-compute peers on static binarized MNIST: what would a user pick instead of the VLAE?

Run (the real comparison: 5 x 60 CPU-minutes of training, then the evaluation; rerun the
same command after an interruption to go on)::

    VLAE_DATA_DIR=/work/shared/data python -m experiments.peers --workdir=/tmp/peers
    python -m experiments.peers --smoke --workdir=/tmp/peers_smoke   # seconds, synthetic 8x8 data
    VLAE_DATA_DIR=/work/shared/data python -m experiments.peers --calibrate   # how the PixelCNN was sized

Five contenders (``CONTENDERS``), each trained for the same CPU budget
(``--cpu_minutes``) on the same training stream (``vlae_tf.data.train_dataset``
of the ``mnist_cpu`` config: same batches of 32 in the same order): the three
below, and ``vlae_gated`` / ``vae_full``, the gated local and full-context
decoders of ``mnist_gated_cpu`` / ``mnist_gated_full_cpu`` (``ZOO``):

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
  plain ``tf.GradientTape`` loop over ``dist.trainable_variables``; at a
  constant rate, or (``--pixelcnn_schedule_steps=N``) with the VAEs' recipe of
  200 warm-up steps and a cosine over ``N`` steps, which the VAEs get with
  ``--set train.steps=N``: with ``N`` near the steps the budget buys, both end
  the budget at a low rate.

  tfd.PixelCNN makes its convolutions causal only through Keras *kernel
  constraints*, which a Keras optimizer applies after an update; a freshly
  built network is NOT causal (the "probabilities" of the 16 binary 2x2 images
  summed to 1.14 for one randomly initialised network). So the loop projects
  every constrained kernel onto its mask once before training and again after
  every update (:func:`project_masks`), whatever the optimizer does;
  ``tests/test_peers.py`` checks that the probabilities of all 2^4 binary 2x2
  images sum to 1 before and after training steps.

Fairness. Each contender trains in fresh processes, one contender after the
other (not concurrently: several TensorFlow processes on 2 cores would mostly
measure each other), until it has used ``--cpu_minutes`` of CPU time (user +
system seconds of its processes from their start: Python start-up, TF import,
graph tracing and the steps; ``experiments.cpu_budget``); the step running
when the budget is reached completes, so each overshoots by at most one step
(the CPU seconds actually used are reported). Evaluation runs after training
and is not counted. The machine is shared: CPU time, not wall time, is the
budget, and the load average at the start and end of each training is
recorded.

Resumable per contender, so a study can be spread over sessions that may end
at any moment: ``--out`` (default ``<workdir>/peers.json``) is rewritten
atomically after each contender and holds, per contender, its settings and
its per-image NLLs; a rerun with the same settings keeps what is there and
runs only the rest. A contender stopped mid-training (SIGTERM, its parent
killed, or a hard kill) resumes from its last checkpoint (every
``--checkpoint_steps``) with the CPU seconds spent up to that checkpoint
carried over (the ledger of ``experiments.cpu_budget``); one stopped during
its evaluation is only evaluated again. A ``--out`` of a study with other
settings (budget, images, k, seed, smoke), or a contender folder trained
under other settings, is refused with one line (exit 2), never overwritten.
Two runs in one ``--workdir`` at once are refused (a lock file).

Evaluation. The same ``--eval_examples`` test images, evenly spaced over the
test split (``vlae_tf.evaluation.iwae_subset``: the test set is sorted by
class), for all three: the exact NLL for the PixelCNN; the IWAE bound with
``k = --iwae_samples`` for both VAEs (an upper bound on their NLL), with the
ELBO beside it (``experiments.harness.test_set_metrics``, EMA weights; a VAE's
``peer.json`` keeps that function's whole summary, I(x; z) and the KL per
dimension included, the seed table's metrics). ``±``
is the standard error of the mean over the images; "vs VLAE" is the mean of
the per-image difference ``NLL_contender - NLL_vlae`` with its standard error
(paired: same images).

Output: a Markdown table on stdout and in ``<workdir>/peers.md``, everything in
``--out``, both headed by ``bench/machine_info.header`` (the command).

``--smoke``: a tiny budget (3 CPU-seconds, which start-up alone exceeds: one
training step each), tiny models on synthetic 8x8 binary images, 8 test images,
k = 4. It proves the script runs end to end; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import keras
import ml_collections
import tf_keras

import vlae_tf
from bench.machine_info import header
from vlae_tf import data as vdata
from vlae_tf import atomic
from vlae_tf import optimizer as vopt
from vlae_tf import workdir as vwork
from experiments import budget_study, cpu_budget, harness

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
# --pixelcnn_schedule_steps: the VLAE contender's own floor and warm-up (its zoo config's).
_VLAE_TRAIN = vlae_tf.zoo.get_config(ZOO["vlae_gated"]).train
PIXELCNN_MIN_LR = float(_VLAE_TRAIN.min_learning_rate)
PIXELCNN_WARMUP = int(_VLAE_TRAIN.warmup_steps)
SMOKE = dict(cpu_minutes=0.05, eval_examples=8, iwae_samples=4)
# peer.json, per_example.npz, train.json: budget_study's names (it reads a contender's files when a
# seed-table row reuses it)
RESULT, PER_EXAMPLE, TRAINED = budget_study.PEER, budget_study.PER_EXAMPLE, budget_study.TRAINED
SETTINGS = budget_study.SETTINGS
# The settings every contender of one peers.json shares.
STUDY_KEYS = ("smoke", "cpu_minutes", "eval_examples", "iwae_samples", "seed")


fail, plain, read_json = budget_study.fail, budget_study.plain, budget_study.read_json


# ==================================================================== settings
def pixelcnn_arch(args):
  arch = dict(PIXELCNN_SMOKE if args.smoke else PIXELCNN)
  if args.pixelcnn_filters:
    arch["num_filters"] = args.pixelcnn_filters
  return arch


def training_settings(name, args):
  """What contender ``name``'s training depends on (a training is resumed only under the same)."""
  s = {"smoke": bool(args.smoke), "cpu_minutes": args.cpu_minutes, "seed": args.seed}
  if name == "pixelcnn":
    s.update(architecture=pixelcnn_arch(args), learning_rate=args.pixelcnn_lr)
    if args.pixelcnn_schedule_steps:               # absent when constant: older runs still match
      s.update(schedule_steps=args.pixelcnn_schedule_steps)
  else:
    s.update(zoo=ZOO[name], set=list(args.set))
  return plain(s)


def contender_settings(name, args):
  """What contender ``name``'s result depends on: a result is kept only under the same."""
  return dict(training_settings(name, args), eval_examples=args.eval_examples,
              iwae_samples=args.iwae_samples)


# ==================================================================== configs
apply_settings = budget_study.apply_settings


def vae_config(name, smoke=False, data_dir="", seed=0, settings=(), checkpoint_steps=250):
  """The VAE contender ``name``'s config: CPU-sized, evaluation-free training.

  A checkpoint every ``checkpoint_steps`` steps bounds what a killed process loses.
  """
  cfg = vlae_tf.zoo.get_config(ZOO[name])
  if name == "vae_factorized":
    cfg, _ = harness.scale_like(cfg, "mnist", "mnist_cpu")
  apply_settings(cfg, settings)
  return budget_study.budget_config(cfg, smoke, data_dir, seed, checkpoint_steps)


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
def pixelcnn_schedule(learning_rate, schedule_steps):
  """The VAEs' learning-rate recipe for the PixelCNN (``vlae_tf.optimizer.learning_rate``).

  ``schedule_steps = 0``: a constant ``learning_rate``. Otherwise the zoo
  configs' schedule: 200 warm-up steps, then a cosine to ``PIXELCNN_MIN_LR``
  over ``schedule_steps`` steps (the VAEs get the same with ``--set
  train.steps=N``); set ``N`` near the steps the budget buys, so the rate has
  come down when the budget ends.
  """
  return ml_collections.ConfigDict(dict(
      learning_rate=float(learning_rate), min_learning_rate=PIXELCNN_MIN_LR,
      warmup_steps=PIXELCNN_WARMUP if schedule_steps else 0, steps=int(schedule_steps),
      decay="cosine" if schedule_steps else "constant"))


class ZooSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
  """``vlae_tf.optimizer.learning_rate`` at the optimizer's update count (= the training step)."""

  def __init__(self, schedule):
    self.schedule = schedule

  def __call__(self, step):
    return vopt.learning_rate(step, self.schedule)

  def get_config(self):
    return self.schedule.to_dict()


class PixelCNNTrainer:
  """Adam + gradient clipping + EMA on ``-mean log p(x)`` of a tfd.PixelCNN, masks kept."""

  def __init__(self, dist, learning_rate=PIXELCNN_LR, clip=PIXELCNN_CLIP, ema_decay=EMA_DECAY,
               schedule_steps=0):
    self.dist = dist
    self.variables = list(dist.trainable_variables)
    if not self.variables:
      raise RuntimeError("tfd.PixelCNN exposes no trainable variables")
    self.constrained = [v for v in self.variables if getattr(v, "constraint", None) is not None]
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.schedule = pixelcnn_schedule(learning_rate, schedule_steps)
    self.optimizer = tf_keras.optimizers.Adam(
        ZooSchedule(self.schedule) if schedule_steps else learning_rate)
    self.clip = float(clip)
    # Same schedule as the VAEs' EMA: decay min(ema_decay, (1 + n) / (10 + n)).
    self.ema = tf.train.ExponentialMovingAverage(ema_decay, num_updates=self.step)
    self.ema.apply(self.variables)                # shadows start at the (masked) initial weights
    self.optimizer.build(self.variables)          # slots exist before a checkpoint is restored
    # Everything a resumed training needs: weights, Adam's moments and count, EMA shadows, step.
    self.checkpoint = tf.train.Checkpoint(
        network=dist.network, optimizer=self.optimizer, step=self.step,
        shadows=[self.ema.average(v) for v in self.variables])
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
def train_pixelcnn(cfg, rundir, budget_s, arch, learning_rate=PIXELCNN_LR,
                   checkpoint_steps=250, schedule_steps=0):
  """Trains (or resumes) the tfd.PixelCNN in ``rundir`` until the CPU budget; EMA weights.

  Resumable like a VAE contender (:mod:`experiments.cpu_budget`): a checkpoint
  of the whole training state every ``checkpoint_steps`` steps and at the stop,
  each entered in the CPU ledger; the training stream resumes at the step.
  """
  dist = pixelcnn(cfg.data.image_shape, arch)
  trainer = PixelCNNTrainer(dist, learning_rate=learning_rate, schedule_steps=schedule_steps)
  ledger = os.path.join(rundir, cpu_budget.LEDGER)
  spent, estimated = cpu_budget.resume_point(rundir, ledger)
  ckpt_dir = vwork.checkpoint_dir(rundir)
  latest = vwork.latest_checkpoint(rundir) if os.path.isdir(ckpt_dir) else None
  if latest:
    trainer.checkpoint.restore(latest).assert_existing_objects_matched()
    print(f"pixelcnn: resuming at step {int(trainer.step.numpy())} with {spent:.0f} of "
          f"{budget_s:.0f} CPU s already spent", flush=True)
  manager = tf.train.CheckpointManager(trainer.checkpoint, ckpt_dir, max_to_keep=2)
  steps = int(trainer.step.numpy())
  batches = iter(vdata.train_dataset(cfg, steps))
  with cpu_budget.CPUBudget(budget_s, spent, ledger, estimated=estimated) as budget:
    while not (steps and budget.should_stop()):      # at least one step, then until the budget
      loss = trainer.train_step(next(batches))
      steps += 1
      if steps % 100 == 0:
        print(f"pixelcnn step {steps}: loss {float(loss):.3f} nats, "
              f"{budget.used():.0f} CPU s", flush=True)
      if steps % checkpoint_steps == 0:
        manager.save(checkpoint_number=steps)
        budget.record(steps)
    if cpu_budget.checkpoint_step(manager.latest_checkpoint) != steps:
      manager.save(checkpoint_number=steps)
    budget.record(steps)
    finished, cpu = budget.exhausted(), budget.used()
  if not finished:
    print(f"pixelcnn: stopped from outside at step {steps} after {cpu:.0f} CPU s; rerun to "
          "resume", flush=True)
    raise cpu_budget.Interrupted()
  trainer.use_ema()
  return dist, {"steps": steps, "cpu_seconds": cpu, "num_params": harness.num_params(dist),
                "optimizer": f"Adam {learning_rate}"
                             + (f", cosine to {PIXELCNN_MIN_LR} over {schedule_steps} steps "
                                f"after {PIXELCNN_WARMUP} warm-up" if schedule_steps else "")
                             + f", clip {PIXELCNN_CLIP}, EMA {EMA_DECAY}",
                "architecture": arch, **cpu_budget.budget_record(ledger)}


def run_contender(name, args):
  """Trains (or resumes) and evaluates one contender in this (fresh) process; writes peer.json.

  Nothing to do if ``<workdir>/<name>/peer.json`` has this contender's settings;
  a finished training (``train.json``) with the same training settings is only
  evaluated again; an unfinished one resumes from its checkpoints.
  """
  d = os.path.join(args.workdir, name)
  settings = contender_settings(name, args)
  if (read_json(os.path.join(d, RESULT)) or {}).get("settings") == settings:
    return
  train_settings = training_settings(name, args)
  budget_study.prepare_row_dir(d, train_settings)
  budget_s = args.cpu_minutes * 60.0
  data_cfg = data_config(args.smoke, args.data_dir, args.seed)
  arch = pixelcnn_arch(args)
  if name != "pixelcnn":
    cfg = vae_config(name, args.smoke, args.data_dir, args.seed, args.set, args.checkpoint_steps)
    model, rec = budget_study.train_at_budget(
        cfg, d, budget_s, train_settings, cfg.name + "".join(f" --set {v}" for v in args.set))
  elif not os.path.exists(os.path.join(d, TRAINED)):
    start = budget_study.started()
    model, rec = train_pixelcnn(data_cfg, os.path.join(d, "run"), budget_s, arch,
                                args.pixelcnn_lr, args.checkpoint_steps,
                                args.pixelcnn_schedule_steps)
    tf.train.Checkpoint(network=model.network).write(os.path.join(d, "ema_weights"))
    rec.update(budget_study.train_record(rec["steps"], budget_s, data_cfg, start),
               settings=train_settings)
    atomic.write_text(os.path.join(d, TRAINED), json.dumps(rec, indent=2) + "\n")
  else:                                            # trained earlier, evaluation stopped
    rec = read_json(os.path.join(d, TRAINED))
    model = pixelcnn(data_cfg.data.image_shape, arch)
    tf.train.Checkpoint(network=model.network).read(
        os.path.join(d, "ema_weights")).assert_existing_objects_matched()

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
          "active_units": s["active_units"], "latent_size": s["latent_size"],
          "summary": s}     # all of test_set_metrics' summary: what the seed table reports too
    per = {"nll": p["iwae_nll"], "elbo": p["elbo"]}
  ev.update(num_examples=int(len(x)), test_split=data_cfg.data.test_split,
            eval_wall_seconds=time.time() - t0, eval_cpu_seconds=time.process_time() - c0)
  with atomic.open_for_writing(os.path.join(d, PER_EXAMPLE), "wb") as f:
    np.savez(f, **per)
  atomic.write_text(os.path.join(d, RESULT), json.dumps(
      {"name": name, "label": LABELS[name], "settings": settings, "train": rec, "test": ev,
       "per_image_nll": [float(v) for v in per["nll"]]}, indent=2) + "\n")
  print(f"{name}: {rec['steps']} steps in {rec['cpu_seconds']:.0f} CPU s; test NLL "
        f"{ev['nll']:.3f} ± {ev['nll_stderr']:.3f} ({ev['bound']}, {len(x)} images)", flush=True)


# ==================================================================== the comparison
def _fmt(mean, se):
  return "—" if mean is None else f"{mean:.2f} ± {se:.2f}"


def contender_record(name, res):
  """One contender as ``peers.json`` lists it (nats; rate null for the PixelCNN).

  With its ``settings`` (a rerun keeps it only under the same) and its
  ``per_image_nll`` (the paired differences are computed from them), so the
  file alone suffices to rebuild the comparison.
  """
  t, e = res["train"], res["test"]
  iwae = e["bound"].startswith("IWAE")
  return {"name": name, "kind": KINDS[name], "label": LABELS[name],
          "cpu_seconds": t["cpu_seconds"], "steps": t["steps"],
          "examples_seen": t["examples_seen"], "nll": e["nll"], "nll_stderr": e["nll_stderr"],
          "bound": e["bound"], "elbo": e.get("elbo"), "elbo_stderr": e.get("elbo_stderr"),
          "rate": e.get("rate"), "active_units": e.get("active_units"),
          "mutual_information": e.get("summary", {}).get("mutual_information"),
          "iwae_samples": int(e["bound"].split("=")[1]) if iwae else None,
          "num_images": e["num_examples"], "params": t["num_params"],
          "config": t.get("config") or f"tfd.PixelCNN {t.get('architecture')}, "
                                         f"{t.get('optimizer')}",
          "wall_seconds": t["wall_seconds"], "load_average": [t["load_average_start"],
                                                              t["load_average_end"]],
          "training_processes": t.get("processes", 1),
          "cpu_estimated": t.get("cpu_estimated", False),
          "settings": res["settings"], "per_image_nll": res["per_image_nll"]}


def kept_contenders(path, args):
  """``{name: record}`` of the contenders already in ``path`` (a peers.json); {} if none.

  A file whose study settings (``STUDY_KEYS``) differ from this run's is a
  different study: refused rather than mixed or overwritten.
  """
  study = plain({k: getattr(args, k) for k in STUDY_KEYS})
  return budget_study.kept_rows(path, "contenders", lambda c: c["name"], study)


def report(args, head, records):
  """The side-by-side table (Markdown) and the JSON of all contenders, paired differences.

  ``records``: ``{name: contender_record}``, listed in ``--contenders`` order,
  then any other kept contender. Written atomically to ``--out`` (and
  ``peers.md``) after each contender, so a study stopped at any point keeps
  every finished contender.
  """
  names = [n for n in args.contenders if n in records]
  names += [n for n in CONTENDERS if n in records and n not in names]
  per = {n: np.asarray(records[n]["per_image_nll"], np.float64) for n in names}
  ref = next((n for n in names if KINDS[n] == "vlae"), names[0])
  paired = []
  for a in names:
    for b in names:
      if a != b and KINDS[a] == "vlae":
        mean, se = harness.paired_difference(per[a], per[b])
        paired.append({"a": a, "b": b, "nll_a_minus_b": mean, "stderr": se})
  rows = []
  for name in names:
    c = records[name]
    diff = (None, None) if name == ref else harness.paired_difference(per[name], per[ref])
    elbo = (None, None) if c["elbo"] is None else (-c["elbo"], c["elbo_stderr"])
    rate = "—" if c["rate"] is None else f"{c['rate']:.2f}"
    rows.append(f"| {LABELS[name]} | {c['params']:,} | {c['steps']} | {c['examples_seen']:,} "
                f"| {c['cpu_seconds']:.0f} | {_fmt(c['nll'], c['nll_stderr'])} ({c['bound']}) "
                f"| {_fmt(*elbo)} | {rate} | {_fmt(*diff)} |")
  n = records[ref]["num_images"]
  md = [f"Budget {args.cpu_minutes:g} CPU-minutes of training per contender, one after another, "
        f"each in fresh processes; test NLL in nats on the same {n} evenly spaced images of the "
        f"test split; ± = standard error over those images; rate = KL(q(z|x) || p(z)) in nats; "
        f"\"vs {ref}\" = mean paired difference (negative: better than {ref}).", "",
        f"| contender | params | steps | examples seen | training CPU s | test NLL | −ELBO | rate "
        f"| NLL vs {ref} |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"] + rows
  sets = sorted({" ".join(records[n]["settings"].get("set", [])) for n in names} - {""})
  if sets:
    md += ["", "VAE settings changed with --set: " + "; ".join(sets)]
  resumed = [f"{n} ({records[n]['training_processes']} processes"
             + (", CPU count extrapolated" if records[n]["cpu_estimated"] else "") + ")"
             for n in names if records[n]["training_processes"] > 1]
  if resumed:
    md += ["", "Trained over several processes (resumed from checkpoints; each process's "
           "start-up counts in the budget): " + ", ".join(resumed)]
  if args.smoke:
    md = ["**SMOKE RUN**: tiny models, synthetic 8x8 images, a few steps; no number here is a "
          "result.", ""] + md
  text = head + "\n\n" + "\n".join(md)
  out = {"title": TITLE, "header": head, "command": [sys.executable] + sys.argv,
         "smoke": bool(args.smoke), "cpu_minutes": args.cpu_minutes,
         "eval_examples": args.eval_examples, "iwae_samples": args.iwae_samples,
         "order": "sequential", "contenders": [records[n] for n in names],
         "paired": paired, "table_md": "\n".join(md)}
  atomic.write_text(out_path(args), json.dumps(out, indent=2) + "\n")
  atomic.write_text(os.path.join(args.workdir, "peers.md"), text + "\n")
  return out


def out_path(args):
  return args.out or os.path.join(args.workdir, "peers.json")


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
  p.add_argument("--pixelcnn_schedule_steps", type=int, default=0,
                 help=f"0: a constant --pixelcnn_lr; N: the VAEs' recipe, a cosine to "
                 f"{PIXELCNN_MIN_LR:g} over N steps after {PIXELCNN_WARMUP} warm-up (the VAEs: "
                 "--set train.steps=N).")
  p.add_argument("--out", default="", help="peers.json path (default <workdir>/peers.json; "
                 "the published table is bench/results/peers.json).")
  p.add_argument("--checkpoint_steps", type=int, default=250,
                 help="Checkpoint every n training steps: what a killed process can lose.")
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
  if args.checkpoint_steps < 1:
    p.error(f"--checkpoint_steps must be >= 1, got {args.checkpoint_steps}")
  if args.pixelcnn_schedule_steps < 0 or 0 < args.pixelcnn_schedule_steps <= PIXELCNN_WARMUP:
    p.error(f"--pixelcnn_schedule_steps must be 0 or > {PIXELCNN_WARMUP}, got "
            f"{args.pixelcnn_schedule_steps}")
  if args.iwae_samples < 1:
    p.error(f"--iwae_samples must be >= 1, got {args.iwae_samples}")
  if args.eval_examples == 0 or args.eval_examples < -1:
    p.error(f"--eval_examples must be -1 (all) or >= 1, got {args.eval_examples}")
  return args


def main(argv=None):
  """Runs every contender not yet in ``--out`` with these settings, one fresh process each.

  Resumable at any point: a contender in ``--out`` (or with a finished
  ``peer.json``) under the same settings is kept, an interrupted one resumes
  from its checkpoints; ``--out`` is rewritten after each contender.
  """
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
  with budget_study.workdir_lock(args.workdir):
    records = kept_contenders(out_path(args), args)
    budget_study.run_rows(
        args.contenders, records, lambda n: contender_settings(n, args),
        lambda n: os.path.join(args.workdir, n, RESULT),
        lambda n: ["-m", "experiments.peers", f"--contender={n}"] + argv,
        lambda n: os.path.join(args.workdir, n + ".log"), contender_record,
        lambda recs: report(args, head, recs))
  out = report(args, head, records)
  print(out["table_md"], flush=True)
  return out


if __name__ == "__main__":
  main()
