"""The claim experiments (experiments/*.py): their maths, and every script end to end (--smoke).

The smoke runs train tiny models for 2 steps on synthetic 8x8 images through
the scripts' own absl flags, then check the written results.json / results.md /
PNG files and that every reported number is consistent with the others (e.g.
ELBO = -(D + R) for each rate-distortion point, each computed check agreeing
with the numbers it is computed from).
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import vlae_tf  # noqa: E402
from helpers import tiny_config  # noqa: E402
from experiments import (af_vs_iaf, grayscale_context, harness, lossy_reconstructions,  # noqa: E402
                         posterior_collapse, rate_distortion, z_features)
from vlae_tf import evaluation, training  # noqa: E402
from vlae_tf import config as vconfig  # noqa: E402
from vlae_tf import workdir as vwork  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(module, argv):
  """Parses ``argv`` with the script's own flags (a fresh FlagValues) and runs it."""
  fv = flags.FlagValues()
  module.define_flags(fv)
  fv(["prog"] + list(argv))
  return module.run(**module.options(fv))


def read_outputs(workdir, pngs):
  with open(os.path.join(workdir, harness.RESULTS_JSON)) as f:
    results = json.load(f)
  with open(os.path.join(workdir, harness.RESULTS_MD)) as f:
    md = f.read()
  assert results["smoke"] and "SMOKE RUN" in md          # smoke numbers are labelled as such
  for png in pngs:
    with open(os.path.join(workdir, png), "rb") as f:
      head = f.read()
    assert head[:8] == PNG_MAGIC and len(head) > 2000, png
    assert f"]({png})" in md                             # linked from the report
  assert [f["file"] for f in results["figures"]] == list(pngs)
  observed = results["expected_shape_observed"]
  assert observed == all(c["passed"] for c in results["checks"])
  assert ("Expected shape: OBSERVED" in md) == observed
  return results, md


# ==================================================================== maths (no training)
def test_scale_like_reproduces_the_zoo_cpu_variants():
  cpu = vconfig.flatten(vlae_tf.zoo.get_config("mnist_cpu"))
  scaled, applied = harness.scale_like(vlae_tf.zoo.get_config("mnist"), "mnist", "mnist_cpu")
  got = vconfig.flatten(scaled)
  assert {k: v for k, v in got.items() if k not in ("name", "description")} == \
      {k: v for k, v in cpu.items() if k not in ("name", "description")}
  assert ("model.encoder_filters", 64, 32) in applied
  # A baseline keeps what it chose itself (decoder_blocks = 4, no pixel context) and gets the
  # same encoder / budget as mnist_cpu.
  fact = vconfig.flatten(harness.scale_like(vlae_tf.zoo.get_config("mnist_vae_factorized"),
                                          "mnist", "mnist_cpu")[0])
  assert fact["model.decoder_blocks"] == 4 and fact["model.decoder_context"] == "none"
  for key in ("model.encoder_filters", "model.encoder_blocks", "model.prior_hidden",
              "train.optimizer", "train.learning_rate", "train.steps"):
    assert fact[key] == cpu[key], key
  # CIFAR-10: the grayscale model differs from cifar10_cpu only in its decoder context.
  gray = vconfig.flatten(harness.sized_config("cifar10_grayscale", "cpu"))
  ccpu = vconfig.flatten(harness.sized_config("cifar10", "cpu"))
  diff = {k for k in gray if gray[k] != ccpu[k]}
  assert diff <= {"name", "description", "model.decoder_context", "paper_bits_per_dim"}
  assert gray["model.decoder_context"] == "grayscale" and gray["model.decoder_window"] == (7, 4)


