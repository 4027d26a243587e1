"""The real TFDS preparation path of our datasets runs, in the installed package, up to the download.

``pip install -e ".[test]"`` once gave a TFDS that failed every ``download_and_prepare`` with
``ModuleNotFoundError: No module named 'importlib_resources'`` before any download: the tests
passed because ``tfds.testing.mock_data`` never reaches that import. Here nothing of TFDS is
mocked: a fresh Python process (the installed interpreter, so the installed dependencies) calls
``vlae_tf.data.load_tfds_split`` -- what ``train.py`` runs without ``VLAE_DATA_DIR`` -- with an
empty TFDS data_dir, for every dataset we read through TFDS. The only change is the network:
``HTTP(S)_PROXY`` points at a closed local port, so the download fails at once, the same way
with or without network (CI), and TFDS's download retries are set to 0 so that failure does not
take the ~3.5 minutes of its default backoff. The test then demands that each dataset failed in
the download (a ``requests`` connection error raised under TFDS's download manager) and that no
``ImportError`` appears anywhere in the chain.

``cifar10_cpu:valid`` goes the way a training run's held-out evaluation goes: the validation split
``zoo/cifar10_cpu.py`` asks for is carved from the training split, so TFDS must be asked for
``train`` (CIFAR-10 has no ``validation`` split to download).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

DATASETS = ("binarized_mnist", "mnist", "omniglot", "cifar10")
CARVED = "cifar10_cpu:valid"   # <zoo config>:<split>, read through the config

_PROBE = textwrap.dedent("""
    import json, sys, traceback
    import requests
    from tensorflow_datasets.core.download import downloader
    import vlae_tf
    from vlae_tf import data
    downloader.MAX_RETRIES = 0  # one attempt per URL: the default backoff adds ~3.5 min offline
    out = {}
    for name in sys.argv[2:]:
      try:
        if ":" in name:
          config_name, split = name.split(":")
          cfg = vlae_tf.zoo.get_config(config_name)
          cfg.data.source, cfg.data.tfds_data_dir = "tfds", sys.argv[1]
          data.load_raw_split(cfg, split)
        else:
          data.load_tfds_split(name, "train", sys.argv[1])
        out[name] = {"ok": True}
        continue
      except Exception as e:  # noqa: BLE001 -- classified below
        chain, err = [], e
        while err is not None and len(chain) < 20:
          frames = [f.filename for f in traceback.extract_tb(err.__traceback__)]
          chain.append({"type": type(err).__name__, "message": str(err)[:3000],
                        "import_error": isinstance(err, ImportError),
                        "network": isinstance(err, requests.exceptions.ConnectionError),
                        "in_download": any("/download/" in f for f in frames)})
          err = err.__cause__ or err.__context__
        out[name] = {"ok": False, "chain": chain}
    print("RESULT " + json.dumps(out))
""")


def _closed_port():
  s = socket.socket()
  s.bind(("127.0.0.1", 0))
  port = s.getsockname()[1]
  s.close()  # nothing listens there now: connections are refused at once
  return port


@pytest.mark.slow
@pytest.mark.subprocess
def test_tfds_preparation_fails_only_for_want_of_network(tmp_path):
  proxy = f"http://127.0.0.1:{_closed_port()}"
  env = dict(os.environ, HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy,
             https_proxy=proxy, TF_CPP_MIN_LOG_LEVEL="3")
  for k in ("NO_PROXY", "no_proxy", "VLAE_DATA_DIR"):
    env.pop(k, None)
  tfds_dir = tmp_path / "tfds"  # empty: nothing prepared, nothing cached, so the download must run
  proc = subprocess.run([sys.executable, "-c", _PROBE, str(tfds_dir), *DATASETS, CARVED],
                        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, f"probe crashed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  results = json.loads(lines[-1][len("RESULT "):])
  assert sorted(results) == sorted(DATASETS + (CARVED,))
  for name, r in results.items():
    assert not r["ok"], f"{name}: TFDS prepared it without network -- the probe saw cached data"
    chain = r["chain"]
    assert chain[0]["type"] == "RuntimeError" and "VLAE_DATA_DIR" in chain[0]["message"], (
        f"{name}: our loader should wrap the failure with offline advice, got {chain[0]}")
    imports = [c for c in chain if c["import_error"]]
    assert not imports, f"{name}: a dependency is missing from setup.py: {imports}"
    net = [c for c in chain if c["network"] and c["in_download"]]
    assert net, f"{name}: expected a network error from TFDS's download manager, got {chain}"
  assert "'cifar10' split 'train'" in results[CARVED]["chain"][0]["message"], results[CARVED]
