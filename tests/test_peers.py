"""experiments/peers.py: tfd.PixelCNN's likelihood is a real one, the comparison runs end to end, and
a study stopped at any point resumes where it was.

tfd.PixelCNN is causal only through Keras kernel constraints that an optimizer
applies after an update; the bench projects the masks itself. The check with
teeth: the probabilities of all 2^4 binary 2x2 images must sum to 1, which an
unprojected network does not do.
"""

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from experiments import cpu_budget, peers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The bench's architecture at a size a 2x2 image allows (2 resolutions: 2x2 and 1x1).
TOY_ARCH = dict(peers.PIXELCNN, num_hierarchies=2, num_filters=8)
ALL_2X2 = np.array(list(itertools.product([0, 1], repeat=4)), np.float32).reshape(16, 2, 2, 1)


def total_probability(dist):
  return float(np.exp(dist.log_prob(ALL_2X2).numpy().astype(np.float64)).sum())


def test_unprojected_pixelcnn_is_not_a_likelihood():
  """Why the bench projects the masks: a fresh tfd.PixelCNN sees the pixels it predicts."""
  tf.keras.utils.set_random_seed(0)
  raw = tfp.distributions.PixelCNN(image_shape=(2, 2, 1), low=0, high=1, **TOY_ARCH)
  assert abs(total_probability(raw) - 1.0) > 1e-3


@pytest.mark.slow
def test_pixelcnn_likelihood_sums_to_one_before_and_after_training():
  tf.keras.utils.set_random_seed(0)
  dist = peers.pixelcnn((2, 2, 1), TOY_ARCH)
  assert total_probability(dist) == pytest.approx(1.0, abs=1e-5)
  trainer = peers.PixelCNNTrainer(dist, learning_rate=3e-2)
  # Every weight of the tf_keras network is tracked by the distribution and trained.
  assert len(trainer.variables) == len(dist.network.trainable_weights) > 0
  assert trainer.constrained
  before = [v.numpy().copy() for v in trainer.variables]
  x = ALL_2X2[[0, 5, 15]]
  nll0 = -dist.log_prob(x).numpy().mean()
  for _ in range(10):
    trainer.train_step(x)
  assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, trainer.variables))
  assert -dist.log_prob(x).numpy().mean() < nll0 - 0.1
  assert total_probability(dist) == pytest.approx(1.0, abs=1e-5)
  trainer.use_ema()
  assert total_probability(dist) == pytest.approx(1.0, abs=1e-5)
  # On {0, 1} the quantized logistic is a Bernoulli: p(x) and p(1 - x) of a 1x1 image sum to 1.
  one = peers.pixelcnn((1, 1, 1), dict(TOY_ARCH, num_hierarchies=1))
  p = np.exp(one.log_prob(np.array([[[[0.0]]], [[[1.0]]]], np.float32)).numpy())
  assert p.sum() == pytest.approx(1.0, abs=1e-6) and (p > 0).all()


@pytest.mark.slow
def test_pixelcnn_checkpoint_holds_the_whole_training_state(tmp_path):
  """A resumed PixelCNN training continues exactly: weights, Adam's state, EMA shadows, step."""
  x = ALL_2X2[[0, 5, 15, 9]]
  tf.keras.utils.set_random_seed(0)
  a = peers.PixelCNNTrainer(peers.pixelcnn((2, 2, 1), TOY_ARCH), learning_rate=3e-2)
  for _ in range(3):
    a.train_step(x)
  path = a.checkpoint.save(str(tmp_path / "ckpt"))
  tf.keras.utils.set_random_seed(1)                   # another initialisation, to be overwritten
  b = peers.PixelCNNTrainer(peers.pixelcnn((2, 2, 1), TOY_ARCH), learning_rate=3e-2)
  b.checkpoint.restore(path).assert_existing_objects_matched()
  assert int(b.step.numpy()) == 3 and int(b.optimizer.iterations.numpy()) == 3
  a.train_step(x)
  b.train_step(x)
  for va, vb in zip(a.variables + [a.ema.average(v) for v in a.variables],
                    b.variables + [b.ema.average(v) for v in b.variables]):
    np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-6, atol=1e-7)


