"""The exported SavedModel: every signature against the Keras model's maths, input checks, isolation."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import binary_images, tiny_config
from vlae_tf import export, sampling


@pytest.fixture(scope="module")
def loaded(zoo):
  return tf.saved_model.load(str(zoo.saved_model_dir))


@pytest.fixture(scope="module")
def sigs(loaded):
  return loaded.signatures


def _i64(v):
  return tf.constant(v, tf.int64)


def _pair(s):
  return tf.constant([s, s], tf.int64)


def _f32(x):
  return tf.constant(np.asarray(x, np.float32))


def test_signatures_and_their_named_inputs(sigs):
  assert set(sigs) == set(export.SIGNATURES)
  want = {"log_prob": {"images": tf.float32}, "serving_default": {"images": tf.float32},
          "iwae": {"images": tf.float32, "num_samples": tf.int32, "seed": tf.int64},
          "encode": {"images": tf.float32, "seed": tf.int64},
          "decode": {"z": tf.float32, "seed": tf.int64},
          "reconstruct": {"images": tf.float32, "seed": tf.int64},
          "sample": {"num": tf.int32, "seed": tf.int64, "temperature": tf.float32}}
  for name, inputs in want.items():
    spec = sigs[name].structured_input_signature[1]
    assert {k: v.dtype for k, v in spec.items()} == inputs, name
  assert set(sigs["encode"].structured_outputs) == {"mean", "std", "z"}
  assert set(sigs["iwae"].structured_outputs) == {"nll", "bits_per_dim"}


def test_log_prob_is_the_models_elbo(zoo, sigs):
  x = binary_images(5, seed=3)
  out = {k: v.numpy() for k, v in sigs["log_prob"](images=_f32(x)).items()}
  ref = zoo.model.elbo_terms(x, seed=_pair(0))
  for k in ("elbo", "rate", "distortion", "bits_per_dim"):
    np.testing.assert_allclose(out[k], ref[k].numpy(), rtol=1e-5, atol=1e-5, err_msg=k)
  np.testing.assert_allclose(out["elbo"], -(out["rate"] + out["distortion"]), rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(out["bits_per_dim"], -out["elbo"] / (36 * np.log(2)), rtol=1e-6)
  default = sigs["serving_default"](images=_f32(x))["elbo"].numpy()
  np.testing.assert_array_equal(default, out["elbo"])


def test_iwae_with_one_sample_is_minus_the_elbo(zoo, sigs):
  """L_1 = log w with the chunk-0 seed ``seed + [0, 0]``: exactly the one-sample ELBO."""
  x = binary_images(4, seed=4)
  nll = sigs["iwae"](images=_f32(x), num_samples=tf.constant(1), seed=_i64(7))["nll"].numpy()
  chunk_seed = _pair(7)
  elbo = zoo.model.elbo_terms(x, seed=chunk_seed)["elbo"].numpy()
  np.testing.assert_allclose(nll, -elbo, rtol=1e-5, atol=1e-4)


def test_iwae_combines_chunks_by_logsumexp(zoo, sigs):
  """16 images x k=400: IWAE_BUDGET // 16 = 32 samples per chunk, 12 chunks of 32 and one of 16;
  chunk i draws with the stateless seed ``seed + [0, i]`` (as the library's iwae_nll)."""
  x = binary_images(16, seed=5)
  out = sigs["iwae"](images=_f32(x), num_samples=tf.constant(400), seed=_i64(1))
  lw = np.concatenate([zoo.model.log_weights(
      tf.constant(x, tf.float32), s, _pair(1) + tf.constant([0, i], tf.int64)).numpy()
      for i, s in enumerate([32] * 12 + [16])], 0).astype(np.float64)        # [400, 16]
  m = lw.max(0)
  ref = -(m + np.log(np.exp(lw - m).sum(0)) - np.log(400))
  np.testing.assert_allclose(out["nll"].numpy(), ref, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(out["bits_per_dim"].numpy(), ref / (36 * np.log(2)), rtol=1e-5)


def test_iwae_agrees_with_library_estimate_and_tightens_with_k(zoo, sigs):
  x = binary_images(16, seed=5)
  k = lambda n, s: sigs["iwae"](images=_f32(x), num_samples=tf.constant(n),
                                seed=_i64(s))["nll"].numpy()
  ours = np.mean([k(400, s) for s in range(3)])
  lib = np.mean([vlae_tf.iwae_nll(zoo.model, x, num_samples=400, seed=s) for s in range(3)])
  # two independent estimates of E[-L_400] over 48 (image, seed) pairs; Monte-Carlo std ~0.05
  assert abs(ours - lib) < 0.25, (ours, lib)
  assert ours < np.mean([k(1, s) for s in range(3)]) - 0.1      # L_k > L_1 on average


def test_encode_is_the_posterior(zoo, sigs):
  x = binary_images(3, seed=6)
  out = sigs["encode"](images=_f32(x), seed=_i64(2))
  mu, sigma, _ = zoo.model.encode(tf.constant(x, tf.float32))
  np.testing.assert_allclose(out["mean"].numpy(), mu.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["std"].numpy(), sigma.numpy(), rtol=1e-5, atol=1e-6)
  eps = tf.random.stateless_normal(mu.shape, _pair(2))
  np.testing.assert_allclose(out["z"].numpy(), (mu + sigma * eps).numpy(), rtol=1e-5, atol=1e-5)


def _naive(model, z, seed):
  return sampling.sample_x_given_z(model, z, seed=seed, method="naive").numpy().astype(np.uint8)


def test_decode_draws_from_p_x_given_z_like_the_naive_reference(zoo, sigs):
  z = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
  got = sigs["decode"](z=_f32(z), seed=_i64(5))["images"].numpy()
  assert got.dtype == np.uint8 and got.shape == (4, 6, 6, 1)
  np.testing.assert_array_equal(got, _naive(zoo.model, tf.constant(z), _pair(5)))
  other = sigs["decode"](z=_f32(z), seed=_i64(6))["images"].numpy()
  assert not np.array_equal(got, other)


def test_reconstruct_is_z_from_q_then_x_from_p(zoo, sigs):
  x = binary_images(3, seed=7)
  got = sigs["reconstruct"](images=_f32(x), seed=_i64(3))["images"].numpy()
  seeds = tf.random.experimental.stateless_split(_pair(3), 2)
  mu, sigma, ctx = zoo.model.encode(tf.constant(x, tf.float32))
  z, _ = zoo.model.posterior_from_noise(mu, sigma, ctx, tf.random.stateless_normal(mu.shape, seeds[0]))
  np.testing.assert_array_equal(got, _naive(zoo.model, z, seeds[1]))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sample_is_z_from_prior_then_x_from_p(zoo, sigs, temperature):
  got = sigs["sample"](num=tf.constant(5), seed=_i64(11),
                       temperature=tf.constant(temperature))["images"].numpy()
  seeds = tf.random.experimental.stateless_split(_pair(11), 2)
  z = zoo.model.sample_prior(5, seed=seeds[0], temperature=temperature)
  np.testing.assert_array_equal(got, _naive(zoo.model, z, seeds[1]))
  assert set(np.unique(got)) <= {0, 1}


def test_seed_forms_scalar_pair_and_row_format(sigs):
  run = lambda seed: sigs["sample"](num=tf.constant(3), seed=_i64(seed),
                                    temperature=tf.constant(1.0))["images"].numpy()
  base = run(4)
  for same in ([4], [4, 4], [4, 4, 4], [[4, 4], [4, 4]]):
    np.testing.assert_array_equal(run(same), base, err_msg=str(same))
  assert not np.array_equal(run([4, 5]), base)
  assert not np.array_equal(run(5), base)


# ------------------------------------------------------------ input checks
BAD_INPUTS = [
    ("log_prob", dict(images=np.zeros((6, 6, 1))), "images: expected a batch of shape [N, 6, 6, 1]",
     "got shape] [6 6 1]"),
    ("log_prob", dict(images=np.zeros((2, 5, 6, 1))), "[N, 6, 6, 1]", "got shape] [2 5 6 1]"),
    ("log_prob", dict(images=np.zeros((2, 6, 6, 3))), "[N, 6, 6, 1]", "got shape] [2 6 6 3]"),
    ("log_prob", dict(images=np.zeros((0, 6, 6, 1))), "N >= 1", "empty batch"),
    ("log_prob", dict(images=np.full((1, 6, 6, 1), 2.0)), "integer values in {0, 1}",
     "got a pixel value of] [2]"),
    ("log_prob", dict(images=np.full((1, 6, 6, 1), -1.0)), "{0, 1}", "got a pixel value of] [-1]"),
    ("encode", dict(images=np.full((1, 6, 6, 1), 0.5), seed=0), "integer values",
     "non-integer pixel value of] [0.5]"),
    ("reconstruct", dict(images=np.full((1, 6, 6, 1), np.nan), seed=0), "images", "pixel value of] [nan]"),
    ("iwae", dict(images=np.zeros((1, 6, 6, 1)), num_samples=0, seed=0),
     "num_samples: expected an integer in [1, 4096]", "got] [0]"),
    ("iwae", dict(images=np.zeros((1, 6, 6, 1)), num_samples=4097, seed=0), "[1, 4096]", "[4097]"),
    ("iwae", dict(images=np.zeros((1, 6, 6, 1)), num_samples=[3, 4], seed=0),
     "num_samples: expected one int32", "got shape] [2]"),
    ("sample", dict(num=0, seed=0, temperature=1.0), "num: expected an integer in [1, 1024]", "[0]"),
    ("sample", dict(num=1025, seed=0, temperature=1.0), "[1, 1024]", "[1025]"),
    ("sample", dict(num=2, seed=0, temperature=0.0), "temperature: expected a float in (0, 10]", "[0]"),
    ("sample", dict(num=2, seed=0, temperature=-1.0), "temperature", "[-1]"),
    ("sample", dict(num=2, seed=0, temperature=np.inf), "temperature", "[inf]"),
    ("sample", dict(num=2, seed=0, temperature=np.nan), "temperature", "[nan]"),
    ("sample", dict(num=2, seed=[1, 2, 3], temperature=1.0), "seed: expected an int64 scalar",
     "got shape] [3]"),
    ("sample", dict(num=2, seed=[[1, 2], [3, 4]], temperature=1.0), "seed", "got shape] [2 2]"),
    ("sample", dict(num=2, seed=np.zeros((0,), np.int64), temperature=1.0), "seed", "got shape] [0]"),
    ("decode", dict(z=np.zeros((2, 4)), seed=0), "z: expected a finite float32 batch of latents "
     "of shape [N, 3]", "got shape] [2 4]"),
    ("decode", dict(z=np.zeros((3,)), seed=0), "z: expected", "got shape] [3]"),
    ("decode", dict(z=np.zeros((0, 3)), seed=0), "N >= 1", "got shape] [0 3]"),
    ("decode", dict(z=np.full((1, 3), np.nan), seed=0), "z: expected", "non-finite"),
]
_DTYPES = {"images": tf.float32, "z": tf.float32, "num_samples": tf.int32, "num": tf.int32,
           "seed": tf.int64, "temperature": tf.float32}


@pytest.mark.parametrize("name,inputs,expect,got", BAD_INPUTS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_INPUTS)])
def test_bad_inputs_fail_in_graph_naming_the_input(sigs, name, inputs, expect, got):
  feed = {k: tf.constant(v, _DTYPES[k]) for k, v in inputs.items()}
  with pytest.raises(tf.errors.InvalidArgumentError) as e:
    sigs[name](**feed)
  assert expect in e.value.message and got in e.value.message, e.value.message


