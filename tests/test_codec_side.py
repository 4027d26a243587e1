"""The lossy file's side information (vlae_tf.codec.side_info): the encoder's choice, the receiver's
maths, the payload and the header field.

The maths run on NumPy arrays (no model); the file round trips use tiny models made here (an RGB
logistic mixture and a binary one), coded in pytest's own numeric mode (``portable=False``).
"""

import functools
import hashlib
import os
import struct
import subprocess
import sys

import constriction
import keras
import numpy as np
import pytest

import vlae_tf
from helpers import tiny_config
from vlae_tf import cli, codec
from vlae_tf.codec import chain, file_format, lossy, side_info
from vlae_tf.pretrained import store

compress = functools.partial(codec.compress, portable=False)
encode = functools.partial(codec.encode, portable=False)

ALPHA = {"grid": 1, "mean_bits": 8, "gain": "alpha", "gain_step": 4, "gain_levels": 9}
MATRIX = {"grid": 2, "mean_bits": 5, "gain": "matrix", "gain_step": 8, "gain_levels": 33}
MEAN_COLOUR = {"grid": 1, "mean_bits": 8, "gain": "none"}
_MODELS = {}


def rgb_model():
  if "rgb" not in _MODELS:
    keras.utils.set_random_seed(0)
    _MODELS["rgb"] = vlae_tf.build_model(tiny_config(likelihood="logistic_mixture",
                                                     image_shape=(4, 4, 3)))
  return _MODELS["rgb"]


def binary_model():
  if "bin" not in _MODELS:
    keras.utils.set_random_seed(0)
    _MODELS["bin"] = vlae_tf.build_model(tiny_config())
  return _MODELS["bin"]


def pictures(n=6, shape=(8, 8, 3), seed=0):
  """Images with structure (a colour per image, a gradient, noise) and an estimate ``e`` that
  shares some of it, as z's expectation does."""
  rng = np.random.default_rng(seed)
  h, w, c = shape
  ramp = np.linspace(-1, 1, h)[:, None, None] * np.linspace(-1, 1, w)[None, :, None]
  colour = rng.uniform(40, 210, (n, 1, 1, c))
  sign = rng.uniform(-1, 1, (n, 1, 1, c))
  x = colour + 30 * ramp * sign + rng.normal(0, 12, (n, h, w, c))
  e = 120 + 10 * ramp * sign * rng.uniform(0.2, 1.5, (n, 1, 1, 1)) + rng.normal(0, 3, (n, h, w, c))
  return np.clip(np.rint(x), 0, 255).astype(np.uint8), e


def squared_errors(x, y):
  return np.sum((x.astype(np.float64) - y) ** 2, axis=(1, 2, 3))


# ------------------------------------------------------------------- the maths
def test_alpha_is_the_best_of_its_set():
  x, e = pictures()
  means, gains = side_info.choose(ALPHA, x, e)
  every = np.stack([squared_errors(x, side_info.reconstruct(ALPHA, e, means,
                                                             np.full((len(x), 1), i)))
                    for i in range(ALPHA["gain_levels"])], axis=1)
  chosen = squared_errors(x, side_info.reconstruct(ALPHA, e, means, gains))
  np.testing.assert_array_equal(chosen, every.min(axis=1))
  assert len(set(gains[:, 0])) > 1                        # not one alpha for all images
  centre = (ALPHA["gain_levels"] - 1) // 2                 # alpha = 0 is a candidate
  assert np.all(chosen <= every[:, centre])