def test_pixelcnn_schedule_is_the_vaes_recipe_at_the_update_count():
  """--pixelcnn_schedule_steps gives the PixelCNN the VAEs' warm-up + cosine (same formula)."""
  trainer = peers.PixelCNNTrainer(peers.pixelcnn((2, 2, 1), TOY_ARCH), learning_rate=1e-2,
                                  schedule_steps=1000)
  x = ALL_2X2[[0, 5]]
  for step in (0, 199, 700, 1200):
    trainer.optimizer.iterations.assign(step)
    trainer.train_step(x)                           # the rate in use at this update
    want = 1e-2 * (step + 1) / 200 if step < 200 else 1e-5 + (1e-2 - 1e-5) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, (step - 200) / 800)))
    assert float(trainer.optimizer.learning_rate) == pytest.approx(want, rel=1e-5)
  constant = peers.PixelCNNTrainer(peers.pixelcnn((2, 2, 1), TOY_ARCH), learning_rate=1e-2)
  constant.optimizer.iterations.assign(700)
  constant.train_step(x)
  assert float(constant.optimizer.learning_rate) == pytest.approx(1e-2)
  # The schedule is part of the training's settings only when it is on: older runs still match.
  on = peers.parse(["--smoke", "--workdir=w", "--pixelcnn_schedule_steps=900"])
  off = peers.parse(["--smoke", "--workdir=w"])
  assert peers.training_settings("pixelcnn", on)["schedule_steps"] == 900
  assert "schedule_steps" not in peers.training_settings("pixelcnn", off)


def test_cpu_count_of_a_resumed_checkpoint():
  ledger = {100: 50.0, 200: 90.0}
  assert cpu_budget.spent_at(ledger, None) == (0.0, False)
  assert cpu_budget.spent_at(ledger, 200) == (90.0, False)
  assert cpu_budget.spent_at(ledger, 250) == (pytest.approx(112.5), True)   # 90 s / 200 steps
  assert cpu_budget.spent_at(ledger, 50) == (None, True)
  assert cpu_budget.checkpoint_step("/w/checkpoints/ckpt-1200") == 1200


def test_contender_folder_of_unknown_or_other_settings_is_refused(tmp_path, capsys):
  os.makedirs(tmp_path / "vlae" / "run")
  args = peers.parse(["--smoke", "--workdir", str(tmp_path)])
  with pytest.raises(SystemExit) as e:
    peers.run_contender("vlae", args)
  assert e.value.code == 2 and "without its settings" in capsys.readouterr().err
  with open(tmp_path / "vlae" / peers.SETTINGS, "w") as f:
    json.dump(peers.training_settings("vlae", peers.parse(
        ["--smoke", "--workdir", str(tmp_path), "--cpu_minutes", "2"])), f)
  with pytest.raises(SystemExit) as e:
    peers.run_contender("vlae", args)
  err = capsys.readouterr().err
  assert e.value.code == 2 and "cpu_minutes 2.0 (now 0.05)" in err and "\n" == err[-1:]


def test_bad_flags_are_usage_errors(capsys):
  with pytest.raises(SystemExit):
    peers.parse(["--smoke"])
  assert "--workdir is required" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    peers.parse(["--workdir", "x", "--cpu_minutes", "0"])


# The smoke run's contenders: a VLAE, the full-context VAE and the PixelCNN, one of each way
# run_contender trains and evaluates (a VLAE paired against the others; each contender is a
# fresh process costing ~10 s of CPU). The VAEs differ only in their zoo config, and
# vae_factorized runs end to end in test_interrupted_contender_resumes_from_its_checkpoint.
SMOKE = ("vlae_gated", "vae_full", "pixelcnn")


