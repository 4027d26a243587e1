"""Command-line mistakes end with one line on stderr and exit status 2 (issue 21).

``train.py``: absl answered a bad flag value, an unknown flag or a missing
``--workdir`` with ``FATAL Flags parsing error: ...`` plus a help hint and exit
status 1, and a usage error found in main (no ``--config`` to train, no
``--export_dir``) with the whole module help; docs/TRAINING.md promises exit 2
and one line.
"""

import pytest

from test_faults import _run_train_py


@pytest.mark.parametrize("args, message", [
    (["--config=zoo/mnist_cpu.py", "--config.train.learning_rate=abc"],
     "--config.train.learning_rate=abc: could not convert string to float: 'abc'"),
    (["--mode=bogus"], "--mode=bogus: value should be one of <train|eval|export>"),
    (["--config=zoo/mnist_cpu.py", "--no_such_flag"], "Unknown command line flag 'no_such_flag'"),
    ([], "--config is required to train"),
    (["--mode=export"], "--export_dir is required with --mode=export"),
    (["stray"], "unexpected arguments: stray"),
], ids=["bad_value", "bad_enum", "unknown_flag", "no_config", "no_export_dir",
        "stray_argument"])
def test_train_py_flag_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
  wd = tmp_path / "never"
  rc, out, err = _run_train_py(f"--workdir={wd}", *args)
  assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
  assert err.startswith("error: ") and message in err and "FATAL" not in err, err
  assert out == "" and not wd.exists()


def test_train_py_without_workdir_is_one_line_and_exit_2():
  rc, out, err = _run_train_py("--config=zoo/mnist_cpu.py")
  assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
  assert "--workdir" in err and err.startswith("error: ") and out == "", err
