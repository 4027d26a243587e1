"""Data sources, binarization and the resumable, shardable training stream."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import run_train_py, tiny_config
from vlae_tf import config as vconfig
from vlae_tf import data, data_readers, data_tfds, datasets
from vlae_tf import training


def _cfg(dataset="mnist", binarization="dynamic", shape=(4, 4, 1), data_dir="", batch=6,
         valid_split=""):
  """A built-in dataset read whole: no validation split is carved unless ``valid_split`` asks."""
  cfg = tiny_config(image_shape=shape)
  cfg.data.dataset = dataset
  cfg.data.valid_split = valid_split
  cfg.data.source = "npz"
  cfg.data.data_dir = data_dir
  cfg.data.binarization = binarization
  cfg.train.batch_size = batch
  return cfg


def _stream(cfg, start, n, ctx=None):
  it = iter(data.train_dataset(cfg, start_step=start, input_context=ctx))
  return [next(it).numpy() for _ in range(n)]


# ------------------------------------------------------------------ npz lookup
def _npz_split(root, name, split):
  return data_readers.find_npz_split(root, name, split)[0]


def test_npz_single_file_nested_and_parts(tmp_path):
  rng = np.random.default_rng(0)
  a = rng.integers(0, 2, (5, 4, 4), dtype=np.uint8)
  np.savez(tmp_path / "mnist.npz", x_train=a, x_test=a[:2])
  np.testing.assert_array_equal(_npz_split(str(tmp_path), "mnist", "train"), a)
  # The shared layout: <name>/<name>.npz, and numbered parts concatenated in order 1, 2, ..., 10.
  os.makedirs(tmp_path / "cifar10")
  parts = [rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8) for _ in range(11)]
  for k, p in enumerate(parts, 1):
    np.savez(tmp_path / "cifar10" / f"cifar10_train_{k}.npz", x_train=p, y_train=np.zeros(2))
  np.savez(tmp_path / "cifar10" / "cifar10_test.npz", x_test=parts[0])
  np.testing.assert_array_equal(_npz_split(str(tmp_path), "cifar10", "train"),
                                np.concatenate(parts))
  np.testing.assert_array_equal(_npz_split(str(tmp_path), "cifar10", "test"),
                                parts[0])
  # Omniglot's 28x28 copy with background / evaluation keys; data_dir may name a file directly.
  os.makedirs(tmp_path / "omniglot")
  np.savez(tmp_path / "omniglot" / "omniglot_28_box.npz", x_background=a, x_evaluation=a[:1])
  np.testing.assert_array_equal(
      _npz_split(str(tmp_path), "omniglot", "evaluation"), a[:1])
  np.testing.assert_array_equal(
      _npz_split(str(tmp_path / "mnist.npz"), "anything", "test"), a[:2])


def test_npz_errors_name_the_problem(tmp_path):
  np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 4, 4), np.uint8))
  with pytest.raises(FileNotFoundError, match=r"(?s)x_valid.*has x_train"):
    _npz_split(str(tmp_path), "mnist", "valid")
  with pytest.raises(FileNotFoundError, match="VLAE_DATA_DIR"):
    _npz_split("", "mnist", "train")
  cfg = _cfg(data_dir=str(tmp_path), shape=(5, 5, 1))
  with pytest.raises(ValueError, match=r"shape \(4, 4, 1\).*image_shape is \(5, 5, 1\)"):
    data.load_raw_split(cfg, "train")
  np.savez(tmp_path / "binarized_mnist.npz", x_train=np.full((2, 4, 4), 200, np.uint8))
  with pytest.raises(ValueError, match="static.*0, 1"):
    data.load_split(_cfg("binarized_mnist", "static", data_dir=str(tmp_path)), "train")


def test_read_npz_is_the_one_reader_of_an_array(tmp_path):
  # data.py, the vlae commands' --data (vlae compress's too) and a zoo folder's examples.npz
  # read arrays of .npz files through it; a damaged file is a one-line DataError, never a traceback.
  x = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
  np.savez(tmp_path / "one.npz", images=x)
  np.savez(tmp_path / "two.npz", x_test=x, labels=np.zeros(2))
  got, key = data_readers.read_npz(str(tmp_path / "one.npz"), only_array=True)
  assert key == "images" and np.array_equal(got, x)
  assert data_readers.read_npz(str(tmp_path / "two.npz"), ["x", "x_test"])[1] == "x_test"
  with pytest.raises(datasets.DataError, match=r"two\.npz has arrays \['x_test', 'labels'\]; "
                                               r"expected 'x'$"):
    data_readers.read_npz(str(tmp_path / "two.npz"), ["x"], only_array=True)
  ragged = np.empty(2, dtype=object)
  ragged[0], ragged[1] = x[0], x[0, 0]
  np.savez(tmp_path / "ragged.npz", x=ragged)
  with pytest.raises(datasets.DataError, match="ragged.npz key 'x': expected one numeric array"):
    data_readers.read_npz(str(tmp_path / "ragged.npz"), ["x"])   # never unpickled
  (tmp_path / "text.npz").write_text("not a zip")
  with pytest.raises(datasets.DataError, match="text.npz: expected a NumPy .npz archive"):
    data_readers.read_npz(str(tmp_path / "text.npz"), ["x"])
  with pytest.raises(FileNotFoundError, match="no such file"):
    data_readers.read_npz(str(tmp_path / "none.npz"), ["x"])
  np.savez(tmp_path / "damaged.npz", x=np.zeros((64, 16), np.uint8))
  damaged = bytearray((tmp_path / "damaged.npz").read_bytes())
  damaged[200] ^= 0xFF                                   # the member's bytes, not the directory
  (tmp_path / "damaged.npz").write_bytes(bytes(damaged))
  with pytest.raises(datasets.DataError, match=r"damaged.npz key 'x': expected a readable NumPy "
                                               r"\.npz archive \(BadZipFile: Bad CRC-32"):
    data_readers.read_npz(str(tmp_path / "damaged.npz"), ["x"])


def test_the_random_streams_have_one_table_of_distinct_fixed_tags():
  # Changing a tag changes every run's data order, binarization or posterior noise (and a
  # resumed run would no longer match its first part), so the values are fixed here.
  assert data.STREAM_TAGS == {"permutation": 101, "binarization": 202, "posterior_noise": 303}
  assert data.stream_seed(7, "posterior_noise").numpy().tolist() == [7, 303]


def test_source_resolution(monkeypatch, tmp_path):
  cfg = _cfg()
  cfg.data.source = "auto"
  monkeypatch.delenv(datasets.ENV_VAR, raising=False)
  assert data.resolve_source(cfg) == "tfds"
  monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
  assert data.resolve_source(cfg) == "npz" and datasets.data_dir(cfg) == str(tmp_path)
  cfg.data.dataset = "synthetic"
  assert data.resolve_source(cfg) == "synthetic"


# ------------------------------------------------------------------ binarization
def test_fixed_binarization_is_a_seeded_bernoulli_draw():
  x = np.full((4000, 2, 2, 1), 64, np.uint8)
  x[:, 0] = 0
  x[:, 1, 0] = 255
  b = data.fixed_binarization(x, seed=3)
  np.testing.assert_array_equal(b, data.fixed_binarization(x, seed=3))
  assert not np.array_equal(b, data.fixed_binarization(x, seed=4))
  assert b[:, 0].max() == 0 and b[:, 1, 0].min() == 1           # p = 0 and p = 1 are exact
  p = b[:, 1, 1].mean()                                          # p = 64 / 255, 4000 draws
  assert abs(p - 64 / 255) < 4 * np.sqrt(0.25 / 4000)


def test_dynamic_binarization_redraws_every_epoch(tmp_path):
  gray = np.full((6, 4, 4), 128, np.uint8)
  np.savez(tmp_path / "mnist.npz", x_train=gray, x_test=gray)
  cfg = _cfg(data_dir=str(tmp_path), batch=6)                    # one batch = one epoch
  e0, e1 = _stream(cfg, 0, 2)
  assert set(np.unique(e0)) <= {0, 1}
  assert not np.array_equal(e0, e1)                              # fresh draw in epoch 1
  np.testing.assert_array_equal(_stream(cfg, 1, 1)[0], e1)       # but the same draw on resume
  many = np.concatenate(_stream(cfg, 0, 100))
  assert abs(many.mean() - 128 / 255) < 4 * np.sqrt(0.25 / many.size)
  test = data.load_split(cfg, "test")                            # eval: one fixed draw
  np.testing.assert_array_equal(test, data.fixed_binarization(gray[..., None], 0))
  # --eval_num_examples=n evaluates the first n images of that same fixed draw.
  np.testing.assert_array_equal(data.load_split(cfg, "test", num_examples=2), test[:2])


# ------------------------------------------------------------------ the stream
def _indexed_npz(tmp_path, n=10):
  """Image k has pixel (0, 0) = k: lets a test read back which example it got."""
  x = np.zeros((n, 4, 4), np.uint8)
  x[:, 0, 0] = np.arange(n)
  np.savez(tmp_path / "cifar10.npz", x_train=x, x_test=x)
  cfg = _cfg("cifar10", "none", data_dir=str(tmp_path), batch=4)
  cfg.data.image_shape = (4, 4, 1)
  return cfg


def test_every_epoch_is_a_permutation_and_resume_skips_exactly(tmp_path):
  cfg = _indexed_npz(tmp_path, n=10)
  batches = _stream(cfg, 0, 10)                                   # 40 examples = 4 epochs
  ids = np.concatenate([b[:, 0, 0, 0] for b in batches])
  epochs = ids.reshape(4, 10)
  for e in epochs:
    assert sorted(e) == list(range(10))
  assert len({tuple(e) for e in epochs}) == 4                     # a new order each epoch
  for start in (1, 3, 7):
    resumed = _stream(cfg, start, 10 - start)
    for a, b in zip(resumed, batches[start:]):
      np.testing.assert_array_equal(a, b)
  cfg.seed = 1
  assert not np.array_equal(np.concatenate(_stream(cfg, 0, 3)), np.concatenate(batches[:3]))


def test_sharded_pipelines_partition_each_global_batch(tmp_path):
  cfg = _indexed_npz(tmp_path, n=10)
  whole = _stream(cfg, 2, 3)
  shards = []
  for pid in range(2):
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid,
                                     num_replicas_in_sync=4)    # 2 workers x 2 replicas
    shards.append(_stream(cfg, 2, 6, ctx))                       # per-replica batches of 1
  for t in range(3):
    got = np.concatenate([shards[0][2 * t], shards[0][2 * t + 1],
                          shards[1][2 * t], shards[1][2 * t + 1]])
    np.testing.assert_array_equal(got, whole[t])


def test_synthetic_images_are_structured():
  x = data_readers.synthetic_split((6, 6, 1), "train", seed=0, num_levels=2, size=400)
  assert x.shape == (400, 6, 6, 1) and set(np.unique(x)) <= {0, 1}
  # Four templates + 5% flips: each image is within 5 of 36 pixels of its nearest template, on average.
  t = data_readers.synthetic_split((6, 6, 1), "test", seed=0, num_levels=2, size=400)
  dist = np.abs(x[:, None].astype(int) - t[None].astype(int)).sum((2, 3, 4)).min(1)
  assert dist.mean() < 5
  assert data_readers.synthetic_split((2, 2, 3), "train", num_levels=256, size=3).max() == 255


# ------------------------------------------------------------------ TFDS
def test_omniglot_conversion_is_ink_box_filter():
  img = np.full((1, 105, 105, 3), 255, np.uint8)                   # white paper
  img[0, :15, :15] = 0                                             # a 15x15 black stroke block
  out = data_tfds.omniglot_to_28(img)
  assert out.shape == (1, 28, 28, 1) and out.dtype == np.uint8
  # 15 = 4 output cells of 3.75: cells (0..3, 0..3) are all ink, the rest paper.
  np.testing.assert_array_equal(out[0, :4, :4, 0], 255)
  assert out[0, 4:].max() == 0 and out[0, :, 4:].max() == 0


def test_tfds_mock_data_trains_through_the_pipeline():
  tfds = pytest.importorskip("tensorflow_datasets")
  cfg = _cfg("mnist", "dynamic", shape=(28, 28, 1), batch=4)
  cfg.data.source = "tfds"
  with tfds.testing.mock_data(num_examples=12):
    x = data.load_split(cfg, "test")
    b = _stream(cfg, 0, 2)
    omni_cfg = _cfg("omniglot", "dynamic", shape=(28, 28, 1))
    omni_cfg.data.source = "tfds"
    omni = data.load_raw_split(omni_cfg, "background")
  assert x.shape == (12, 28, 28, 1) and set(np.unique(x)) <= {0, 1}
  assert b[0].shape == (4, 28, 28, 1) and set(np.unique(b[1])) <= {0, 1}
  assert omni.shape == (12, 28, 28, 1)


def test_tfds_failure_says_how_to_use_local_files(monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")

  def offline(*a, **k):
    raise OSError("network unreachable")
  monkeypatch.setattr(tfds, "load", offline)
  with pytest.raises(RuntimeError, match=r"(?s)VLAE_DATA_DIR.*x_train"):
    data_tfds.load_tfds_split("mnist", "train")


# ------------------------------------------------------------------ a validation split carved from train
def _ids(x):
  """Image k of :func:`_numbered` reads back as k."""
  x = x.reshape(len(x), -1).astype(np.int64)
  return x[:, 0] * 256 + x[:, 1]


def _numbered(n, shape=(4, 4, 3), seed=0):
  """``n`` random uint8 images whose first two bytes number them 0 .. n - 1."""
  x = np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)
  flat = x.reshape(n, -1)
  flat[:, 0], flat[:, 1] = np.arange(n) // 256, np.arange(n) % 256
  return x


def _cifar10_parts(root, x_train, x_test, parts=5):
  """The shared folder's CIFAR-10 layout: cifar10_train_1..5.npz + cifar10_test.npz."""
  os.makedirs(root / "cifar10", exist_ok=True)
  for k, part in enumerate(np.array_split(x_train, parts), 1):
    np.savez(root / "cifar10" / f"cifar10_train_{k}.npz", x_train=part)
  np.savez(root / "cifar10" / "cifar10_test.npz", x_test=x_test)


