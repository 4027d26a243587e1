"""Shared fixtures (plain helpers are in ``helpers.py``) and the suite's tiers.

The expensive fixtures are session-scoped, so each pytest process (each
xdist worker) builds them once however many modules use them:

* ``zoo``: the tiny model exported as a zoo folder (``helpers.export_tiny_zoo``);
  ``m``: it loaded through ``vlae_tf.zoo.load``; ``zoo_copy``: a private copy of
  its folder, free to damage.
* ``six_steps``: a finished 6-step training run (checkpoints 3 and 6); tests copy
  it before they damage it.

Markers (declared in ``pyproject.toml``): ``slow`` for a test that takes more than
~3 s of CPU on its own, ``subprocess`` for one that starts Python processes
(``train.py``, ``vlae``, scripts). ``-m "not slow"`` is the fast tier.

Order: the modules with the most ``slow`` tests run first (the order is otherwise
the collection's). Under ``-n 2 --dist loadfile`` (the README's command) each worker
takes whole files, the next one when it is free; starting the long files first keeps
the two workers busy to the end instead of leaving one alone with the last long file.
xdist's own reordering by test count is turned off in pyproject.toml for this.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import collections  # noqa: E402
import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vlae_tf  # noqa: E402
from helpers import NAME, export_tiny_zoo, train_config  # noqa: E402
from vlae_tf import training  # noqa: E402


def pytest_collection_modifyitems(items):
  """Modules with more ``slow`` tests first; a stable sort keeps the order within a module."""
  slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
  first_seen = {path: i for i, path in enumerate(dict.fromkeys(item.path for item in items))}
  items.sort(key=lambda item: (-slow[item.path], first_seen[item.path]))


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
  """The tiny model exported once per session (``helpers.TinyZoo``); never modify its folder."""
  return export_tiny_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def m(zoo):
  """The tiny model loaded through ``vlae_tf.zoo.load`` (a test that changes it uses monkeypatch)."""
  return vlae_tf.zoo.load(NAME, zoo.root)


@pytest.fixture
def zoo_copy(zoo, tmp_path):
  """A private zoo folder holding a copy of the tiny model, free to damage."""
  root = tmp_path / "zoo"
  shutil.copytree(zoo.dir, root / NAME)
  return root


@pytest.fixture(scope="session")
def six_steps(tmp_path_factory):
  """A finished 6-step run (checkpoints 3 and 6) to copy and damage; never modify it in place."""
  wd = str(tmp_path_factory.mktemp("six_steps") / "run")
  training.train(train_config(steps=6), wd)
  return wd
