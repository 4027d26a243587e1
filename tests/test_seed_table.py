"""experiments/seed_table.py: one command writes the issue's schema, resumable per row.

A smoke run (tiny models on synthetic images, a 3 CPU-second budget: one step
each) of two rows, one per dataset, each in its own fresh process; then a
rerun that must keep both rows without training anything.
"""

import json
import math
import os

import numpy as np
import pytest

from experiments import budget_study, peers, seed_table
from vlae_tf import config as vconfig

SCHEMA = {"dataset", "model", "nll", "nll_stderr", "elbo", "rate", "active_units",
          "mutual_information", "cpu_seconds", "num_images", "iwae_samples", "config"}


def test_configs_are_the_strongest_decoders_at_cpu_size():
  args = seed_table.parse(["--workdir=x"])
  assert args.iwae_samples == {"mnist": 1000, "cifar10": 100} and args.precision == "bfloat16"
  contexts = {(d, m): seed_table.row_config(d, m, args).model.decoder_context
              for d in seed_table.DATASETS for m in seed_table.MODELS}
  assert contexts == {(d, m): {"vlae": "gated", "vae_full": "gated_full",
                               "vae_factorized": "none"}[m]
                      for d in seed_table.DATASETS for m in seed_table.MODELS}
  cifar = seed_table.row_config("cifar10", "vlae", args)
  assert cifar.model.decoder_filters == 64 and cifar.train.batch_size == 16     # cifar10_cpu
  assert cifar.train.precision == "bfloat16" and cifar.model.decoder_layers == 4
  fact = seed_table.row_config("mnist", "vae_factorized", args)
  assert fact.model.encoder_filters == seed_table.row_config("mnist", "vlae", args).model.encoder_filters


def test_bad_flags_are_usage_errors(capsys):
  for argv in (["--workdir=x", "--datasets=svhn"], ["--workdir=x", "--iwae_samples=mnist:10"],
               ["--workdir=x", "--num_images=0"]):
    with pytest.raises(SystemExit) as e:
      seed_table.parse(argv)
    assert e.value.code == 2
  assert "need k >= 1 for mnist, cifar10" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.subprocess
def test_smoke_table_end_to_end_and_rerun(tmp_path, capsys):
  wd, out = str(tmp_path / "st"), str(tmp_path / "seed_table.json")
  argv = ["--smoke", f"--workdir={wd}", f"--out={out}", "--models=vlae"]
  seed_table.main(argv)
  with open(out) as f:
    saved = json.load(f)
  rows = saved["rows"]
  assert [(r["dataset"], r["model"]) for r in rows] == [("mnist", "vlae"), ("cifar10", "vlae")]
  for r in rows:
    assert SCHEMA <= set(r)
    assert r["num_images"] == 8 and r["iwae_samples"] == 4 and r["cpu_seconds"] >= 3.0
    assert math.isfinite(r["nll"]) and r["nll"] > 0 and r["nll_stderr"] > 0
    assert r["elbo"] < 0 and -r["elbo"] >= r["nll"] - 5 * r["nll_stderr"]
    assert r["rate"] >= 0 and 0 <= r["active_units"] <= r["latent_size"]
    assert r["nll"] == pytest.approx(np.mean(r["per_image_nll"]))
    assert r["config"] == {"mnist": "mnist_gated_cpu", "cifar10": "cifar10_gated_cpu"}[r["dataset"]]
  assert rows[0]["paper"]["nll"] == 79.03 and rows[1]["paper"]["bits_per_dim"] == 2.95
  assert "SMOKE RUN" in saved["table_md"] and "79.03 nats" in saved["table_md"]

  capsys.readouterr()
  logs = {k: os.path.getsize(os.path.join(wd, k + ".log")) for k in ("mnist_vlae", "cifar10_vlae")}
  again = seed_table.main(argv)
  assert capsys.readouterr().out.count("kept from the output") == 2
  assert {k: os.path.getsize(os.path.join(wd, k + ".log")) for k in logs} == logs
  assert again["rows"] == rows
  with pytest.raises(SystemExit) as e:                  # another budget into the same --out
    seed_table.main(argv + ["--cpu_minutes=0.1"])
  assert e.value.code == 2 and "other settings: cpu_minutes 0.05 (now 0.1)" in capsys.readouterr().err


