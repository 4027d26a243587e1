"""The zoo store: model cards from real eval numbers, sha256 verification, lookup, the load wrapper."""

import json
import shutil

import numpy as np
import pytest

import vlae_tf
from helpers import NAME, edit_card
from vlae_tf import cli, export
from vlae_tf.pretrained import packaging
from vlae_tf.pretrained import folders
from vlae_tf.pretrained import store as zoo_store
from vlae_tf.pretrained.store import ZooError


@pytest.fixture
def copy(zoo_copy):
  """A private copy of the tiny model folder, free to corrupt."""
  return zoo_copy / NAME


# ------------------------------------------------------------------ cards
def test_card_numbers_are_the_eval_numbers(zoo):
  card = zoo_store.read_card(zoo.dir)
  ev = zoo.eval_results
  for k in ("elbo", "rate", "distortion", "iwae_nll", "iwae_samples", "num_examples",
            "bits_per_dim"):
    assert card["results"][k] == ev[k], k
  assert json.loads((zoo.dir / "eval.json").read_text()) == json.loads(json.dumps(ev))
  assert card["dataset"]["num_eval_examples"] == ev["num_examples"] == 8
  assert card["paper"]["nll"] == 79.03                  # the mnist config's paper number
  assert card["training"]["command"] == "pytest (tiny untrained model)"
  assert card["version"] == "1" and card["signatures"] == list(export.SIGNATURES)
  assert card["config"]["model"]["latent_dim"] == 3
  readme = (zoo.dir / "README.md").read_text()
  assert f"{ev['iwae_nll']:.2f}" in readme and "79.03" in readme


def test_card_lists_the_sha256_of_every_file(zoo):
  import hashlib
  card = zoo_store.read_card(zoo.dir)
  files = {p.relative_to(zoo.dir).as_posix() for p in zoo.dir.rglob("*") if p.is_file()}
  assert set(card["files"]) == files - {"card.json", "card.sha256"}
  assert {"1/saved_model.pb", "README.md", "eval.json", "examples.npz"} <= set(card["files"])
  for rel, digest in card["files"].items():
    assert hashlib.sha256((zoo.dir / rel).read_bytes()).hexdigest() == digest


def test_write_card_refuses_made_up_or_incomplete_numbers(zoo, tmp_path):
  with pytest.raises(ValueError, match="iwae_nll"):
    zoo_store.write_card(zoo.dir, config=zoo.config, eval_results={"elbo": -80.0,
                         "iwae_samples": 1, "num_examples": 1})
  with pytest.raises(ValueError, match="finite"):
    zoo_store.check_eval_results({"elbo": float("nan"), "iwae_nll": 1.0, "iwae_samples": 1,
                                  "num_examples": 1})
  with pytest.raises(ZooError, match="no SavedModel"):
    zoo_store.write_card(tmp_path, config=zoo.config, eval_results=zoo.eval_results)


