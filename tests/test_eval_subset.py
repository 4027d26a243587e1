"""The IWAE subset used by ``evaluate``: evenly spaced, never a (class-sorted) prefix."""

import numpy as np

import vlae_tf
from helpers import tiny_config
from vlae_tf.evaluation import iwae_subset


def test_subset_is_evenly_spaced_and_covers_the_split():
  idx = iwae_subset(10_000, 10)
  assert len(idx) == 10 and idx[0] == 0 and idx[-1] == 9_999
  assert np.all(np.diff(idx) >= 1_110)            # one per class block of a sorted test set
  np.testing.assert_array_equal(iwae_subset(50, -1), np.arange(50))
  np.testing.assert_array_equal(iwae_subset(50, None), np.arange(50))
  np.testing.assert_array_equal(iwae_subset(50, 500), np.arange(50))


def test_evaluate_reports_the_subset_and_its_own_elbo():
  model = vlae_tf.build_model(tiny_config())
  rng = np.random.default_rng(0)
  x = rng.integers(0, 2, (12, 4, 4, 1)).astype(np.uint8)
  x[6:] = 1                                        # second half very different from the first
  r = vlae_tf.evaluate(model, x, num_samples=4, batch_size=12, iwae_examples=3)
  assert r["num_examples"] == 12 and r["iwae_num_examples"] == 3
  assert r["iwae_subset"] == "evenly spaced"
  # One batch of 12 with seed [0, 0]: the same per-example ELBOs evaluate() saw.
  elbo = model.elbo_terms(x, seed=[0, 0])["elbo"].numpy()
  np.testing.assert_allclose(r["elbo"], elbo.mean(), rtol=1e-5)
  np.testing.assert_allclose(r["elbo_on_iwae_subset"], elbo[[0, 6, 11]].mean(), rtol=1e-5)
  assert abs(r["elbo_on_iwae_subset"] - elbo[:3].mean()) > 1e-3   # not the prefix
  assert r["iwae_nll_stderr"] > 0.0
  full = vlae_tf.evaluate(model, x, num_samples=4, batch_size=4)
  assert full["iwae_num_examples"] == 12 and full["iwae_subset"] == "all"


def test_mutual_information_uses_evenly_spaced_images(monkeypatch):
  monkeypatch.setattr(vlae_tf.evaluation, "MUTUAL_INFORMATION_EXAMPLES", 3)
  model = vlae_tf.build_model(tiny_config())
  rng = np.random.default_rng(1)
  x = rng.integers(0, 2, (12, 4, 4, 1)).astype(np.uint8)
  x[6:] = 1
  r = vlae_tf.evaluate(model, x, num_samples=2, batch_size=12, seed=0)
  mu, sigma = vlae_tf.evaluation.posterior_stats(model, x)
  spread = vlae_tf.evaluation.mutual_information(mu[[0, 6, 11]], sigma[[0, 6, 11]], 0)
  prefix = vlae_tf.evaluation.mutual_information(mu[:3], sigma[:3], 0)
  assert r["mutual_information_examples"] == 3
  np.testing.assert_allclose(r["mutual_information"], spread, rtol=1e-4)
  assert abs(r["mutual_information"] - prefix) > 1e-4          # not the class-sorted prefix
  elbo = model.elbo_terms(x, seed=[0, 0])["elbo"].numpy()
  np.testing.assert_allclose(r["elbo_stderr"], elbo.std(ddof=1) / np.sqrt(12), rtol=1e-4)