def test_process_survives_bad_inputs_and_wrong_dtypes_are_explained(sigs):
  with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is "
                     "a uint8 tensor"):
    sigs["log_prob"](images=tf.zeros((1, 6, 6, 1), tf.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError, match="int32 tensor but is a float tensor"):
    sigs["sample"](num=tf.constant(2.0), seed=_i64(0), temperature=tf.constant(1.0))
  with pytest.raises(TypeError, match="images"):
    sigs["log_prob"](x=tf.zeros((1, 6, 6, 1)))          # wrong input name
  out = sigs["log_prob"](images=tf.zeros((1, 6, 6, 1)))
  assert np.isfinite(out["elbo"].numpy()).all()


# ------------------------------------------------------------------ RGB
@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
  cfg = tiny_config(likelihood="logistic_mixture", image_shape=(3, 3, 3), latent_dim=2,
                    context="window")
  model = vlae_tf.build_model(cfg)
  d = tmp_path_factory.mktemp("rgb") / "1"
  export.export_saved_model(model, cfg, d)
  return model, tf.saved_model.load(str(d)).signatures


def test_rgb_model_in_0_255_and_matches_the_keras_model(rgb):
  model, s = rgb
  x = np.random.default_rng(0).integers(0, 256, (2, 3, 3, 3)).astype(np.uint8)
  out = s["log_prob"](images=_f32(x))
  np.testing.assert_allclose(out["elbo"].numpy(), model.elbo_terms(x, seed=_pair(0))["elbo"].numpy(),
                             rtol=1e-5, atol=1e-3)
  img = s["sample"](num=tf.constant(4), seed=_i64(1), temperature=tf.constant(1.0))["images"].numpy()
  seeds = tf.random.experimental.stateless_split(_pair(1), 2)
  np.testing.assert_array_equal(img, _naive(model, model.sample_prior(4, seed=seeds[0]), seeds[1]))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"integer values in \[0, 255\]"):
    s["log_prob"](images=tf.fill((1, 3, 3, 3), 256.0))