def test_alpha_ties_go_to_the_smallest_gain():
  x, _ = pictures()
  flat = np.full(x.shape, 99.0)                            # no detail: every alpha decodes alike
  _, gains = side_info.choose(ALPHA, x, flat)
  np.testing.assert_array_equal(gains, (ALPHA["gain_levels"] - 1) // 2)


def test_the_matrix_is_the_better_of_zero_and_the_quantized_least_squares():
  x, e = pictures(n=8, seed=1)
  means, gains = side_info.choose(MATRIX, x, e)
  half = (MATRIX["gain_levels"] - 1) // 2
  zero = np.full((len(x), 9), half)
  ls = side_info._least_squares(MATRIX, x, e, means, 256)
  err = {name: squared_errors(x, side_info.reconstruct(MATRIX, e, means, g))
         for name, g in (("zero", zero), ("ls", ls), ("chosen", gains))}
  np.testing.assert_array_equal(err["chosen"], np.minimum(err["zero"], err["ls"]))
  assert np.any(err["ls"] < err["zero"])                  # the gain is used where it helps


def test_the_least_squares_matrix_is_the_rounded_solution():
  x, e = pictures(n=3, seed=2)
  side = dict(MATRIX, grid=1, gain_step=1, gain_levels=255)
  means = side_info.mean_indices(side_info.block_means(x, 1), side["mean_bits"])
  target = x - side_info.upsample(side_info.mean_values(means, side["mean_bits"]), 8, 8)
  dn = side_info.detail(e, 1)
  got = side_info._least_squares(side, x, e, means, 256) - 127
  for i in range(len(x)):
    g = np.linalg.lstsq(dn[i].reshape(-1, 3), target[i].reshape(-1, 3), rcond=None)[0]
    np.testing.assert_array_equal(got[i], np.rint(g).reshape(-1))


def test_a_zero_gain_with_8_bit_means_is_the_rounded_mean_colour():
  x, e = pictures()
  means, _ = side_info.choose(MEAN_COLOUR, x, e)
  y = side_info.reconstruct(MEAN_COLOUR, e, means, np.zeros((len(x), 0), np.int64))
  colour = np.rint(x.astype(np.float64).mean(axis=(1, 2), keepdims=True))
  np.testing.assert_array_equal(y, np.broadcast_to(colour, x.shape))
  for side in (ALPHA, dict(MATRIX, grid=1, mean_bits=8)):   # alpha = 0 / G = 0: the same
    half = (side["gain_levels"] - 1) // 2
    k = 1 if side["gain"] == "alpha" else 9
    y0 = side_info.reconstruct(side, e, means, np.full((len(x), k), half))
    np.testing.assert_array_equal(y0, y)
    assert np.all(squared_errors(x, side_info.reconstruct(side, e, *side_info.choose(
        side, x, e))) <= squared_errors(x, y))            # never worse than the mean colour


def test_block_means_are_quantized_to_the_nearest_level():
  m = np.linspace(0, 255, 1001)
  for bits in range(1, 9):
    step = 256 / 2 ** bits
    v = side_info.mean_values(side_info.mean_indices(m, bits), bits)
    assert np.all(np.abs(v - m) <= step / 2 + 1e-9)
    assert np.all((side_info.mean_indices(m, bits) >= 0)
                  & (side_info.mean_indices(m, bits) < 2 ** bits))
  np.testing.assert_array_equal(side_info.mean_values(side_info.mean_indices(m, 8), 8),
                                np.rint(m))


def test_upsampling_interpolates_between_block_centres():
  rng = np.random.default_rng(0)
  blocks = rng.uniform(0, 255, (2, 4, 4, 3))
  np.testing.assert_allclose(side_info.upsample(blocks, 4, 4), blocks)          # one per pixel
  up = side_info.upsample(blocks, 8, 8)
  np.testing.assert_allclose(up[:, 0, 0], blocks[:, 0, 0])                         # clamped corner
  np.testing.assert_allclose(up[:, 1, 0], 0.75 * blocks[:, 0, 0] + 0.25 * blocks[:, 1, 0])
  np.testing.assert_allclose(side_info.upsample(np.full((1, 2, 2, 1), 7.0), 8, 8), 7.0)
  np.testing.assert_array_equal(side_info.upsample(blocks[:, :1, :1], 8, 8),
                                np.broadcast_to(blocks[:, :1, :1], (2, 8, 8, 3)))


def test_the_detail_has_zero_block_means_and_unit_rms():
  _, e = pictures()
  for grid in (1, 2):
    dn = side_info.detail(e, grid)
    np.testing.assert_allclose(np.sqrt(np.mean(dn ** 2, axis=(1, 2, 3))), 1.0)
  np.testing.assert_allclose(side_info.detail(e, 1).mean(axis=(1, 2)), 0.0, atol=1e-12)
  np.testing.assert_array_equal(side_info.detail(np.full((2, 8, 8, 3), 50.0), 1), 0.0)


def test_nominal_bits():
  assert side_info.nominal_bits(None, (32, 32, 3)) == 0
  assert side_info.nominal_bits(MEAN_COLOUR, (32, 32, 3)) == 24
  assert side_info.nominal_bits(side_info.DEFAULT, (32, 32, 3)) == pytest.approx(
      18 + 9 * np.log2(33))
  assert side_info.nominal_bits(ALPHA, (32, 32, 3)) == pytest.approx(24 + np.log2(9))


# ------------------------------------------------------------------ the payload
def test_side_symbols_round_trip_through_the_coder_between_other_symbols():
  x, e = pictures(n=5)
  family = constriction.stream.model.Uniform(1000)
  for side in (ALPHA, MATRIX, MEAN_COLOUR):
    means, gains = side_info.choose(side, x, e)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.array([3, 999], np.int32), family)    # what lies below (a group)
    side_info.push(coder, side, means, gains)
    coder.encode_reverse(np.array([17, 0, 5], np.int32), family)  # what is pushed after (k)
    np.testing.assert_array_equal(coder.decode(family, 3), [17, 0, 5])
    got_means, got_gains = side_info.pop(coder, side, len(x), 3)
    np.testing.assert_array_equal(got_means, means)
    np.testing.assert_array_equal(got_gains, gains.reshape(len(x), -1))
    np.testing.assert_array_equal(coder.decode(family, 2), [3, 999])
    assert coder.is_empty()


