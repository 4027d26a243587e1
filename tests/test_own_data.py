"""A user's own data: any dataset name from an .npz, an image folder or ``tfds:<name>``.

Shapes come from the data, a missing validation split is carved deterministically,
bad data fails with one line naming the file, the array and what was expected, and a
config.json written before any of this still resumes.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import tiny_config
from vlae_tf import config as vconfig
from vlae_tf import data, training, workdir

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def own_config(data_dir, name="my_shapes", binarization="static", source="auto"):
  """A tiny run on a dataset the repository never saw; image_shape deliberately wrong (4x4)."""
  cfg = tiny_config()
  cfg.data.dataset = name
  cfg.data.source = source
  cfg.data.data_dir = str(data_dir)
  cfg.data.binarization = binarization
  return cfg


def _binary(n, seed, shape=(6, 6)):
  return (np.random.default_rng(seed).random((n,) + shape) < 0.5).astype(np.uint8)


# ------------------------------------------------------------------ npz
def test_npz_shape_from_data_and_valid_alias(tmp_path):
  train, val, test = _binary(20, 0), _binary(4, 1), _binary(5, 2)
  np.savez(tmp_path / "my_shapes.npz", x_train=train, x_val=val, x_test=test)
  cfg = own_config(tmp_path / "my_shapes.npz")
  data.resolve_data_config(cfg)
  assert tuple(cfg.data.image_shape) == (6, 6, 1)                # from the data, not the config
  vconfig.validate_config(cfg)
  np.testing.assert_array_equal(data.load_split(cfg, "train")[..., 0], train)   # all of x_train
  np.testing.assert_array_equal(data.load_split(cfg, "valid")[..., 0], val)     # x_val
  np.testing.assert_array_equal(data.load_split(cfg, "test")[..., 0], test)


def test_npz_missing_validation_is_carved_from_train_deterministically(tmp_path, capsys):
  train = np.arange(30 * 36, dtype=np.int64).reshape(30, 6, 6) % 2   # row i: a unique pattern
  train[:, 0, :] = np.unpackbits(np.arange(30, dtype=np.uint8)[:, None], axis=1)[:, 2:]
  np.savez(tmp_path / "shapes.npz", x_train=train.astype(np.uint8), x_test=_binary(3, 2))
  cfg = own_config(tmp_path, name="shapes")                        # folder holding shapes.npz
  data.resolve_data_config(cfg)
  tr, va = data.load_split(cfg, "train"), data.load_split(cfg, "valid")
  assert len(tr) == 27 and len(va) == 3                            # round(0.1 * 30) held out
  kept, held = data.holdout(30)
  np.testing.assert_array_equal(va[..., 0], train[held])
  np.testing.assert_array_equal(tr[..., 0], train[kept])           # train keeps its order
  assert not set(held) & set(kept) and sorted(set(held) | set(kept)) == list(range(30))
  np.testing.assert_array_equal(data.holdout(30)[1], held)          # same split every time
  out = capsys.readouterr().out
  assert out.count("no validation array") == 1 and "seed 0" in out and "other 27" in out
  # The training stream sees only the kept images.
  cfg.train.batch_size = 27
  first_epoch = next(iter(data.train_dataset(cfg))).numpy()[..., 0]
  assert sorted(map(bytes, first_epoch)) == sorted(map(bytes, train[kept].astype(np.uint8)))


# ------------------------------------------------------------------ image folders
def _png(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)


def test_image_folder_with_split_subfolders(tmp_path):
  rng = np.random.default_rng(0)
  root = tmp_path / "faces"
  imgs = {s: rng.integers(0, 256, (n, 5, 7), dtype=np.uint8)
          for s, n in (("train", 6), ("validation", 2), ("test", 3))}
  for s, x in imgs.items():
    for i, a in enumerate(x):
      _png(root / s / f"class{i % 2}" / f"{i:03d}.png", a)         # nested class folders
  cfg = own_config(tmp_path, name="faces", binarization="dynamic")  # D/<name>/ found
  assert data.resolve_source(cfg) == "images"
  data.resolve_data_config(cfg)
  assert tuple(cfg.data.image_shape) == (5, 7, 1)
  got = data.load_raw_split(cfg, "train")[..., 0]
  order = sorted(range(6), key=lambda i: (f"class{i % 2}", f"{i:03d}"))   # sorted paths
  np.testing.assert_array_equal(got, imgs["train"][order])
  assert len(data.load_raw_split(cfg, "valid")) == 2 and len(data.load_raw_split(cfg, "test")) == 3
  x = data.load_split(cfg, "test")                                 # dynamic: one fixed draw
  assert set(np.unique(x)) <= {0, 1}


def test_single_image_folder_is_split_deterministically_and_rgb_gives_three_channels(tmp_path):
  rng = np.random.default_rng(1)
  x = rng.integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
  for i, a in enumerate(x):
    _png(tmp_path / "pics" / f"{i:02d}.png", a)
  cfg = own_config(tmp_path / "pics", name="pics", binarization="none", source="images")
  cfg.model.likelihood = "logistic_mixture"
  data.resolve_data_config(cfg)
  assert tuple(cfg.data.image_shape) == (4, 4, 3)
  parts = {s: data.load_raw_split(cfg, s) for s in ("train", "valid", "test")}
  assert [len(parts[s]) for s in ("train", "valid", "test")] == [16, 2, 2]
  seen = np.concatenate(list(parts.values())).reshape(20, -1)
  assert sorted(map(bytes, seen)) == sorted(map(bytes, x.reshape(20, -1)))   # a partition
  np.testing.assert_array_equal(data.load_raw_split(cfg, "test"), parts["test"])


# ------------------------------------------------------------------ TFDS by name
def test_tfds_source_by_name_takes_its_image_feature(monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  cfg = own_config("", name="fashion", binarization="dynamic", source="tfds:fashion_mnist")
  monkeypatch.delenv(data.ENV_VAR, raising=False)
  with tfds.testing.mock_data(num_examples=10):
    data.resolve_data_config(cfg)
    x = data.load_split(cfg, "test")
  assert tuple(cfg.data.image_shape) == (28, 28, 1) and x.shape == (10, 28, 28, 1)
  assert set(np.unique(x)) <= {0, 1}
  bad = own_config("", name="binarized_mnist", source="tfds:fashion_mnist")
  with pytest.raises(ValueError, match="names a built-in dataset"):
    data.load_raw_split(bad, "train")


# ------------------------------------------------------------------ bad data
BAD = [
    ("strings", {"x_train": np.array([["a"]] * 3)}, "static",
     r"key 'x_train': expected a numeric image array.*got dtype <U1"),
    ("nan", {"x_train": np.full((3, 6, 6), np.nan, np.float32)}, "dynamic",
     r"key 'x_train': expected integer pixels in 0\.\.255.*NaN"),
    ("range_static", {"x_train": np.full((3, 6, 6), 7, np.uint8)}, "static",
     r"key 'x_train': expected data.binarization='static' pixels in \{0, 1\}"),
    ("range_8bit", {"x_train": np.full((3, 6, 6), 300, np.int16)}, "dynamic",
     r"key 'x_train': expected integer pixels in 0\.\.255.*\[300, 300\]"),
    ("unit_floats", {"x_train": np.full((3, 6, 6), 0.5, np.float32)}, "dynamic",
     r"scale \[0, 1\] floats to 0\.\.255"),
    ("empty", {"x_train": np.zeros((0, 6, 6), np.uint8)}, "static",
     r"key 'x_train': expected at least one image, the split is empty"),
    ("ragged", {"x_train": np.array([np.zeros((6, 6)), np.zeros((5, 6))], dtype=object)},
     "static", r"key 'x_train': expected one numeric array of images .* of equal size"),
    ("bad_rank", {"x_train": np.zeros((3, 6), np.uint8)}, "static",
     r"key 'x_train': expected images \[N, H, W\] or \[N, H, W, C\]"),
]


@pytest.mark.parametrize("label,arrays,binarization,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_npz_data_names_file_key_and_expectation(tmp_path, label, arrays, binarization, msg):
  path = tmp_path / f"{label}.npz"
  np.savez(path, x_test=_binary(2, 0), **arrays)
  cfg = own_config(path, name=label, binarization=binarization)
  with pytest.raises(data.DataError, match=msg) as e:
    data.resolve_data_config(cfg)
  assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_mixed_image_sizes_name_the_odd_file(tmp_path):
  _png(tmp_path / "a.png", np.zeros((6, 6), np.uint8))
  _png(tmp_path / "b.png", np.zeros((5, 6), np.uint8))
  cfg = own_config(tmp_path, name="mixed", binarization="threshold", source="images")
  with pytest.raises(data.DataError, match=r"expected every image 6x6 .*a\.png, but .*b\.png is 5x6"):
    data.resolve_data_config(cfg)


@pytest.mark.subprocess
def test_train_py_bad_data_is_one_line_and_no_traceback(tmp_path):
  path = tmp_path / "bad.npz"
  np.savez(path, x_train=np.full((3, 28, 28), 2, np.uint8), x_test=_binary(2, 0, (28, 28)))
  r = subprocess.run([sys.executable, os.path.join(REPO, "train.py"),
                      f"--config={os.path.join(REPO, 'zoo', 'mnist_cpu.py')}",
                      f"--workdir={tmp_path / 'run'}", "--config.data.dataset=bad_shapes",
                      f"--config.data.data_dir={path}"],
                     capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert r.returncode == 2, r.stderr[-3000:]
  assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
  assert f"{path} key 'x_train'" in r.stderr and "{0, 1}" in r.stderr
  assert not (tmp_path / "run").exists()                           # nothing written


# ------------------------------------------------------------------ a run on it, and old runs
@pytest.mark.slow
def test_training_run_on_own_data_records_the_real_dataset(tmp_path):
  np.savez(tmp_path / "my_shapes.npz", x_train=_binary(40, 0), x_test=_binary(8, 1))
  cfg = own_config(tmp_path / "my_shapes.npz")
  cfg.train.steps, cfg.train.log_every, cfg.train.checkpoint_every = 2, 1, 2
  cfg.train.eval_every, cfg.eval.periodic_examples, cfg.eval.num_images = 0, 4, 0
  cfg.eval.iwae_samples, cfg.eval.batch_size = 2, 8
  data.resolve_data_config(cfg)
  run_dir = str(tmp_path / "run")
  assert training.train(cfg, run_dir)["step"] == 2
  with open(os.path.join(run_dir, workdir.CONFIG_FILE)) as f:
    stored = json.load(f)
  assert stored["data"]["dataset"] == "my_shapes" and stored["data"]["image_shape"] == [6, 6, 1]
  result = workdir.evaluate_workdir(run_dir)                      # from config.json alone
  assert result["dataset"] == "my_shapes" and result["num_examples"] == 8
  # Resuming with the config as the command line gives it (before the shape is resolved) works.
  again = own_config(tmp_path / "my_shapes.npz")
  for k in ("steps", "log_every", "checkpoint_every", "eval_every"):
    setattr(again.train, k, getattr(cfg.train, k))
  for k in ("periodic_examples", "num_images", "iwae_samples", "batch_size"):
    setattr(again.eval, k, getattr(cfg.eval, k))
  workdir.check_config(data.resolve_data_config(again), run_dir)


@pytest.mark.parametrize("name", ["mnist_cpu", "cifar10_cpu"])
def test_config_json_written_before_own_data_support_still_resumes(tmp_path, name):
  """config.json files written by commit 7bdb780 (before this feature) resume with today's code.

  Resuming reruns the stored config: it must still validate, be left alone by the
  own-data shape resolution (built-in datasets keep their shapes), and match itself
  key for key; and today's zoo config must have exactly the stored key set (values
  of the zoo configs may have been retuned since, which is not this feature's business).
  """
  from vlae_tf import zoo
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  shutil.copy(os.path.join(HERE, "fixtures", f"config_{name}_7bdb780.json"),
              run_dir / workdir.CONFIG_FILE)
  stored = workdir.read_workdir_config(str(run_dir))
  resumed = workdir.read_workdir_config(str(run_dir))
  vconfig.validate_config(resumed)
  data.resolve_data_config(resumed)
  assert vconfig.flatten(resumed) == vconfig.flatten(stored)          # nothing resolved away
  assert workdir.config_differences(stored, resumed) == []
  workdir.check_config(resumed, str(run_dir))                      # the check a resume runs
  today = zoo.get_config(name)
  data.resolve_data_config(today)
  assert set(vconfig.flatten(stored)) == set(vconfig.flatten(vconfig.from_json(
      vconfig.jsonable(today))))                                    # no key added or lost