def test_sized_config_steps_and_errors():
  cfg = harness.sized_config("mnist", "cpu", steps=100, data_dir="/data", seed=3)
  assert cfg.train.steps == 100 and cfg.train.warmup_steps == 10      # warm-up <= steps / 10
  assert cfg.data.data_dir == "/data" and cfg.seed == 3
  assert harness.sized_config("mnist", "full").train.steps == 200_000
  with pytest.raises(ValueError, match="size must be one of"):
    harness.sized_config("mnist", "huge")
  with pytest.raises(ValueError, match="--smoke and --full are exclusive"):
    harness.run_size(True, True)
  with pytest.raises(ValueError, match="--steps must be >= 1"):
    harness.sized_config("mnist", "cpu", steps=0)
  for name in ("mnist", "mnist_vae_pixelcnn_full", "cifar10_grayscale"):
    vconfig.validate_config(harness.sized_config(name, "smoke"))


def test_test_set_metrics_agree_with_evaluate():
  model = vlae_tf.build_model(tiny_config(latent_dim=3))
  x = np.random.default_rng(0).integers(0, 2, (12, 4, 4, 1)).astype(np.uint8)
  s, per = harness.test_set_metrics(model, x, iwae_samples=3, batch_size=5, seed=7,
                                    kl_examples=5, kl_samples=4)
  ref = evaluation.evaluate(model, x, num_samples=3, batch_size=5, seed=7)
  for key in ("elbo", "rate", "distortion", "iwae_nll", "bits_per_dim", "elbo_bits_per_dim",
              "active_units", "mutual_information"):
    assert s[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-6), key
  np.testing.assert_allclose(per["elbo"], -(per["distortion"] + per["rate"]), rtol=1e-5)
  assert s["elbo_stderr"] == pytest.approx(np.std(per["elbo"], ddof=1) / math.sqrt(12))
  kl = evaluation.kl_per_dim(model, x[[0, 3, 6, 8, 11]], num_samples=4, seed=7)  # evenly spaced
  np.testing.assert_allclose(s["kl_per_dim"], kl, rtol=1e-6)
  assert s["kl_total"] == pytest.approx(float(np.sum(kl)), rel=1e-6)
  assert s["num_params"] == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  s0, per0 = harness.test_set_metrics(model, x, iwae_samples=0, batch_size=12, seed=7)
  assert "iwae_nll" not in s0 and "iwae_nll" not in per0 and s0["iwae_samples"] == 0


def test_test_images_are_evenly_spaced():
  cfg = harness.sized_config("mnist", "smoke")
  every = harness.test_images(cfg, -1)
  assert len(every) == 64                                   # the synthetic test split
  np.testing.assert_array_equal(harness.test_images(cfg, 4), every[[0, 21, 42, 63]])


def test_paired_difference_and_decode_consistency():
  d, e = harness.paired_difference([1.0, 2.0, 4.0], [0.0, 1.0, 1.0])
  assert d == pytest.approx(5 / 3) and e == pytest.approx(np.std([1, 1, 3], ddof=1) / math.sqrt(3))
  with pytest.raises(ValueError, match="same shape"):
    harness.paired_difference([1.0], [1.0, 2.0])
  x = np.zeros((2, 2, 2, 1), np.uint8)
  x[1] = 1                                                   # image 0 all 0, image 1 all 1
  same = np.stack([x, x], axis=1)                            # decodes = their own image
  assert harness.decode_consistency(x, same, 2) == {"own": 0.0, "other": 1.0, "resample": 0.0}
  flipped = same.copy()
  flipped[:, 1, 0, 0, 0] ^= 1                    # 1 of the 4 pixels of decode 2 redrawn
  c = harness.decode_consistency(x, flipped, 2)
  assert c["own"] == pytest.approx((0 + 1 / 4) / 2) and c["resample"] == pytest.approx(1 / 4)
  assert c["other"] == pytest.approx((1 + 3 / 4) / 2)
  with pytest.raises(ValueError, match=">= 2 decodes"):
    harness.decode_consistency(x, same[:, :1], 2)


