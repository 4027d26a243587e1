"""Datasets for VLAE training and evaluation: sources, binarization, a resumable tf.data pipeline.

Datasets (``config.data.dataset``)
  Any name (letters, digits, ``_ . -``) with a source below; the built-in names
  keep their fixed image shapes and splits:
  ``binarized_mnist``  static binarization of Larochelle & Murray (2011): {0, 1}.
  ``mnist``            8-bit MNIST; ``binarization="dynamic"`` draws a fresh
                       ``x_bin ~ Bernoulli(x / 255)`` for every image every epoch.
  ``omniglot``         28x28 Omniglot, 0..255 gray (255 = ink), usually dynamic.
  ``cifar10``          32x32x3 RGB, 0..255 (``binarization="none"``).
  ``synthetic``        small structured random images of ``data.image_shape``
                       (for tests; no files, no network).

Sources (``config.data.source``)
  ``auto``  ``npz`` when ``data.data_dir`` or the environment variable
            ``VLAE_DATA_DIR`` is set (``images`` when that is a folder of image
            files rather than of .npz files), else ``tfds``.
  ``npz``   local NumPy files (below).
  ``images``  a folder of image files (PNG, JPEG, BMP, GIF, WebP): ``D/<name>/``
            if that exists, else ``D``. With sub-folders ``train``, ``test``
            (and ``valid`` / ``val`` / ``validation``) each is a split, read
            recursively in sorted path order; otherwise all files (recursively)
            are split deterministically (below) into train / valid / test.
            Grayscale files give C = 1; if any file has colour, all are RGB.
  ``tfds:<name>``  any TFDS dataset with an image feature (``image``, else its
            only ``Image`` feature), for a dataset under a name of your own.
  ``tfds``  TensorFlow Datasets (``binarized_mnist``, ``mnist``, ``omniglot``,
            ``cifar10``); TFDS names the validation split ``validation`` and
            Omniglot's background / evaluation sets ``train`` / ``test``, and
            we map ``valid``, ``background``, ``evaluation`` to those. TFDS
            split slicing such as ``"train[:90%]"`` passes through unchanged.
            TFDS Omniglot images are 105x105 RGB (black ink on white): we take
            ``ink = 255 - mean(R, G, B)`` and box-filter (area-average) to 28x28.

The .npz layout (readable with ``numpy.load(path, allow_pickle=False)``)
  One uint8 array per split named ``x_<split>`` (``x_train``, ``x_test``,
  optional ``x_valid``; Omniglot: ``x_background``, ``x_evaluation``), images
  ``[N, H, W, C]`` or ``[N, H, W]`` for grayscale. Other keys (labels) are
  ignored. Lookup in ``D = data.data_dir or $VLAE_DATA_DIR`` for dataset ``name``
  and split ``s``, first match wins:

  1. ``D/<name>.npz``                      a single user-made file,
  2. ``D/<name>/<file>.npz``               ``<file>`` = ``<name>``, or for
                                           omniglot ``omniglot_28_box`` first,
  3. ``D/<name>/<name>_<s>.npz``           one file per split, and
     ``D/<name>/<name>_<s>_1.npz, _2, ...`` one split in numbered parts,
     concatenated in order (the CIFAR-10 layout: ``cifar10_train_1..5.npz``,
     ``cifar10_test.npz``, keys ``x_train`` / ``x_test``).

  ``data.data_dir`` may also point straight at one ``.npz`` file. The
  validation split is read from ``x_valid``, else ``x_val``, else
  ``x_validation``.

Your own datasets (any name that is not built in)
  Image shape and channels come from the data (:func:`resolve_data_config`
  writes them into ``data.image_shape``, so ``config.json`` records them).
  A missing validation split is carved from the training split: the images
  at positions ``perm[:k]`` with ``perm`` the NumPy PCG64 permutation of
  seed :data:`HOLDOUT_SEED` and ``k = max(1, round(0.1 N))`` are validation,
  the rest (in their original order) train; a single image folder gives
  10% test, then 10% validation, the same way. It is logged once.
  Every split is checked: a numeric array ``[N, H, W]`` / ``[N, H, W, C]``
  (C = 1 or 3), N >= 1, finite integer pixels in 0..255 ({0, 1} for
  ``static``). A problem raises :class:`DataError`, one line naming the file,
  the array (or image file) and what was expected.

Binarization (``config.data.binarization``)
  ``static``     the data must already be {0, 1}; used as is.
  ``dynamic``    training: ``Bernoulli(x / 255)`` redrawn each epoch;
                 evaluation: ONE fixed draw with ``data.binarization_seed``.
  ``threshold``  ``x > 127``.
  ``none``       0..255 pixels as is (logistic-mixture models).

Longer than 400 lines because every source (built-in .npz layout, your own
.npz, image folders, TFDS by name) ends in the same checks and split
conventions above, and the stream below reads their result; the file-reading
half could become its own module.

Resumable order
  The training stream is a pure function of ``(config.seed, step)``: epoch
  ``e`` visits the training set in the stateless permutation
  ``argsort(U(seed, e))`` (a uniform shuffle of the whole epoch, so
  ``train.shuffle_buffer`` is not needed), and a dynamic binarization of
  example ``i`` in epoch ``e`` uses the stateless seed ``fold(seed, e, i)``.
  Global step ``t`` consumes stream positions ``[t G, (t + 1) G)`` (``G`` =
  global batch), so resuming at step ``t`` only skips ``(t G) mod N`` indices.
  Under a multi-worker strategy input pipeline ``k`` of ``n`` takes the
  ``k``-th contiguous ``G / n`` slice of every global batch, and its replicas
  take consecutive per-replica batches of that slice, so global replica ``r``
  always sees positions ``[t G + r B, t G + (r + 1) B)`` whatever the device
  count (``B`` = per-replica batch).
"""

