"""The library is as quiet as the ``vlae`` command (issue 21).

``import vlae_tf`` followed by ``vlae_tf.zoo.load`` printed TensorFlow's C++
start-up lines (oneDNN, CUDA drivers, ``cuInit``) and, at the SavedModel's first
input check, oneDNN's DT_BOOL line: only the ``vlae`` command filtered them.
A user who sets ``TF_CPP_MIN_LOG_LEVEL`` keeps TensorFlow's own behaviour.
"""

import os
import re
import subprocess
import sys

import pytest

NOISE = re.compile(r"oneDNN|cuda|cuInit|absl::InitializeLog", re.IGNORECASE)
LOAD = ("import sys, tempfile, vlae_tf\n"
        "assert 'tensorflow' not in sys.modules     # import vlae_tf stays light\n"
        "with tempfile.TemporaryDirectory() as empty:  # the pretrained-model API ...\n"
        "  assert vlae_tf.zoo.list_models(empty) == []\n"
        "assert 'tensorflow' in sys.modules         # ... loads (and TensorFlow) on first use\n"
        "m = vlae_tf.zoo.load('mnist')\n"
        "m.sample(num=1, seed=0)                    # the SavedModel's bool input checks\n"
        "import tensorflow as tf\n"
        "assert type(tf.__spec__.loader).__name__ != '_QuietLoader'\n"
        "print('OK', tf.constant(2).numpy())\n")
# The codec's path: the Keras model, TensorFlow imported by another package (keras) after vlae_tf.
LOAD_KERAS = ("import vlae_tf\n"
              "import keras                              # imports TensorFlow, through the hook\n"
              "m = vlae_tf.zoo.load_keras('mnist')\n"
              "x = vlae_tf.zoo.load('mnist').examples()[:1]\n"
              "print('OK', int(m.elbo_terms(x)['elbo'].shape[0]) + 1)\n")


def _python(code, **env):
  e = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}   # a user's shell
  e.pop("VLAE_ZOO_DIR", None)
  e.update(env)
  return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                        timeout=300, cwd=os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("code", [LOAD, LOAD_KERAS], ids=["zoo.load", "keras-then-load_keras"])
def test_import_and_zoo_load_print_no_tensorflow_start_up_lines(code):
  r = _python(code)
  assert r.returncode == 0 and "OK 2" in r.stdout, r.stderr[-3000:]
  assert not NOISE.search(r.stderr), f"TensorFlow start-up lines on stderr:\n{r.stderr}"
  assert r.stderr == "", r.stderr


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_user_who_sets_the_log_level_gets_tensorflow_as_it_is():
  r = _python(LOAD, TF_CPP_MIN_LOG_LEVEL="0")
  assert r.returncode == 0 and "OK 2" in r.stdout, r.stderr[-3000:]
  if not NOISE.search(r.stderr):
    pytest.skip("TensorFlow printed no start-up lines on this machine")


# A script run in the codec's canonical numeric mode: TensorFlow imported in the child, after
# vlae_tf (process_mode imports it), as a codec script does.
SCRIPT = ("import os, vlae_tf\n"
          "from vlae_tf import quiet_tf\n"
          "from vlae_tf.codec import numeric_mode\n"
          "print('OK', numeric_mode.process_mode()['name'], os.environ.get('TF_CPP_MIN_LOG_LEVEL'),"
          " quiet_tf.is_quiet())\n")


def _numeric_mode(tmp_path, **env):
  script = tmp_path / "script.py"
  script.write_text(SCRIPT)
  e = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}   # a user's shell
  e.update(env)
  return subprocess.run([sys.executable, "-m", "vlae_tf.codec.numeric_mode", str(script)],
                        capture_output=True, text=True, env=e, timeout=300, cwd=tmp_path)


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_script_run_in_the_numeric_mode_prints_no_tensorflow_start_up_lines(tmp_path):
  # Defect: the child inherited the TF_CPP_MIN_LOG_LEVEL=2 that the parent's import vlae_tf had
  # set, took it for the user's, and printed "Could not find cuda drivers", "failed call to cuInit".
  from vlae_tf.codec import numeric_mode
  r = _numeric_mode(tmp_path)
  assert not NOISE.search(r.stderr), f"TensorFlow start-up lines on stderr:\n{r.stderr}"
  assert r.returncode == 0 and r.stderr == "", r.stderr[-3000:]
  assert r.stdout.split() == ["OK", numeric_mode.CANONICAL, "2", "True"], r.stdout


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_script_run_in_the_numeric_mode_keeps_a_log_level_the_user_set(tmp_path):
  from vlae_tf.codec import numeric_mode
  r = _numeric_mode(tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.split() == ["OK", numeric_mode.CANONICAL, "0", "False"], r.stdout
  if not NOISE.search(r.stderr):
    pytest.skip("TensorFlow printed no start-up lines on this machine")
