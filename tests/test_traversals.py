"""experiments/traversals.py: the base-space path, fixed noise, and the global/local numbers."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import vlae_tf
from helpers import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from experiments import traversals as T  # noqa: E402
from vlae_tf import sampling  # noqa: E402
from vlae_tf.af_prior import std_normal_log_prob  # noqa: E402


@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(3)
  m = vlae_tf.build_model(tiny_config(image_shape=(4, 4, 1), latent_dim=5))
  for made in m.prior.mades:                    # a clearly non-identity flow
    made.out_kernel.assign(made.out_kernel * 8.0)
    made.out_bias.assign(tf.random.stateless_normal(made.out_bias.shape, [1, 2]))
  return m


def test_base_noise_inverts_the_prior_flow(model):
  eps = tf.random.stateless_normal([16, 5], [0, 1])
  z = model.prior.sample_from_noise(eps)
  assert float(tf.reduce_max(tf.abs(z - eps))) > 0.5          # the flow is far from the identity
  np.testing.assert_allclose(T.base_noise(model.prior, z), eps, atol=1e-4)
  z2 = model.prior.sample_from_noise(T.base_noise(model.prior, z + 0.3))
  np.testing.assert_allclose(z2, z + 0.3, atol=1e-4)


def test_base_positions_name_the_latent_dim_each_base_term_is_credited_to(model):
  m = vlae_tf.build_model(tiny_config(image_shape=(4, 4, 1), latent_dim=5))
  for made in m.prior.mades:        # shift 0, log scale 0: each flow step is the identity
    made.out_kernel.assign(tf.zeros_like(made.out_kernel))
    made.out_bias.assign(tf.zeros_like(made.out_bias))
  perm = T.base_positions(m.prior)
  assert sorted(perm) == list(range(5)) and list(perm) != list(range(5))   # two steps: reversed
  eps = tf.random.stateless_normal([3, 5], [4, 4])
  z = m.prior.sample_from_noise(eps).numpy()
  np.testing.assert_allclose(z[:, perm], eps, atol=1e-6)      # eps_p lands in z_{perm[p]}
  per_dim = m.prior.log_prob_per_dim(z).numpy()
  np.testing.assert_allclose(per_dim[:, perm], std_normal_log_prob(eps), atol=1e-5)


def _spy_decoder():
  """A decoder that records its inputs and returns images holding the index of each input row."""
  calls = []

  def decode(z, u):
    start = sum(len(c[0]) for c in calls)
    calls.append((np.array(z), np.array(u)))
    ids = np.arange(start, start + len(z), dtype=np.float32)
    return np.broadcast_to(ids[:, None, None, None], (len(z), 4, 4, 1)).copy()

  def inputs(images):
    zs = np.concatenate([c[0] for c in calls])
    us = np.concatenate([c[1] for c in calls])
    ids = images[..., 0, 0, 0].astype(int)
    return zs[ids], us[ids]
  return decode, inputs


def _noise(model, seed=7):
  return lambda count, i: sampling.draw_noise(model, count,
                                             tf.constant([seed, i], tf.int64)).numpy()


def test_traversal_path_is_the_intended_grid_in_base_space_with_noise_fixed_per_image(model):
  z_mean = model.prior.sample_from_noise(tf.random.stateless_normal([3, 5], [2, 2])).numpy()
  decode, inputs = _spy_decoder()
  dims, grid = [4, 1], [-2.0, -0.5, 1.0, 2.0]
  res = T.traverse(model.prior, decode, _noise(model), z_mean, dims, grid, num_resamples=4,
                   batch=5)
  z_t, u_t = inputs(res["traversals"])                            # [3, 2, 4, D], [3, 2, 4, 4, 4, 1]
  z_r, u_r = inputs(res["resamples"])                             # [3, 4, D], [3, 4, 4, 4, 1]
  eps0 = T.base_noise(model.prior, z_mean).numpy()
  eps_t = T.base_noise(model.prior, z_t.reshape(-1, 5)).numpy().reshape(z_t.shape)
  for m, p in enumerate(dims):
    np.testing.assert_allclose(eps_t[:, m, :, p], np.broadcast_to(grid, (3, 4)), atol=1e-4)
    others = [q for q in range(5) if q != p]
    np.testing.assert_allclose(eps_t[:, m][..., others],
                               np.broadcast_to(eps0[:, None, others], (3, 4, 4)), atol=1e-4)
  assert np.abs(np.diff(z_t, axis=2)).max(axis=(0, 1, 2)).min() > 1e-3   # z moves off the axis
  for n in range(3):
    np.testing.assert_array_equal(z_r[n], np.broadcast_to(z_mean[n], (4, 5)))   # z fixed
    np.testing.assert_array_equal(u_t[n], np.broadcast_to(u_r[n, 0], u_t[n].shape))  # noise fixed
    assert all(np.abs(u_r[n, a] - u_r[n, b]).max() > 0.1 for a in range(4) for b in range(a))
  assert np.abs(u_r[0, 0] - u_r[1, 0]).max() > 0.1                # another image, other noise


def test_traversal_through_the_own_point_reproduces_the_fixed_noise_decode(model):
  z_mean = model.prior.sample_from_noise(tf.random.stateless_normal([1, 5], [5, 5])).numpy()
  e = float(T.base_noise(model.prior, z_mean)[0, 2])
  res = T.traverse(model.prior, T.make_decoder(model), _noise(model, 11), z_mean, [2],
                   [e - 3.0, e, e + 3.0], num_resamples=3)
  np.testing.assert_array_equal(res["traversals"][0, 0, 1], res["resamples"][0, 0])
  assert not np.array_equal(res["resamples"][0, 0], res["resamples"][0, 1])   # noise matters


def test_change_stats_separate_a_global_shift_from_local_detail():
  rng = np.random.default_rng(0)
  base = rng.integers(0, 150, (3, 1, 1, 4, 4, 1)).astype(np.float64)
  k = np.arange(4)[None, None, :, None, None, None]
  traversals = np.broadcast_to(base + 10.0 * k, (3, 2, 4, 4, 4, 1))     # a uniform brightening
  checker = (np.indices((4, 4)).sum(0) % 2 * 2 - 1)[None, None, :, :, None]
  sign = np.array([1, -1, 1])[None, :, None, None, None]
  resamples = base[:, 0] + 50.0 + 20.0 * checker * sign      # detail that 2x2 means cancel
  s, per = T.change_stats(traversals, resamples, 256, block=2)
  np.testing.assert_allclose(s["full"]["step"]["mean"], 10 / 255)
  np.testing.assert_allclose(s["full"]["sweep"]["mean"], 30 / 255)
  np.testing.assert_allclose(s["full"]["resample"]["mean"], (40 + 0 + 40) / 3 / 255)
  np.testing.assert_allclose(s["block2"]["step"]["mean"], 10 / 255)
  np.testing.assert_allclose(s["block2"]["resample"]["mean"], 0.0, atol=1e-12)
  np.testing.assert_allclose(per["coarseness"]["step"], 1.0)
  np.testing.assert_allclose(s["coarseness"]["step_minus_resample"]["mean"], 1.0)
  assert s["coarseness"]["fraction_step_coarser"] == 1.0
  np.testing.assert_allclose(s["full"]["step_over_resample"]["mean"], 10 / (80 / 3))
  assert s["full"]["step"]["stderr"] == pytest.approx(0.0, abs=1e-12)


def test_cell_locality_finds_the_cell_that_changes():
  t = np.zeros((2, 2, 3, 8, 8, 1))
  t[:, 0, 1:, 4:8, 0:4] = 1.0                         # direction 0 changes only cell (1, 0)
  t[:, 1, 2:] = 1.0                                   # direction 1 changes the whole image
  r = T.cell_locality(t, [(1, 0), (0, 1)], stride=4)
  np.testing.assert_allclose(r[:, 0], 4.0)           # all its change in a quarter of the image
  np.testing.assert_allclose(r[:, 1], 1.0)


def test_figure_grid_puts_resamples_first_then_one_row_per_direction():
  x = np.zeros((3, 2, 2, 1))
  trav = np.arange(3 * 2 * 4).reshape(3, 2, 4, 1, 1, 1) * np.ones((1, 1, 1, 2, 2, 1)) + 100
  res = -np.arange(3 * 4).reshape(3, 4, 1, 1, 1) * np.ones((1, 1, 2, 2, 1))
  g = T.figure_grid(x, trav, res, per_row=2, num_levels=256)
  assert g.shape == (2 * 3, 2 * 5 + 1, 2, 2, 1)
  np.testing.assert_array_equal(g[0, 1:5], res[0])
  np.testing.assert_array_equal(g[0, 7:11], res[1])
  np.testing.assert_array_equal(g[2, 6:11], np.concatenate([x[1:2], trav[1, 1]]))
  np.testing.assert_array_equal(g[3, 1:5], res[2])
  assert np.all(g[:, 5] == 255) and np.all(g[3:, 6:] == 255)    # separator; no fourth image


@pytest.mark.subprocess
def test_bad_input_is_one_line_and_exit_status_2(tmp_path):
  for args in (["--out=a.jpg"], ["--out=a.png", "--grid=1,x"], ["--out=a.png", "--num_resamples=3"],
               ["--out=a.png", "--rank_by=kl2"], ["--out=a.png", "--nope=1"]):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "traversals.py"), *args],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2, (args, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, p.stderr)


def test_unknown_model_and_end_to_end_on_a_tiny_zoo_model(zoo, tmp_path, capsys):  # noqa: F811
  assert T.main(["--model=no_such_model", f"--out={tmp_path}/a.png"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "no_such_model" in err[0]
  out, js = tmp_path / "t.png", tmp_path / "t.json"
  js.write_text(json.dumps({"other": {"kept": True}}))
  args = [f"--model={zoo.dir}", f"--out={out}", f"--json={js}", "--num_images=4",
          "--figure_images=2", "--num_directions=2", "--kl_images=8", "--grid=-1,0,1",
          "--num_resamples=3", "--block=2"]
  assert T.main(args) == 0
  assert out.stat().st_size > 0
  saved = json.loads(js.read_text())
  assert saved["other"] == {"kept": True}
  r = saved[str(zoo.dir)]
  assert r["command"] == "python experiments/traversals.py " + " ".join(args)
  assert len(r["directions"]) == 2 and r["num_images"] == 4
  kls = [d["kl_nats"] for d in r["directions"]]
  assert kls == sorted(kls, reverse=True) and r["control_direction"]["kl_nats"] <= kls[-1]
  full, low = r["results"]["full"], r["results"]["block2"]
  assert low["step"]["mean"] <= full["step"]["mean"] + 1e-12       # |mean| <= mean |.|
  assert low["resample"]["mean"] <= full["resample"]["mean"] + 1e-12
