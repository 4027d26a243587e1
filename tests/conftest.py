"""The suite's tiers and order; the shared fixtures are in ``shared_fixtures.py`` (plain helpers
in ``helpers.py``).

Fixtures (``zoo``, ``m``, ``zoo_copy``, ``six_steps``, ``rng``): ``shared_fixtures.py``, which
:func:`pytest_configure` registers in every process that runs tests -- not in the xdist
controller of ``-n 2``, which runs none (importing them imports TensorFlow: ~6 s of CPU
before the workers start).

Markers (declared in ``pyproject.toml``): ``slow`` for a test that takes more than
~3 s of CPU on its own, ``subprocess`` for one that starts Python processes
(``train.py``, ``vlae``, scripts). ``-m "not slow"`` is the fast tier.

Order: the modules with the most ``slow`` tests run first (the order is otherwise
the collection's). Under ``-n 2 --dist loadfile`` (the README's command) each worker
takes whole files, the next one when it is free; starting the long files first keeps
the two workers busy to the end instead of leaving one alone with the last long file.
xdist's own reordering by test count is turned off in pyproject.toml for this.
"""

import collections
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _is_xdist_controller(config):
  """True in the process that hands out tests to xdist workers and runs none itself."""
  return (not hasattr(config, "workerinput") and not config.getvalue("collectonly")
          and getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx",
                                                                            None)))


def pytest_configure(config):
  if not _is_xdist_controller(config):
    config.pluginmanager.import_plugin("shared_fixtures")


def pytest_collection_modifyitems(items):
  """Modules with more ``slow`` tests first; a stable sort keeps the order within a module."""
  slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
  first_seen = {path: i for i, path in enumerate(dict.fromkeys(item.path for item in items))}
  items.sort(key=lambda item: (-slow[item.path], first_seen[item.path]))