from __future__ import annotations

import glob
import os
import re
import zipfile

import numpy as np
import tensorflow as tf
from PIL import Image

DATASETS = ("binarized_mnist", "mnist", "omniglot", "cifar10", "synthetic")  # built in
SOURCES = ("auto", "npz", "tfds", "images")  # and "tfds:<name>"
BINARIZATIONS = ("static", "dynamic", "threshold", "none")
ENV_VAR = "VLAE_DATA_DIR"
VALID_KEYS = ("valid", "val", "validation")  # npz x_<key> / image sub-folder, first found wins
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
HOLDOUT_FRACTION, HOLDOUT_SEED = 0.1, 0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DataError(ValueError):
  """The data of a run is unusable: one line naming the file, the array and what was expected."""

_NATIVE_SHAPE = {"binarized_mnist": (28, 28, 1), "mnist": (28, 28, 1), "omniglot": (28, 28, 1),
                 "cifar10": (32, 32, 3)}
_NPZ_FILES = {"omniglot": ("omniglot_28_box", "omniglot")}
_TFDS_SPLITS = {"valid": "validation", "background": "train", "evaluation": "test"}
# Stream tags for stateless seeds, so the data streams never reuse the training-noise seeds.
_PERMUTATION_TAG, _BINARIZATION_TAG = 101, 202
_SYNTHETIC_SIZE = {"train": 256, "valid": 64, "test": 64}


# ------------------------------------------------------------------ sources
def data_dir(config) -> str:
  """``config.data.data_dir`` or ``$VLAE_DATA_DIR`` ('' when neither is set)."""
  return str(config.data.get("data_dir", "") or os.environ.get(ENV_VAR, ""))


def is_builtin(name) -> bool:
  return name in DATASETS


def dataset_name_error(name):
  """Why ``name`` cannot be a dataset name (None when it can)."""
  if not isinstance(name, str) or not _NAME.match(name):
    return (f"data.dataset must be a built-in name ({', '.join(DATASETS)}) or a name of your "
            f"own (letters, digits, '_', '.', '-'), got {name!r}")
  return None


