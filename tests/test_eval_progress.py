"""``--mode=eval`` finishes in minutes by default, says what it computes and reports progress (issue 21).

The default was IWAE with k=4096 on the whole test split, silently: about four
hours for the mnist zoo model on a 2-core CPU. Now the default is the ELBO on
the whole split plus IWAE k=100 on 1,000 evenly spaced images (a few minutes;
the full bound stays a flag), and a long evaluation prints a line with an ETA
at least every half minute; the numbers are those of the one-call IWAE.
"""

import numpy as np
import pytest

import vlae_tf
from helpers import tiny_config, train_config
from vlae_tf import config as vconfig
from vlae_tf import evaluation, training
from vlae_tf import workdir as vwork


def test_the_default_evaluation_is_the_minutes_one():
  e = vconfig.default_config().eval
  assert (e.iwae_samples, e.iwae_examples, e.num_examples) == (100, 1000, -1)
  assert vlae_tf.zoo.get_config("mnist_cpu").eval.iwae_samples == 100


@pytest.mark.parametrize("value", [0, -2])
def test_a_bad_eval_iwae_examples_is_refused(value):
  cfg = tiny_config()
  cfg.eval.iwae_examples = value
  with pytest.raises(ValueError, match=r"eval.iwae_examples must be -1 \(all\) or >= 1"):
    vconfig.validate_config(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("seconds_per_call", [0.0, 1e9], ids=["one_chunk_per_call", "growing"])
def test_iwae_in_pieces_gives_the_numbers_of_one_call(monkeypatch, seconds_per_call):
  model = vlae_tf.build_model(tiny_config())
  x = np.random.default_rng(0).integers(0, 2, (13, 4, 4, 1)).astype(np.uint8)
  monkeypatch.setattr(evaluation, "SECONDS_PER_CALL", seconds_per_call)
  for k in (1, 7, 300):
    one_call = np.concatenate([evaluation.iwae_nll(model, x[i:i + 5], k, seed=3 + i)
                               for i in range(0, 13, 5)])
    np.testing.assert_array_equal(evaluation.iwae_per_example(model, x, k, 5, seed=3), one_call)


@pytest.mark.slow
def test_eval_says_what_it_computes_and_reports_progress_with_an_eta(tmp_path, monkeypatch):
  wd = str(tmp_path / "run")
  training.train(train_config(steps=3), wd)
  monkeypatch.setattr(evaluation, "PROGRESS_EVERY", 0.0)     # as if every call took 30 s
  monkeypatch.setattr(evaluation, "SECONDS_PER_CALL", 0.0)   # one chunk of samples per call
  lines = []
  result = vwork.evaluate_workdir(wd, iwae_samples=600, num_examples=40, iwae_examples=10,
                                  log=lines.append)
  assert lines[0].startswith(f"evaluating {wd} at step 3 (EMA weights): ELBO, rate and distortion "
                             "on all 40 images"), lines[0]
  assert "IWAE NLL bound with k=600 on 10 evenly spaced ones" in lines[0]
  assert "--eval_iwae_samples=4096 --eval_iwae_examples=-1" in lines[0]
  iwae = [l for l in lines if l.startswith("IWAE k=600 on 10 images: ")]
  assert len(iwae) >= 10 and all("elapsed, ETA " in l for l in iwae[:-1]), lines
  assert iwae[-1].startswith("IWAE k=600 on 10 images: 10/10 images (100%)") and "done" in iwae[-1]
  assert any(l.startswith("ELBO on 40 images: ") for l in lines)
  assert result["iwae_samples"] == 600 and result["iwae_num_examples"] == 10
  assert lines == sorted(set(lines), key=lines.index)                # no line twice


@pytest.mark.slow
def test_a_short_evaluation_prints_nothing_but_the_first_line(tmp_path):
  wd = str(tmp_path / "run")
  training.train(train_config(steps=3), wd)
  lines = []
  vwork.evaluate_workdir(wd, iwae_samples=3, num_examples=16, log=lines.append)
  assert len(lines) == 1 and lines[0].startswith("evaluating ")
