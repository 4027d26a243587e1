"""Bad input gets a clear error that names the argument and says what was expected.

Checked for every public entry point that takes images (``model.elbo_terms``,
``model.training_loss``, ``vlae_tf.iwae_nll``), for the sampling-count
arguments of ``iwae_nll`` and for ``receptive_field``'s pixel. Static problems
(rank, image size, dtype) are ``ValueError`` / ``TypeError``; value problems
(range, NaN, non-integer, empty batch) are ``tf.errors.InvalidArgumentError``,
eagerly and inside a ``tf.function``.
"""

import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import tiny_config

IAE = tf.errors.InvalidArgumentError


@pytest.fixture(scope="module")
def binary_model():
  return vlae_tf.build_model(tiny_config(context="stack", image_shape=(4, 4, 1), prior="normal"))


@pytest.fixture(scope="module")
def rgb_model():
  return vlae_tf.build_model(tiny_config(context="window", image_shape=(4, 4, 3),
                                         likelihood="logistic_mixture", prior="normal"))


ENTRY_POINTS = {
    "elbo_terms": lambda m, x: m.elbo_terms(x),
    "training_loss": lambda m, x: m.training_loss(x),
    "iwae_nll": lambda m, x: vlae_tf.iwae_nll(m, x, num_samples=3),
}

_ok = np.zeros((2, 4, 4, 1), np.float32)

# (name, x, exception, regex the message must match): every message names x and the expectation.
BINARY_CASES = [
    ("rank3", np.zeros((4, 4, 1)), ValueError, r"x must be a rank-4 NHWC batch of shape \[N, 4, 4, 1\]"),
    ("rank5", np.zeros((1, 2, 4, 4, 1)), ValueError, r"x must be a rank-4 .*got shape"),
    ("scalar", 1.0, ValueError, r"x must be a rank-4"),
    ("image size", np.zeros((2, 5, 4, 1)), ValueError, r"x has images of shape \(5, 4, 1\).*\[N, 4, 4, 1\]"),
    ("channels", np.zeros((2, 4, 4, 3)), ValueError, r"x has images of shape \(4, 4, 3\).*\[N, 4, 4, 1\]"),
    ("string", np.full((2, 4, 4, 1), "1"), TypeError, r"x has dtype string; expected uint8 or float"),
    ("bool", np.ones((2, 4, 4, 1), bool), TypeError, r"x has dtype bool; expected"),
    ("complex", np.zeros((2, 4, 4, 1), np.complex64), TypeError, r"x has dtype complex64; expected"),
    ("int8", np.zeros((2, 4, 4, 1), np.int8), TypeError, r"x has dtype int8; expected"),
    ("None", None, TypeError, r"x must be a numeric array of images"),
    ("ragged", [np.zeros((4, 4, 1)), np.zeros((3, 4, 1))], TypeError, r"x must be a numeric array"),
    ("value 2", np.where(np.arange(32).reshape(2, 4, 4, 1) == 5, 2.0, 0.0), IAE,
     r"x has pixel values outside \[0, 1\]; expected binary values \{0, 1\}"),
    ("value -1", -np.ones((2, 4, 4, 1)), IAE, r"x has pixel values outside \[0, 1\]"),
    ("non-integer", np.full((2, 4, 4, 1), 0.5, np.float32), IAE,
     r"x has non-integer pixel values; expected binary values \{0, 1\}"),
    ("NaN", np.where(np.arange(32).reshape(2, 4, 4, 1) == 3, np.nan, 1.0), IAE,
     r"x has NaN or infinite pixel values; expected binary values"),
    ("inf", np.full((2, 4, 4, 1), np.inf), IAE, r"x has NaN or infinite pixel values"),
    ("empty batch", np.zeros((0, 4, 4, 1), np.float32), IAE,
     r"x is an empty batch; expected at least one image of shape \[4, 4, 1\]"),
]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("name,x,exc,msg", BINARY_CASES, ids=[c[0] for c in BINARY_CASES])
def test_bad_binary_input(binary_model, entry, name, x, exc, msg):
  with pytest.raises(exc, match=msg):
    ENTRY_POINTS[entry](binary_model, x)


RGB_CASES = [
    ("256", np.full((1, 4, 4, 3), 256.0), IAE,
     r"x has pixel values outside \[0, 255\]; expected integer values in \[0, 255\]"),
    ("-1", np.full((1, 4, 4, 3), -1.0), IAE, r"x has pixel values outside \[0, 255\]"),
    ("uint16 300", np.full((1, 4, 4, 3), 300, np.uint16), TypeError, r"x has dtype uint16"),
    ("int 256", np.full((1, 4, 4, 3), 256, np.int32), IAE, r"outside \[0, 255\]"),
    ("127.5", np.full((1, 4, 4, 3), 127.5, np.float32), IAE, r"x has non-integer pixel values"),
    ("grayscale image", np.zeros((1, 4, 4, 1), np.uint8), ValueError,
     r"x has images of shape \(4, 4, 1\); this model expects \[N, 4, 4, 3\]"),
    ("NHWC transposed", np.zeros((1, 3, 4, 4), np.uint8), ValueError, r"x has images of shape \(3, 4, 4\)"),
]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("name,x,exc,msg", RGB_CASES, ids=[c[0] for c in RGB_CASES])
def test_bad_8bit_input(rgb_model, entry, name, x, exc, msg):
  with pytest.raises(exc, match=msg):
    ENTRY_POINTS[entry](rgb_model, x)


