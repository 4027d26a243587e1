"""Command-line mistakes end with one line on stderr and exit status 2 (issue 21).

``train.py``: absl answered a bad flag value, an unknown flag or a missing
``--workdir`` with ``FATAL Flags parsing error: ...`` plus a help hint and exit
status 1, and a usage error found in main (no ``--config`` to train, no
``--export_dir``) with the whole module help; docs/TRAINING.md promises exit 2
and one line.

``vlae`` exited 1 for a user mistake (an unknown model, an unwritable ``--out``)
but 2 for a usage error: one rule now, exit 2 for every user mistake.

``vlae info`` required ``--model`` where every other tool takes the name as
an argument (``vlae info mnist``).
"""

import os

import pytest

from helpers import NAME, run_train_py
from vlae_tf import cli


@pytest.mark.parametrize("args, message", [
    (["--config=zoo/mnist_cpu.py", "--config.train.learning_rate=abc"],
     "--config.train.learning_rate=abc: could not convert string to float: 'abc'"),
    (["--mode=bogus"], "--mode=bogus: value should be one of <train|eval|export>"),
    (["--config=zoo/mnist_cpu.py", "--no_such_flag"], "Unknown command line flag 'no_such_flag'"),
    ([], "--config is required to train"),
    (["--mode=export"], "--export_dir is required with --mode=export"),
    (["stray"], "unexpected arguments: stray"),
    (["--config=zoo/mnist_cpu.py", "--config.model.prior=bogus"],
     "invalid config: model.prior must be one of ('af', 'normal'), got 'bogus'"),
], ids=["bad_value", "bad_enum", "unknown_flag", "no_config", "no_export_dir",
        "stray_argument", "bad_choice"])
@pytest.mark.subprocess
def test_train_py_flag_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
  wd = tmp_path / "never"
  rc, out, err = run_train_py(f"--workdir={wd}", *args)
  assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
  assert err.startswith("error: ") and message in err and "FATAL" not in err, err
  assert out == "" and not wd.exists()


@pytest.mark.subprocess
def test_train_py_without_workdir_is_one_line_and_exit_2():
  rc, out, err = run_train_py("--config=zoo/mnist_cpu.py")
  assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
  assert "--workdir" in err and err.startswith("error: ") and out == "", err


# ------------------------------------------------------------------ train.py: flags before TensorFlow
ONEDNN_ON = "oneDNN custom operations are on"


@pytest.mark.slow
@pytest.mark.subprocess
def test_deterministic_from_a_flagfile_turns_onednn_off_before_tensorflow_is_imported(tmp_path):
  # train.py parses its flags (a --flagfile too) before it imports TensorFlow, so
  # --deterministic sets TF_ENABLE_ONEDNN_OPTS=0 in time (it sniffed argv and re-executed itself
  # for a --flagfile). --verbose shows TensorFlow's start-up lines, among them oneDNN's "on".
  flagfile = tmp_path / "run.flags"
  flagfile.write_text(f"--workdir={tmp_path / 'none'}\n--mode=eval\n--deterministic\n")
  env = {"TF_ENABLE_ONEDNN_OPTS": "", "TF_CPP_MIN_LOG_LEVEL": "0"}
  # (Without --verbose the same error is one line: train.py's other one-line errors, e.g.
  # test_checkpoint_faults' and test_own_data's, check that no start-up line leaks.)
  for args, onednn in ((["--nodeterministic"], True), ([], False)):
    rc, out, err = run_train_py(f"--flagfile={flagfile}", "--verbose", *args, env=env)
    assert rc == 2 and "not a training work directory" in err, err[-2000:]
    assert (ONEDNN_ON in err) == onednn, err[-2000:]


@pytest.mark.slow
@pytest.mark.subprocess
def test_deterministic_with_a_config_file_that_imports_tensorflow_is_a_usage_error(tmp_path):
  path = tmp_path / "tf_config.py"
  path.write_text("import tensorflow\nfrom vlae_tf.zoo import mnist_cpu\n\n\n"
                  "def get_config():\n  return mnist_cpu.get_config()\n")
  rc, out, err = run_train_py(f"--config={path}", f"--workdir={tmp_path / 'never'}",
                              "--deterministic", env={"TF_ENABLE_ONEDNN_OPTS": "1"})
  assert rc == 2 and len(err.strip().splitlines()) == 1, err      # its import was quiet too
  assert err.startswith("error: --deterministic: the --config file imported TensorFlow"), err
  assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------ vlae info NAME
def test_vlae_info_takes_the_model_name_as_an_argument(zoo, capsys):
  # Defect: `vlae info mnist` failed with "the following arguments are required: --model".
  for argv in (["info", NAME], ["info", f"--model={NAME}"]):
    assert cli.main([*argv, f"--zoo_dir={zoo.root}"]) == 0
    out = capsys.readouterr().out
    assert f'"name": "{NAME}"' in out and f"{NAME}: images [6, 6, 1]" in out, out


@pytest.mark.parametrize("argv, message", [
    (["info"], "the model is required: vlae info NAME"),
    (["info", NAME, "--model=other"], "two models given"),
])
def test_vlae_info_without_one_model_is_a_usage_error(zoo, argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main([*argv, f"--zoo_dir={zoo.root}"])
  err = capsys.readouterr().err
  assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("vlae info: error: "), err
  assert message in err


# ------------------------------------------------------------------ one rule: user mistakes exit 2
@pytest.mark.parametrize("argv, message", [
    (["sample", "--model=no_such_model"], "no pretrained model 'no_such_model'"),
    (["sample", f"--model={NAME}", "--out=."], "is a directory"),
    (["encode", f"--model={NAME}", "--data=no_such.npz", "--out=z.npz"], "no such file"),
    (["info", "x" * 5000], "(5000 characters)"),
], ids=["unknown_model", "out_is_a_folder", "missing_data", "long_name"])
def test_every_vlae_user_mistake_exits_2_like_a_usage_error(zoo, argv, message, capsys,
                                                             tmp_path, monkeypatch):
  # Defect: an unknown model, an unwritable --out or unreadable data exited 1, a usage error 2.
  monkeypatch.chdir(tmp_path)
  assert cli.main([*argv, f"--zoo_dir={zoo.root}"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
  assert not os.listdir(tmp_path)                                     # nothing written