@pytest.mark.slow
@pytest.mark.subprocess
def test_smoke_run_end_to_end(tmp_path, capsys):
  """Three fresh processes, one step each, evaluated on the same 8 synthetic test images."""
  wd = str(tmp_path / "peers")
  argv = ["--smoke", f"--workdir={wd}", f"--contenders={','.join(SMOKE)}"]
  out = peers.main(argv)
  printed = capsys.readouterr().out
  assert "command:" in printed and "| contender |" in printed and "SMOKE RUN" in printed
  with open(os.path.join(wd, "peers.json")) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(out))
  names = [c["name"] for c in saved["contenders"]]
  assert names == list(SMOKE)
  assert saved["smoke"] and saved["order"] == "sequential"
  assert saved["header"].splitlines()[1].startswith("command:")
  per = {n: np.load(os.path.join(wd, n, peers.PER_EXAMPLE))["nll"] for n in names}
  for c in saved["contenders"]:
    name = c["name"]
    assert c["kind"] == peers.KINDS[name]
    assert c["cpu_seconds"] >= 3.0 and c["params"] > 0 and c["num_images"] == 8
    assert math.isfinite(c["nll"]) and c["nll"] > 0 and c["nll_stderr"] > 0
    assert per[name].shape == (8,) and np.all(np.isfinite(per[name])) and np.all(per[name] > 0)
    assert c["nll"] == pytest.approx(per[name].mean())
    if name == "pixelcnn":
      assert c["bound"] == "exact" and c["elbo"] is None and c["rate"] is None
      assert c["iwae_samples"] is None and c["mutual_information"] is None
    else:
      assert c["bound"] == "IWAE k=4" and c["iwae_samples"] == 4
      assert c["elbo"] < 0 and c["rate"] >= 0 and c["config"]
      # peer.json keeps the whole test-set summary (the seed table's metrics), I(x; z) in the record
      with open(os.path.join(wd, name, peers.RESULT)) as f:
        summary = json.load(f)["test"]["summary"]
      assert summary["iwae_nll"] == pytest.approx(c["nll"]) and summary["iwae_samples"] == 4
      assert len(summary["kl_per_dim"]) == summary["latent_size"] > 0
      assert c["mutual_information"] == summary["mutual_information"] >= 0
  # paired differences: every VLAE against every other contender, on the same images
  pairs = {(q["a"], q["b"]): q for q in saved["paired"]}
  assert set(pairs) == {("vlae_gated", b) for b in names if b != "vlae_gated"}
  for (a, b), q in pairs.items():
    diff = per[a] - per[b]
    assert q["nll_a_minus_b"] == pytest.approx(diff.mean())
    assert q["stderr"] == pytest.approx(diff.std(ddof=1) / math.sqrt(8))
  rows = [ln for ln in saved["table_md"].splitlines() if ln.startswith("| ")]
  assert len(rows) == 2 + len(SMOKE)                            # header, separator, contenders
  assert all(peers.LABELS[n] in r for n, r in zip(SMOKE, rows[2:]))
  for c in saved["contenders"]:                                 # the file alone rebuilds it all
    assert c["per_image_nll"] == pytest.approx(per[c["name"]].tolist())
    assert c["settings"] == peers.contender_settings(c["name"], peers.parse(argv))

  # Rerun with the same settings: nothing is trained again, the file is rebuilt the same.
  logs = {n: os.path.getsize(os.path.join(wd, n + ".log")) for n in names}
  again = peers.main(argv)
  assert "kept from" in capsys.readouterr().out
  assert {n: os.path.getsize(os.path.join(wd, n + ".log")) for n in names} == logs
  assert again["contenders"] == saved["contenders"] and again["paired"] == saved["paired"]
  # Another study into the same --out is refused, not mixed in.
  with pytest.raises(SystemExit) as e:
    peers.main(argv + ["--iwae_samples=5"])
  assert e.value.code == 2 and "other settings: iwae_samples 4 (now 5)" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.subprocess
def test_interrupted_contender_resumes_from_its_checkpoint(tmp_path, capsys):
  """SIGTERM mid-training (a session ending): checkpoint, exit 143; the rerun resumes there."""
  wd = str(tmp_path / "peers")
  argv = ["--smoke", f"--workdir={wd}", "--contenders=vae_factorized", "--cpu_minutes=0.3",
          "--checkpoint_steps=10"]
  ledger = os.path.join(wd, "vae_factorized", "run", cpu_budget.LEDGER)
  proc = subprocess.Popen([sys.executable, "-m", "experiments.peers",
                           "--contender=vae_factorized"] + argv, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 300
  while not os.path.exists(ledger) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  log = proc.communicate(timeout=300)[0]
  assert proc.returncode == cpu_budget.INTERRUPTED_EXIT, log[-2000:]
  assert "stopped from outside" in log
  stopped = max(cpu_budget.read_ledger(ledger)["checkpoints"])
  spent = cpu_budget.read_ledger(ledger)["checkpoints"][stopped]
  assert spent < 18.0 and not os.path.exists(os.path.join(wd, "vae_factorized", peers.TRAINED))

  out = peers.main(argv)
  with open(os.path.join(wd, "vae_factorized.log")) as f:
    assert f"resumed from {wd}/vae_factorized/run/checkpoints/ckpt-{stopped}" in f.read()
  (c,) = out["contenders"]
  assert c["training_processes"] == 2 and not c["cpu_estimated"]
  assert c["steps"] > stopped and c["cpu_seconds"] >= 18.0
  assert "vae_factorized (2 processes)" in out["table_md"]


def test_settings_reach_the_vae_configs_and_bad_ones_are_refused(capsys):
  cfg = peers.vae_config("vlae_gated", settings=["model.decoder_layers=4",
                                                 "train.precision=bfloat16"])
  assert cfg.model.decoder_layers == 4 and cfg.train.precision == "bfloat16"
  assert peers.vae_config("vae_full").model.decoder_context == "gated_full"
  with pytest.raises(SystemExit) as e:
    peers.vae_config("vlae", settings=["model.no_such_key=1"])
  assert e.value.code == 2 and "model.no_such_key" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    peers.parse(["--workdir", "x", "--contenders", "vlae,bogus"])