def source_error(source):
  """Why ``source`` cannot be a ``data.source`` (None when it can)."""
  if source in SOURCES or (isinstance(source, str) and source.startswith("tfds:")
                           and len(source) > 5):
    return None
  return f"data.source must be one of {SOURCES} or 'tfds:<name>', got {source!r}"


def _images_root(root, name):
  return os.path.join(root, name) if os.path.isdir(os.path.join(root, name)) else root


def _has_images(folder):
  for _, _, files in os.walk(folder):
    if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
      return True
  return False


def resolve_source(config) -> str:
  """The concrete source (``npz``, ``images``, ``tfds`` or ``synthetic``) for a config."""
  if config.data.dataset == "synthetic":
    return "synthetic"
  source = config.data.source
  err = source_error(source)
  if err:
    raise ValueError(err)
  if source.startswith("tfds"):
    return "tfds"
  if source == "auto":
    root = data_dir(config)
    if not root:
      return "tfds"
    name = config.data.dataset
    if (not is_builtin(name) and os.path.isdir(root) and
        not any(os.path.exists(f) for c in _npz_candidates(root, name, "train") for f in c) and
        _has_images(_images_root(root, name))):
      return "images"
    return "npz"
  return source


def tfds_name(config) -> str:
  """The TFDS dataset a config reads: ``<name>`` of ``tfds:<name>``, else ``data.dataset``."""
  source = config.data.source
  return source[5:] if source.startswith("tfds:") else config.data.dataset


def _npz_candidates(root, name, split):
  """Files that may hold split ``split`` of ``name`` under ``root``, in lookup order."""
  if root.endswith(".npz"):
    return [[root]]
  out = [[os.path.join(root, f"{name}.npz")]]
  out += [[os.path.join(root, name, f"{f}.npz")] for f in _NPZ_FILES.get(name, ()) + (name,)]
  out.append([os.path.join(root, name, f"{name}_{split}.npz")])
  parts = sorted(glob.glob(os.path.join(root, name, f"{name}_{split}_*.npz")),
                 key=lambda p: (len(p), p))
  if parts:
    out.append(parts)
  return out


def _split_keys(split):
  """Array names that may hold ``split``: ``x_valid`` also as ``x_val``, ``x_validation``."""
  return [f"x_{k}" for k in VALID_KEYS] if split in VALID_KEYS else [f"x_{split}"]


def _read_npz_array(path, key):
  try:
    with np.load(path, allow_pickle=False) as z:
      return z[key]
  except ValueError as e:  # object arrays: ragged image lists, strings, ...
    raise DataError(f"{path} key {key!r}: expected one numeric array of images [N, H, W(, C)] "
                    f"of equal size ({e})") from e


def _npz_files(path):
  try:
    with np.load(path, allow_pickle=False) as z:
      return list(z.files)
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f"{path}: expected a NumPy .npz archive ({type(e).__name__}: {e})") from e


def find_npz_split(root, name, split):
  """``(array, where)`` of split ``split`` of ``name`` in the .npz layout; ``where`` names file and key.

  Raises ``FileNotFoundError`` listing what was tried when no file holds it.
  """
  if not root:
    raise FileNotFoundError(
        f"no data directory for the npz source: set data.data_dir or ${ENV_VAR} to the folder "
        f"holding {name}.npz or {name}/{name}.npz (uint8 arrays x_train, x_test, ...)")
  if root.endswith(".npz") and not os.path.isfile(root):
    raise FileNotFoundError(f"data.data_dir {root!r}: no such .npz file")
  keys = _split_keys(split)
  tried = []
  for files in _npz_candidates(root, name, split):
    if not all(os.path.isfile(f) for f in files):
      tried.append(" + ".join(files))
      continue
    arrays, where = [], []
    for f in files:
      have = _npz_files(f)
      key = next((k for k in keys if k in have), None)
      if key is None:
        tried.append(f"{f} (has {', '.join(have)}; no {' / '.join(keys)})")
        break
      arrays.append(_read_npz_array(f, key))
      where.append(f"{f} key {key!r}")
    else:
      if len(arrays) > 1:
        return _concat(arrays, where), " + ".join(where)
      return arrays[0], where[0]
  raise FileNotFoundError(f"split {split!r} of {name!r} not found as array "
                          f"{' / '.join(map(repr, keys))}; tried:\n  " + "\n  ".join(tried))


