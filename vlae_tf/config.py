"""The run config: its schema (one default config), validation, JSON form, and shrinking.

:func:`default_config` is the schema: every key a run config may hold, each
with its default and meaning. Every zoo config (``zoo/<name>.py``) starts
from it and changes what differs; the model (:mod:`vlae_tf.model`) reads a
config completed by :func:`with_defaults`, so no default is written twice.
:func:`validate_config` names every unknown key and bad value at once (the
allowed values of the choice fields are the tuples below, e.g. :data:`PRIORS`;
a layer given one directly refuses it with :func:`check_choice`, in the same
words), so a bad config fails before TensorFlow does any work;
:func:`shrink` is the one way to make a smaller variant of a config (the
``*_cpu`` zoo configs, the experiments' run sizes, the tests' tiny models).
Longer than 400 lines because the schema (one commented line per key) and
its validation (a check per key) belong side by side.

A config is an ``ml_collections.ConfigDict`` of five sections (``data``,
``model``, ``objective``, ``train``, ``eval``) plus ``name``,
``description``, ``paper_nll``, ``paper_bits_per_dim`` and ``seed``. Its JSON
form (:func:`jsonable`) is what ``config.json`` of a work directory and the
``info_json`` of a SavedModel hold; :func:`from_json` reads it back (lists
become tuples again).
"""

from __future__ import annotations

import json
import math

import ml_collections
import numpy as np

from vlae_tf import datasets

# The allowed values of every choice field, checked here once (validate_config) before anything is
# built; a layer given a value directly checks it against the same tuple (check_choice).
LIKELIHOODS = ("bernoulli", "logistic_mixture")
LATENT_KINDS = ("vector", "spatial")
LOCAL_DECODER_CONTEXTS = ("stack", "window", "grayscale", "full", "none")   # local_decoder
GATED_DECODER_CONTEXTS = ("gated", "gated_full")                            # gated_decoder
DECODER_CONTEXTS = LOCAL_DECODER_CONTEXTS + GATED_DECODER_CONTEXTS
PRIORS = ("af", "normal")
POSTERIORS = ("gaussian", "iaf")
OPTIMIZERS = ("adamax", "adam")
DECAYS = ("cosine", "exponential", "constant")
PRECISIONS = ("float32", "bfloat16")    # train.precision (evaluation is always float32)
SECTIONS = ("data", "model", "objective", "train", "eval")
# The one bound on k of the IWAE bound, for the library, config.eval and the SavedModel's ``iwae``.
MAX_IWAE_SAMPLES = 4096