# ---------------------------------------------------------------- export
def test_saved_model_is_lean_and_export_dir_must_be_new(zoo, loaded):
  saved = sorted(v.name for v in loaded.model_variables)
  assert len(saved) == len(zoo.model.variables)
  assert not any("optimizer" in n or "iteration" in n for n in saved)
  info = json.loads(loaded.info_json.numpy())
  assert info["image_shape"] == [6, 6, 1] and info["latent_size"] == 3
  assert info["config"]["model"]["decoder_context"] == "stack"
  with pytest.raises(FileExistsError, match="not empty"):
    export.export_saved_model(zoo.model, zoo.config, zoo.saved_model_dir)


ISOLATED = textwrap.dedent("""
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("vlae_tf", "tensorflow_probability"):
          raise ModuleNotFoundError("blocked " + name)
    sys.meta_path.insert(0, Block())
    # Drop the checkout from sys.path, but keep a virtualenv that lives inside it (CI's
    # .ci-venv): its site-packages hold TensorFlow, not vlae_tf (blocked above anyway).
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and
                   not (p.startswith(REPO) and "site-packages" not in p)]
    try:
      import vlae_tf
      sys.exit("vlae_tf is importable")
    except ImportError:
      pass
    import numpy as np, tensorflow as tf
    s = tf.saved_model.load(DIR).signatures
    x = tf.constant(X, tf.float32)
    seed = tf.constant(3, tf.int64)
    out = {
      "log_prob": s["log_prob"](images=x)["elbo"],
      "serving_default": s["serving_default"](images=x)["bits_per_dim"],
      "iwae": s["iwae"](images=x, num_samples=tf.constant(5), seed=seed)["nll"],
      "encode": s["encode"](images=x, seed=seed)["z"],
      "decode": s["decode"](z=tf.zeros((2, 3)), seed=seed)["images"],
      "reconstruct": s["reconstruct"](images=x, seed=seed)["images"],
      "sample": s["sample"](num=tf.constant(2), seed=seed, temperature=tf.constant(1.0))["images"],
    }
    try:
      s["log_prob"](images=tf.zeros((0, 6, 6, 1)))
    except tf.errors.InvalidArgumentError as e:
      out["error"] = "empty batch" in e.message
    print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))
""")