def _concat(arrays, where):
  for a, w in zip(arrays[1:], where[1:]):
    if np.ndim(a) != np.ndim(arrays[0]) or np.shape(a)[1:] != np.shape(arrays[0])[1:]:
      raise DataError(f"{w}: expected images of shape {np.shape(arrays[0])[1:]} like "
                      f"{where[0]}, got {np.shape(a)[1:]}")
  return np.concatenate(arrays)


def load_npz_split(root, name, split) -> np.ndarray:
  """Split ``split`` of dataset ``name`` from the .npz layout (see module doc)."""
  return find_npz_split(root, name, split)[0]


# ------------------------------------------------------------------ image folders
def _image_files(folder):
  out = []
  for dirpath, dirnames, files in os.walk(folder):
    dirnames.sort()
    out += [os.path.join(dirpath, f) for f in sorted(files)
            if f.lower().endswith(IMAGE_EXTENSIONS)]
  return sorted(out)


def read_image_files(paths, where):
  """``[N, H, W, C]`` uint8 of image files (C = 1 if all are grayscale, else 3)."""
  if not paths:
    raise DataError(f"{where}: expected image files ({', '.join(IMAGE_EXTENSIONS)}), found none")
  images, gray = [], True
  for p in paths:
    try:
      with Image.open(p) as im:
        im.load()
        if im.mode in ("I", "I;16", "I;16B", "F"):
          raise DataError(f"{p}: expected an 8-bit image, got mode {im.mode}")
        gray = gray and (im.mode in ("1", "L", "LA") or (im.mode == "P" and _gray_palette(im)))
        images.append(im.convert("RGB"))  # drops alpha
    except OSError as e:
      raise DataError(f"{p}: expected an image file PIL can read ({e})") from e
  size = images[0].size
  for p, im in zip(paths, images):
    if im.size != size:
      raise DataError(f"{where}: expected every image {size[1]}x{size[0]} (H x W) like "
                      f"{paths[0]}, but {p} is {im.size[1]}x{im.size[0]}")
  x = np.stack([np.asarray(im, np.uint8) for im in images])
  return x[..., :1] if gray else x


def _gray_palette(im):
  rgb = np.asarray(im.convert("RGB"), np.int16)
  return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _split_folders(folder):
  """``{split: sub-folder}`` when ``folder`` has a ``train`` sub-folder, else {}."""
  if not os.path.isdir(os.path.join(folder, "train")):
    return {}
  out = {s: os.path.join(folder, s) for s in ("train", "test")
         if os.path.isdir(os.path.join(folder, s))}
  for k in VALID_KEYS:
    if os.path.isdir(os.path.join(folder, k)):
      out["valid"] = os.path.join(folder, k)
      break
  return out


def holdout(n, fraction=HOLDOUT_FRACTION, seed=HOLDOUT_SEED):
  """``(kept, held)`` sorted index arrays: ``held = perm[:k]``, ``k = max(1, round(fraction n))``."""
  k = max(1, int(round(fraction * n))) if n > 1 else 0
  perm = np.random.default_rng(seed).permutation(n)
  return np.sort(perm[k:]), np.sort(perm[:k])


_SAID = set()


def _say_once(msg):
  if msg not in _SAID:
    _SAID.add(msg)
    print(f"data: {msg}", flush=True)


