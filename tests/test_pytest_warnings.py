"""The test command's warnings are worth reading (issue 21).

``python -m pytest tests`` printed ~318 warnings, all from TFP's and Keras'
use of deprecated APIs, so a real one drowned. pyproject.toml filters those by
the third-party module that triggers them; the same warning raised from
vlae_tf, and any other warning, must still be reported.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = '''
import warnings

import keras
import tensorflow as tf
import tensorflow_probability  # noqa: F401  (its import warned about distutils)


def test_third_party_noise():
  keras.ops.convert_to_numpy(tf.Variable([1.0]))      # Keras: NumPy's __array__ copy= warning


def test_our_own_warnings_still_show():
  warnings.warn_explicit("__array__ implementation doesn't accept a copy keyword (ours)",
                         DeprecationWarning, "vlae_tf/model.py", 1, module="vlae_tf.model")
  warnings.warn("a new warning of the project", UserWarning)
'''


@pytest.mark.slow
@pytest.mark.subprocess
def test_known_third_party_warnings_are_filtered_and_ours_are_not(tmp_path):
  (tmp_path / "test_probe.py").write_text(PROBE)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                      "-c", os.path.join(ROOT, "pyproject.toml"), "--rootdir", str(tmp_path),
                      str(tmp_path / "test_probe.py")], capture_output=True, text=True, env=env,
                     timeout=300, cwd=tmp_path)
  out = r.stdout
  assert r.returncode == 0 and "2 passed, 2 warnings" in out, out[-3000:]
  assert "distutils Version classes" not in out and "keras/src" not in out, out[-3000:]
  assert "(ours)" in out and "a new warning of the project" in out, out[-3000:]