def test_colour_and_detail_spread():
  base = np.full((2, 1, 8, 8, 3), 128.0)
  same = np.repeat(base, 3, axis=1)
  assert grayscale_context.colour_and_detail_spread(same) == (0.0, 0.0)
  # Each decode tinted differently but flat: colour changes, local detail does not.
  tint = same.copy()
  tint[:, 1, ..., 0] += 40
  tint[:, 2, ..., 2] += 40
  colour, detail = grayscale_context.colour_and_detail_spread(tint)
  assert colour > 0.01 and detail == pytest.approx(0.0, abs=1e-12)
  # Gray checkerboards of different contrast: detail changes, colour does not.
  check = (np.indices((8, 8)).sum(0) % 2)[None, None, :, :, None] * np.array([0, 30, 60])[
      None, :, None, None, None]
  colour, detail = grayscale_context.colour_and_detail_spread(same + check)
  assert colour == pytest.approx(0.0, abs=1e-12) and detail > 0.01
  with pytest.raises(ValueError, match="RGB decodes"):
    grayscale_context.colour_and_detail_spread(same[..., :1])


def test_rate_distortion_plot_with_both_sweeps(tmp_path):
  pts = [dict(sweep="beta", beta=b, free_bits=0.0, rate=r, distortion=d)
         for b, r, d in ((0.5, 30.0, 60.0), (1.0, 20.0, 65.0), (2.0, 8.0, 80.0))]
  pts.append(dict(sweep="free_bits", beta=1.0, free_bits=0.1, rate=22.0, distortion=64.0))
  path = rate_distortion.plot(pts, str(tmp_path / "rd.png"), "caption")
  with open(path, "rb") as f:
    assert f.read(8) == PNG_MAGIC


def test_rate_distortion_plan_and_monotone():
  plan = rate_distortion.points_plan([0.5, 1.0, 1.0], 0.0, [0.0, 0.1])
  assert plan == [(0.5, 0.0, "beta"), (1.0, 0.0, "beta"), (1.0, 0.1, "free_bits")]
  with pytest.raises(ValueError, match="positive"):
    rate_distortion.points_plan([0.0], 0.0, [])
  with pytest.raises(ValueError, match="nothing to run"):
    rate_distortion.points_plan([], 0.0, [])
  assert rate_distortion.monotone([3, 2, 2], increasing=False)
  assert not rate_distortion.monotone([3, 2, 2.5], increasing=False)
  assert rate_distortion.monotone([1, 2, 3], increasing=True)


# ==================================================================== smoke runs
@pytest.fixture(scope="module")
def collapse_dir(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("collapse"))
  run_cli(posterior_collapse, [f"--workdir={wd}", "--smoke", "--full_decoder_layers=3"])
  return wd