def find_image_split(root, name, split):
  """``(array, where)`` of split ``split`` from an image folder (see module doc)."""
  folder = _images_root(root, name)
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"image folder {folder!r} of dataset {name!r} does not exist")
  base = "valid" if split in VALID_KEYS else split
  subs = _split_folders(folder)
  if subs:
    if base in subs:
      return read_image_files(_image_files(subs[base]), subs[base]), subs[base]
    if base not in ("train", "valid"):
      raise FileNotFoundError(f"image folder {folder!r} has split sub-folders "
                              f"{sorted(subs)} but no {split!r}")
    x = read_image_files(_image_files(subs["train"]), subs["train"])
    kept, held = holdout(len(x))
    _say_once(f"{name}: {folder} has no valid/val/validation sub-folder: validation = "
              f"{len(held)} of the {len(x)} images of {subs['train']} (deterministic "
              f"{HOLDOUT_FRACTION:.0%} holdout, seed {HOLDOUT_SEED}); training on the other {len(kept)}")
    return (x[kept], subs["train"]) if base == "train" else (x[held], f"{subs['train']} (held out)")
  if base not in ("train", "valid", "test"):
    raise FileNotFoundError(f"image folder {folder!r} has no split sub-folders, so only train / "
                            f"valid / test exist, not {split!r}")
  x = read_image_files(_image_files(folder), folder)
  rest, test = holdout(len(x))
  train, valid = holdout(len(rest))
  train, valid = rest[train], rest[valid]
  _say_once(f"{name}: {folder} has no train/ test/ sub-folders: its {len(x)} images (sorted "
            f"paths) are split deterministically (seed {HOLDOUT_SEED}) into {len(train)} train, "
            f"{len(valid)} valid, {len(test)} test")
  return x[{"train": train, "valid": valid, "test": test}[base]], f"{folder} ({base} part)"


def _tfds_split(split):
  base, sep, rest = split.partition("[")
  return _TFDS_SPLITS.get(base, base) + sep + rest


def tfds_image_key(builder):
  """The image feature of a TFDS builder: ``image``, else its only ``Image`` feature."""
  import tensorflow_datasets as tfds
  features = builder.info.features
  images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  if "image" in images:
    return "image"
  if len(images) == 1:
    return images[0]
  raise DataError(f"TFDS dataset {builder.name!r}: expected one image feature, has "
                  f"{images or 'none'} among {list(features)}")


def load_tfds_split(name, split, tfds_data_dir=None) -> np.ndarray:
  """All images of a TFDS split as a uint8 numpy array (Omniglot converted to 28x28 ink)."""
  import tensorflow_datasets as tfds
  if not is_builtin(name):
    return _load_tfds_any(name, split, tfds_data_dir)
  try:
    ds = tfds.load(name, split=_tfds_split(split), data_dir=tfds_data_dir or None,
                   shuffle_files=False, download=True)
  except Exception as e:  # noqa: BLE001 -- any download / build failure gets the same advice
    raise RuntimeError(
        f"TFDS could not load {name!r} split {split!r} ({type(e).__name__}: {e}). Without "
        f"network access, point at local files instead: set ${ENV_VAR} (or --config.data.data_dir) "
        f"to a folder with {name}.npz or {name}/{name}.npz holding uint8 arrays x_train, x_test "
        f"(see vlae_tf/data.py), or pass --config.data.source=npz") from e
  images = [ex["image"] for ex in tfds.as_numpy(ds)]
  if not images:
    raise ValueError(f"TFDS split {split!r} of {name!r} is empty")
  x = np.stack(images)
  if name == "omniglot":
    x = omniglot_to_28(x)
  return x


def _load_tfds_any(name, split, tfds_data_dir=None):
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=tfds_data_dir or None)
    key = tfds_image_key(builder)
    builder.download_and_prepare()
    ds = builder.as_dataset(split=_tfds_split(split), shuffle_files=False)
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001 -- unknown name, no network, unknown split
    raise RuntimeError(f"TFDS could not load {name!r} split {split!r} ({type(e).__name__}: "
                       f"{' '.join(str(e).split())[:500]})") from e
  images = [ex[key] for ex in tfds.as_numpy(ds)]
  if not images:
    raise DataError(f"TFDS {name!r} split {split!r}: expected images, the split is empty")
  shapes = {np.shape(x) for x in images}
  if len(shapes) > 1:
    raise DataError(f"TFDS {name!r} split {split!r} feature {key!r}: expected images of one "
                    f"size, got {len(shapes)} sizes (e.g. {sorted(shapes)[:2]})")
  return np.stack(images)


