"""The package's module-level imports form no cycle, and its modules stay short.

Walks the ``import`` / ``from ... import`` statements at the top level of every
module of ``vlae_tf`` (and of the zoo configs installed as ``vlae_tf.zoo``),
keeps the edges between modules of the package, and looks for a cycle.
Function-level imports are not edges here, and the test below makes sure
there are none that point back into the package to dodge one.
"""

import ast
import importlib
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "vlae_tf")
ZOO = os.path.join(ROOT, "zoo")
MAX_LINES = 400


def _modules():
  mods = {}
  folders = [(PKG, "vlae_tf"), (ZOO, "vlae_tf.zoo")]
  folders += [(os.path.join(PKG, d), f"vlae_tf.{d}") for d in sorted(os.listdir(PKG))
              if os.path.isfile(os.path.join(PKG, d, "__init__.py"))]   # subpackages
  for folder, prefix in folders:
    for f in sorted(os.listdir(folder)):
      if f.endswith(".py"):
        name = prefix if f == "__init__.py" else f"{prefix}.{f[:-3]}"
        mods[name] = os.path.join(folder, f)
  return mods


def _imports(path, top_level):
  tree = ast.parse(open(path).read())
  nodes = tree.body if top_level else [n for n in ast.walk(tree) if n not in tree.body]
  out = set()
  for node in nodes:
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      out.add(node.module)
      out |= {f"{node.module}.{a.name}" for a in node.names}
  return out


# Function-level imports of package modules allowed by design, each with its reason. They are
# still edges of the import graph, so they cannot hide a cycle.
DEFERRED_BY_DESIGN = {
    ("vlae_tf.cli", "vlae_tf.cli_commands"): "vlae --help and usage errors answer without "
                                             "TensorFlow; the commands import it, quietly, after",
    # (importlib.import_module, not an import statement: listed so the edges stay in the graph)
    ("vlae_tf.zoo", "vlae_tf.pretrained.store"): "reading a zoo config does not import "
                                                 "TensorFlow; the pretrained-model API imports "
                                                 "it on first use",
    ("vlae_tf.zoo", "vlae_tf.pretrained.keras_weights"): "the same, for zoo.load_keras",
    ("vlae_tf.codec", "vlae_tf.codec.api"): "the codec's names (codec.compress, ...) import "
                                            "TensorFlow on first use: the vlae command reads "
                                            "codec.numeric_mode and codec.file_format before it",
}


def _graph():
  mods = _modules()
  graph = {m: sorted(i for i in _imports(p, True) if i in mods and i != m)
           for m, p in mods.items()}
  for a, b in DEFERRED_BY_DESIGN:
    graph[a] = sorted(set(graph[a]) | {b})
  return graph


def _cycle(graph):
  state, stack = {}, []

  def visit(m):
    state[m] = 1
    stack.append(m)
    for n in graph[m]:
      if m.startswith(n + ".") or (m == "vlae_tf" and n.startswith("vlae_tf.")):
        continue   # a package is imported before its modules; vlae_tf's __init__ re-exports
      if state.get(n) == 1:
        return stack[stack.index(n):] + [n]
      if n not in state and (c := visit(n)):
        return c
    stack.pop()
    state[m] = 2
    return None

  for m in graph:
    if m not in state and (c := visit(m)):
      return c
  return None


def _fresh_python(code, timeout=120):
  """``python -c code`` in a new process at the repository root: its own ``sys.modules``."""
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout)


def test_cycle_finder_finds_a_cycle():
  assert _cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
  assert _cycle({"a": ["b"], "b": [], "c": ["a"]}) is None


def test_no_import_cycle_between_package_modules():
  assert _cycle(_graph()) is None


def test_setup_installs_every_subpackage():
  """setup.py lists packages by name: a new folder of modules missing there is absent from a
  wheel, though the editable install (and so every other test) still finds it."""
  listed = ast.literal_eval(next(
      kw.value for node in ast.walk(ast.parse(open(os.path.join(ROOT, "setup.py")).read()))
      if isinstance(node, ast.Call) for kw in node.keywords if kw.arg == "packages"))
  packages = {m for m, p in _modules().items() if p.endswith("__init__.py")}
  assert packages <= set(listed), sorted(packages - set(listed))


