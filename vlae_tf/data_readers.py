"""Reading a dataset's splits from .npz files, image folders or the synthetic generator.

Each reader returns ``(array, where)``: the split's images and a phrase naming
the file and array (or folder) they came from, for the one-line
:class:`vlae_tf.datasets.DataError` of :func:`check_split_images`. Which reader a
config uses is decided by :func:`vlae_tf.data.resolve_source`; TFDS is read by
:mod:`vlae_tf.data_tfds`. This module imports NumPy and PIL, not TensorFlow.

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
  ``x_validation``. :func:`read_npz` is the one reader of a single array of an
  .npz file (also for the ``vlae`` command's ``--data``).

Image folders (``data.source="images"``)
  ``D/<name>/`` if that exists, else ``D``. With sub-folders ``train``,
  ``test`` (and ``valid`` / ``val`` / ``validation``) each is a split, read
  recursively in sorted path order; otherwise all files (recursively) are
  split deterministically (below) into train / valid / test. Grayscale files
  give C = 1; if any file has colour, all are RGB.

Your own datasets (any name that is not built in)
  Image shape and channels come from the data (:func:`vlae_tf.data.resolve_data_config`
  writes them into ``data.image_shape``, so ``config.json`` records them).
  A missing validation split is carved from the training split: the images
  at positions ``perm[:k]`` with ``perm`` the NumPy PCG64 permutation of
  seed :data:`HOLDOUT_SEED` and ``k = max(1, round(0.1 N))`` are validation,
  the rest (in their original order) train (:func:`holdout`); a single image
  folder gives 10% test, then 10% validation, the same way. It is logged once.
  The built-in datasets without a validation split of their own (mnist,
  omniglot, cifar10) carve one by the same :func:`holdout` when their config
  asks for it (:func:`vlae_tf.data.carves_valid`; CIFAR-10: 5,000 of 50,000).

The checks every split passes (:func:`check_split_images`)
  A numeric array ``[N, H, W]`` / ``[N, H, W, C]`` (C = 1 or 3), N >= 1,
  finite integer pixels in 0..255 ({0, 1} for ``static``). A problem raises
  :class:`vlae_tf.datasets.DataError`, one line naming the file, the array
  (or image file) and what was expected.
"""

from __future__ import annotations

import glob
import os
import zipfile

import numpy as np
from PIL import Image

from vlae_tf import validation
from vlae_tf.datasets import (ENV_VAR, DataError, data_dir, dataset_name_error, is_builtin,
                              source_error)

VALID_KEYS = ("valid", "val", "validation")  # npz x_<key> / image sub-folder, first found wins
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
HOLDOUT_FRACTION, HOLDOUT_SEED = 0.1, 0
_NPZ_FILES = {"omniglot": ("omniglot_28_box", "omniglot")}
_SYNTHETIC_SIZE = {"train": 256, "valid": 64, "test": 64}


# ------------------------------------------------------------------ .npz files
def npz_arrays(path) -> list:
  """The array names of the .npz file ``path``; :class:`DataError` when it is not one."""
  try:
    with np.load(path, allow_pickle=False) as z:
      return list(z.files)
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f"{path}: expected a NumPy .npz archive ({type(e).__name__}: {e})") from e


def _read_array(path, key):
  try:
    with np.load(path, allow_pickle=False) as z:
      return z[key]
  except ValueError as e:  # object arrays: ragged image lists, strings, ...
    raise DataError(f"{path} key {key!r}: expected one numeric array of images [N, H, W(, C)] "
                    f"of equal size ({e})") from e
  except (OSError, EOFError, zipfile.BadZipFile) as e:   # a damaged member (bad CRC, cut short)
    raise DataError(f"{path} key {key!r}: expected a readable NumPy .npz archive "
                    f"({type(e).__name__}: {e})") from e