def omniglot_to_28(x) -> np.ndarray:
  """TFDS Omniglot ``[N, 105, 105, 3]`` (black ink on white) -> ``[N, 28, 28, 1]`` ink 0..255.

  ``ink = 255 - mean_c(x)``, then an area-average (box filter) resize: each
  output pixel is the mean of the 3.75 x 3.75 input area it covers.
  """
  x = np.asarray(x, np.float32)
  ink = 255.0 - x.mean(axis=-1, keepdims=True)
  out = tf.image.resize(ink, (28, 28), method="area").numpy()
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def synthetic_split(image_shape, split, seed=0, num_levels=2, size=None) -> np.ndarray:
  """Structured random images: each is one of 4 fixed random templates with 5% pixel noise.

  The templates are shared by all splits (so a model can learn them); the
  template choice and the noise depend on ``(seed, split)``.
  """
  h, w, c = image_shape
  n = size or _SYNTHETIC_SIZE.get(split, 64)
  rng_t = np.random.default_rng(seed)
  templates = rng_t.random((4, h, w, c)) < 0.5
  rng = np.random.default_rng([seed, sum(map(ord, split))])
  x = templates[rng.integers(0, 4, n)] ^ (rng.random((n, h, w, c)) < 0.05)
  if num_levels == 2:
    return x.astype(np.uint8)
  return (x * (num_levels - 1)).astype(np.uint8)


# ------------------------------------------------------------------ binarization
def _num_levels(config):
  if config.model.likelihood == "bernoulli":
    return 2
  return 2 ** int(config.model.get("num_bits", 8))


def fixed_binarization(x, seed) -> np.ndarray:
  """One reproducible draw ``Bernoulli(x / 255)`` of a whole uint8 array (NumPy PCG64)."""
  rng = np.random.default_rng(int(seed))
  return (rng.random(x.shape, dtype=np.float32) < x.astype(np.float32) / 255.0).astype(np.uint8)


def check_images(x, where, binarization="dynamic") -> np.ndarray:
  """``x`` as uint8 ``[N, H, W, C]`` after checking it (module doc); ``DataError`` names ``where``."""
  x = np.asarray(x)
  if x.dtype == bool:
    x = x.astype(np.uint8)
  if x.dtype.kind not in "iuf":
    raise DataError(f"{where}: expected a numeric image array (uint8 pixels), got dtype {x.dtype}")
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise DataError(f"{where}: expected images [N, H, W] or [N, H, W, C] with C = 1 or 3, got "
                    f"shape {x.shape}")
  if not len(x):
    raise DataError(f"{where}: expected at least one image, the split is empty (shape {x.shape})")
  static = binarization == "static"
  want = ("data.binarization='static' pixels in {0, 1} (use 'dynamic' or 'threshold' for "
          "8-bit data)") if static else "integer pixels in 0..255 (uint8)"
  if x.dtype != np.uint8:
    if x.dtype.kind == "f" and not np.isfinite(x).all():
      raise DataError(f"{where}: expected {want}, got {x.dtype} with "
                      f"{np.size(x) - np.isfinite(x).sum()} NaN / infinite values")
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 255 or (x.dtype.kind == "f" and (x != np.round(x)).any()):
      hint = " (scale [0, 1] floats to 0..255)" if x.dtype.kind == "f" and hi <= 1 else ""
      raise DataError(f"{where}: expected {want}, got {x.dtype} values in [{lo}, {hi}]{hint}")
    x = x.astype(np.uint8)
  if static and x.max() > 1:
    raise DataError(f"{where}: expected {want}, got values up to {x.max()}")
  return x


def _to_nhwc(x, config, where):
  x = check_images(x, where, config.data.binarization)
  want = tuple(int(v) for v in config.data.image_shape)
  if x.shape[1:] != want:
    raise DataError(f"{where}: has images of shape {x.shape[1:]}, but data.image_shape is {want}")
  return x


