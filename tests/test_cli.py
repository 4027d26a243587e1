"""The ``vlae`` command: PNG grids that hold exactly the model's outputs, and clean errors."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vlae_tf import cli
from zoo_testing import NAME, m, zoo  # noqa: F401  (m, zoo: fixtures)


def _run(zoo, *args):
  return cli.main([args[0], f"--zoo_dir={zoo.root}", *args[1:]])


@pytest.fixture
def loaded_once(m, monkeypatch):
  """Skips re-loading the SavedModel in every command (the loading path is tested on its own)."""
  real = cli._load
  monkeypatch.setattr(cli, "_load", lambda args: m if args.model == NAME else real(args))


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
  g = cli.image_grid(x, ncol=3, pad=1, pad_value=9)
  assert g.shape == (2 * 3 + 1, 3 * 3 + 1, 1)
  np.testing.assert_array_equal(g[1:3, 4:6, 0], x[1, :, :, 0])
  np.testing.assert_array_equal(g[4:6, 7:9, 0], x[5, :, :, 0])
  assert g[0, 0, 0] == 9 and g[3, 3, 0] == 9
  np.testing.assert_array_equal(cli.to_display(np.array([0, 1]), 2), [0, 255])


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
  from vlae_tf.export import example_images
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
  assert '"iwae_nll"' in capsys.readouterr().out


def test_errors_are_one_line_messages_not_tracebacks(zoo, tmp_path, capsys, loaded_once):
  assert _run(zoo, "sample", "--model=mnist", f"--out={tmp_path / 'a.png'}") == 1
  err = capsys.readouterr().err
  assert "no pretrained model 'mnist'" in err and "Traceback" not in err
  gray = tmp_path / "gray.npz"
  np.savez(gray, x_test=np.full((2, 6, 6), 255, np.uint8))    # 8-bit data for a binary model
  assert _run(zoo, "reconstruct", f"--model={NAME}", f"--data={gray}",
              f"--out={tmp_path / 'b.png'}") == 1
  err = capsys.readouterr().err
  assert "images: expected" in err and "got a pixel value of] [255]" in err
  assert "Detected at node" not in err
  with pytest.raises(SystemExit) as e:                         # argparse: usage + one line, exit 2
    _run(zoo, "sample", f"--model={NAME}", "--num=0", f"--out={tmp_path / 'c.png'}")
  assert e.value.code == 2 and "--num: expected an integer >= 1, got 0" in capsys.readouterr().err
  assert not any(tmp_path.glob("*.png"))


def test_console_script_is_installed_and_runs(zoo, tmp_path):
  exe = pathlib.Path(sys.executable).with_name("vlae")
  assert exe.exists(), "pip install -e . creates the `vlae` console script"
  env = dict(os.environ, VLAE_ZOO_DIR=str(zoo.root))
  r = subprocess.run([str(exe), "list"], capture_output=True, text=True, env=env, timeout=120,
                     cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  assert NAME in r.stdout
