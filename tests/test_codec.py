"""The codec: exact round trips, the maths of the coded latent, file protection, determinism."""

import functools
import json
import math
import os
import struct
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import NAME, tiny_config
from vlae_tf import cli, codec
from vlae_tf.codec import file_format
from vlae_tf.codec.latent import LatentScheme, UnsupportedModel
from vlae_tf.codec.pixels import PixelWalker, channel_models

# pytest's process is not in the codec's canonical numeric mode (vlae_tf.codec.numeric_mode):
# files made here record its own mode and decode here (tests/test_codec_portable.py covers the
# real thing).
compress = functools.partial(codec.compress, portable=False)
encode = functools.partial(codec.encode, portable=False)

_MODELS = {}


def model_for(context="stack", likelihood="bernoulli", shape=(4, 4, 1), **overrides):
  key = (context, likelihood, shape, tuple(sorted(overrides.items())))
  if key not in _MODELS:
    keras.utils.set_random_seed(0)
    _MODELS[key] = vlae_tf.build_model(tiny_config(context=context, likelihood=likelihood,
                                                   image_shape=shape, **overrides))
  return _MODELS[key]


def images(model, n, seed=0):
  rng = np.random.default_rng(seed)
  if model.num_levels == 2:
    return (rng.random((n,) + model.image_shape) < 0.4).astype(np.uint8)
  return rng.integers(0, model.num_levels, (n,) + model.image_shape).astype(np.uint8)


CASES = [("stack", "bernoulli", (4, 4, 1)), ("window", "bernoulli", (4, 4, 1)),
         ("full", "bernoulli", (4, 4, 1)), ("none", "bernoulli", (4, 4, 1)),
         ("stack", "logistic_mixture", (3, 3, 3)), ("window", "logistic_mixture", (3, 3, 3)),
         ("grayscale", "logistic_mixture", (3, 3, 3)), ("full", "logistic_mixture", (3, 3, 3)),
         ("none", "logistic_mixture", (3, 3, 3)),
         ("gated", "bernoulli", (4, 4, 1)), ("gated_full", "logistic_mixture", (3, 3, 3))]


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("context,likelihood,shape", CASES)
def test_lossless_round_trip_is_exact(context, likelihood, shape):
  m = model_for(context, likelihood, shape)
  x = images(m, 5, seed=1)
  data = compress(m, x, group_size=2)
  y = codec.decompress(m, data)
  assert y.dtype == np.uint8 and y.shape == x.shape
  np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("likelihood,shape", [("bernoulli", (4, 4, 1)),
                                              ("logistic_mixture", (3, 3, 3))])
def test_lossy_round_trip_decodes_the_mode_given_the_coded_latent(likelihood, shape):
  m = model_for("stack", likelihood, shape)
  x = images(m, 3, seed=2)
  data, st = encode(m, x, lossy=True, group_size=2, bin_width_log2=2)
  y = codec.decompress(m, data)
  assert y.shape == x.shape and y.dtype == np.uint8
  assert st["initial_bits"] == 0 and st["bits_per_image"] > 0
  # The receiver's decode is deterministic: decoding twice gives the same images.
  np.testing.assert_array_equal(codec.decompress(m, data), y)
  # Sampling with a stored seed: reproducible, and another seed draws other pixels.
  s0 = codec.decompress(m, compress(m, x, lossy=True, lossy_decode="sample", seed=0))
  s0b = codec.decompress(m, compress(m, x, lossy=True, lossy_decode="sample", seed=0))
  s1 = codec.decompress(m, compress(m, x, lossy=True, lossy_decode="sample", seed=1))
  np.testing.assert_array_equal(s0, s0b)
  assert not np.array_equal(s0, s1)


def test_grayscale_input_shape_and_dtype_come_back_as_given():
  m = model_for()
  x = images(m, 3)[..., 0]                   # [N, H, W]
  y = codec.decompress(m, compress(m, x, group_size=2))
  assert y.shape == x.shape and y.dtype == np.uint8
  np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("prior,steps", [("normal", 2), ("af", 1)])
def test_other_codable_priors_round_trip(prior, steps):
  m = model_for(prior=prior, prior_steps=steps)
  x = images(m, 4, seed=3)
  np.testing.assert_array_equal(codec.decompress(m, compress(m, x, group_size=3)), x)


@pytest.mark.parametrize("overrides,match", [({"prior_steps": 3}, "3 MAF steps"),
                                             ({"posterior": "iaf"}, "IAF")])
def test_models_that_cannot_be_coded_exactly_are_refused(overrides, match):
  m = model_for(**overrides)
  with pytest.raises(UnsupportedModel, match=match):
    compress(m, images(m, 1))