# ==================================================================== --reuse_trained
def fake_training(d, cfg, budget_s=3.0, steps=1):
  """A row folder as budget_study.train_at_budget leaves a finished training (no weights)."""
  os.makedirs(os.path.join(d, "run", "checkpoints"))
  with open(os.path.join(d, "run", "config.json"), "w") as f:
    json.dump(vconfig.jsonable(cfg), f)
  open(os.path.join(d, "run", "checkpoints", f"ckpt-{steps}.index"), "w").close()
  with open(os.path.join(d, "train.json"), "w") as f:
    json.dump({"steps": steps, "cpu_seconds": 4.5, "budget_cpu_seconds": budget_s,
               "config": cfg.name}, f)


def tree(top):
  return sorted((p, os.path.getmtime(os.path.join(r, p))) for r, _, fs in os.walk(top) for p in fs)


def test_reuse_takes_only_an_exact_training_and_says_why_not(tmp_path, capsys):
  """A peers-like folder: the exact training is found, every near match is passed over with
  its reason in one line, the row's own finished training wins, and nothing there is written."""
  peers = tmp_path / "peers"
  os.makedirs(peers)
  args = seed_table.parse(["--smoke", "--workdir", str(tmp_path / "st"), "--datasets=mnist",
                           "--reuse_trained", str(tmp_path / "peers")])
  cfg = seed_table.row_config("mnist", "vae_factorized", args)
  fake_training(str(peers / "a_exact"), cfg)
  near = {"b_lr": ["--set=train.learning_rate=0.003"], "c_seed": ["--seed=1"],
          "d_float32": ["--precision=float32"]}
  for name, extra in near.items():
    fake_training(str(peers / name), seed_table.row_config(
        "mnist", "vae_factorized", seed_table.parse(["--smoke", "--workdir=x"] + extra)))
  fake_training(str(peers / "e_budget"), cfg, budget_s=6.0)
  os.makedirs(peers / "f_unfinished")
  (peers / "f_unfinished" / "settings.json").write_text("{}")
  os.makedirs(peers / "g_pixelcnn")
  (peers / "g_pixelcnn" / "train.json").write_text('{"steps": 1, "budget_cpu_seconds": 3.0}')
  before = tree(str(peers))

  capsys.readouterr()
  found = seed_table.reused_trainings(["mnist_vae_factorized", "mnist_vae_full"], args, {})
  assert found == {"mnist_vae_factorized": str(peers / "a_exact")}
  lines = capsys.readouterr().out.splitlines()
  assert "mnist_vae_factorized: reusing the training in " + str(peers / "a_exact") in lines[0]
  vae_full = [ln for ln in lines if ln.startswith("mnist_vae_full: not reusing")]
  assert len(vae_full) == 7 and "model.decoder_context 'none' (now 'gated_full')" in vae_full[0]
  assert "no training to reuse" in lines[-1]
  # with the exact one gone, each near match is rejected, one line each, naming the difference
  found = budget_study.find_trained([str(peers)], cfg, 3.0, "row",
                                    exclude=str(peers / "a_exact"), log=print)
  assert found is None
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 6 and all(ln.startswith("row: not reusing ") for ln in lines)
  reasons = dict(zip(sorted(near) + ["e_budget", "f_unfinished", "g_pixelcnn"], lines))
  assert f"train.learning_rate 0.003 (now {cfg.train.learning_rate!r})" in reasons["b_lr"]
  assert "seed 1 (now 0)" in reasons["c_seed"]
  assert "train.precision 'float32' (now 'bfloat16')" in reasons["d_float32"]
  assert "CPU budget 6.0 s (now 3.0 s)" in reasons["e_budget"]
  assert "not finished" in reasons["f_unfinished"] and "no run/config.json" in reasons["g_pixelcnn"]
  # the row's own finished training is kept; what the row used before is looked at first
  fake_training(os.path.join(args.workdir, "mnist_vae_factorized"), cfg)
  assert seed_table.reused_trainings(["mnist_vae_factorized"], args, {}) == {}
  assert "trained in " in capsys.readouterr().out
  assert tree(str(peers)) == before