def test_modules_import_a_subpackages_modules_not_its_lazy_names():
  """``from vlae_tf.codec import chain`` names a module; ``from vlae_tf.codec import compress``
  inside the package would run the lazy ``__getattr__`` (and TensorFlow's import) while the
  package is still being imported, an import-time cycle the graph above does not see."""
  mods = _modules()
  packages = {m for m, p in mods.items() if p.endswith("__init__.py") and m != "vlae_tf"}
  wrong = []
  for name, path in mods.items():
    for node in ast.parse(open(path).read()).body:
      if isinstance(node, ast.ImportFrom) and node.module in packages:
        wrong += [f"{name}: from {node.module} import {a.name}" for a in node.names
                  if f"{node.module}.{a.name}" not in mods]
  assert not wrong, wrong


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_codec_package_exports_what_vlae_tf_codec_exported_and_imports_no_tensorflow():
  # The codec was vlae_tf/codec.py with codec_*.py beside it; users keep writing
  # `from vlae_tf import codec; codec.compress(...)`, and `vlae compress` reads codec.numeric_mode
  # and codec.file_format before TensorFlow is imported.
  code = textwrap.dedent("""
      import sys, types, __future__
      from vlae_tf import codec
      from vlae_tf.codec import file_format, numeric_mode
      assert 'tensorflow' not in sys.modules
      from vlae_tf.codec import api
      public = {n for n, v in vars(api).items() if not n.startswith('_')
                and not isinstance(v, (types.ModuleType, __future__._Feature))
                and (not isinstance(v, (type, types.FunctionType))
                     or v.__module__.startswith('vlae_tf.codec.'))}
      assert public == set(codec._API), sorted(public ^ set(codec._API))
      assert all(getattr(codec, n) is getattr(api, n) for n in codec._API)
      assert set(codec.__all__) == set(api.__all__)
      assert codec.CodecError is file_format.CodecError
      print('OK')
      """)
  p = _fresh_python(code)
  assert p.returncode == 0 and p.stdout.strip() == "OK", p.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_function_level_import_of_the_package(name):
  """Imports inside functions may defer a heavy optional dependency, never a package module."""
  inner = {i for i in _imports(_modules()[name], False) if i.startswith("vlae_tf")}
  inner = {i for i in inner if (name, i) not in DEFERRED_BY_DESIGN
           and not any((name, d) in DEFERRED_BY_DESIGN and i == d.rsplit(".", 1)[0]
                       for d in inner)}
  assert not inner, f"{name} imports {sorted(inner)} inside a function"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_are_short_or_say_why(name):
  path = _modules()[name]
  lines = open(path).read().count("\n")
  doc = ast.get_docstring(ast.parse(open(path).read())) or ""
  assert lines <= MAX_LINES or "Longer than" in doc, f"{name}: {lines} lines, no reason given"


def _scripts():
  """The scripts users run outside the package: train.py, bench/ and experiments/."""
  paths = [os.path.join(ROOT, "train.py")]
  for folder in ("bench", "experiments"):
    d = os.path.join(ROOT, folder)
    paths += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".py")]
  return paths


@pytest.mark.parametrize("path", _scripts(), ids=lambda p: os.path.relpath(p, ROOT))
def test_scripts_import_names_the_package_has(path):
  """Every ``from vlae_tf... import name`` in a script names something that exists.

  The scripts are not imported by the rest of the suite (they run for hours), so
  a name moved between package modules would otherwise break them silently, as
  ``bench/compression.py`` (now ``experiments/compression.py``) was broken once by
  ``image_grid`` moving out of ``vlae_tf.cli``.
  """
  missing = []
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vlae_tf"):
      module = importlib.import_module(node.module)
      for alias in node.names:
        if not hasattr(module, alias.name):
          try:
            importlib.import_module(f"{node.module}.{alias.name}")
          except ModuleNotFoundError:
            missing.append(f"{node.module}.{alias.name}")
  assert not missing, f"{os.path.relpath(path, ROOT)} imports names that do not exist: {missing}"


@pytest.mark.subprocess
def test_reading_and_validating_any_zoo_config_imports_no_tensorflow():
  # Defect: vlae_tf.config imported vlae_tf.data (TensorFlow, PIL) for dataset names, and
  # vlae_tf.zoo imported the pretrained-model store, so reading a config cost a TensorFlow import
  # and train.py had to sniff argv for --deterministic before parsing its flags.
  code = ("import sys\n"
          "import vlae_tf.zoo as z; z.get_config('mnist')\n"
          "assert 'tensorflow' not in sys.modules, 'get_config'\n"
          "from vlae_tf import config\n"
          "for name in z.list_configs():\n"
          "  config.validate_config(z.get_config(name))\n"
          "import vlae_tf.datasets\n"
          "heavy = sorted(m for m in ('tensorflow', 'keras', 'PIL', 'vlae_tf.data') if m in sys.modules)\n"
          "assert not heavy, heavy\n"
          "from vlae_tf import data_readers      # train.py's check of the data files\n"
          "c = z.get_config('mnist_cpu'); c.data.source = 'npz'; c.data.data_dir = '/nonexistent'\n"
          "try:\n  data_readers.check_local_training_data(c)\n"
          "except FileNotFoundError as e:\n  assert 'not found' in str(e), e\n"
          "else:\n  raise AssertionError('a missing data folder passed')\n"
          "assert 'tensorflow' not in sys.modules, 'check_local_training_data'\n"
          "print(len(z.list_configs()))\n")
  p = _fresh_python(code)
  assert p.returncode == 0 and int(p.stdout) >= 10, p.stderr[-2000:]
  # (That the pretrained-model API still loads when it is asked for, TensorFlow then: the
  # fresh process of tests/test_quiet.py, which calls vlae_tf.zoo.list_models and zoo.load.)


