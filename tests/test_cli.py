"""The ``vlae`` command: PNG grids that hold exactly the model's outputs, and clean errors."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from ml_collections import ConfigDict
from PIL import Image

import vlae_tf
from helpers import NAME, file_size_limit
from vlae_tf import cli, cli_commands, images


def _run(zoo, *args):
  return cli.main([args[0], f"--zoo_dir={zoo.root}", *args[1:]])


@pytest.fixture
def loaded_once(m, monkeypatch):
  """Skips re-loading the SavedModel in every command (the loading path is tested on its own)."""
  real = cli_commands._load
  monkeypatch.setattr(cli_commands, "_load", lambda args: m if args.model == NAME else real(args))


def _tiles(path, rows, cols, size=6, scale=2, pad=2):
  """Cuts a PNG grid back into ``[rows, cols, size, size]`` data-scale tiles (binary images)."""
  g = np.asarray(Image.open(path))
  s = size * scale
  assert g.shape == (rows * (s + pad) + pad, cols * (s + pad) + pad)
  tiles = np.array([[g[pad + i * (s + pad):pad + i * (s + pad) + s:scale,
                       pad + j * (s + pad):pad + j * (s + pad) + s:scale]
                     for j in range(cols)] for i in range(rows)])
  assert set(np.unique(tiles)) <= {0, 255}
  return tiles // 255


def test_grid_layout():
  x = np.arange(6 * 2 * 2, dtype=np.uint8).reshape(6, 2, 2, 1)
  g = images.image_grid(x, ncol=3, pad=1, pad_value=9)
  assert g.shape == (2 * 3 + 1, 3 * 3 + 1, 1)
  np.testing.assert_array_equal(g[1:3, 4:6, 0], x[1, :, :, 0])
  np.testing.assert_array_equal(g[4:6, 7:9, 0], x[5, :, :, 0])
  assert g[0, 0, 0] == 9 and g[3, 3, 0] == 9
  np.testing.assert_array_equal(images.to_display(np.array([0, 1]), 2), [0, 255])


def test_sample_png_holds_the_models_samples(zoo, m, tmp_path, capsys):
  out = tmp_path / "samples.png"
  assert _run(zoo, "sample", f"--model={NAME}", "--num=6", "--seed=4", f"--out={out}") == 0
  tiles = _tiles(out, rows=2, cols=3)                   # ceil(sqrt(6)) = 3 columns
  np.testing.assert_array_equal(tiles.reshape(6, 6, 6), m.sample(num=6, seed=4)[..., 0])
  assert "6 samples" in capsys.readouterr().out


def test_reconstruct_png_from_bundled_examples_and_from_an_npz(zoo, m, tmp_path, loaded_once):
  out = tmp_path / "recon.png"
  assert _run(zoo, "reconstruct", f"--model={NAME}", "--num=4", "--samples=2", f"--out={out}") == 0
  tiles = _tiles(out, rows=3, cols=4)
  x = m.examples()[:4]
  np.testing.assert_array_equal(tiles[0], x[..., 0])
  np.testing.assert_array_equal(tiles[1], m.reconstruct(x, seed=0)[..., 0])
  np.testing.assert_array_equal(tiles[2], m.reconstruct(x, seed=1)[..., 0])
  data = tmp_path / "mine.npz"
  mine = (np.random.default_rng(0).random((5, 6, 6)) < 0.5).astype(np.uint8)   # [N, H, W]
  np.savez(data, x_test=mine)
  assert _run(zoo, "reconstruct", f"--model={NAME}", f"--data={data}", "--samples=1",
              f"--out={out}") == 0
  np.testing.assert_array_equal(_tiles(out, rows=2, cols=5)[0], mine)


def test_reconstruct_from_the_configs_test_split(zoo, m, tmp_path, loaded_once):
  out = tmp_path / "recon.png"
  assert _run(zoo, "reconstruct", f"--model={NAME}", "--data=test", "--num=3", "--samples=1",
              f"--out={out}") == 0
  from vlae_tf.pretrained.packaging import example_images
  np.testing.assert_array_equal(_tiles(out, rows=2, cols=3)[0],
                                example_images(zoo.config, 3)[..., 0])


def test_interpolate_png_rows_are_the_interpolations(zoo, m, tmp_path, loaded_once):
  out = tmp_path / "interp.png"
  assert _run(zoo, "interpolate", f"--model={NAME}", "--pairs=2", "--steps=4", f"--out={out}") == 0
  x = m.examples()
  np.testing.assert_array_equal(_tiles(out, rows=2, cols=4),
                                m.interpolate(x[:2], x[1:3], steps=4, seed=0)[..., 0])


def test_list_and_info(zoo, capsys, loaded_once):
  assert _run(zoo, "list") == 0
  text = capsys.readouterr().out
  assert NAME in text and f"{zoo.eval_results['iwae_nll']:.2f} nats" in text
  assert "mnist_dynamic" in text                       # configs without weights are named too
  assert _run(zoo, "info", f"--model={NAME}") == 0
  out = capsys.readouterr().out
  assert '"iwae_nll"' in out and '"files"' not in out and '"config"' not in out
  assert out.splitlines()[-1] == f"{NAME}: images [6, 6, 1] (synthetic), latent size 3"


def test_errors_are_one_line_messages_not_tracebacks(zoo, tmp_path, capsys, loaded_once):
  assert _run(zoo, "sample", "--model=mnist", f"--out={tmp_path / 'a.png'}") == 2
  err = capsys.readouterr().err
  assert "no pretrained model 'mnist'" in err and "Traceback" not in err
  gray = tmp_path / "gray.npz"
  np.savez(gray, x_test=np.full((2, 6, 6), 255, np.uint8))    # 8-bit data for a binary model
  assert _run(zoo, "reconstruct", f"--model={NAME}", f"--data={gray}",
              f"--out={tmp_path / 'b.png'}") == 2
  err = capsys.readouterr().err
  assert "images: expected" in err and "got a pixel value of] [255]" in err
  assert "Detected at node" not in err
  with pytest.raises(SystemExit) as e:                         # argparse: usage + one line, exit 2
    _run(zoo, "sample", f"--model={NAME}", "--num=0", f"--out={tmp_path / 'c.png'}")
  assert e.value.code == 2 and "--num: expected an integer >= 1, got 0" in capsys.readouterr().err
  assert not any(tmp_path.glob("*.png"))


@pytest.mark.slow
@pytest.mark.subprocess
def test_console_script_is_installed_and_runs(zoo, tmp_path):
  exe = pathlib.Path(sys.executable).with_name("vlae")
  assert exe.exists(), "pip install -e . creates the `vlae` console script"
  env = dict(os.environ, VLAE_ZOO_DIR=str(zoo.root))
  r = subprocess.run([str(exe), "list"], capture_output=True, text=True, env=env, timeout=120,
                     cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  assert NAME in r.stdout


# ------------------------------------------------------------ quiet, quick start
def _console(*args, env=None, cwd=None):
  exe = pathlib.Path(sys.executable).with_name("vlae")
  env = dict(os.environ, **(env or {}))
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has: nothing set
  return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=300,
                        cwd=cwd)


@pytest.mark.subprocess
def test_help_and_usage_errors_answer_without_tensorflow(tmp_path):
  r = _console("--help", cwd=tmp_path)
  assert r.returncode == 0 and "encode" in r.stdout and r.stderr == ""
  r = _console("sample", "--num=3", cwd=tmp_path)          # --model missing
  assert r.returncode == 2 and r.stdout == ""
  assert r.stderr.count("\n") == 1 and "required: --model" in r.stderr, r.stderr
  # The same entry point in-process: neither --help nor a usage error imports TensorFlow, nor
  # do `vlae list` and `vlae info` (they read the cards; info verifies the checksums).
  code = ("import sys\nfrom vlae_tf import cli\n"
          "for argv in (['--help'], ['sample', '--help'], ['encode', '--model=x'], ['bogus'],\n"
          "             ['compress', '--help'], ['decompress', '--out=x.npz']):\n"
          "  try:\n    cli.main(argv)\n  except SystemExit:\n    pass\n"
          "assert cli.main(['list']) == cli.main(['info', 'mnist']) == 0\n"
          "print('TF_IMPORTED', 'tensorflow' in sys.modules, 'keras' in sys.modules)")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                     cwd=tmp_path)
  assert "TF_IMPORTED False False" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
  assert "mnist: images [28, 28, 1] (binarized_mnist), latent size 32" in r.stdout, r.stdout


def test_quiet_tf_drops_startup_noise_and_keeps_real_errors(capfd):
  from vlae_tf import quiet_tf
  noise = [
      "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
      "I0000 00:00:1796017679.535621   13340 port.cc:153] oneDNN custom operations are on.",
      "I0000 00:00:1796017679.536006   13340 cudart_stub.cc:31] Could not find cuda drivers on "
      "your machine, GPU will not be used.",
      "E0000 00:00:1796017712.929566   13468 cuda_platform.cc:52] failed call to cuInit: "
      "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
      "W0000 00:00:1796017712.9 13468 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
      "E0000 00:00:1796023825.491356    6814 util.cc:131] oneDNN supports DT_BOOL only on "
      "platforms with AVX-512. Falling back to the default Eigen-based implementation if present."]
  real = ["E0000 00:00:1796017712.929566   13468 op_kernel.cc:1 ] Out of memory: something real",
          "Traceback (most recent call last):"]
  assert all(quiet_tf.is_startup_noise(l) for l in noise)
  assert not any(quiet_tf.is_startup_noise(l) for l in real)
  with quiet_tf.filtered_stderr_fd():
    os.write(2, ("\n".join(noise[:2] + real[:1] + noise[2:] + real[1:]) + "\n").encode())
  assert capfd.readouterr().err == real[0] + "\n" + real[1] + "\n"


@pytest.mark.slow
@pytest.mark.subprocess
def test_sample_prints_no_tensorflow_log_lines_unless_verbose(zoo, tmp_path):
  from vlae_tf import quiet_tf
  env = {"VLAE_ZOO_DIR": str(zoo.root)}
  r = _console("sample", f"--model={NAME}", "--num=2", f"--out={tmp_path / 'a.png'}", env=env,
               cwd=tmp_path)
  assert r.returncode == 0 and (tmp_path / "a.png").exists(), r.stderr[-2000:]
  assert r.stderr == "", f"TF noise on stderr:\n{r.stderr}"
  v = _console("sample", f"--model={NAME}", "--num=2", f"--out={tmp_path / 'b.png'}",
               "--verbose", env=env, cwd=tmp_path)
  assert v.returncode == 0, v.stderr[-2000:]
  if not any(quiet_tf.is_startup_noise(l) for l in v.stderr.splitlines()):
    pytest.skip("TensorFlow printed no start-up lines on this machine, so the quiet run above "
                "proved nothing about filtering them")


def test_encode_writes_the_posterior_means_and_stds(zoo, m, tmp_path, loaded_once, capsys):
  x = (np.random.default_rng(3).random((7, 6, 6)) < 0.5).astype(np.uint8)   # [N, H, W]
  np.savez(tmp_path / "in.npz", images=x)                                    # its only array
  out = tmp_path / "sub" / "z.npz"
  assert _run(zoo, "encode", f"--model={NAME}", f"--data={tmp_path / 'in.npz'}", f"--out={out}",
              "--batch_size=3") == 0
  with np.load(out) as z:
    assert sorted(z.files) == ["mean", "std"]
    want = m.encode(x[..., None])
    np.testing.assert_allclose(z["mean"], want["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z["std"], want["std"], rtol=1e-5, atol=1e-6)
    assert z["mean"].shape == (7, m.latent_size) and (z["std"] > 0).all()
  assert "[7, 3]" in capsys.readouterr().out
  # User mistakes: one line, exit 2, nothing written.
  np.savez(tmp_path / "two.npz", a=x, b=x)
  for args, msg in ((["--data=nope.npz"], "no such file"),
                    ([f"--data={tmp_path / 'two.npz'}"], "has arrays ['a', 'b']")):
    bad = tmp_path / "bad.npz"
    assert _run(zoo, "encode", f"--model={NAME}", f"--out={bad}", *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err and err.startswith("vlae encode: error:"), err
    assert not bad.exists()
  with pytest.raises(SystemExit) as e:                  # a usage error, refused by the parser
    _run(zoo, "encode", f"--model={NAME}", f"--out={bad}", f"--data={tmp_path / 'in.npz'}",
         "--batch_size=0")
  err = capsys.readouterr().err
  assert e.value.code == 2 and err.count("\n") == 1 and "--batch_size" in err, err
  assert "expected an integer >= 1, got 0" in err and not bad.exists()


# ------------------------------------------------------------------ one-line errors, atomic files
def _cli(zoo_root, *args):
  return cli.main([args[0], f"--zoo_dir={zoo_root}", "--model=tiny", *args[1:]])


def _one_line_error(capsys, *fragments):
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  for f in fragments:
    assert f in err, err
  return err


def test_sample_into_a_directory_or_a_read_only_place_is_one_line(zoo, tmp_path, capsys):
  assert _cli(zoo.root, "sample", "--num=2", f"--out={tmp_path}") == 2
  _one_line_error(capsys, "vlae sample: error: --out", "is a directory")
  if os.access("/sys", os.W_OK) and not os.path.ismount("/sys"):
    pytest.skip("no read-only place to write to")
  assert _cli(zoo.root, "sample", "--num=2", "--out=/sys/vlae_samples.png") == 2
  _one_line_error(capsys, "cannot write /sys/vlae_samples.png")


def test_a_full_disk_keeps_the_previous_png_and_leaves_no_partial_file(zoo, tmp_path, capsys):
  out = tmp_path / "samples.png"
  assert _cli(zoo.root, "sample", "--num=1", "--scale=1", f"--out={out}") == 0
  before = out.read_bytes()
  with file_size_limit(len(before) + 64):
    rc = _cli(zoo.root, "sample", "--num=64", "--scale=8", "--seed=1", f"--out={out}")
  assert rc == 2
  _one_line_error(capsys, f"cannot write {out}", "the previous file is unchanged")
  assert out.read_bytes() == before and os.listdir(tmp_path) == ["samples.png"]


@pytest.mark.parametrize("flag", ["--num=-3", "--num=0", "--scale=-1", "--temperature=nan",
                                  "--temperature=-1", "--ncol=0"])
def test_negative_or_nan_sample_arguments_are_refused(zoo, tmp_path, flag, capsys):
  with pytest.raises(SystemExit) as e:
    _cli(zoo.root, "sample", flag, f"--out={tmp_path / 'x.png'}")
  assert e.value.code == 2 and flag.split("=")[0] in capsys.readouterr().err
  assert not os.listdir(tmp_path)


def test_negative_reconstruct_arguments_are_refused(zoo, tmp_path, capsys):
  for flag in ("--samples=-1", "--num=-2"):
    with pytest.raises(SystemExit) as e:
      _cli(zoo.root, "reconstruct", flag, f"--out={tmp_path / 'x.png'}")
    assert e.value.code == 2 and "expected an integer >= 1" in capsys.readouterr().err


def test_data_test_without_data_is_one_line(zoo, tmp_path, monkeypatch, capsys):
  # The tiny model's config reads real data when its dataset is a real one.
  m = vlae_tf.zoo.load("tiny", zoo.root)
  cfg = ConfigDict(m.info["config"])
  cfg.data.dataset, cfg.data.source = "binarized_mnist", "npz"
  monkeypatch.setitem(m.info, "config", cfg.to_dict())
  monkeypatch.setattr(cli_commands, "_load", lambda args: m)
  monkeypatch.setenv("VLAE_DATA_DIR", str(tmp_path / "no_such_folder"))
  assert _cli(zoo.root, "reconstruct", "--data=test", f"--out={tmp_path / 'r.png'}") == 2
  _one_line_error(capsys, "--data=test: cannot read the binarized_mnist test split")


def test_no_verify_on_corrupted_weights_is_one_line(zoo_copy, tmp_path, capsys):
  var = next((zoo_copy / "tiny" / "1" / "variables").glob("variables.data-*"))
  var.write_bytes(var.read_bytes()[: var.stat().st_size // 2])
  assert _cli(zoo_copy, "sample", "--num=1", "--no_verify", f"--out={tmp_path / 's.png'}") == 2
  _one_line_error(capsys, "cannot load the SavedModel", "without --no_verify")
  assert not (tmp_path / "s.png").exists()


def test_a_reader_that_closes_stdout_ends_the_command_silently(zoo, loaded_once, monkeypatch,
                                                                capfd):
  # Defect: `vlae info mnist | head -3` printed "vlae info: error: [Errno 32] Broken pipe".
  # Here stdout is a pipe whose reader has gone, as when head has read its lines and exited.
  for argv in (["info", NAME], ["list"]):
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as closed:
      monkeypatch.setattr(sys, "stdout", closed)
      assert _run(zoo, *argv) == cli.CLOSED_STDOUT == 141
      assert capfd.readouterr().err == ""
      print("more output", flush=True)               # stdout now goes nowhere, without an error