def _own_npz_split(config, split):
  """A custom dataset's npz split; a missing validation split is carved from train (module doc)."""
  root, name = data_dir(config), config.data.dataset
  wants_valid = split in VALID_KEYS
  if not config.data.get("valid_split") or not (wants_valid or split == config.data.train_split):
    return find_npz_split(root, name, split)
  try:
    found = find_npz_split(root, name, "valid")  # x_valid / x_val / x_validation
  except FileNotFoundError:
    found = None  # no validation split: carve it from train
  if found is not None:
    return found if wants_valid else find_npz_split(root, name, split)
  x, where = find_npz_split(root, name, config.data.train_split)
  kept, held = holdout(len(x))
  _say_once(f"{name}: no validation array (x_valid / x_val / x_validation) beside {where}: "
            f"validation = {len(held)} of its {len(x)} images (deterministic "
            f"{HOLDOUT_FRACTION:.0%} holdout, seed {HOLDOUT_SEED}); training on the other "
            f"{len(kept)}")
  if split in VALID_KEYS:
    return np.asarray(x)[held], f"{where} (held-out part)"
  return np.asarray(x)[kept], where


def _load_with_origin(config, split):
  name = config.data.dataset
  err = dataset_name_error(name)
  if err:
    raise ValueError(err)
  source = resolve_source(config)
  if source == "synthetic":
    x = synthetic_split(tuple(config.data.image_shape), split, int(config.seed),
                        2 if config.data.binarization == "static" else 256,
                        size=int(config.data.get("synthetic_size", 0)) or None)
    return x, f"synthetic split {split!r}"
  if source == "npz":
    if is_builtin(name):
      return find_npz_split(data_dir(config), name, split)
    return _own_npz_split(config, split)
  if source == "images":
    if is_builtin(name):
      raise ValueError(f"data.source='images' is for datasets of your own, not the built-in "
                       f"{name!r} (give it another name)")
    return find_image_split(data_dir(config), name, split)
  tname = tfds_name(config)
  if is_builtin(name) and tname != name:
    raise ValueError(f"data.dataset={name!r} names a built-in dataset but data.source reads "
                     f"TFDS {tname!r}: set data.dataset to a name of your own")
  x = load_tfds_split(tname, split, config.data.get("tfds_data_dir", ""))
  return x, f"TFDS {tname!r} split {split!r}"


def load_raw_split(config, split) -> np.ndarray:
  """Split ``split`` as uint8 NHWC, before binarization."""
  x, where = _load_with_origin(config, split)
  return _to_nhwc(x, config, where)


def resolve_data_config(config):
  """``config`` with ``data.image_shape`` taken from the data for a dataset of your own.

  Built-in datasets keep their fixed shapes (checked by the config validation).
  Reads (and checks) the training split, so bad data fails here, before
  anything is built. Returns the same ``ConfigDict``, changed in place.
  """
  name = config.data.dataset
  if is_builtin(name) or dataset_name_error(name) or source_error(config.data.source):
    return config
  x, where = _load_with_origin(config, config.data.train_split)
  x = check_images(x, where, config.data.binarization)
  shape = tuple(int(v) for v in x.shape[1:])
  _say_once(f"{name}: {len(x)} training images of shape {shape} from {where}")
  if tuple(config.data.image_shape) != shape:
    config.data.image_shape = shape
  return config


def load_split(config, split, num_examples=-1) -> np.ndarray:
  """Model-ready uint8 images of an evaluation split (dynamic -> the fixed seeded draw)."""
  x = load_raw_split(config, split)
  if num_examples is not None and num_examples > 0:
    x = x[:num_examples]
  b = config.data.binarization
  if b == "dynamic":
    return fixed_binarization(x, config.data.binarization_seed)
  if b == "threshold":
    return (x > 127).astype(np.uint8)
  if b == "static":
    _check_binary(x, config.data.dataset, split)
  return x


def _check_binary(x, name, split):
  if x.max(initial=0) > 1:
    raise DataError(f"{name} split {split!r} has values up to {x.max()} but "
                    f"data.binarization='static' needs {{0, 1}} pixels; use 'dynamic' or "
                    f"'threshold' for 8-bit data")