@pytest.mark.slow
def test_posterior_collapse_smoke(collapse_dir):
  r, md = read_outputs(collapse_dir, ["kl_per_dim.png", "kl_over_training.png"])
  assert set(r["models"]) == {"factorized", "pixelcnn_full", "vlae", "decoder_alone"}
  # The decoder-alone diagnostic: the full baseline at beta = 8, paired against it, not a check.
  with open(os.path.join(collapse_dir, "decoder_alone", "config.json")) as f:
    alone_cfg = json.load(f)
  assert alone_cfg["objective"]["beta"] == posterior_collapse.DECODER_ALONE_BETA
  assert alone_cfg["model"]["decoder_context"] == "full"
  a = np.load(os.path.join(collapse_dir, "pixelcnn_full_per_example.npz"))["iwae_nll"]
  b = np.load(os.path.join(collapse_dir, "decoder_alone_per_example.npz"))["iwae_nll"]
  assert r["full_minus_decoder_alone"][0] == pytest.approx((a - b).mean())
  assert r["decoder_alone_switched_off"] == (
      r["models"]["decoder_alone"]["test"]["kl_total"] < posterior_collapse.COLLAPSED_MAX_KL_TOTAL)
  assert "decoder_alone" not in " ".join(c["check"] for c in r["checks"])
  assert "Diagnostic (not part of the expected shape)" in md
  # --full_decoder_layers reached the trained baseline (and only it).
  assert r["full_decoder_layers"] == 3
  with open(os.path.join(collapse_dir, "pixelcnn_full", "config.json")) as f:
    assert json.load(f)["model"]["decoder_layers"] == 3
  assert alone_cfg["model"]["decoder_layers"] == 3
  with open(os.path.join(collapse_dir, "vlae", "config.json")) as f:
    assert r["models"]["vlae"]["decoder_layers"] == json.load(f)["model"]["decoder_layers"] != 3
  for key in r["models"]:
    rows = [json.loads(line) for line in open(os.path.join(collapse_dir, key, "metrics.jsonl"))]
    assert r["training_rate"][key] == {"step": [row["step"] for row in rows],
                                       "rate": [pytest.approx(row["rate"]) for row in rows]}
    assert rows
  for key, model in r["models"].items():
    t = model["test"]
    assert model["steps"] == 2 and t["num_examples"] == 16 and t["latent_size"] == 4
    assert len(t["kl_per_dim"]) == 4 and sum(t["kl_per_dim"]) == pytest.approx(t["kl_total"])
    assert t["elbo"] == pytest.approx(-(t["rate"] + t["distortion"]), rel=1e-5)
    assert t["iwae_samples"] == 2 and math.isfinite(t["iwae_nll"])
    assert posterior_collapse.LABELS[key] in md
    per = np.load(os.path.join(collapse_dir, f"{key}_per_example.npz"))
    assert per["iwae_nll"].mean() == pytest.approx(t["iwae_nll"])
  full = r["models"]["pixelcnn_full"]["test"]
  checks = {c["check"]: c["passed"] for c in r["checks"]}
  assert checks["full-PixelCNN VAE: KL near 0 on every dimension"] == (
      max(full["kl_per_dim"]) < posterior_collapse.COLLAPSED_MAX_KL_PER_DIM
      and full["kl_total"] < posterior_collapse.COLLAPSED_MAX_KL_TOTAL)
  d, e = r["vlae_minus_factorized"]
  a = np.load(os.path.join(collapse_dir, "vlae_per_example.npz"))["iwae_nll"]
  b = np.load(os.path.join(collapse_dir, "factorized_per_example.npz"))["iwae_nll"]
  assert d == pytest.approx((a - b).mean())
  assert checks["VLAE NLL better than the factorized VAE's"] == (d < -2 * e)


def _sweep_run(context, layers, rate, free_bits=False):
  return {"context": context, "layers": layers, "filters": 32, "free_bits": free_bits,
          "warmup": free_bits, "rate": rate, "key": f"{context}_{layers}_{free_bits}"}


def test_collapse_target_pairs_runs_of_the_same_size_and_variant():
  runs = [_sweep_run("gated_full", 1, 3.0), _sweep_run("gated", 1, 9.0),
          _sweep_run("gated_full", 6, 0.4), _sweep_run("gated", 6, 6.0),
          _sweep_run("gated_full", 6, 0.2, True), _sweep_run("gated", 6, 4.0, True)]
  t = posterior_collapse.collapse_target(runs)
  assert t["met"] and [p["full"] for p in t["pairs"]] == ["gated_full_6_False"]
  assert not posterior_collapse.collapse_target(runs[:2] + runs[4:])["met"]
  assert posterior_collapse.parse_sizes("1x16,6x64") == [(1, 16), (6, 64)]
  # every context and variant at every size, shallow to deep (the smoke sweep runs one size)
  plan = posterior_collapse.sweep_plan({"sizes": [(1, 8), (2, 8)], "variants": ["none", "both"]})
  assert list(plan.values()) == [(c, n, 8, v) for c in ("gated_full", "gated")
                                 for v in ("none", "both") for n in (1, 2)]
  for bad in ("6", "0x8", "ax8", ""):
    with pytest.raises(ValueError, match="LAYERSxFILTERS"):
      posterior_collapse.parse_sizes(bad)


