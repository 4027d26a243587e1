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

from experiments import seed_table

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