def default_config():
  """Every key of a run config with its default (the schema; zoo configs change what differs)."""
  c = ml_collections.ConfigDict()
  c.name = ""
  c.description = ""
  c.paper_nll = None             # nats, the paper's test NLL for this setting (None: not in the paper)
  c.paper_bits_per_dim = None
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.dataset = "binarized_mnist"   # binarized_mnist | mnist | omniglot | cifar10 | synthetic | own
  c.data.source = "auto"               # auto | npz | images | tfds | tfds:<name> (vlae_tf.datasets)
  c.data.data_dir = ""                 # folder with the documented .npz files; default $VLAE_DATA_DIR
  c.data.binarization = "static"       # static (data already {0,1}) | dynamic | threshold | none
  c.data.image_shape = (28, 28, 1)
  c.data.train_split = "train"
  c.data.valid_split = "valid"
  c.data.test_split = "test"
  c.data.binarization_seed = 0         # the fixed test-set binarization for dynamic MNIST
  c.data.tfds_data_dir = ""            # TFDS data_dir ("" = the TFDS default)
  c.data.synthetic_size = 0            # synthetic dataset: training examples (0 = 256)

  c.model = ml_collections.ConfigDict()
  c.model.likelihood = "bernoulli"     # bernoulli | logistic_mixture
  c.model.num_mixtures = 10
  c.model.num_bits = 8
  c.model.latent_kind = "vector"       # vector | spatial
  c.model.latent_dim = 0               # vector latent: its size D
  c.model.latent_channels = 0          # spatial latent: channels (D = h w c after the downsamplings)
  c.model.num_resolution_changes = 2   # encoder downsamples / conditioning upsamples by 2 this often
  c.model.encoder_filters = 64
  c.model.encoder_blocks = 2
  c.model.cond_filters = 64
  c.model.cond_blocks = 1
  c.model.decoder_context = "stack"    # stack | window | grayscale | full | none | gated | gated_full
  c.model.decoder_layers = 6           # stack / full: masked layers; gated: n, window (2n+1) x n
  c.model.decoder_kernel = 3
  c.model.decoder_window = (3, 2)      # (A, B) for window / grayscale
  c.model.decoder_filters = 64
  c.model.decoder_blocks = 2           # extra 1x1 gated blocks after the context layers
  c.model.prior = "af"                 # af | normal
  c.model.prior_steps = 2
  c.model.prior_hidden = (640, 640)
  c.model.posterior = "gaussian"       # gaussian | iaf
  c.model.posterior_steps = 2
  c.model.posterior_hidden = (640, 640)
  c.model.posterior_context = 0        # iaf: size of the encoder context fed to every IAF step

  c.objective = ml_collections.ConfigDict()
  c.objective.beta = 1.0
  c.objective.free_bits = 0.0          # nats per group (openai/iaf kl_min); 0: off
  c.objective.free_bits_groups = 1     # groups of latent dimensions sharing the free-bits floor
  c.objective.kl_warmup_steps = 0

  c.train = ml_collections.ConfigDict()
  c.train.steps = 200_000
  c.train.batch_size = 64              # global batch
  c.train.optimizer = "adamax"         # adamax | adam
  c.train.precision = "float32"        # float32 | bfloat16 (mixed: bf16 compute, f32 variables)
  c.train.learning_rate = 2e-3
  c.train.warmup_steps = 1000
  c.train.decay = "cosine"             # cosine | exponential | constant
  c.train.min_learning_rate = 1e-5
  c.train.grad_clip_norm = 100.0
  c.train.ema_decay = 0.999
  c.train.checkpoint_every = 1000
  c.train.keep_checkpoints = 3
  c.train.log_every = 100
  c.train.eval_every = 5000
  c.train.max_consecutive_skips = 20
  c.train.shuffle_buffer = 10_000

  c.eval = ml_collections.ConfigDict()
  # The default --mode=eval takes minutes on 2 CPU cores (mnist_cpu, 2 busy cores: ELBO on all 10,000
  # test images 1.5 min, IWAE k=100 on 1,000 evenly spaced ones 5.5 min); the full bound is a flag
  # away (--eval_iwae_samples=4096 --eval_iwae_examples=-1: hours). docs/TRAINING.md, "Evaluation".
  c.eval.iwae_samples = 100            # k of the IWAE bound, 1 .. MAX_IWAE_SAMPLES
  c.eval.batch_size = 100
  c.eval.num_examples = -1             # -1: the whole test split
  c.eval.iwae_examples = 1000          # IWAE on an evenly spaced subset of this many (-1: all)
  c.eval.periodic_examples = 256       # held-out examples for the cheap in-training eval (EMA)
  c.eval.num_images = 8                # samples / reconstructions per TensorBoard image grid
  return c


