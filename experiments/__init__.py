"""Experiments that reproduce the VLAE paper's claims (one script per claim; see docs/RESULTS.md).

Run from the repository root, e.g.::

    VLAE_DATA_DIR=/path/to/data python experiments/posterior_collapse.py --workdir=runs/exp/collapse
"""