@pytest.mark.slow
@pytest.mark.subprocess
def test_smoke_row_reuses_a_peers_training(tmp_path, capsys):
  """The MNIST factorized row on a peers contender's smoke training: evaluated (its own k)
  without training again; with peers' images, k and seed it takes peers' evaluation as it is;
  a --set the peers run lacks is trained here instead."""
  pw = str(tmp_path / "peers")
  peers.main(["--smoke", "--contenders=vae_factorized", "--set=train.precision=bfloat16",
              f"--workdir={pw}"])
  src = os.path.join(pw, "vae_factorized")
  with open(os.path.join(src, "train.json")) as f:
    trained = json.load(f)
  before = tree(pw)

  def table_argv(name, k=3):
    return ["--smoke", f"--workdir={tmp_path / name}", f"--out={tmp_path / name}.json",
            "--datasets=mnist", "--models=vae_factorized", "--num_images=8",
            f"--iwae_samples={k}", f"--reuse_trained={pw}"]

  wd, argv = str(tmp_path / "st"), table_argv("st")       # peers' images, another k (4 there)
  capsys.readouterr()
  row = seed_table.main(argv)["rows"][0]
  assert f"reusing the training in {src}" in capsys.readouterr().out
  log = (tmp_path / "st" / "mnist_vae_factorized.log").read_text()
  assert "not taking the evaluation in" in log and "iwae_samples 4 (now 3)" in log
  assert row["trained_in"] == src and row["settings"]["trained_in"] == src
  assert row["evaluated_in"] is None                                   # evaluated here
  assert (row["steps"], row["cpu_seconds"]) == (trained["steps"], trained["cpu_seconds"])
  assert row["num_images"] == 8 and row["iwae_samples"] == 3 and len(row["per_image_nll"]) == 8
  assert math.isfinite(row["nll"]) and row["config"] == "mnist_vae_factorized"
  assert not os.path.exists(os.path.join(wd, "mnist_vae_factorized", "run"))   # nothing trained
  with open(os.path.join(wd, "mnist_vae_factorized", "result.json")) as f:
    trained_as = json.load(f)["train"]["trained_as"]
  assert trained_as == "mnist_vae_factorized --set train.precision=bfloat16"
  assert seed_table.main(argv)["rows"][0] == row                       # a rerun keeps the row
  assert "kept from the output" in capsys.readouterr().out

  # peers' very evaluation (8 images, k=4, seed 0): taken as it is, not computed again
  with open(os.path.join(src, "peer.json")) as f:
    peer = json.load(f)
  with np.load(os.path.join(src, "per_example.npz")) as per:
    peer_nll, peer_elbo = per["nll"].tolist(), per["elbo"].tolist()
  row3 = seed_table.main(table_argv("st3", k=4))["rows"][0]
  capsys.readouterr()
  log = (tmp_path / "st3" / "mnist_vae_factorized.log").read_text()
  assert f"taking the evaluation in {src}/peer.json" in log
  assert row3["evaluated_in"] == os.path.join(src, "peer.json") and row3["trained_in"] == src
  summary = peer["test"]["summary"]
  assert (row3["nll"], row3["elbo"], row3["rate"]) == (
      summary["iwae_nll"], summary["elbo"], summary["rate"]) == (
      peer["test"]["nll"], peer["test"]["elbo"], peer["test"]["rate"])
  assert row3["mutual_information"] == summary["mutual_information"]
  assert row3["per_image_nll"] == peer_nll == peer["per_image_nll"]
  with open(tmp_path / "st3" / "mnist_vae_factorized" / "result.json") as f:
    result3 = json.load(f)
  assert result3["test"]["evaluated_in"] == row3["evaluated_in"]
  assert {k: result3["test"][k] for k in summary} == summary
  assert result3["per_image"] == {"nll": peer_nll, "elbo": peer_elbo}

  row2 = seed_table.main(table_argv("st2") + ["--set=train.learning_rate=0.003"])["rows"][0]
  assert (f"not reusing {src}: other config: train.learning_rate 0.002 (now 0.003)"
          in capsys.readouterr().out)
  assert row2["trained_in"] is None and "trained_in" not in row2["settings"]
  assert os.path.isdir(tmp_path / "st2" / "mnist_vae_factorized" / "run")   # a near match: trained
  assert tree(pw) == before                                            # the peers folder: read only