def _one_epoch(cfg, n):
  """The training stream's first epoch (``n`` images, ``n`` divisible by the batch)."""
  return np.concatenate(_stream(cfg, 0, n // int(cfg.train.batch_size)))


def test_cifar10_valid_is_carved_from_train_and_never_trained_on(tmp_path):
  x = _numbered(120)
  _cifar10_parts(tmp_path, x, x[:7])
  cfg = _cfg("cifar10", "none", shape=(4, 4, 3), data_dir=str(tmp_path), batch=4,
             valid_split="valid")
  valid, train = data.load_raw_split(cfg, "valid"), data.load_raw_split(cfg, "train")
  kept, held = data_readers.holdout(120)                      # the custom datasets' rule
  assert len(held) == 12 == round(0.1 * 120) and len(kept) == 108
  np.testing.assert_array_equal(_ids(valid), held)            # in their original order
  np.testing.assert_array_equal(_ids(train), kept)
  assert not set(_ids(valid)) & set(_ids(train))              # disjoint ...
  assert sorted(np.concatenate([_ids(valid), _ids(train)])) == list(range(120))  # ... and whole
  epoch = _ids(_one_epoch(cfg, 108))                          # what training sees
  assert sorted(epoch) == sorted(kept) and not set(epoch) & set(held)
  np.testing.assert_array_equal(data.load_raw_split(cfg, "test"), x[:7])  # test untouched
  # The periodic evaluation's split is the carved one, and says so.
  assert data.carves_valid(cfg) and data.eval_split_name(cfg, "valid") == "valid"
  np.testing.assert_array_equal(data.load_split(cfg, data.eval_split_name(cfg, "valid")), valid)
  assert data.heldout_split(cfg, len(valid)) == "valid (12 images carved from train)"
  assert data.heldout_split(cfg) == "valid (carved from train)"
  x_eval, heldout = training._periodic_eval_images(cfg, chief=True)
  assert set(_ids(x_eval)) <= set(held) and len(x_eval) == min(12, cfg.eval.periodic_examples)
  assert heldout == "valid (12 images carved from train)"


@pytest.mark.slow
def test_a_carved_run_logs_which_images_its_held_out_curve_used(tmp_path, capsys):
  x = _numbered(40, shape=(32, 32, 3))
  _cifar10_parts(tmp_path / "data", x, x[:7])
  cfg = _cfg("cifar10", "none", shape=(32, 32, 3), data_dir=str(tmp_path / "data"), batch=4,
             valid_split="valid")
  cfg.model.likelihood, cfg.eval.num_images, cfg.eval.periodic_examples = "logistic_mixture", 0, 8
  cfg.train.steps, cfg.train.log_every, cfg.train.eval_every = 2, 1, 2
  wd = str(tmp_path / "run")
  training.train(cfg, wd)
  out = capsys.readouterr().out
  assert "cifar10 has no validation split of its own: data.valid_split='valid' is 4 of the 40" in out
  assert "held-out evaluation: 4 evenly spaced images of valid (4 images carved from train)" in out
  assert "eval @ 2 on valid (4 images carved from train), 4 evenly spaced, EMA: elbo" in out
  with open(os.path.join(wd, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  assert [r["heldout_split"] for r in lines] == ["valid (4 images carved from train)"] * 2


def test_without_a_valid_split_a_built_in_dataset_reads_as_before(tmp_path):
  x = _numbered(40)
  _cifar10_parts(tmp_path, x, x[:5])
  cfg = _cfg("cifar10", "none", shape=(4, 4, 3), data_dir=str(tmp_path), batch=4)  # valid_split=""
  np.testing.assert_array_equal(data.load_raw_split(cfg, "train"), x)  # every training image
  assert sorted(_ids(_one_epoch(cfg, 40))) == list(range(40))
  assert not data.carves_valid(cfg) and data.eval_split_name(cfg, "valid") == "test"
  assert data.heldout_split(cfg, 5) == "test (5 images)" and data.heldout_split(cfg) == "test"
  x_eval, heldout = training._periodic_eval_images(cfg, chief=True)
  np.testing.assert_array_equal(x_eval, x[:5])
  assert heldout == "test (5 images)"
  with pytest.raises(FileNotFoundError, match="x_valid"):     # nothing carved when not asked
    data.load_raw_split(cfg, "valid")
  # A dataset with a validation split of its own reads it; nothing is carved from its train.
  np.savez(tmp_path / "binarized_mnist.npz", x_train=np.zeros((6, 4, 4), np.uint8),
           x_valid=np.ones((2, 4, 4), np.uint8), x_test=np.zeros((2, 4, 4), np.uint8))
  own = _cfg("binarized_mnist", "static", data_dir=str(tmp_path), valid_split="valid")
  assert not data.carves_valid(own) and len(data.load_raw_split(own, "train")) == 6
  assert data.load_raw_split(own, "valid").min() == 1 and data.heldout_split(own, 2) == "valid (2 images)"


def test_cifar10_carve_is_the_same_from_tfds_and_from_npz(tmp_path, monkeypatch):
  """TFDS path (no network: mock data) and npz path carve the same images of the same train split.

  TFDS stores CIFAR-10 in an order of its own; sorted by its ``id`` feature (``train_00000`` ...:
  the position in the original batch files) it is in the .npz layout's order, so the position
  holdout picks the same images. TFDS is never asked for a ``validation`` split CIFAR-10 lacks.
  """
  tfds = pytest.importorskip("tensorflow_datasets")
  asked, load = [], tfds.load

  def recording_load(name, split=None, **kw):
    asked.append((name, split))
    return load(name, split=split, **kw)
  monkeypatch.setattr(tfds, "load", recording_load)
  monkeypatch.delenv(datasets.ENV_VAR, raising=False)
  tf_cfg = _cfg("cifar10", "none", shape=(32, 32, 3), batch=3, valid_split="valid")
  tf_cfg.data.source = "tfds"
  with tfds.testing.mock_data(num_examples=30):
    examples = sorted(tfds.as_numpy(load("cifar10", split="train")), key=lambda e: e["id"])
    tf_valid, tf_train = (data.load_raw_split(tf_cfg, s) for s in ("valid", "train"))
    tf_epoch = _one_epoch(tf_cfg, 27)
  assert ("cifar10", "validation") not in asked and ("cifar10", "train") in asked
  x = np.stack([e["image"] for e in examples])                 # the original (id) order
  assert len({e["id"] for e in examples}) == 30
  _cifar10_parts(tmp_path, x, x[:4])
  npz_cfg = _cfg("cifar10", "none", shape=(32, 32, 3), data_dir=str(tmp_path), batch=3,
                 valid_split="valid")
  kept, held = data_readers.holdout(30)
  np.testing.assert_array_equal(tf_valid, x[held])
  np.testing.assert_array_equal(tf_train, x[kept])
  np.testing.assert_array_equal(data.load_raw_split(npz_cfg, "valid"), tf_valid)
  np.testing.assert_array_equal(data.load_raw_split(npz_cfg, "train"), tf_train)
  np.testing.assert_array_equal(_one_epoch(npz_cfg, 27), tf_epoch)   # the same training batches
  assert data.heldout_split(tf_cfg, 3) == data.heldout_split(npz_cfg, 3)


def test_which_zoo_configs_carve_a_validation_split():
  cifar = ["cifar10", "cifar10_cpu", "cifar10_gated_cpu", "cifar10_gated_full_cpu",
           "cifar10_vae_factorized_cpu", "cifar10_grayscale"]
  for name in vlae_tf.zoo.list_configs():
    cfg = vlae_tf.zoo.get_config(name)
    want = "valid (carved from train)" if name in cifar else (   # MNIST, Omniglot: as before
        "valid" if cfg.data.dataset == "binarized_mnist" else cfg.data.test_split)
    assert data.heldout_split(cfg) == want, name
  # The shipped cifar10 weights were trained on all 50,000 with the curve on test images; their
  # card keeps the config they were trained with.
  with open(os.path.join(os.path.dirname(__file__), "..", "saved_models", "cifar10",
                         "card.json")) as f:
    card = vconfig.from_json(json.load(f)["config"])
  assert card.data.valid_split == "" and data.heldout_split(card) == "test"


@pytest.mark.slow
def test_shared_cifar10_carves_5000_of_50000():
  root = os.environ.get(datasets.ENV_VAR, "")
  if not os.path.isfile(os.path.join(root, "cifar10", "cifar10_train_1.npz")):
    pytest.skip(f"no CIFAR-10 .npz files under ${datasets.ENV_VAR}")
  cfg = vlae_tf.zoo.get_config("cifar10_cpu")
  cfg.data.source = "npz"
  valid, train = data.load_raw_split(cfg, "valid"), data.load_raw_split(cfg, "train")
  assert (len(valid), len(train)) == (5000, 45000)
  assert data.heldout_split(cfg, len(valid)) == "valid (5,000 images carved from train)"


# ------------------------------------------------------------------ training on bad data: clear errors
def _data_config(tmp_path, x_train):
  path = tmp_path / "data.npz"
  np.savez(path, x_train=x_train, x_test=np.zeros((4, 28, 28), np.uint8))
  cfg = tiny_config(image_shape=(28, 28, 1))
  cfg.data.dataset, cfg.data.source, cfg.data.data_dir = "binarized_mnist", "npz", str(path)
  cfg.train.steps, cfg.eval.periodic_examples, cfg.eval.num_images = 2, 0, 0
  return cfg


@pytest.mark.parametrize("x_train, message", [
    (np.zeros((0, 28, 28), np.uint8), r"key 'x_train': expected at least one image, the split "
                                      r"is empty \(shape \(0, 28, 28"),
    (np.full((8, 28, 28), np.nan, np.float32), "got float32 with 6272 NaN / infinite values"),
    (np.full((8, 28, 28), 300.0, np.float32), r"values in \[300.0, 300.0\]"),
    (np.full((8, 28, 28), 7, np.uint8), r"expected data.binarization='static' pixels in \{0, "
                                        r"1\} .* got values up to 7"),
])
def test_bad_training_data_is_a_clear_error(tmp_path, x_train, message):
  # Defect: an empty x_train ended in a bare ZeroDivisionError.
  with pytest.raises(ValueError, match=message):
    training.train(_data_config(tmp_path, x_train), str(tmp_path / "run"))


@pytest.mark.subprocess
def test_train_py_with_a_missing_data_folder_is_one_line_exit_2(tmp_path):
  rc, _, err = run_train_py("--config=zoo/mnist_cpu.py", f"--workdir={tmp_path / 'run'}",
                            f"--config.data.data_dir={tmp_path / 'nope'}",
                            "--config.data.source=npz")
  assert rc == 2 and "Traceback" not in err and "split 'train' of 'binarized_mnist' not found" in err


def test_local_training_data_is_checked_as_training_reads_it(tmp_path):
  """train.py calls this before importing TensorFlow: the readers' own errors, at once."""
  check = data_readers.check_local_training_data
  assert check(tiny_config()) is None                       # synthetic: nothing to find
  cfg = _cfg(dataset="binarized_mnist", binarization="static", data_dir=str(tmp_path / "nope"))
  with pytest.raises(FileNotFoundError, match="split 'train' of 'binarized_mnist' not found"):
    check(cfg)
  cfg.data.source = "tfds"                                  # TFDS: left to the download
  assert check(cfg) is None
  cfg.data.source, cfg.data.data_dir = "npz", str(tmp_path)
  np.savez(tmp_path / "binarized_mnist.npz", x_train=np.zeros((2, 4, 4), np.uint8))
  assert check(cfg) is None                                 # found (its arrays: read by training)
  np.savez(tmp_path / "mine.npz", x_train=np.full((2, 4, 4), 7, np.uint8))
  cfg.data.dataset = "mine"                                 # of your own: read and checked
  with pytest.raises(datasets.DataError, match=r"mine\.npz key 'x_train'.*\{0, 1\}"):
    check(cfg)
  cfg.data.source, cfg.data.data_dir = "images", str(tmp_path / "no_images")
  with pytest.raises(FileNotFoundError, match="image folder .* of dataset 'mine' does not exist"):
    check(cfg)