# Commands and paths that moved (issue 22 §2): the studies run as ``python -m experiments.<name>``,
# a run is packaged by ``train.py --mode=export``, the store is ``vlae_tf.pretrained`` and the
# codec ``vlae_tf/codec/`` (issue 22 §3).
RETIRED = ("bench/compression", "bench/peers", "bench/recipe_study", "python -m vlae_tf.export",
           "vlae_tf.zoo_keras", "vlae_tf.zoo_store", "vlae_tf.zoo_model", "vlae_tf.zoo_card",
           "vlae_tf/codec.py", "vlae_tf.codec_", "vlae_tf/codec_")
# The codec's modules before they were the package vlae_tf/codec/ (codec.py is api.py, codec_format
# file_format, codec_mode numeric_mode, codec_side side_info, codec_cli commands, the others lost
# their prefix), also when named bare (`codec_side.nominal_bits`; tests/test_codec_side.py is fine).
RETIRED_PATTERN = re.compile(r"(?<![\w/.])codec_(chain|latent|pixels|lossy|side|format|mode|cli)\b")
# Where a retired name may stay on purpose: the old command's own one-line "use this instead".
RETIRED_ON_PURPOSE = {("vlae_tf/export.py", "python -m vlae_tf.export")}


def _docs_and_code():
  """What a user reads: the package, the docs, the READMEs, the configs, studies, benchmarks."""
  paths = ["README.md", "saved_models/README.md", "train.py", "setup.py"]
  for folder, ext in (("vlae_tf", ".py"), ("docs", ".md"), ("experiments", ".py"),
                      ("bench", ".py"), ("bench", ".md"), ("zoo", ".py")):
    for d, _, files in os.walk(os.path.join(ROOT, folder)):
      paths += [os.path.relpath(os.path.join(d, f), ROOT) for f in files if f.endswith(ext)]
  return sorted(p for p in paths if os.path.isfile(os.path.join(ROOT, p)))


def test_no_doc_or_docstring_names_a_moved_command_or_path():
  stale = [f"{p}: {old}" for p in _docs_and_code()
           for old in RETIRED if (p, old) not in RETIRED_ON_PURPOSE
           and old in open(os.path.join(ROOT, p), encoding="utf-8").read()]
  stale += [f"{p}: {m[0]}" for p in _docs_and_code()
            for m in RETIRED_PATTERN.finditer(open(os.path.join(ROOT, p), encoding="utf-8").read())]
  assert not stale, "stale names (see RETIRED for what replaced them):\n" + "\n".join(stale)


def _names_used(paths):
  """Every name a module-level import, a call or an attribute access in ``paths`` refers to."""
  used = set()
  for path in paths:
    for node in ast.walk(ast.parse(open(path).read())):
      if isinstance(node, ast.Name):
        used.add(node.id)
      elif isinstance(node, ast.Attribute):
        used.add(node.attr)
      elif isinstance(node, ast.alias):
        used |= {node.name.rsplit(".", 1)[-1], node.asname}
  return used


KERAS_HOOKS = {"call", "build", "get_config", "from_config", "compute_output_shape",
               "get_build_config", "build_from_config"}


def test_every_package_function_is_used_outside_the_tests_or_is_public_api():
  # Defect: functions only the tests called (data_readers.load_npz_split, evaluation.
  # gaussian_kl_to_standard_normal, workdir.prepare_workdir) and one nothing called
  # (DiscretizedLogisticMixture.bin_probs, once the codec's mixture_pmf replaced it) stayed in the
  # package. A function, class or method must serve the package, train.py, the studies or the
  # benchmarks, or be in vlae_tf.__all__ (the library API, which the tests check for users).
  import vlae_tf
  used = _names_used(list(_modules().values()) + _scripts())
  unused = []
  for name, path in _modules().items():
    for node in ast.parse(open(path).read()).body:
      defs = [(node.name, node)] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []
      if isinstance(node, ast.ClassDef):     # methods, less the hooks Keras and Python call
        defs += [(f"{node.name}.{m.name}", m) for m in node.body
                 if isinstance(m, ast.FunctionDef) and m.name not in KERAS_HOOKS]
      unused += [f"{name}.{label}" for label, d in defs if not d.name.startswith("__")
                 and d.name not in used and d.name not in vlae_tf.__all__]
  assert not unused, f"used by no package code, script, study or benchmark: {unused}"