# ---------------------------------------------------------- verification
def test_load_rejects_a_modified_file(copy):
  var = next((copy / "1" / "variables").glob("variables.data-*"))
  data = bytearray(var.read_bytes())
  data[len(data) // 2] ^= 0xFF
  var.write_bytes(bytes(data))
  with pytest.raises(ZooError, match=r"checksum mismatch for 1/variables/variables.data"):
    vlae_tf.zoo.load(str(copy))


def test_load_rejects_missing_and_unlisted_files(copy):
  (copy / "1" / "saved_model.pb").unlink()
  (copy / "1" / "variables" / "extra.bin").write_bytes(b"x")
  with pytest.raises(ZooError) as e:
    vlae_tf.zoo.load(str(copy))
  assert "missing file 1/saved_model.pb" in str(e.value)
  assert "unlisted file 1/variables/extra.bin" in str(e.value)


def test_load_rejects_a_broken_card(copy):
  (copy / "card.json").write_text("{not json")
  with pytest.raises(ZooError, match="not valid JSON"):
    vlae_tf.zoo.load(str(copy))
  (copy / "card.json").unlink()
  with pytest.raises(ZooError, match="no card.json|not a zoo model folder"):
    vlae_tf.zoo.load(str(copy))


# ----------------------------------------------------------------- lookup
def test_list_models_and_zoo_dir_from_environment(zoo, monkeypatch):
  monkeypatch.setenv("VLAE_ZOO_DIR", str(zoo.root))
  (entry,) = vlae_tf.zoo.list_models()
  assert entry["name"] == NAME and entry["iwae_nll"] == zoo.eval_results["iwae_nll"]
  assert f"test NLL {zoo.eval_results['iwae_nll']:.2f} nats (IWAE k=8, n=8)" in entry["headline"]
  assert "paper 79.03 nats" in entry["headline"]
  assert vlae_tf.zoo.load(NAME, verify_checksums=False).name == NAME
  monkeypatch.setenv("VLAE_ZOO_DIR", str(zoo.root / "nope"))
  with pytest.raises(ZooError, match="VLAE_ZOO_DIR"):
    vlae_tf.zoo.list_models()


def test_default_zoo_dir_is_the_repositorys_saved_models(monkeypatch):
  monkeypatch.delenv("VLAE_ZOO_DIR", raising=False)
  import pathlib
  assert zoo_store.zoo_dir() == pathlib.Path(vlae_tf.__file__).resolve().parents[1] / "saved_models"


def test_non_editable_install_without_saved_models_says_to_set_vlae_zoo_dir(tmp_path, monkeypatch):
  monkeypatch.delenv("VLAE_ZOO_DIR", raising=False)
  site = tmp_path / "site-packages" / "vlae_tf"
  site.mkdir(parents=True)
  monkeypatch.setattr(folders, "__file__", str(site / "pretrained" / "folders.py"))
  with pytest.raises(ZooError, match="set VLAE_ZOO_DIR"):
    vlae_tf.zoo.load("mnist")


def test_unknown_model_names_what_exists_and_how_to_make_it(zoo):
  with pytest.raises(ZooError, match=r"no pretrained model 'mnist_dynamic' .*available: tiny.*"
                     r"train it"):
    vlae_tf.zoo.load("mnist_dynamic", zoo.root)
  with pytest.raises(ZooError, match="available: tiny"):
    vlae_tf.zoo.load("nonexistent", zoo.root)


# ---------------------------------------------------------------- wrapper
def test_wrapper_methods(zoo, m):
  assert m.image_shape == (6, 6, 1) and m.latent_size == 3 and m.num_levels == 2
  imgs = m.sample(num=4, seed=0)
  assert imgs.shape == (4, 6, 6, 1) and imgs.dtype == np.uint8 and imgs.max() <= 1
  np.testing.assert_array_equal(imgs, m.sample(num=4, seed=0))
  x = m.examples()
  np.testing.assert_array_equal(x, zoo.examples)
  ref = zoo.model.elbo_terms(x, seed=np.array([0, 0]))["elbo"].numpy()
  np.testing.assert_allclose(m.log_prob(x)["elbo"], ref, rtol=1e-5, atol=1e-4)
  assert m.iwae(x, num_samples=10)["nll"].shape == (6,)
  assert m.reconstruct(x).shape == x.shape
  assert m.decode(m.encode(x)["z"]).shape == x.shape
  # uint8, bool, int and float pixels holding the same values are the same request
  for same in (x.astype(bool), x.astype(np.int64), x.astype(np.float64)):
    np.testing.assert_array_equal(m.reconstruct(same, seed=3), m.reconstruct(x, seed=3))


def test_interpolate_ends_decode_the_two_posterior_means(m):
  x = m.examples()
  line = m.interpolate(x[0], x[1], steps=5, seed=2)
  assert line.shape == (5, 6, 6, 1)
  mu = m.encode(x[:2])["mean"]
  np.testing.assert_array_equal(line[0], m.decode(mu[:1], seed=2)[0])
  np.testing.assert_array_equal(line[-1], m.decode(mu[1:2], seed=2)[0])
  mid = m.decode(0.5 * mu[:1] + 0.5 * mu[1:2], seed=2)[0]
  np.testing.assert_array_equal(m.interpolate(x[0], x[1], steps=3, seed=2)[1], mid)
  assert m.interpolate(x[:3], x[3:6], steps=4).shape == (3, 4, 6, 6, 1)


def test_wrapper_rejects_wrong_python_types_with_named_errors(m):
  with pytest.raises(TypeError, match="num must be an int"):
    m.sample(num=2.5)
  with pytest.raises(ValueError, match=r"num must be in \[1, 2147483647\]"):
    m.sample(num=0)                                   # more than max_sample_num: split (test_serving)
  with pytest.raises(TypeError, match="seed must be an int or a pair"):
    m.sample(num=2, seed=1.5)
  with pytest.raises(TypeError, match="images must be a numeric array"):
    m.log_prob(np.array([["a"]]))
  with pytest.raises(TypeError, match="temperature must be a float"):
    m.sample(num=2, temperature="hot")
  import tensorflow as tf
  with pytest.raises(tf.errors.InvalidArgumentError, match="non-integer pixel value"):
    m.log_prob(np.full((1, 6, 6, 1), 0.5))


# -------------------------------------------------------------- packaging
def test_package_run_exports_a_checkpointed_run_atomically(zoo, tmp_path, monkeypatch):
  """``train.py --mode=export``'s call, with the work-directory loader stubbed (the tiny model)."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  ev = dict(zoo.eval_results, step=123)
  (workdir / "eval.json").write_text(json.dumps(ev))
  monkeypatch.setattr(packaging.vwork, "load_model_from_workdir",
                      lambda w, use_ema=True: (zoo.model, zoo.config, 123))
  out = tmp_path / "zoo"
  packaging.package_run(workdir, out / "tinyrun", command="python train.py --config=zoo/mnist.py",
                        hardware="2 CPU cores", wall_time_hours=0.5, num_examples=3)
  card = zoo_store.verify(out / "tinyrun")
  assert card["name"] == "tinyrun"
  assert card["training"]["steps"] == 123 and card["training"]["weights"] == "ema"
  assert card["training"]["hardware"] == "2 CPU cores" and card["results"]["elbo"] == ev["elbo"]
  assert np.load(out / "tinyrun" / "examples.npz")["x"].shape == (3, 6, 6, 1)
  assert [p.name for p in out.iterdir()] == ["tinyrun"]          # no temporary folder left
  with pytest.raises(FileExistsError, match="--overwrite"):
    packaging.package_run(workdir, out / "tinyrun")
  (workdir / "eval.json").write_text(json.dumps(dict(ev, step=100)))
  with pytest.raises(ValueError, match="step 100 .* step 123"):
    packaging.package_run(workdir, out / "other")
  assert sorted(p.name for p in out.iterdir()) == ["tinyrun"]
  (workdir / "eval.json").unlink()
  with pytest.raises(FileNotFoundError, match="mode=eval"):
    packaging.package_run(workdir, out / "other")


def test_package_run_packages_and_links_the_learning_curve(zoo, tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "eval.json").write_text(json.dumps(dict(zoo.eval_results, step=5)))
  monkeypatch.setattr(packaging.vwork, "load_model_from_workdir",
                      lambda w, use_ema=True: (zoo.model, zoo.config, 5))
  png = tmp_path / "curve.png"
  png.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
  out = tmp_path / "zoo"
  with pytest.raises(FileNotFoundError, match="no learning curve"):
    packaging.package_run(workdir, out / "c", num_examples=0,
                          learning_curve=tmp_path / "missing.png")
  assert not out.exists() or not any(out.iterdir())
  packaging.package_run(workdir, out / "c", num_examples=0, learning_curve=png)
  card = zoo_store.verify(out / "c")                               # checksummed like every file
  assert card["learning_curve"] == "learning_curve.png" and "learning_curve.png" in card["files"]
  assert (out / "c" / "learning_curve.png").read_bytes() == png.read_bytes()
  assert "(learning_curve.png)" in (out / "c" / "README.md").read_text()
  assert "standard error of the mean" in (out / "c" / "README.md").read_text()


@pytest.mark.slow
def test_export_model_writes_version_folder_and_card(zoo, tmp_path, capsys):
  """``packaging.export_model(model, cfg, "saved_models/<name>", step=, workdir=, weights=)``:
  the card comes from the workdir's eval.json."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "eval.json").write_text(json.dumps(dict(zoo.eval_results, step=7)))
  target = tmp_path / "zoo" / "tinyexp"
  path = packaging.export_model(zoo.model, zoo.config, target, step=7, workdir=str(workdir),
                                weights="ema")
  assert path == str(target / "1")
  card = zoo_store.verify(target)
  assert card["name"] == "tinyexp" and card["training"]["steps"] == 7
  assert card["results"]["iwae_nll"] == zoo.eval_results["iwae_nll"]
  np.testing.assert_array_equal(np.load(target / "examples.npz")["x"],
                                packaging.example_images(zoo.config, 8))
  # no eval.json: only the SavedModel, and a message saying why there is no card
  (workdir / "eval.json").unlink()
  path = packaging.export_model(zoo.model, zoo.config, target, version=2, step=7,
                                workdir=str(workdir))
  assert path == str(target / "2") and "no model card" in capsys.readouterr().out
  with pytest.raises(ZooError, match="unlisted file 2/saved_model.pb"):
    zoo_store.verify(target)


# ------------------------------------------------------------------ a trusted zoo (issue 11)
def test_the_card_is_covered_by_its_checksum(zoo_copy):
  d = zoo_copy / "tiny"
  assert zoo_store.verify(d)["name"] == "tiny"
  edit_card(d, lambda c: dict(c, results=dict(c["results"], iwae_nll=1.0)))
  with pytest.raises(ZooError, match=r"card.json was modified.*card.sha256"):
    vlae_tf.zoo.load(str(d))
  (d / "card.sha256").unlink()
  with pytest.raises(ZooError, match=r"card.sha256 is missing: the card is not covered"):
    vlae_tf.zoo.load(str(d))


def test_card_paths_cannot_leave_the_model_folder(zoo_copy, tmp_path):
  # Defect: an edited card ('version': '../omniglot/1') made zoo.load("mnist") load omniglot.
  shutil.copytree(zoo_copy / "tiny", zoo_copy / "other")
  d = zoo_copy / "tiny"
  edit_card(d, lambda c: dict(c, version="../other/1"))
  zoo_store.write_card_checksum(d)                    # even with a matching checksum
  for verify in (True, False):
    with pytest.raises(ZooError, match=r"'version' must name a numeric SavedModel folder"):
      vlae_tf.zoo.load("tiny", zoo_copy, verify_checksums=verify)
  edit_card(d, lambda c: dict(c, version="1", files=dict(
      c["files"], **{"../other/1/saved_model.pb": "0" * 64, "/etc/passwd": "0" * 64})))
  with pytest.raises(ZooError, match=r"(?s)'../other/1/saved_model.pb' is not a relative path "
                     r"inside.*'/etc/passwd' is not"):
    vlae_tf.zoo.load("tiny", zoo_copy, verify_checksums=False)
  outside = tmp_path / "outside.bin"
  outside.write_bytes(b"x")
  (d / "link.bin").symlink_to(outside)
  edit_card(d, lambda c: dict(c, files={k: v for k, v in c["files"].items() if "/" not in k
                                         or k.startswith("1/")} | {"link.bin": "0" * 64}))
  with pytest.raises(ZooError, match=r"'link.bin' is not a relative path inside"):
    vlae_tf.zoo.load("tiny", zoo_copy, verify_checksums=False)


def test_a_bare_name_is_looked_up_only_in_the_zoo(zoo_copy, tmp_path, monkeypatch):
  # Defect: a stray ./tiny folder in the working directory won over the zoo silently.
  cwd = tmp_path / "cwd"
  shutil.copytree(zoo_copy / "tiny", cwd / "tiny")
  monkeypatch.chdir(cwd)
  assert zoo_store.model_dir("tiny", zoo_copy) == zoo_copy / "tiny"
  assert zoo_store.model_dir("./tiny", zoo_copy).resolve() == (cwd / "tiny").resolve()
  assert zoo_store.model_dir(str(cwd / "tiny")) == cwd / "tiny"
  with pytest.raises(ZooError, match="no pretrained model 'tiny'"):
    zoo_store.model_dir("tiny", zoo_copy / "tiny" / "1")      # a zoo folder without it


@pytest.mark.parametrize("card", ['[1, 2]', '{"name": "x"}', 'CHANGE_NLL'])
def test_list_skips_a_malformed_card_with_a_warning_naming_it(zoo_copy, card, capsys):
  # Defect: a card that was a JSON list, or held a non-numeric NLL, broke `vlae list` for all.
  bad = zoo_copy / "bad"
  shutil.copytree(zoo_copy / "tiny", bad)
  if card == "CHANGE_NLL":
    edit_card(bad, lambda c: dict(c, results=dict(c["results"], iwae_nll="80.1")))
  else:
    (bad / "card.json").write_text(card)
  zoo_store.write_card_checksum(bad)
  with pytest.warns(zoo_store.ZooWarning, match=rf"skipping {bad / 'card.json'}"):
    models = zoo_store.list_models(zoo_copy)
  assert [m["name"] for m in models] == ["tiny"]
  assert cli.main(["list", f"--zoo_dir={zoo_copy}"]) == 0
  out, err = capsys.readouterr()
  assert out.startswith("tiny ") and f"vlae list: warning: skipping {bad / 'card.json'}" in err
  assert len(err.strip().splitlines()) == 1