# ------------------------------------------------------------------ maths
def _normal_logpdf(v, mean, std):
  return -0.5 * ((v - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)


def test_the_coded_latent_has_the_models_rate():
  """For the two-step AF prior, the chains of 1-D Gaussians that the codec codes
  (prior in one order, posterior in the other, over u between the two MAF steps)
  give log q_u(u|x) - log p_u(u) = log q(z|x) - log p(z) at z = F1(u)."""
  m = model_for(latent_dim=4)
  g, b = 3, 12
  sch = LatentScheme(m, b, 8.0)
  x = images(m, g, seed=4).astype(np.float32)
  mu, sigma, _ = m.encode(tf.constant(x))
  mu, sigma = mu.numpy(), sigma.numpy()
  rng = np.random.default_rng(0)
  u_target = rng.normal(size=(g, m.latent_size))
  k, z, shift, log_scale = sch.z_walk(g, lambda i, s, ls: np.round(u_target[:, i] / sch.delta))
  u = k * sch.delta
  mean_q, std_q = sch.posterior_params(mu, sigma, shift, log_scale)
  log_q_u = _normal_logpdf(u / sch.delta, mean_q, std_q).sum(-1) - m.latent_size * math.log(
      sch.delta)
  log_p_u = []
  sch.prior_walk(g, lambda i, mean, std: (log_p_u.append(
      _normal_logpdf(u[:, i] / sch.delta, mean, std) - math.log(sch.delta)), k[:, i])[1])
  log_p_u = np.sum(log_p_u, 0)
  log_q_z = _normal_logpdf(z, mu, sigma).sum(-1)
  log_p_z = m.prior.log_prob(tf.constant(z)).numpy()
  np.testing.assert_allclose(log_q_u - log_p_u, log_q_z - log_p_z, atol=2e-3)
  # and z = F1(u) is the prior's flow applied to u: F1^{-1}(z) gives u back
  np.testing.assert_allclose(sch.encode_v(z), u, atol=1e-4)


@pytest.mark.parametrize("context,likelihood,shape", [CASES[0], CASES[5], CASES[6], CASES[9],
                                                      CASES[10]])
def test_step_by_step_probabilities_are_the_models(context, likelihood, shape):
  """The walker's sub-pixel distributions sum to one and their product at the known pixels is
  the likelihood's p(x|z) from the parallel decoder."""
  m = model_for(context, likelihood, shape)
  g = 3
  x = images(m, g, seed=5)
  z = np.random.default_rng(1).normal(size=(g, m.latent_size)).astype(np.float32)
  flat = x.reshape(g, -1, shape[-1]).astype(np.int64)
  log_p, seen = np.zeros(g), []

  def teacher(p, c, kind, params):
    nonlocal log_p
    v = flat[:, p, c]
    if kind == "bernoulli":
      prob = np.where(v == 1, params, 1 - params)
    else:
      np.testing.assert_allclose(params.sum(-1), 1.0, rtol=1e-9)
      prob = params[np.arange(g), v]
    log_p = log_p + np.log(prob)
    seen.append((p, c))
    return v

  back = PixelWalker(m).walk(z, teacher)
  np.testing.assert_array_equal(back, flat)
  assert seen == [(p, c) for p in range(flat.shape[1]) for c in range(shape[-1])]
  want = m.log_px_given_z(tf.constant(x, tf.float32), tf.constant(z)).numpy()
  np.testing.assert_allclose(log_p, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("context,likelihood,shape", [CASES[0], CASES[4], CASES[8], CASES[10]])
def test_the_senders_distributions_are_the_bits_the_walk_hands_its_chooser(context, likelihood,
                                                                           shape):
  m = model_for(context, likelihood, shape)
  flat = images(m, 2, seed=7).reshape(2, -1, shape[-1]).astype(np.int64)
  z = np.random.default_rng(3).normal(size=(2, m.latent_size)).astype(np.float32)
  walker, seen = PixelWalker(m), []
  walker.walk(z, lambda p, c, kind, params: (seen.append(params.copy()), flat[:, p, c])[1])
  got = walker.distributions(z, flat)                                   # [H W, C, G(, n)]
  np.testing.assert_array_equal(got.reshape((-1,) + got.shape[2:]), np.stack(seen))


@pytest.mark.parametrize("likelihood,shape", [("bernoulli", (4, 4, 1)),
                                              ("logistic_mixture", (3, 3, 3))])
def test_channel_models_outside_a_walk_give_the_models_probabilities(likelihood, shape):
  """channel_models (the sub-pixel distributions of many pixels at once, as bench scripts use
  them) at the parallel decoder's raw parameters: their product is p(x|z)."""
  m = model_for("window", likelihood, shape)
  x = images(m, 3, seed=6)
  z = np.random.default_rng(2).normal(size=(3, m.latent_size)).astype(np.float32)
  raw = m.decoder_raw(tf.constant(x, tf.float32), tf.constant(z)).numpy()
  raw = raw.reshape(-1, raw.shape[-1])
  known = x.reshape(-1, shape[-1]).astype(np.int64)
  log_p = np.zeros(len(known))

  def choose(c, kind, params):
    nonlocal log_p
    v = known[:, c]
    log_p += np.log(np.where(v == 1, params, 1 - params) if kind == "bernoulli"
                    else params[np.arange(len(v)), v])
    return v

  np.testing.assert_array_equal(channel_models(m.likelihood, raw, choose), known)
  want = m.log_px_given_z(tf.constant(x, tf.float32), tf.constant(z)).numpy()
  np.testing.assert_allclose(log_p.reshape(3, -1).sum(1), want, rtol=1e-4, atol=1e-4)


def test_file_size_is_the_negative_elbo():
  """Net code length of many images ~ their mean -ELBO (averaged over posterior samples)."""
  m = model_for(shape=(6, 6, 1))
  x = images(m, 48, seed=6)
  _, st = encode(m, x, group_size=16)
  neg_elbo_bits = np.mean([-m.elbo_terms(x, seed=tf.constant([s, 1])) ["elbo"].numpy()
                           for s in range(20)], 0).sum() / math.log(2)
  assert st["net_bits"] == pytest.approx(neg_elbo_bits, rel=0.05)
  assert st["bits_per_dim"] == pytest.approx(st["net_bits"] / x.size)
  assert st["payload_bits"] == st["net_bits"] + st["initial_bits"]


# ------------------------------------------------------------ file format
@pytest.fixture(scope="module")
def coded():
  m = model_for()
  x = images(m, 4, seed=7)
  return m, x, compress(m, x, group_size=2)


def _resealed(body):
  import hashlib
  return body + hashlib.sha256(body).digest()


def test_truncated_corrupted_and_foreign_files_are_refused(coded):
  m, _, data = coded
  cases = [(data[:len(data) // 2], "truncated"), (data[:5], "bad magic|truncated"),
           (b"PK\x03\x04" + data[4:], "not a VLAE compressed file"),
           (data[:-40] + bytes([data[-40] ^ 1]) + data[-39:], "corrupted"),
           (_resealed(data[:8] + struct.pack("<H", 99) + data[10:-32]), "format version 99")]
  for bad, match in cases:
    with pytest.raises(codec.CodecError, match=match):
      codec.decompress(m, bad)


def test_a_file_from_another_model_is_refused(coded):
  _, _, data = coded
  other = model_for(latent_dim=4)
  with pytest.raises(codec.CodecError, match="compressed with model"):
    codec.decompress(other, data)


def test_a_payload_that_does_not_decode_is_an_error_not_garbage(coded):
  """A valid container whose ANS words were altered (and resealed) fails the final checks."""
  m, _, data = coded
  header, payload = file_format.unpack(data)
  payload = payload.copy()
  payload[-1] ^= 0x5A5A
  with pytest.raises(codec.CodecError, match="decoding failed"):
    codec.decompress(m, file_format.pack(header, payload))


@pytest.mark.parametrize("bad,message", [
    (np.zeros((2, 4, 4, 3), np.uint8),
     "images: expected images of shape [N, 4, 4, 1] or [N, 4, 4], got shape [2, 4, 4, 3]"),
    (np.full((2, 4, 4), 2, np.uint8), "images: expected binary values {0, 1}, got values up to 2"),
    (np.full((2, 4, 4), -1, np.int8),
     "images: expected binary values {0, 1}, got int8 values in [-1, -1]"),
    (np.zeros((2, 4, 4), np.float32),
     "images: expected an integer image array (uint8 pixels), got dtype float32"),
    (np.zeros((0, 4, 4), np.uint8),
     "images: expected at least one image, the batch is empty (shape (0, 4, 4, 1))"),
    ("not images", "images: expected an integer image array (uint8 pixels), got dtype <U10")])
def test_wrong_input_images_are_refused_in_one_line(bad, message):
  """The codec's check is validation.image_array's, its message whole in a CodecError."""
  with pytest.raises(codec.CodecError) as e:
    compress(model_for(), bad)
  assert str(e.value) == message


@pytest.mark.parametrize("kwargs,match", [
    ({"latent_range": 0.0}, "latent_range must be a positive number"),
    ({"latent_range": -8.0}, "latent_range must be a positive number"),
    ({"latent_range": float("nan")}, "latent_range must be a positive number"),
    ({"latent_range": 16.0, "bin_width_log2": 8}, "8192 bins per latent dimension; at most 4096"),
    ({"bin_width_log2": 17}, "bin_width_log2 must be in")])
def test_bad_coding_parameters_are_refused(kwargs, match):
  with pytest.raises(codec.CodecError, match=match):
    encode(model_for(), images(model_for(), 2), **kwargs)


def test_a_numpy_latent_range_is_a_number():
  data, _ = encode(model_for(), images(model_for(), 2), latent_range=np.float32(8.0))
  assert file_format.unpack(data)[0]["latent_range"] == 8.0


def test_the_default_latent_grid_stays_under_the_leak_cap():
  """Lossless default: few enough bins that constriction's minimum-mass leak stays small
  (vlae_tf.codec.latent)."""
  b = codec.DEFAULT_BIN_WIDTH_LOG2[codec.LOSSLESS]
  assert 2 * codec.DEFAULT_LATENT_RANGE * 2.0 ** b + 1 <= 1025 <= codec.MAX_LATENT_SYMBOLS


def test_write_atomic_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
  target = tmp_path / "out.vlae"
  file_format.write_atomic(target, b"old")

  def fail(*args):
    raise OSError("disk full")

  monkeypatch.setattr(os, "replace", fail)
  with pytest.raises(OSError, match="disk full"):
    file_format.write_atomic(target, b"new contents")
  assert list(tmp_path.iterdir()) == [target] and target.read_bytes() == b"old"


# ------------------------------------------------------------ determinism
def test_grouping_is_a_coding_parameter_and_every_grouping_decodes():
  m = model_for("window", "logistic_mixture", (3, 3, 3))
  x = images(m, 5, seed=8)
  for g in (1, 2, 4):
    data = compress(m, x, group_size=g)
    assert codec.read_header(data)["group_size"] == g
    np.testing.assert_array_equal(codec.decompress(m, data), x)


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_process_mode_file_decodes_in_a_fresh_process_only_with_the_same_threads(tmp_path):
  """portable=False records this process's mode: a fresh process like this one decodes the file;
  one with 1 intra/inter-op thread refuses it with one line naming the threads."""
  m = model_for("window", "logistic_mixture", (3, 3, 3))
  x = images(m, 5, seed=9)
  w, f = tmp_path / "m.weights.h5", tmp_path / "m.vlae"
  m.save_weights(str(w))
  f.write_bytes(compress(m, x, group_size=3))
  script = textwrap.dedent("""
      import json, sys
      import tensorflow as tf
      if sys.argv[3] == "1":
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
      import numpy as np
      sys.path.insert(0, sys.argv[1])
      try:
        from helpers import tiny_config
      except ImportError:
        from conftest import tiny_config
      import vlae_tf
      from vlae_tf import codec
      spec = json.loads(sys.argv[2])
      m = vlae_tf.build_model(tiny_config(context="window", likelihood="logistic_mixture",
                                          image_shape=[3, 3, 3]))
      m.load_weights(spec["weights"])
      try:
        np.save(spec["out"], codec.decompress(m, open(spec["file"], "rb").read()))
      except codec.CodecError as e:
        print("CodecError:", e)
  """)
  tests_dir = os.path.dirname(os.path.abspath(__file__))
  for threads in ("default", "1"):
    spec = {"weights": str(w), "file": str(f), "out": str(tmp_path / f"{threads}.npy")}
    r = subprocess.run([sys.executable, "-c", script, tests_dir, json.dumps(spec), threads],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    if threads == "default":
      np.testing.assert_array_equal(np.load(spec["out"]), x)
    else:
      line = r.stdout.strip().splitlines()[-1]
      assert line.startswith("CodecError:") and "threads" in line and "portable=False" in line


# --------------------------------------------------------------------- CLI
# (The commands' round trips and printed sizes: test_codec_files.py.)
@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_errors_are_one_line_and_write_nothing(zoo, tmp_path, capfd):
  bad = tmp_path / "bad.npz"
  np.savez(bad, x=np.full((2, 6, 6), 7, np.uint8))
  out = tmp_path / "o.vlae"
  assert cli.main(["compress", f"--zoo_dir={zoo.root}", f"--model={NAME}", f"--data={bad}",
                   f"--out={out}"]) == 2
  err = capfd.readouterr().err.strip()
  assert err == ("vlae compress: error: images: expected binary values {0, 1}, got values "
                 "up to 7")
  assert not out.exists() and list(tmp_path.iterdir()) == [bad]
  junk = tmp_path / "junk.vlae"
  junk.write_bytes(b"hello")
  assert cli.main(["decompress", str(junk), f"--zoo_dir={zoo.root}",
                   f"--out={tmp_path / 'b.npz'}"]) == 2
  err = capfd.readouterr().err.strip()
  assert err.count("\n") == 0 and "not a VLAE compressed file" in err
  assert not (tmp_path / "b.npz").exists()