@pytest.mark.slow
@pytest.mark.subprocess
def test_collapse_sweep_smoke_resumable(tmp_path, capsys):
  """--sweep: each run in its own process; collapse.json in the issue's schema; a rerun keeps all.

  One size, both contexts: the pair collapse_target compares (each run is a process that
  costs ~10 s of CPU; the order of several sizes is parse_sizes' and sweep_plan's)."""
  wd, out, fig = str(tmp_path / "sweep"), str(tmp_path / "collapse.json"), str(tmp_path / "c.png")
  argv = ["prog", "--sweep", "--smoke", f"--workdir={wd}", "--sweep_sizes=1x8",
          "--sweep_variants=both", f"--out={out}", f"--figure={fig}"]

  def sweep():
    fv = flags.FlagValues()
    posterior_collapse.define_flags(fv)
    fv(argv)
    return posterior_collapse.main_run(**posterior_collapse.options(fv))

  sweep()
  with open(out) as f:
    saved = json.load(f)
  runs = saved["runs"]
  assert [(r["context"], r["layers"], r["filters"]) for r in runs] == [
      (c, 1, 8) for c in ("gated_full", "gated")]
  for r in runs:
    assert {"context", "layers", "filters", "free_bits", "warmup", "rate", "nll",
            "cpu_seconds"} <= set(r)
    assert r["free_bits"] and r["warmup"] and r["cpu_seconds"] >= 3.0 and r["nll"] > 0
    assert len(r["kl_per_dim"]) == r["latent_size"] == 4 and r["rate"] >= 0
    with open(os.path.join(wd, r["key"], "run", "config.json")) as f:
      cfg = json.load(f)
    assert cfg["model"]["decoder_context"] == r["context"]
    assert (cfg["model"]["decoder_layers"], cfg["model"]["decoder_filters"]) == (r["layers"], 8)
    assert cfg["objective"]["free_bits"] == posterior_collapse.SWEEP_FREE_BITS
    assert cfg["objective"]["kl_warmup_steps"] == 1000
    assert cfg["train"]["precision"] == "bfloat16"
  assert saved["target"] == posterior_collapse.collapse_target(runs)
  with open(fig, "rb") as f:
    assert f.read(8) == PNG_MAGIC
  capsys.readouterr()
  again = sweep()
  assert capsys.readouterr().out.count("kept from the output") == 2
  assert again["runs"] == runs


def test_collapse_sweep_flag_errors(tmp_path):
  fv = flags.FlagValues()
  posterior_collapse.define_flags(fv)
  fv(["prog", "--sweep", f"--workdir={tmp_path}", "--sweep_variants=none,bogus"])
  with pytest.raises(ValueError, match="unknown bogus"):
    posterior_collapse.options(fv)


@pytest.mark.slow          # it needs the collapse smoke's trained runs (collapse_dir)
def test_lossy_reconstructions_smoke_from_a_workdir(collapse_dir, tmp_path):
  wd = str(tmp_path / "lossy")
  run_cli(lossy_reconstructions, [
      f"--workdir={wd}", "--smoke", f"--model_workdir={os.path.join(collapse_dir, 'vlae')}",
      "--num_images=3", "--num_decodes=2", "--num_interpolations=2", "--interpolation_steps=3",
      "--num_samples=4"])
  r, md = read_outputs(wd, ["decodes.png", "interpolations.png", "prior_samples.png"])
  c = r["decode_consistency"]
  assert all(0.0 <= c[k] <= 1.0 for k in ("own", "other", "resample"))
  assert r["checks"][0]["passed"] == (c["own"] < c["other"])
  assert r["models"]["source"]["steps"] == 2 and "work directory" in r["source"]
  with pytest.raises(ValueError, match="not both"):
    lossy_reconstructions.run(wd, "smoke", model_workdir=collapse_dir, zoo_model="mnist")