@pytest.mark.parametrize("side", ["auto", ALPHA | {"grid": 2}, MEAN_COLOUR])
def test_the_side_information_round_trips_bit_exactly_through_a_file(side):
  """The receiver pops the indices the encoder chose, and decodes what the maths give."""
  m = rgb_model()
  x = np.random.default_rng(3).integers(0, 256, (5, 4, 4, 3)).astype(np.uint8)
  data, st = encode(m, x, lossy=True, group_size=5, lossy_side=side, seed=11)
  header, payload = file_format.unpack(data)
  want = side_info.DEFAULT if side == "auto" else side
  assert header["lossy_side"] == want
  cod = chain.Coder(m, 5, header["bin_width_log2"], header["latent_range"])
  k = chain.lossy_latents(cod, x)
  z = cod.latent.z_of(k)[0]
  e = lossy.Reconstructor(m).mean(z, 11, 0)
  means, gains = side_info.choose(want, x, e, m.num_levels)
  coder = constriction.stream.stack.AnsCoder(payload)              # pop as the receiver does
  k_back = cod.latent.prior_walk(5, lambda i, mean, std: coder.decode(cod.q_family, mean, std))
  got = side_info.pop(coder, want, 5, 3)
  assert coder.is_empty()
  np.testing.assert_array_equal(k_back, k)
  np.testing.assert_array_equal(got[0], means)
  np.testing.assert_array_equal(got[1], gains.reshape(5, -1))
  y = codec.decompress(m, data)
  np.testing.assert_array_equal(y, side_info.reconstruct(want, e, means, gains, m.num_levels))
  plain = codec.decompress(m, compress(m, x, lossy=True, group_size=5, lossy_side=None, seed=11))
  assert squared_errors(x, y).sum() < squared_errors(x, plain).sum()
  assert st["side_bits_per_image"] == side_info.nominal_bits(want, (4, 4, 3))


def test_groups_draw_their_own_estimate():
  m = rgb_model()
  x = np.random.default_rng(4).integers(0, 256, (5, 4, 4, 3)).astype(np.uint8)
  y = codec.decompress(m, compress(m, x, lossy=True, group_size=2))
  cod = chain.Coder(m, 2, codec.DEFAULT_BIN_WIDTH_LOG2["lossy"], codec.DEFAULT_LATENT_RANGE)
  rec = lossy.Reconstructor(m)
  for j, (s, n) in enumerate([(0, 2), (2, 2), (4, 1)]):       # the receiver numbers them last first
    e = rec.mean(cod.latent.z_of(chain.lossy_latents(cod, x[s:s + n]))[0], 0, 2 - j)
    side = side_info.DEFAULT
    want = side_info.reconstruct(side, e, *side_info.choose(side, x[s:s + n], e))
    np.testing.assert_array_equal(y[s:s + n], want)