def test_valid_inputs_of_every_accepted_dtype_agree(binary_model, rgb_model):
  x = (np.random.default_rng(0).random((2, 4, 4, 1)) < 0.5)
  seed = tf.constant([1, 2], tf.int64)
  ref = binary_model.elbo_terms(x.astype(np.float32), seed=seed)["elbo"].numpy()
  for dtype in (np.uint8, np.int32, np.int64, np.float16, np.float64):
    got = binary_model.elbo_terms(x.astype(dtype), seed=seed)["elbo"].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-6, err_msg=str(dtype))
  got = binary_model.elbo_terms(tf.constant(x.astype(np.uint8)), seed=seed)["elbo"].numpy()
  np.testing.assert_allclose(got, ref, rtol=1e-6)
  # Extremes of the valid 8-bit range are accepted.
  x8 = np.zeros((2, 4, 4, 3), np.uint8)
  x8[1] = 255
  assert np.all(np.isfinite(rgb_model.elbo_terms(x8)["elbo"].numpy()))


def test_value_checks_also_run_inside_a_graph(binary_model):
  fn = tf.function(lambda x: binary_model.elbo_terms(x)["elbo"],
                   input_signature=[tf.TensorSpec([None, 4, 4, 1], tf.float32)])
  assert fn(tf.constant(_ok)).shape == (2,)
  with pytest.raises(IAE, match=r"x has pixel values outside \[0, 1\]"):
    fn(tf.constant(np.full((2, 4, 4, 1), 3.0, np.float32)))
  with pytest.raises(IAE, match=r"x is an empty batch"):
    fn(tf.zeros((0, 4, 4, 1)))
  with pytest.raises(IAE, match=r"x has non-integer pixel values"):
    fn(tf.fill([1, 4, 4, 1], 0.25))


@pytest.mark.parametrize("num_samples,exc,msg", [
    (0, ValueError, r"num_samples must be in \[1, 4096\], got 0"),
    (-5, ValueError, r"num_samples must be in \[1, 4096\], got -5"),
    (4097, ValueError, r"num_samples must be in \[1, 4096\]"),
    (2.5, TypeError, r"num_samples must be an int, got 2.5"),
    (10.0, TypeError, r"num_samples must be an int"),
    (True, TypeError, r"num_samples must be an int, got True"),
    ("100", TypeError, r"num_samples must be an int, got '100'"),
    (None, TypeError, r"num_samples must be an int, got None"),
])
def test_iwae_bad_num_samples(binary_model, num_samples, exc, msg):
  with pytest.raises(exc, match=msg):
    vlae_tf.iwae_nll(binary_model, _ok, num_samples=num_samples)


@pytest.mark.parametrize("chunk,exc,msg", [
    (0, ValueError, r"chunk_size must be >= 1, got 0"),
    (-3, ValueError, r"chunk_size must be >= 1, got -3"),
    (2.5, TypeError, r"chunk_size must be None or an int, got 2.5"),
    (True, TypeError, r"chunk_size must be None or an int"),
])
def test_iwae_bad_chunk_size(binary_model, chunk, exc, msg):
  with pytest.raises(exc, match=msg):
    vlae_tf.iwae_nll(binary_model, _ok, num_samples=4, chunk_size=chunk)


def test_iwae_accepts_numpy_ints(binary_model):
  a = vlae_tf.iwae_nll(binary_model, _ok, num_samples=np.int64(4), chunk_size=np.int32(2), seed=0)
  b = vlae_tf.iwae_nll(binary_model, _ok, num_samples=4, chunk_size=2, seed=0)
  np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pixel,exc,msg", [
    ((4, 0), ValueError, r"pixel \(4, 0\) is outside the 4x4 image"),
    ((0, -1), ValueError, r"pixel \(0, -1\) is outside the 4x4 image"),
    ((1,), ValueError, r"pixel must be \(i, j\) or \(i, j, c\)"),
    ((1, 2, 0, 0), ValueError, r"pixel must be \(i, j\) or \(i, j, c\)"),
    ((0, 0, 1), ValueError, r"pixel \(0, 0, 1\): channel 1 out of range for 1-channel images"),
    ((1.5, 2), TypeError, r"pixel must be a tuple of ints"),
    ((True, 1), TypeError, r"pixel must be a tuple of ints"),
    ("ab", TypeError, r"pixel must be a tuple of ints"),
    (None, TypeError, r"pixel must be a tuple of ints"),
    (3, TypeError, r"pixel must be a tuple of ints"),
])
def test_receptive_field_bad_pixel(binary_model, pixel, exc, msg):
  with pytest.raises(exc, match=msg):
    vlae_tf.receptive_field(binary_model, pixel)


def test_receptive_field_bad_channel_rgb(rgb_model):
  with pytest.raises(ValueError, match=r"channel 3 out of range for 3-channel images"):
    vlae_tf.receptive_field(rgb_model, (0, 0, 3))
  with pytest.raises(ValueError, match=r"channel -1 out of range"):
    vlae_tf.receptive_field(rgb_model, (0, 0, -1))
  # numpy integers and lists are fine
  assert vlae_tf.receptive_field(rgb_model, [np.int64(1), 2, 0]).shape == (4, 4, 3)
