"""The suite's shared fixtures, registered by ``conftest.py`` in every process that runs tests.

The expensive fixtures are session-scoped, so each pytest process (each
xdist worker) builds them once however many modules use them:

* ``zoo``: the tiny model exported as a zoo folder (``helpers.export_tiny_zoo``);
  ``m``: it loaded through ``vlae_tf.zoo.load``; ``zoo_copy``: a private copy of
  its folder, free to damage.
* ``six_steps``: a finished 6-step training run (checkpoints 3 and 6); tests copy
  it before they damage it.

This module imports TensorFlow (through ``helpers`` and ``vlae_tf.training``); it is
a plugin of its own, not part of ``conftest.py``, so that the xdist controller of
``-n 2``, which loads ``conftest.py`` but runs no test, does not import TensorFlow
(~6 s of CPU, before the workers start).
"""

import shutil

import numpy as np
import pytest

import vlae_tf
from helpers import NAME, export_tiny_zoo, train_config
from vlae_tf import training


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