@pytest.mark.slow
def test_af_vs_iaf_smoke_matches_parameter_counts(tmp_path):
  wd = str(tmp_path / "af")
  run_cli(af_vs_iaf, [f"--workdir={wd}", "--smoke"])
  r, md = read_outputs(wd, [])
  af, iaf = r["models"]["af_prior"]["test"], r["models"]["iaf_posterior"]["test"]
  # The width search predicted the count of the model that was then built and trained.
  assert r["num_params"] == {"af_prior": af["num_params"], "iaf_posterior": iaf["num_params"]}
  assert abs(af["num_params"] - iaf["num_params"]) / af["num_params"] <= 0.01
  assert r["checks"][0]["passed"]
  w = r["made_widths"]["iaf_posterior"][0]
  assert len(r["made_widths"]["iaf_posterior"]) == len(r["made_widths"]["af_prior"]) and w > 1
  cfg = harness.sized_config("mnist", "smoke")
  near = [abs(harness.num_params(vlae_tf.build_model(af_vs_iaf.iaf_config(cfg, v)))
              - af["num_params"]) for v in (w - 1, w + 1)]
  assert min(near) >= abs(iaf["num_params"] - af["num_params"])     # no closer width exists
  assert f"{af['num_params']}" in md and f"{iaf['num_params']}" in md


@pytest.mark.slow
def test_rate_distortion_smoke_points_satisfy_elbo_identity(tmp_path):
  wd = str(tmp_path / "rd")
  run_cli(rate_distortion, [f"--workdir={wd}", "--smoke"])
  r, md = read_outputs(wd, ["rate_distortion.png"])
  pts = r["points"]
  assert [(p["beta"], p["free_bits"], p["sweep"]) for p in pts] == [
      (0.5, 0.0, "beta"), (1.0, 0.0, "beta")]
  for p in pts:
    assert p["elbo"] == pytest.approx(-(p["distortion"] + p["rate"]), rel=1e-6)
    assert p["rate"] == pytest.approx(r["models"][p["key"]]["test"]["rate"])
    assert "iwae_nll" not in r["models"][p["key"]]["test"]          # IWAE off by default here
  checks = {c["check"]: c["passed"] for c in r["checks"]}
  sweep = sorted((p for p in pts if p["sweep"] == "beta"), key=lambda p: p["beta"])
  assert checks["rate falls as beta grows"] == (sweep[1]["rate"] <= sweep[0]["rate"])
  assert checks["beta = 1 has the best test ELBO"] == (sweep[1]["elbo"] >= sweep[0]["elbo"])
  # Paired differences against beta = 1 come from the per-example files of the same images.
  one = np.load(os.path.join(wd, f"{sweep[1]['key']}_per_example.npz"))["elbo"]
  half = np.load(os.path.join(wd, f"{sweep[0]['key']}_per_example.npz"))["elbo"]
  assert sweep[1]["elbo_minus_beta1"] == 0.0 and sweep[1]["elbo_minus_beta1_stderr"] == 0.0
  assert sweep[0]["elbo_minus_beta1"] == pytest.approx((half - one).mean())
  assert sweep[0]["elbo_minus_beta1"] == pytest.approx(sweep[0]["elbo"] - sweep[1]["elbo"],
                                                       rel=1e-4, abs=1e-3)
  assert "squares" not in md                       # no free-bits points, none in the caption


@pytest.mark.slow
def test_grayscale_context_smoke(tmp_path):
  wd = str(tmp_path / "gray")
  run_cli(grayscale_context, [f"--workdir={wd}", "--smoke", "--num_images=2",
                              "--num_decodes=2"])
  r, md = read_outputs(wd, ["decodes_grayscale.png", "decodes_window.png"])
  for key in ("grayscale", "window"):
    t, s = r["models"][key]["test"], r["decode_stats"][key]
    assert t["bits_per_dim"] == pytest.approx(t["iwae_nll"] / (8 * 8 * 3 * math.log(2)))
    assert s["colour_to_detail"] == pytest.approx(s["colour_spread"] / s["detail_spread"])
  g, w = r["decode_stats"]["grayscale"], r["decode_stats"]["window"]
  assert r["checks"][0]["passed"] == (g["colour_to_detail"] < w["colour_to_detail"])
  cfg = vwork.read_workdir_config(os.path.join(wd, "grayscale"))
  assert cfg.model.decoder_context == "grayscale"
  assert vwork.read_workdir_config(os.path.join(wd, "window")).model.decoder_context == "window"


