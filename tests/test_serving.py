"""The TF Serving contract: saved_model_cli's view of the signatures, REST bodies, bounded requests.

TF Serving itself cannot be installed here; ``rest_emulation`` maps JSON
bodies to signature calls the way TF Serving's ``json_tensor.cc`` does.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import IMAGE_SHAPE, binary_images
from rest_emulation import predict
from vlae_tf import export
from vlae_tf.pretrained import model as zoo_model

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "SERVING.md"


@pytest.fixture(scope="module")
def sigs(zoo):
  return tf.saved_model.load(str(zoo.saved_model_dir)).signatures


@pytest.mark.slow
@pytest.mark.subprocess
def test_saved_model_cli_lists_every_signature_with_named_typed_inputs(zoo):
  cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
  r = subprocess.run([str(cli), "show", "--all", "--dir", str(zoo.saved_model_dir)],
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  blocks = re.split(r"signature_def\['(\w+)'\]:", r.stdout)
  found = {blocks[i]: blocks[i + 1].split("Method name is")[0] for i in range(1, len(blocks), 2)}
  assert set(export.SIGNATURES) <= set(found)
  want = {"serving_default": "in images DT_FLOAT, out elbo DT_FLOAT, out rate DT_FLOAT, "
                             "out distortion DT_FLOAT, out bits_per_dim DT_FLOAT",
          "log_prob": "in images DT_FLOAT, out elbo DT_FLOAT",
          "iwae": "in images DT_FLOAT, in num_samples DT_INT32, in seed DT_INT64, "
                  "out nll DT_FLOAT, out bits_per_dim DT_FLOAT",
          "encode": "in images DT_FLOAT, in seed DT_INT64, out mean DT_FLOAT, out std DT_FLOAT, "
                    "out z DT_FLOAT",
          "decode": "in z DT_FLOAT, in seed DT_INT64, out images DT_UINT8",
          "reconstruct": "in images DT_FLOAT, in seed DT_INT64, out images DT_UINT8",
          "sample": "in num DT_INT32, in seed DT_INT64, in temperature DT_FLOAT, "
                    "out images DT_UINT8"}
  for sig, items in want.items():
    text = re.sub(r"\s+", " ", found[sig])
    for item in items.split(", "):
      kind, name, dtype = item.split()
      pattern = rf"{kind}puts\['{name}'\] tensor_info: dtype: {dtype} "
      assert re.search(pattern, text), (sig, item, text)
  text = re.sub(r"\s+", " ", found["sample"])
  assert "outputs['images'] tensor_info: dtype: DT_UINT8 shape: (-1, 6, 6, 1)" in text
  # inputs are declared with unknown rank: rank and size are checked in the graph
  assert "inputs['images'] tensor_info: dtype: DT_FLOAT shape: unknown_rank" in \
      re.sub(r"\s+", " ", found["log_prob"])


# ------------------------------------------------------------------ REST
def test_row_format_plain_instances_for_the_default_signature(sigs):
  x = binary_images(3, seed=1)
  resp = predict(sigs, {"instances": x.tolist()})
  assert list(resp) == ["predictions"] and len(resp["predictions"]) == 3
  ref = sigs["serving_default"](images=tf.constant(x, tf.float32))
  for k in ("elbo", "rate", "distortion", "bits_per_dim"):
    np.testing.assert_allclose([row[k] for row in resp["predictions"]], ref[k].numpy(), rtol=1e-6)


def test_row_format_objects_with_a_shared_seed(sigs, m):
  x = binary_images(3, seed=2)
  body = {"signature_name": "reconstruct",
          "instances": [{"images": img.tolist(), "seed": 5} for img in x]}
  resp = predict(sigs, json.dumps(body))
  # one output: each prediction is the bare image; seed [5, 5, 5] means the scalar seed 5
  np.testing.assert_array_equal(np.array(resp["predictions"]), m.reconstruct(x, seed=5))
  enc = predict(sigs, {"signature_name": "encode",
                       "instances": [{"images": img.tolist(), "seed": 1} for img in x]})
  assert [sorted(p) for p in enc["predictions"]] == [["mean", "std", "z"]] * 3
  np.testing.assert_allclose([p["mean"] for p in enc["predictions"]], m.encode(x)["mean"],
                             rtol=1e-6)


def test_row_format_sample_returns_one_prediction_per_image(sigs, m):
  resp = predict(sigs, {"signature_name": "sample",
                        "instances": [{"num": 4, "seed": 7, "temperature": 1.0}]})
  np.testing.assert_array_equal(np.array(resp["predictions"]), m.sample(num=4, seed=7))


def test_columnar_format(sigs, m):
  x = binary_images(2, seed=3)
  resp = predict(sigs, {"signature_name": "iwae",
                        "inputs": {"images": x.tolist(), "num_samples": 20, "seed": [1, 2]}})
  assert sorted(resp["outputs"]) == ["bits_per_dim", "nll"]
  np.testing.assert_allclose(resp["outputs"]["nll"], m.iwae(x, 20, seed=[1, 2])["nll"], rtol=1e-6)
  one = predict(sigs, {"signature_name": "log_prob", "inputs": x.tolist()})
  np.testing.assert_allclose(one["outputs"]["elbo"], m.log_prob(x)["elbo"], rtol=1e-6)
  z = [[0.0, 0.5, -1.0], [1, 2, 3]]                      # JSON ints are fine for float inputs
  dec = predict(sigs, {"signature_name": "decode", "inputs": {"z": z, "seed": 3}})
  np.testing.assert_array_equal(np.array(dec["outputs"]), m.decode(np.array(z), seed=3))


@pytest.mark.parametrize("body,message", [
    ({"signature_name": "sample", "inputs": {"num": 2.0, "seed": 0, "temperature": 1}},
     "JSON Value: 2.0 Type: Number is not of expected type: int32"),
    ({"signature_name": "sample", "inputs": {"num": 2, "temperature": 1.0}},
     "Missing named input: seed in 'inputs' object."),
    ({"signature_name": "reconstruct", "instances": [
        {"images": np.zeros((6, 6, 1)).tolist(), "seed": s} for s in (1, 2, 3)]},
     "seed: expected an int64 scalar s (the stateless seed [s, s]) or a stateless seed pair"),
    ({"instances": [np.full((6, 6, 1), 255).tolist()]}, "got a pixel value of] [255]"),
    ({"instances": [np.zeros((6, 6)).tolist()]}, "got shape] [1 6 6]"),
    ({"signature_name": "iwae", "inputs": {"images": np.zeros((1, 6, 6, 1)).tolist(),
                                           "num_samples": 5000, "seed": 0}},
     "num_samples: expected an integer in [1, 4096]"),
    ({"signature_name": "sample", "instances": [{"num": 2, "seed": 0, "temperature": 1.0},
                                                {"num": 3, "seed": 0, "temperature": 1.0}]},
     "num: expected one int32"),
    ({"signature_name": "nope", "instances": [1]}, "not found in signature def"),
])
def test_bad_requests_get_an_error_that_names_the_problem(sigs, body, message):
  resp = predict(sigs, body)
  assert list(resp) == ["error"] and message in resp["error"], resp


def test_serving_doc_matches_the_signatures(sigs):
  doc = DOC.read_text(encoding="utf-8")
  for name, fn in sigs.items():
    assert f"`{name}`" in doc, name
    for arg in list(fn.structured_input_signature[1]) + list(fn.structured_outputs):
      assert f"`{arg}`" in doc, (name, arg)
  for phrase in ("docker run -p 8501:8501", "target=/models/mnist", "MODEL_NAME=mnist",
                 "tensorflow/serving", "saved_models/mnist/1", "saved_model_cli show --all",
                 ":predict", '"instances"', '"inputs"', str(export.MAX_IWAE_SAMPLES),
                 str(export.MAX_SAMPLE_NUM)):
    assert phrase in doc, phrase
  assert os.path.exists(DOC)


# ------------------------------------------------------------------ bounded requests (issue 11)
def _sig(m, name, **inputs):
  return m.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})


def test_every_image_signature_refuses_a_batch_over_the_bound(m):
  # Defect: N was unbounded (log_prob on 100,000 images: SIGSEGV; iwae N=2048, k=4096: ~13 h).
  n = export.MAX_BATCH + 1
  x = np.zeros((n,) + IMAGE_SHAPE, np.float32)
  seed = np.int64(0)
  calls = {"log_prob": dict(images=x), "serving_default": dict(images=x),
           "encode": dict(images=x, seed=seed), "reconstruct": dict(images=x, seed=seed),
           "iwae": dict(images=x, num_samples=np.int32(1), seed=seed)}
  for name, inputs in calls.items():
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"at most {export.MAX_BATCH} images per request.*{n}"):
      _sig(m, name, **inputs)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"z: at most {export.MAX_BATCH} latents per request"):
    _sig(m, "decode", z=np.zeros((n, m.latent_size), np.float32), seed=seed)
  # iwae's cost N x k is bounded too: 17 x 4096 > 65,536.
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"N x num_samples = {export.MAX_IWAE_COST}.*{17 * 4096}"):
    _sig(m, "iwae", images=x[:17], num_samples=np.int32(4096), seed=seed)
  assert m.info["max_batch"] == export.MAX_BATCH and m.limits["max_batch"] == export.MAX_BATCH
  assert m.info["max_iwae_cost"] == export.MAX_IWAE_COST


def test_zoo_model_splits_large_inputs_into_requests_under_the_bound(m, monkeypatch):
  monkeypatch.setitem(m.limits, "max_batch", 4)
  monkeypatch.setitem(m.limits, "max_iwae_cost", 6)
  monkeypatch.setitem(m.limits, "max_sample_num", 3)
  x = binary_images(10, seed=3)
  chunks = [x[0:4], x[4:8], x[8:10]]
  seeds = [tf.constant(5, tf.int64)] + [tf.cast(tf.random.experimental.stateless_fold_in(
      tf.constant([5, 5], tf.int64), c), tf.int64) for c in (1, 2)]
  got = m.log_prob(x)
  want = [_sig(m, "log_prob", images=c.astype(np.float32)) for c in chunks]
  np.testing.assert_array_equal(got["elbo"], np.concatenate([w["elbo"].numpy() for w in want]))
  got = m.encode(x, seed=5)["z"]
  want = [m.signatures["encode"](images=tf.constant(c, tf.float32), seed=s)["z"].numpy()
          for c, s in zip(chunks, seeds)]
  np.testing.assert_array_equal(got, np.concatenate(want))
  np.testing.assert_array_equal(got[:4], m.encode(x[:4], seed=5)["z"])   # chunk 0: the seed as is
  assert m.reconstruct(x, seed=1).shape == x.shape
  assert m.decode(np.zeros((9, m.latent_size)), seed=1).shape == (9,) + IMAGE_SHAPE
  # iwae: chunks of max_iwae_cost // k = 3 images for k = 2.
  got = m.iwae(x[:7], num_samples=2, seed=5)["nll"]
  want = m.signatures["iwae"](images=tf.constant(x[3:6], tf.float32), num_samples=tf.constant(2),
                              seed=seeds[1])["nll"].numpy()
  np.testing.assert_array_equal(got[3:6], want)
  assert got.shape == (7,) and np.all(np.isfinite(got))
  assert m.sample(num=7, seed=2).shape == (7,) + IMAGE_SHAPE          # 3 + 3 + 1


def test_models_exported_before_the_bounds_get_the_default_limits():
  old = vlae_tf.zoo.load("mnist", verify_checksums=False)
  for key, default in zoo_model.DEFAULT_LIMITS.items():
    assert old.limits[key] == old.info.get(key, default)
  assert zoo_model.DEFAULT_LIMITS["max_batch"] == export.MAX_BATCH
  assert zoo_model.DEFAULT_LIMITS["max_iwae_cost"] == export.MAX_IWAE_COST
  assert zoo_model.DEFAULT_LIMITS["max_abs_z"] == export.MAX_ABS_Z


def test_nan_temperature_is_refused_for_its_value_not_its_shape(m):
  # Defect: the graph said "expected one float32 (a scalar ...), got shape []" for a NaN.
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"temperature: expected a float in "
                     r"\(0, 10\], got\] \[nan\]"):
    _sig(m, "sample", num=np.int32(1), seed=np.int64(0), temperature=np.float32("nan"))
  with pytest.raises(ValueError, match=r"temperature must be a finite float in \(0, 10\], got nan"):
    m.sample(num=1, temperature=float("nan"))


def test_decoding_a_huge_latent_is_refused_not_an_all_zero_image(m):
  # Defect: the shipped CIFAR-10 model decoded z = 3e38 into an all-zero image without complaint
  # (non-finite logits cast to uint8).
  z = np.full((1, m.latent_size), 3e38, np.float32)
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"\|z\| <= 10000.*3e\+38"):
    _sig(m, "decode", z=z, seed=np.int64(0))
  with pytest.raises(ValueError, match=r"\|z\| <= 10000"):
    m.decode(z)
