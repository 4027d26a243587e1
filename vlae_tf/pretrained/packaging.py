"""Packaging a trained model as a zoo entry: SavedModel, Keras weights, card, examples, checksums.

The one documented way to export a run is the training driver::

  python train.py --workdir=runs/mnist --mode=eval            # writes runs/mnist/eval.json
  python train.py --workdir=runs/mnist --mode=export --export_dir=saved_models/mnist \\
      --command="python train.py --config=zoo/mnist_cpu.py ..." --hardware="2 CPU cores" \\
      --wall_time_hours=30 [--learning_curve=curve.png] [--overwrite]

which calls :func:`package_run`; the library calls it (or :func:`export_model`
for a model in memory) directly. The SavedModel and its serving contract are
:mod:`vlae_tf.export`'s; the folder layout, the card and the checksums are
:mod:`vlae_tf.pretrained.store`'s; the Keras weights file is
:mod:`vlae_tf.pretrained.keras_weights`'s.
"""

from __future__ import annotations

import os
import pathlib
import shutil

from vlae_tf import atomic, evaluation, export
from vlae_tf import data as vdata
from vlae_tf import workdir as vwork
from vlae_tf.pretrained import keras_weights
from vlae_tf.pretrained import store as zoo_store


def example_images(config, num=8):
  """``num`` evenly spaced images of the config's test split (model-ready uint8 NHWC).

  Evenly spaced rather than the first ones: some test sets are sorted by
  class (binarized MNIST's begins with a thousand zeros).
  """
  x = vdata.load_split(config, vdata.eval_split_name(config, "test"))
  if num <= 0:
    return x[:0]
  return x[evaluation.iwae_subset(len(x), num)]


def _examples_or_none(config, num=8):
  try:
    return example_images(config, num)
  except Exception as e:  # noqa: BLE001  (no data on this machine: the card just has no examples)
    print(f"export: no example images bundled ({type(e).__name__}: {e})")
    return None


def export_model(model, config, export_dir, version=None, **card_info):
  """Writes ``model`` (already holding the weights to ship, e.g. EMA) as a zoo model folder.

  Args:
    model: a built :class:`vlae_tf.model.VLAE`.
    config: its config (stored in the SavedModel's ``info_json`` variable and the card).
    export_dir: the model folder, e.g. ``saved_models/mnist``; the SavedModel goes
      into its version folder (:func:`vlae_tf.export.export_saved_model`).
    version: the version number when ``export_dir`` is a model folder.
    **card_info: metadata for the model card. A card (``card.json``,
      ``README.md``, ``eval.json``, ``examples.npz``, sha256 of every file; see
      :func:`vlae_tf.pretrained.store.write_card`) is written into the model folder
      when evaluation results are known: ``eval_results`` (a dict or the path
      of an eval.json) or ``workdir`` holding ``eval.json``. Also read:
      ``step`` / ``steps``, ``weights``, ``name``, ``command``, ``hardware``,
      ``wall_time_hours``, ``examples`` (uint8 NHWC images; default the first
      8 test images when the data is readable), ``paper_nll``, ``notes``.
      Without evaluation results only the SavedModel and the Keras weights are written.

  Returns:
    The SavedModel folder. The Keras weights of the same model go into
    ``<model folder>/model.weights.h5``.
  """
  saved_model_dir = export.export_saved_model(model, config, export_dir, version)
  model_dir = os.path.dirname(saved_model_dir) or "."
  keras_weights.save_keras_weights(model, model_dir)     # the same weights for Keras users
  eval_results = card_info.pop("eval_results", None)
  workdir = card_info.get("workdir")
  if eval_results is None and workdir and os.path.isfile(os.path.join(workdir, "eval.json")):
    eval_results = os.path.join(workdir, "eval.json")
  if eval_results is None:
    if card_info:
      print(f"export: wrote the SavedModel {saved_model_dir} but no model card: no evaluation "
            "results (run `train.py --mode=eval` first, or pass eval_results)")
    return saved_model_dir
  eval_results = zoo_store.check_eval_results(eval_results)
  step = card_info.pop("step", None)
  steps = card_info.pop("steps", step)
  if steps is not None and eval_results.get("step") is not None and \
      int(eval_results["step"]) != int(steps):
    raise ValueError(f"the evaluation is of step {eval_results['step']} but the exported weights "
                     f"are of step {steps}; evaluate the exported checkpoint first")
  if "examples" not in card_info:
    card_info["examples"] = _examples_or_none(config)
  zoo_store.write_card(model_dir, config=config, eval_results=eval_results, steps=steps,
                       version=os.path.basename(saved_model_dir), signatures=export.SIGNATURES,
                       **card_info)
  return saved_model_dir


def package_run(workdir, export_dir, config=None, eval_json=None, version=1, num_examples=8,
                overwrite=False, use_ema=True, learning_curve=None, **card_info):
  """Exports a trained run as the zoo model folder ``export_dir`` (``train.py --mode=export``).

  Loads the (EMA) weights with :func:`vlae_tf.workdir.load_model_from_workdir`
  (``config``, if given, must agree with the stored one); the card's numbers
  come from ``eval_json`` (default ``workdir/eval.json``), which must be of the
  same checkpoint step. The card's name is ``card_info["name"]``, default the
  folder's name. ``learning_curve``: a PNG from ``experiments/learning_curve.py``,
  packaged (and checksummed) as ``learning_curve.png`` and linked from the card.
  Writes into a temporary folder, verifies it, then moves it into place (with
  ``overwrite``, replacing the old folder). Returns the model folder.
  """
  if learning_curve is not None and not os.path.isfile(learning_curve):
    raise FileNotFoundError(f"no learning curve at {learning_curve}")
  eval_json = eval_json or os.path.join(workdir, "eval.json")
  if not os.path.isfile(eval_json):
    raise FileNotFoundError(f"no evaluation at {eval_json}: run `python train.py "
                            f"--workdir={workdir} --mode=eval` first (the card's numbers must "
                            "come from a real eval.json)")
  results = zoo_store.check_eval_results(eval_json)
  target = pathlib.Path(export_dir)
  if target.exists() and not overwrite:
    raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
  if config is not None:
    vwork.check_config(config, workdir)
  model, config, step = vwork.load_model_from_workdir(workdir, use_ema=use_ema)
  if results.get("step") is not None and int(results["step"]) != int(step):
    raise ValueError(f"{eval_json} evaluates step {results['step']} but the checkpoint in "
                     f"{workdir} is at step {step}; re-run `train.py --mode=eval`")
  card_info.setdefault("name", target.name)
  with atomic.folder(target, replace=overwrite) as tmp:   # the old model stays whole until the swap
    tmp = pathlib.Path(tmp)
    examples = example_images(config, num_examples) if num_examples else None
    if learning_curve is not None:
      shutil.copyfile(learning_curve, tmp / zoo_store.LEARNING_CURVE)
    export_model(model, config, tmp, version=version, eval_results=eval_json, step=step,
                 workdir=os.fspath(workdir), weights="ema" if use_ema else "raw",
                 examples=examples, **card_info)
    zoo_store.verify(tmp)
  return target


__all__ = ["example_images", "export_model", "package_run"]
