"""``experiments/compression.py`` runs its real lossless path on a tiny packaged model.

The bench decodes in a fresh child process, which loads the model again: from the
same zoo folder (``--zoo_dir``) as the parent, or the weights hash in the file will
not match. Measured here end to end (compress, a fresh-process decompress, the
baselines) on a tiny model exported to a temporary zoo.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_TESTS = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_TESTS)

# The codec codes only in its canonical numeric mode (vlae_tf.codec.numeric_mode): the bench's
# lossless step runs in a process started in it, as `python -m experiments.compression` does for
# itself.
_LOSSLESS = textwrap.dedent("""
    import argparse, json, sys
    sys.path[:0] = sys.argv[1:3]
    import vlae_tf
    from helpers import NAME, binary_images
    from vlae_tf import codec
    from experiments import compression
    model = vlae_tf.zoo.load_keras(NAME, sys.argv[3])
    x = binary_images(5, seed=3)
    res = {"neg_elbo_bits_per_dim": codec.negative_elbo_bits_per_dim(model, x)}
    compression.lossless(NAME, model, x, True, res,
                         argparse.Namespace(zoo_dir=sys.argv[3], group_size=4))
    print(json.dumps({"exact": res["lossless"]["exact_in_fresh_process"],
                      "overhead_pct": res["lossless"]["overhead_pct"],
                      "baselines": sorted(res["baselines"])}))
""")


@pytest.mark.slow
@pytest.mark.subprocess
def test_lossless_bench_decodes_in_a_fresh_process_with_the_given_zoo(zoo):
  r = subprocess.run([sys.executable, "-m", "vlae_tf.codec.numeric_mode", "-c", _LOSSLESS, _TESTS,
                      _ROOT, str(zoo.root)], capture_output=True, text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  ll = json.loads(r.stdout.strip().splitlines()[-1])
  assert ll["exact"]
  assert abs(ll["overhead_pct"]) < 5          # the tiny model's file size tracks its -ELBO
  assert set(ll["baselines"]) == {"png", "webp_lossless", "gzip", "bz2", "lzma"}