def eval_split_name(config, which="test") -> str:
  """The configured split for ``which`` in {train, valid, test}; valid falls back to test."""
  split = config.data.get(f"{which}_split", "")
  if which == "valid" and not split:
    split = config.data.test_split
  return split


# ------------------------------------------------------------------ training stream
def _stream_seed(seed, tag):
  return tf.constant([int(seed), tag], tf.int64)


def epoch_permutation(num_examples, seed, epoch):
  """The stateless order of epoch ``epoch``: ``argsort(U_(seed, epoch))``, int64 ``[N]``."""
  u = tf.random.stateless_uniform(
      [num_examples],
      tf.random.experimental.stateless_fold_in(_stream_seed(seed, _PERMUTATION_TAG), epoch))
  return tf.cast(tf.argsort(u, stable=True), tf.int64)


def train_dataset(config, start_step=0, input_context=None, raw=None):
  """The infinite, resumable training stream of per-replica uint8 batches.

  Args:
    config: the run config.
    start_step: the global step to resume at (the stream skips what steps
      ``0 .. start_step - 1`` consumed).
    input_context: ``tf.distribute.InputContext`` (None: one pipeline, one replica).
    raw: optional pre-loaded raw training array (``load_raw_split(config, train_split)``).
  """
  global_batch = int(config.train.batch_size)
  if raw is None:
    raw = load_raw_split(config, config.data.train_split)
  mode = config.data.binarization
  if mode == "static":
    _check_binary(raw, config.data.dataset, config.data.train_split)
  elif mode == "threshold":
    raw = (raw > 127).astype(np.uint8)
  n = int(raw.shape[0])
  pipelines, pipeline_id, per_replica = 1, 0, global_batch
  if input_context is not None:
    pipelines = input_context.num_input_pipelines
    pipeline_id = input_context.input_pipeline_id
    per_replica = input_context.get_per_replica_batch_size(global_batch)
  if global_batch % pipelines:
    raise ValueError(f"train.batch_size={global_batch} is not divisible by the "
                     f"{pipelines} input pipelines")
  chunk = global_batch // pipelines
  seed = int(config.seed)
  first = int(start_step) * global_batch
  images = tf.constant(raw)

  def epoch_indices(epoch):
    idx = epoch_permutation(n, seed, epoch)
    return tf.data.Dataset.from_tensor_slices(
        (tf.fill([n], epoch), idx))

  ds = tf.data.Dataset.range(first // n, np.iinfo(np.int64).max).flat_map(epoch_indices)
  ds = ds.skip(first % n)
  if pipelines > 1:
    lo = pipeline_id * chunk
    ds = ds.batch(global_batch, drop_remainder=True)
    ds = ds.map(lambda e, i: (e[lo:lo + chunk], i[lo:lo + chunk])).unbatch()
  bin_seed = _stream_seed(seed, _BINARIZATION_TAG)

  def load(epoch, index):
    x = tf.gather(images, index)
    if mode != "dynamic":
      return x
    s = tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(bin_seed, epoch), index)
    u = tf.random.stateless_uniform(tf.shape(x), s)
    return tf.cast(u < tf.cast(x, tf.float32) / 255.0, tf.uint8)

  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(per_replica, drop_remainder=True)
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def distributed_train_dataset(strategy, config, start_step=0):
  """``train_dataset`` for every replica of ``strategy`` (one pipeline per worker)."""
  raw = load_raw_split(config, config.data.train_split)
  return strategy.distribute_datasets_from_function(
      lambda ctx: train_dataset(config, start_step, ctx, raw=raw))


__all__ = ["DATASETS", "SOURCES", "BINARIZATIONS", "ENV_VAR", "DataError", "data_dir",
           "resolve_source", "resolve_data_config", "check_images", "holdout", "tfds_name",
           "find_npz_split", "find_image_split", "read_image_files", "load_npz_split", "load_tfds_split", "omniglot_to_28", "synthetic_split",
           "fixed_binarization", "load_raw_split", "load_split", "eval_split_name",
           "epoch_permutation", "train_dataset", "distributed_train_dataset"]
