"""Experiments that reproduce the VLAE paper's claims (one script per claim; see docs/RESULTS.md),
and the quality studies whose results are in bench/README.md (``recipe_study``, ``peers``,
``compression``, ``lossy_cifar10``).

Run from the repository root, e.g.::

    VLAE_DATA_DIR=/path/to/data python experiments/posterior_collapse.py --workdir=runs/exp/collapse
    VLAE_DATA_DIR=/path/to/data python -m experiments.peers --workdir=/tmp/peers
"""