def test_flags_errors(tmp_path):
  fv = flags.FlagValues()
  posterior_collapse.define_flags(fv)
  fv(["prog", f"--workdir={tmp_path}", "--smoke", "--full"])
  with pytest.raises(ValueError, match="exclusive"):
    posterior_collapse.options(fv)
  fv = flags.FlagValues()
  rate_distortion.define_flags(fv)
  fv(["prog", f"--workdir={tmp_path}", "--betas=1,x"])
  with pytest.raises(ValueError, match="--betas must be a comma-separated list"):
    rate_distortion.options(fv)


# ==================================================================== z as features
def test_logistic_regression_reaches_the_regularised_optimum():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((300, 5))
  y = np.argmax(x[:, :3] + 0.5 * rng.standard_normal((300, 3)), axis=1)   # 3 noisy classes
  predict, info = z_features.fit_logistic_regression(x, y, 3, lam=1e-2, max_iters=5000, tol=1e-8)
  assert info["grad_norm"] < 1e-7 and info["iters"] < 5000              # converged ...
  # ... to the optimum: the analytic gradient agrees with finite differences there, and the loss
  # goes up in every random direction.
  xb = np.concatenate([(x - x.mean(0)) / x.std(0), np.ones((300, 1))], axis=1)
  w = rng.standard_normal((6, 3))
  _, g = z_features._logits_grad(xb, y, w, 1e-2)
  e = np.zeros_like(w)
  e[2, 1] = 1e-6
  fd = (z_features._logits_grad(xb, y, w + e, 1e-2)[0]
        - z_features._logits_grad(xb, y, w - e, 1e-2)[0]) / 2e-6
  assert fd == pytest.approx(g[2, 1], rel=1e-5)
  assert (predict(x) == y).mean() > 0.7                                  # it learned the classes
  sep = np.repeat(np.eye(4) * 5, 10, axis=0) + 0.1 * rng.standard_normal((40, 4))
  pred, _ = z_features.fit_logistic_regression(sep, np.repeat(np.arange(4), 10), 4)
  assert (pred(sep) == np.repeat(np.arange(4), 10)).all()               # separable: all right


@pytest.mark.slow
def test_z_features_smoke(tmp_path):
  wd = str(tmp_path / "zf")
  r = run_cli(z_features, [f"--workdir={wd}", "--smoke", "--max_iters=300"])
  with open(os.path.join(wd, harness.RESULTS_JSON)) as f:
    assert json.load(f)["features"] == r["features"]
  with open(os.path.join(wd, harness.RESULTS_MD)) as f:
    md = f.read()
  assert r["smoke"] and "SMOKE RUN" in md and r["checks"] == []        # a measurement, no claim
  n_test = z_features.SMOKE_SIZES["test"]
  assert sorted(r["features"]) == sorted(z_features.FEATURES)
  dims = {k: v["dim"] for k, v in r["features"].items()}
  assert dims["pixels"] == 28 * 28 and dims["vlae"] == vlae_tf.zoo.load("mnist").latent_size
  assert dims["factorized"] == vwork.read_workdir_config(
      os.path.join(wd, "factorized")).model.latent_dim
  for key, f in r["features"].items():
    assert f"| {z_features.LABELS[key]} | {f['dim']} |" in md
    k = round(f["test_accuracy"] * n_test)                    # a count of right test digits
    assert f["test_accuracy"] == pytest.approx(k / n_test)
    assert f["test_accuracy_stderr"] == pytest.approx(math.sqrt(k / n_test * (1 - k / n_test)
                                                                / n_test))
  assert r["probe_train_examples"] == z_features.SMOKE_SIZES["train"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_workdir_made_by_another_config_is_a_one_line_error(tmp_path):
  """Reusing an experiment --workdir after its recipe changed: one line naming it, exit 2."""
  wd = tmp_path / "zf"
  (wd / "factorized").mkdir(parents=True)
  vwork.write_config(tiny_config(), str(wd / "factorized"))     # not the config z_features trains
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "z_features.py"),
                         f"--workdir={wd}", "--smoke"], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=600)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: work directory") and "was created by a different config" in last