# ----------------------------------------------------------------- which models
def test_binary_models_get_no_side_information_by_default():
  m = binary_model()
  x = (np.random.default_rng(0).random((3, 4, 4, 1)) < 0.4).astype(np.uint8)
  data, st = encode(m, x, lossy=True, group_size=3)
  assert codec.read_header(data)["lossy_side"] is None and st["side_bits_per_image"] == 0
  with pytest.raises(codec.CodecError, match="more than 2 levels"):
    encode(m, x, lossy=True, lossy_side=MEAN_COLOUR)


def test_greedy_rules_get_none_and_refuse_it():
  m = rgb_model()
  x = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
  assert codec.read_header(compress(m, x, lossy=True, lossy_decode="mean"))["lossy_side"] is None
  with pytest.raises(codec.CodecError, match="'expectation'"):
    encode(m, x, lossy=True, lossy_decode="mode", lossy_side=MEAN_COLOUR)
  for bad, match in ((["grid", 1], "or a dict"), ("some", "'auto', 'none'"),
                     (dict(MEAN_COLOUR, grid=3), "'grid'"), (dict(ALPHA, gain_levels=8),
                                                             "'gain_levels'")):
    with pytest.raises(codec.CodecError, match=match):
      encode(m, x, lossy=True, lossy_side=bad)


def test_vlae_compress_defaults_to_auto_side_information():
  args = cli.build_parser().parse_args(["compress", "--model=cifar10", "--data=test",
                                        "--out=x.vlae", "--lossy"])
  assert args.lossy_side == "auto"


# ------------------------------------------------------- the header and old files
def _reseal(header, payload, version=file_format.FORMAT_VERSION):
  body = file_format.pack({k: v for k, v in header.items() if k != "payload_words"},
                           payload)[:-32]
  body = body[:8] + struct.pack("<H", version) + body[10:]
  return body + hashlib.sha256(body).digest()


@pytest.fixture(scope="module")
def rgb_file():
  m = rgb_model()
  x = np.random.default_rng(5).integers(0, 256, (3, 4, 4, 3)).astype(np.uint8)
  return compress(m, x, lossy=True, group_size=3)


@pytest.mark.parametrize("side,match", [
    (["grid"], "must be null or an object"),
    ({"grid": 1, "mean_bits": 6}, "'gain' must be one of"),
    (dict(side_info.DEFAULT, gain="bogus"), "'gain' must be one of"),
    (dict(side_info.DEFAULT, extra=1), "must have exactly the keys"),
    (dict(MEAN_COLOUR, gain_step=8), "must have exactly the keys"),
    (dict(side_info.DEFAULT, grid=0), "'grid'"),
    (dict(side_info.DEFAULT, grid=3), "'grid'"),                 # does not divide 4
    (dict(side_info.DEFAULT, grid=8), "'grid'"),
    (dict(side_info.DEFAULT, grid=True), "'grid'"),
    (dict(side_info.DEFAULT, mean_bits=0), "'mean_bits'"),
    (dict(side_info.DEFAULT, mean_bits=9), "'mean_bits'"),
    (dict(side_info.DEFAULT, mean_bits=6.0), "'mean_bits'"),
    (dict(side_info.DEFAULT, gain_step=0), "'gain_step'"),
    (dict(side_info.DEFAULT, gain_step=256), "'gain_step'"),
    (dict(side_info.DEFAULT, gain_levels=32), "'gain_levels'"),    # even
    (dict(side_info.DEFAULT, gain_levels=1), "'gain_levels'"),
    (dict(side_info.DEFAULT, gain_levels=2 ** 40 + 1), "'gain_levels'"),
])
def test_a_crafted_side_information_field_is_a_one_line_error(rgb_file, side, match):
  header, payload = file_format.unpack(rgb_file)
  bad = _reseal(dict(header, lossy_side=side), payload)
  with pytest.raises(codec.CodecError, match="header field 'lossy_side'.*" + match) as info:
    codec.decompress(rgb_model(), bad)
  assert "\n" not in str(info.value)


