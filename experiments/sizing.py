"""Run sizes of the claim experiments: budgets and the zoo configs scaled to them.

  ``smoke``  (``--smoke``) a tiny model (8 filters, 2-4 latent units), a
             couple of steps, a few test images: proves the script runs end
             to end in seconds. Synthetic 8x8 images by default
             (``--smoke_data=real``: the real dataset at its native size). Its
             numbers mean nothing and are labelled so.
  ``cpu``    (default) the zoo config scaled down exactly as ``zoo/mnist_cpu.py``
             / ``zoo/cifar10_cpu.py`` scale ``mnist`` / ``cifar10`` (see
             :func:`scale_like`), a step budget per script chosen for 2 CPU
             cores, and ``eval_examples`` test images evenly spaced over the
             test split.
  ``full``   (``--full``) the paper-size zoo config with its own step count,
             the whole test set and the config's IWAE sample count
             (accelerator-sized).

Every change of size goes through :func:`vlae_tf.config.shrink`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import vlae_tf
from vlae_tf import config as vconfig

SIZES = ("smoke", "cpu", "full")
# Zoo reference config -> its CPU-sized variant (the pair whose difference scale_like applies).
CPU_VARIANTS = {"mnist": "mnist_cpu", "cifar10": "cifar10_cpu"}


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
