"""Shared machinery of the claim experiments, one module per job; this module gathers their names.

``options`` (flags, ``main``), ``sizing`` (run sizes, configs), ``metrics``
(test-set metrics), ``trained`` (trained models with the zoo API, test images),
``report`` (:class:`Experiment`: training, checks, results.json / results.md),
``figures`` (PNG plots). Studies at an equal CPU budget instead of a step
budget (``seed_table.py``, ``posterior_collapse.py --sweep``,
``experiments/peers.py``) use ``cpu_budget`` (training at a budget of process CPU
seconds, resumable across processes) and ``budget_study`` (rows in fresh
processes, resumable per row).

Every experiment script trains what it needs with :func:`vlae_tf.training.train`
(one sub-directory of the experiment's ``--workdir`` per model, so a rerun
resumes unfinished models and reuses finished ones), evaluates the EMA weights
on the TEST split, and writes ``results.json`` (full precision), ``results.md``
(tables, the computed checks of the paper's expected shape, figures) and PNG
figures into ``--workdir``.

Run sizes (``smoke``, the default ``cpu``, ``full``): see :mod:`experiments.sizing`.

Test-set metrics (:func:`test_set_metrics`) summarise the per-example values
of :func:`vlae_tf.evaluation.elbo_per_example` / :func:`~vlae_tf.evaluation.iwae_per_example`
(what :func:`vlae_tf.evaluation.evaluate` summarises too), plus what a comparison needs: standard errors of the means, the
per-example values (for paired differences between models evaluated on the
same images) and the KL per latent dimension (:func:`vlae_tf.kl_per_dim`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from experiments.figures import pyplot, save_figure, save_image_grid  # noqa: E402,F401
from experiments.metrics import (decode_consistency, paired_difference,  # noqa: E402,F401
                                 test_set_metrics)
from experiments.options import (common_options, define_common_flags, make_main,  # noqa: E402,F401
                                 parse_floats, run_size)
from experiments.report import (RESULTS_JSON, RESULTS_MD, SMOKE_WARNING, Experiment,  # noqa: E402,F401
                                markdown_table)
from experiments.sizing import (CPU_VARIANTS, SIZES, SMOKE_BUDGET, Budget,  # noqa: E402,F401
                                make_tiny, num_params, scale_like, sized_config)
from experiments.trained import servable, test_images, zoo_config  # noqa: E402,F401

__all__ = ["pyplot", "save_figure", "save_image_grid", "decode_consistency", "paired_difference",
           "test_set_metrics", "common_options", "define_common_flags", "make_main",
           "parse_floats", "run_size", "RESULTS_JSON", "RESULTS_MD", "SMOKE_WARNING",
           "Experiment", "markdown_table", "CPU_VARIANTS", "SIZES", "SMOKE_BUDGET", "Budget",
           "make_tiny", "num_params", "scale_like", "sized_config", "servable", "test_images",
           "zoo_config"]