def test_side_information_with_a_greedy_rule_or_a_binary_model_is_refused(rgb_file):
  header, payload = file_format.unpack(rgb_file)
  with pytest.raises(codec.CodecError, match="lossy_side.*'expectation'"):
    codec.read_header(_reseal(dict(header, lossy_decode="mode"), payload))
  m = binary_model()
  x = (np.random.default_rng(0).random((3, 4, 4, 1)) < 0.4).astype(np.uint8)
  h2, p2 = file_format.unpack(compress(m, x, lossy=True, group_size=3))
  with pytest.raises(codec.CodecError, match="header field 'lossy_side'.*more than 2 levels") as e:
    codec.decompress(m, _reseal(dict(h2, lossy_side=MEAN_COLOUR), p2))
  assert "\n" not in str(e.value)


def test_a_version_2_lossy_file_decodes_as_before_and_cannot_carry_side_information():
  m = rgb_model()
  x = np.random.default_rng(6).integers(0, 256, (3, 4, 4, 3)).astype(np.uint8)
  data = compress(m, x, lossy=True, group_size=3, lossy_side=None)
  header, payload = file_format.unpack(data)
  old = _reseal({k: v for k, v in header.items() if k != "lossy_side"}, payload, version=2)
  assert file_format.file_version(old) == 2 and codec.read_header(old)["lossy_side"] is None
  y = codec.decompress(m, old)
  np.testing.assert_array_equal(y, codec.decompress(m, data))
  rec = lossy.Reconstructor(m)                 # what version 2 decoded: the rounded mean
  cod = chain.Coder(m, 3, header["bin_width_log2"], header["latent_range"])
  z = cod.latent.z_of(chain.lossy_latents(cod, x))[0]
  np.testing.assert_array_equal(y, rec.expectation(z, 0, 0))
  with pytest.raises(codec.CodecError, match="does not write: \"lossy_side\""):
    codec.read_header(_reseal(dict(header, lossy_side=MEAN_COLOUR), payload, version=2))


# ------------------------------------------------- the canonical mode, other environments
def _vlae(args, **env):
  """``python -m vlae_tf.cli ARGS`` in a fresh process with the parent's numeric settings
  dropped and ``env`` added (the codec starts its canonical mode itself)."""
  ours = ("TF_", "ONEDNN_", "NPY_", "OMP_", "GLIBC_TUNABLES", "VLAE_CODEC_NUMERIC_MODE")
  base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
  r = subprocess.run([sys.executable, "-m", "vlae_tf.cli", *args], env={**base, **env},
                     capture_output=True, text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_cifar10_file_with_side_information_is_the_same_in_every_environment(tmp_path):
  """Coded with AVX-512 oneDNN and as on a CPU without it: the same bytes; decoded with oneDNN
  off and on one thread: the same images (the side information's maths are NumPy's, which the
  canonical mode pins too)."""
  x = np.load(os.path.join(store.model_dir("cifar10"), "examples.npz"))["x"][:2]
  np.savez(tmp_path / "x.npz", x=x)
  made = {}
  for name, env in (("default", {}), ("avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2"})):
    _vlae(["compress", "--model=cifar10", f"--data={tmp_path / 'x.npz'}", "--lossy",
           "--group_size=2", f"--out={tmp_path / name}.vlae"], **env)
    made[name] = (tmp_path / f"{name}.vlae").read_bytes()
  assert made["default"] == made["avx2"]
  assert codec.read_header(made["default"])["lossy_side"] == side_info.DEFAULT
  back = {}
  for name, env in (("off", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
                    ("one", {"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"})):
    _vlae(["decompress", str(tmp_path / "avx2.vlae"), f"--out={tmp_path / name}.npz"], **env)
    back[name] = np.load(tmp_path / f"{name}.npz")["x"]
  np.testing.assert_array_equal(back["off"], back["one"])
  assert back["off"].shape == x.shape
