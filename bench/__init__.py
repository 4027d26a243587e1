"""Speed and memory ratios (run as ``python bench/<name>.py``; results in bench/README.md).

A package only so that the quality studies of ``experiments/`` can import
:mod:`bench.machine_info`'s ``header`` (``python -m experiments.peers ...``).
"""