# ==================================================================== plain forms
def to_dict(config):
  """ConfigDict / FrozenConfigDict / dict -> nested plain dict."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  return {k: to_dict(v) if isinstance(v, dict) or hasattr(v, "to_dict") else v
          for k, v in dict(config).items()}


def with_defaults(config):
  """``config`` as a plain dict, every key it lacks taken from :func:`default_config`."""
  def merge(default, given):
    out = dict(default)
    for k, v in given.items():
      out[k] = merge(default[k], v) if isinstance(v, dict) and isinstance(
          default.get(k), dict) else v
    return out
  return merge(to_dict(default_config()), to_dict(config))


def jsonable(v):
  """``v`` (a config, or dicts / lists / tuples / NumPy values) as plain JSON-ready Python."""
  if hasattr(v, "to_dict"):
    v = to_dict(v)
  if isinstance(v, dict):
    return {str(k): jsonable(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [jsonable(x) for x in v]
  if isinstance(v, np.generic):
    return v.item()
  if isinstance(v, np.ndarray):
    return v.tolist()
  return v


def _tuplify(v):
  if isinstance(v, dict):
    return {k: _tuplify(x) for k, x in v.items()}
  if isinstance(v, list):
    return tuple(_tuplify(x) for x in v)
  return v


def from_json(d):
  """A ``ConfigDict`` from the JSON form of a config (lists back to tuples)."""
  if isinstance(d, str):
    d = json.loads(d)
  return ml_collections.ConfigDict(_tuplify(d))


def flatten(config):
  """``{"section.key": value}`` of a config; lists become tuples, so values compare and hash."""
  out = {}

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}.")
      else:
        out[prefix + k] = _tuplify(list(v)) if isinstance(v, (list, tuple)) else v
  walk(to_dict(config), "")
  return out


# ==================================================================== shrinking
def shrink(config, sizes, unless_changed_from=None):
  """Sets every ``"section.key": value`` of ``sizes`` in ``config`` (in place).

  The one way to make a smaller variant of a config. With
  ``unless_changed_from`` (another config, e.g. the paper-size parent), a key
  is set only where ``config`` still holds that config's value, so what
  ``config`` chose for itself is kept. Returns the ``(key, old, new)`` applied.
  """
  flat = flatten(config)
  ref = flatten(unless_changed_from) if unless_changed_from is not None else None
  applied = []
  for key, value in sizes.items():
    if key not in flat:
      raise KeyError(f"shrink: {key!r} is not a config key")
    if ref is not None and flat[key] != ref.get(key):
      continue
    *path, last = key.split(".")
    node = config
    for p in path:
      node = node[p]
    node[last] = value
    applied.append((key, flat[key], value))
  return applied


# What every ``*_cpu`` zoo config shares (2 CPU cores): one ResNet block per encoder scale and a
# shorter schedule, logged and checkpointed more often. Each sets its own widths and optimizer.
CPU_SIZES = {
    "model.encoder_blocks": 1, "train.warmup_steps": 200, "train.steps": 100_000,
    "train.checkpoint_every": 500, "train.log_every": 50, "train.eval_every": 2_000,
}


# ==================================================================== validation
def _is_int(v):
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _ints(v, n=None):
  """``v`` as a tuple of ints (``n`` of them when given), else None."""
  if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n):
    return None
  return tuple(v) if all(_is_int(x) for x in v) else None


def choice_message(key, value, allowed) -> str:
  """The one wording of a bad choice: ``"<key> must be one of <allowed>, got <value>"``."""
  return f"{key} must be one of {allowed}, got {value!r}"


def check_choice(key, value, allowed):
  """``ValueError(choice_message(...))`` unless ``value`` is one of ``allowed``: how a layer
  given a choice directly (not through a validated config) refuses it, in the same words."""
  if value not in allowed:
    raise ValueError(choice_message(key, value, allowed))


class _Errors(list):
  """The messages of a validation; ``need(cond, msg)`` adds ``msg`` when ``cond`` is false."""

  def need(self, cond, msg):
    if not cond:
      self.append(msg)

  def choice(self, key, value, allowed):
    self.need(value in allowed, choice_message(key, value, allowed))


def _latent_size(m, shape):
  """D, the number of latent dimensions of a model section (None when it cannot be told)."""
  n = m["num_resolution_changes"]
  if m["latent_kind"] == "vector" and _is_int(m["latent_dim"]):
    return int(m["latent_dim"])
  if (m["latent_kind"] == "spatial" and shape and _is_int(n) and n >= 0 and
      _is_int(m["latent_channels"])):
    return (shape[0] // 2 ** n) * (shape[1] // 2 ** n) * int(m["latent_channels"])
  return None


def _check_model(err, m, shape, binarization):
  """The model section (``shape``: the checked image shape, or None)."""
  for key, allowed in (("likelihood", LIKELIHOODS), ("latent_kind", LATENT_KINDS),
                       ("decoder_context", DECODER_CONTEXTS), ("prior", PRIORS),
                       ("posterior", POSTERIORS)):
    err.choice(f"model.{key}", m[key], allowed)
  if m["likelihood"] == "bernoulli":
    err.need(binarization != "none", "a bernoulli likelihood needs binary data: "
             "data.binarization must be static, dynamic or threshold, not 'none'")
  elif m["likelihood"] in LIKELIHOODS:
    err.need(binarization == "none", f"likelihood {m['likelihood']!r} models 8-bit pixels: "
             f"data.binarization must be 'none', got {binarization!r}")
  layers = 1 if m["decoder_context"] in ("stack", "full", "gated", "gated_full") else 0
  for key, low in (("num_mixtures", 1), ("num_resolution_changes", 0), ("encoder_filters", 1),
                   ("encoder_blocks", 0), ("cond_filters", 1), ("cond_blocks", 0),
                   ("decoder_layers", layers), ("decoder_filters", 1), ("decoder_blocks", 0),
                   ("prior_steps", 1), ("posterior_steps", 1), ("posterior_context", 0)):
    err.need(_is_int(m[key]) and m[key] >= low,
             f"model.{key} must be an int >= {low}, got {m[key]!r}")
  err.need(_is_int(m["num_bits"]) and 1 <= m["num_bits"] <= 8,
           f"model.num_bits must be an int in 1..8, got {m['num_bits']!r}")
  k = m["decoder_kernel"]
  err.need(_is_int(k) and k >= 1 and k % 2 == 1,
           f"model.decoder_kernel must be a positive odd int, got {k!r}")
  window = _ints(m["decoder_window"], 2)
  err.need(window is not None and window[0] >= 1 and window[1] >= 0 and window != (1, 0),
           f"model.decoder_window must be (A >= 1, B >= 0) reading at least one pixel, got "
           f"{m['decoder_window']!r}")
  for key in ("prior_hidden", "posterior_hidden"):
    hidden = _ints(m[key])
    err.need(hidden is not None and all(v >= 1 for v in hidden),
             f"model.{key} must be a tuple of positive ints, got {m[key]!r}")
  size_key = {"vector": "latent_dim", "spatial": "latent_channels"}.get(m["latent_kind"])
  if size_key:
    err.need(_is_int(m[size_key]) and m[size_key] >= 1, f"a {m['latent_kind']} latent needs "
             f"model.{size_key} >= 1, got {m[size_key]!r}")
  err.need(m["latent_kind"] != "spatial" or m["posterior"] != "iaf" or not m["posterior_context"],
           "model.posterior='iaf' with model.posterior_context > 0 needs a vector latent")
  n = m["num_resolution_changes"]
  if shape and _is_int(n) and n >= 0:
    err.need(shape[0] % 2 ** n == 0 and shape[1] % 2 ** n == 0, f"data.image_shape {shape}: "
             f"H and W must be divisible by 2**model.num_resolution_changes = {2 ** n}")
  if shape and m["decoder_context"] == "grayscale":
    err.need(shape[2] == 3, "model.decoder_context='grayscale' needs RGB images (3 channels), "
             f"data.image_shape is {shape}")


def _check_objective(err, o, latent_size):
  """The objective section (``latent_size``: D, or None when it cannot be told)."""
  for key in ("beta", "free_bits"):
    v = o[key]
    err.need(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and
             math.isfinite(v) and v >= 0, f"objective.{key} must be a number >= 0, got {v!r}")
  g = o["free_bits_groups"]
  err.need(_is_int(g) and g >= 1, f"objective.free_bits_groups must be an int >= 1, got {g!r}")
  err.need(not (_is_int(g) and g >= 1 and latent_size) or latent_size % g == 0,
           f"objective.free_bits_groups={g} must divide the latent size {latent_size}")
  err.need(_is_int(o["kl_warmup_steps"]) and o["kl_warmup_steps"] >= 0,
           f"objective.kl_warmup_steps must be an int >= 0, got {o['kl_warmup_steps']!r}")


def validate_config(config):
  """Raises ``ValueError`` naming every unknown key and bad value of a run config.

  Every choice field and number the model, the objective, the data and the
  training read is checked here, so a bad value fails before TensorFlow does
  any work (``train.py`` calls this before importing it).
  """
  ref = to_dict(default_config())
  cfg = to_dict(config)
  err = _Errors(f"unknown top-level key {key!r}" for key in sorted(set(cfg) - set(ref)))
  for section in SECTIONS:
    if not isinstance(cfg.get(section), dict):
      err.append(f"missing section {section!r}")
      continue
    for key in sorted(set(cfg[section]) - set(ref[section])):
      err.append(f"unknown key {section}.{key} (known: {', '.join(sorted(ref[section]))})")
  if err:
    raise ValueError("invalid config:\n  " + "\n  ".join(err))
  cfg = with_defaults(cfg)      # keys older configs lack take their defaults, as in the model
  d, t, e, m = cfg["data"], cfg["train"], cfg["eval"], cfg["model"]
  need = err.need
  need(_is_int(cfg["seed"]), f"seed must be an int, got {cfg['seed']!r}")
  need(not datasets.dataset_name_error(d["dataset"]), datasets.dataset_name_error(d["dataset"]))
  need(not datasets.source_error(d["source"]), datasets.source_error(d["source"]))
  err.choice("data.binarization", d["binarization"], datasets.BINARIZATIONS)
  shape = _ints(d["image_shape"], 3)
  shape = shape if shape and all(v > 0 for v in shape) else None
  need(shape, f"data.image_shape must be 3 positive ints (H, W, C), got {d['image_shape']!r}")
  native = datasets.NATIVE_SHAPES.get(d["dataset"])
  need(native is None or shape in (None, native), f"data.image_shape {shape} does not match "
       f"dataset {d['dataset']!r} ({native})")
  need(bool(d["train_split"]) and bool(d["test_split"]),
       "data.train_split and data.test_split must be non-empty")
  _check_model(err, m, shape, d["binarization"])
  _check_objective(err, cfg["objective"], _latent_size(m, shape))
  for key in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every",
              "max_consecutive_skips"):
    need(_is_int(t[key]) and t[key] >= 1, f"train.{key} must be an int >= 1, got {t[key]!r}")
  for key in ("warmup_steps", "eval_every"):
    need(_is_int(t[key]) and t[key] >= 0, f"train.{key} must be an int >= 0, got {t[key]!r}")
  for key, allowed in (("optimizer", OPTIMIZERS), ("decay", DECAYS), ("precision", PRECISIONS)):
    err.choice(f"train.{key}", t[key], allowed)
  lr, min_lr = t["learning_rate"], t["min_learning_rate"]
  need(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
       f"train.learning_rate must be > 0, got {lr!r}")
  need(isinstance(min_lr, (int, float)) and 0 <= min_lr <= (lr if lr > 0 else 0),
       f"train.min_learning_rate must be in [0, learning_rate], got {min_lr!r}")
  need(t["decay"] != "exponential" or (isinstance(min_lr, (int, float)) and min_lr > 0),
       "train.decay='exponential' needs train.min_learning_rate > 0")
  need(isinstance(t["grad_clip_norm"], (int, float)) and t["grad_clip_norm"] >= 0,
       f"train.grad_clip_norm must be >= 0 (0: no clipping), got {t['grad_clip_norm']!r}")
  need(isinstance(t["ema_decay"], (int, float)) and 0 <= t["ema_decay"] < 1,
       f"train.ema_decay must be in [0, 1), got {t['ema_decay']!r}")
  need(_is_int(e["iwae_samples"]) and 1 <= e["iwae_samples"] <= MAX_IWAE_SAMPLES,
       f"eval.iwae_samples must be in [1, {MAX_IWAE_SAMPLES}], got {e['iwae_samples']!r}")
  need(_is_int(e["batch_size"]) and e["batch_size"] >= 1,
       f"eval.batch_size must be >= 1, got {e['batch_size']!r}")
  need(_is_int(e["num_examples"]) and (e["num_examples"] == -1 or e["num_examples"] >= 1),
       f"eval.num_examples must be -1 (all) or >= 1, got {e['num_examples']!r}")
  need(_is_int(e["iwae_examples"]) and (e["iwae_examples"] == -1 or e["iwae_examples"] >= 1),
       f"eval.iwae_examples must be -1 (all) or >= 1, got {e['iwae_examples']!r}")
  for key in ("periodic_examples", "num_images"):
    need(_is_int(e[key]) and e[key] >= 0, f"eval.{key} must be an int >= 0, got {e[key]!r}")
  if err:
    raise ValueError("invalid config:\n  " + "\n  ".join(err))


__all__ = ["default_config", "validate_config", "to_dict", "with_defaults", "jsonable",
           "from_json", "flatten", "shrink", "CPU_SIZES", "MAX_IWAE_SAMPLES", "LIKELIHOODS",
           "LATENT_KINDS", "LOCAL_DECODER_CONTEXTS", "GATED_DECODER_CONTEXTS", "DECODER_CONTEXTS",
           "PRIORS", "POSTERIORS", "OPTIMIZERS", "DECAYS", "PRECISIONS", "choice_message",
           "check_choice"]