def read_npz(path, keys=(), only_array=False):
  """``(array, key)``: one array of the .npz file ``path``, never unpickling anything.

  The array is the file's only one when ``only_array`` and it holds one,
  else the first of ``keys`` it holds. Raises ``FileNotFoundError`` when there
  is no such file and :class:`DataError` (one line naming ``path``) when it is
  not an .npz archive, holds none of ``keys`` (the message lists the arrays it
  has, ``has arrays ['a', 'b']``) or the array is not numeric.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file")
  have = npz_arrays(path)
  if only_array and len(have) == 1:
    return _read_array(path, have[0]), have[0]
  key = next((k for k in keys if k in have), None)
  if key is None:
    raise DataError(f"{path} has arrays {have}; expected "
                    f"{' / '.join(map(repr, keys)) or 'one array'}")
  return _read_array(path, key), key


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
      have = npz_arrays(f)
      key = next((k for k in keys if k in have), None)
      if key is None:
        tried.append(f"{f} (has {', '.join(have)}; no {' / '.join(keys)})")
        break
      arrays.append(_read_array(f, key))
      where.append(f"{f} key {key!r}")
    else:
      if len(arrays) > 1:
        return _concat(arrays, where), " + ".join(where)
      return arrays[0], where[0]
  raise FileNotFoundError(f"split {split!r} of {name!r} not found as array "
                          f"{' / '.join(map(repr, keys))}; tried:\n  " + "\n  ".join(tried))


def has_npz_split(root, name, split) -> bool:
  """Whether the .npz layout under ``root`` holds split ``split`` of ``name`` (reads no array)."""
  if not root or (root.endswith(".npz") and not os.path.isfile(root)):
    return False
  keys = _split_keys(split)
  return any(all(os.path.isfile(f) for f in files) and
             all(any(k in keys for k in npz_arrays(f)) for f in files)
             for files in _npz_candidates(root, name, split))  # find_npz_split's lookup


def _concat(arrays, where):
  for a, w in zip(arrays[1:], where[1:]):
    if np.ndim(a) != np.ndim(arrays[0]) or np.shape(a)[1:] != np.shape(arrays[0])[1:]:
      raise DataError(f"{w}: expected images of shape {np.shape(arrays[0])[1:]} like "
                      f"{where[0]}, got {np.shape(a)[1:]}")
  return np.concatenate(arrays)


def own_npz_split(root, name, split, train_split="train", carve_valid=True):
  """``(array, where)`` of a custom dataset's split; a missing validation split is carved from train.

  With ``carve_valid`` (the config has a ``data.valid_split``), asking for the
  validation split or for ``train_split`` of a file without ``x_valid`` /
  ``x_val`` / ``x_validation`` gives the held-out / kept part of
  ``train_split`` (:func:`holdout`, module doc).
  """
  wants_valid = split in VALID_KEYS
  if not carve_valid or not (wants_valid or split == train_split):
    return find_npz_split(root, name, split)
  if has_npz_split(root, name, "valid"):  # x_valid / x_val / x_validation
    return find_npz_split(root, name, "valid" if wants_valid else split)
  x, where = find_npz_split(root, name, train_split)
  kept, held = holdout(len(x))
  say_once(f"{name}: no validation array (x_valid / x_val / x_validation) beside {where}: "
           f"validation = {len(held)} of its {len(x)} images (deterministic "
           f"{HOLDOUT_FRACTION:.0%} holdout, seed {HOLDOUT_SEED}); training on the other "
           f"{len(kept)}")
  if wants_valid:
    return np.asarray(x)[held], f"{where} (held-out part)"
  return np.asarray(x)[kept], where


# ------------------------------------------------------------------ image folders
def _images_root(root, name):
  return os.path.join(root, name) if os.path.isdir(os.path.join(root, name)) else root


def _has_images(folder):
  for _, _, files in os.walk(folder):
    if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
      return True
  return False


def is_image_folder(root, name) -> bool:
  """True when ``root`` is a folder holding image files of ``name`` and no .npz of its training split."""
  return (os.path.isdir(root) and
          not any(os.path.exists(f) for c in _npz_candidates(root, name, "train") for f in c) and
          _has_images(_images_root(root, name)))


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


def has_valid_folder(root, name) -> bool:
  """Whether the image folder of ``name`` has a ``valid`` / ``val`` / ``validation`` sub-folder."""
  return "valid" in _split_folders(_images_root(root, name))


def holdout(n, fraction=HOLDOUT_FRACTION, seed=HOLDOUT_SEED):
  """``(kept, held)`` sorted index arrays: ``held = perm[:k]``, ``k = max(1, round(fraction n))``."""
  k = max(1, int(round(fraction * n))) if n > 1 else 0
  perm = np.random.default_rng(seed).permutation(n)
  return np.sort(perm[k:]), np.sort(perm[:k])


_SAID = set()


def say_once(msg):
  """Prints ``data: msg`` the first time this process sees ``msg``."""
  if msg not in _SAID:
    _SAID.add(msg)
    print(f"data: {msg}", flush=True)


def _existing_images_root(root, name):
  folder = _images_root(root, name)
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"image folder {folder!r} of dataset {name!r} does not exist")
  return folder


def find_image_split(root, name, split):
  """``(array, where)`` of split ``split`` from an image folder (see module doc)."""
  folder = _existing_images_root(root, name)
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
    say_once(f"{name}: {folder} has no valid/val/validation sub-folder: validation = "
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
  say_once(f"{name}: {folder} has no train/ test/ sub-folders: its {len(x)} images (sorted "
            f"paths) are split deterministically (seed {HOLDOUT_SEED}) into {len(train)} train, "
            f"{len(valid)} valid, {len(test)} test")
  return x[{"train": train, "valid": valid, "test": test}[base]], f"{folder} ({base} part)"


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


# ------------------------------------------------------------------ the checks
def check_local_training_data(config) -> None:
  """Raises now what training would later for missing or bad local training files of a config.

  ``train.py`` calls it before importing TensorFlow (a missing folder or a bad .npz: one line at
  once, not after the model is built), with the readers' own errors: a .npz of your own is read
  and checked (:func:`check_split_images`); built-in files and image folders need only be found
  (their pixels are read once, later); synthetic data and TFDS are not checked.
  """
  d = config.data
  name, source, root = d.dataset, d.source, data_dir(config)
  if (name == "synthetic" or dataset_name_error(name) or source_error(source)
      or source.startswith("tfds") or (source == "auto" and not root)):
    return
  builtin = is_builtin(name)
  if source == "images" or (source == "auto" and not builtin and is_image_folder(root, name)):
    if not builtin:                 # (a built-in name: vlae_tf.data's error, later)
      _existing_images_root(root, name)
  elif builtin:
    if not has_npz_split(root, name, d.train_split):
      find_npz_split(root, name, d.train_split)        # raises, saying what it tried
  else:
    x, where = own_npz_split(root, name, d.train_split, d.train_split, bool(d.get("valid_split")))
    check_split_images(x, where, d.binarization)


def check_split_images(x, where, binarization="dynamic") -> np.ndarray:
  """A split's images as uint8 ``[N, H, W, C]`` (module doc); ``DataError`` names ``where``.

  The check is :func:`vlae_tf.validation.image_array`'s, in the words of a config.
  """
  static = binarization == "static"
  want = ("data.binarization='static' pixels in {0, 1} (use 'dynamic' or 'threshold' for "
          "8-bit data)") if static else "integer pixels in 0..255 (uint8)"
  return validation.image_array(x, where, num_levels=2 if static else 256, error=DataError,
                                expected=want, what="split")


__all__ = ["VALID_KEYS", "IMAGE_EXTENSIONS", "HOLDOUT_FRACTION", "HOLDOUT_SEED", "npz_arrays",
           "read_npz", "find_npz_split", "has_npz_split", "own_npz_split", "is_image_folder",
           "read_image_files", "has_valid_folder", "holdout", "say_once", "find_image_split",
           "synthetic_split", "check_local_training_data", "check_split_images"]