@pytest.mark.slow
@pytest.mark.subprocess
def test_loads_and_runs_where_vlae_tf_cannot_be_imported(zoo, sigs, tmp_path):
  x = binary_images(2, seed=9)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(vlae_tf.__file__)))
  code = (f"REPO = {repo!r}\nDIR = {str(zoo.saved_model_dir)!r}\nX = {x.tolist()!r}\n" + ISOLATED)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                     cwd=tmp_path, env=env, timeout=120)
  assert r.returncode == 0, r.stderr[-3000:]
  got = json.loads(r.stdout.strip().splitlines()[-1])
  assert got["error"] is True
  xs, seed = _f32(x), _i64(3)
  np.testing.assert_allclose(got["log_prob"], sigs["log_prob"](images=xs)["elbo"].numpy(), rtol=1e-6)
  np.testing.assert_allclose(got["iwae"], sigs["iwae"](images=xs, num_samples=tf.constant(5),
                                                       seed=seed)["nll"].numpy(), rtol=1e-6)
  np.testing.assert_array_equal(got["sample"], sigs["sample"](
      num=tf.constant(2), seed=seed, temperature=tf.constant(1.0))["images"].numpy())
  np.testing.assert_array_equal(got["reconstruct"],
                                sigs["reconstruct"](images=xs, seed=seed)["images"].numpy())
  assert np.asarray(got["decode"]).shape == (2, 6, 6, 1)
  assert np.asarray(got["encode"]).shape == (2, 3)
