"""The TF Serving contract: saved_model_cli's view of the signatures, and REST request bodies.

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

from rest_emulation import predict
from vlae_tf import export
from zoo_testing import binary_images, m, zoo  # noqa: F401  (m, zoo: fixtures)

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "SERVING.md"


@pytest.fixture(scope="module")
def sigs(zoo):
  return tf.saved_model.load(str(zoo.saved_model_dir)).signatures


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
