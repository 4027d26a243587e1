"""Training at a budget of process CPU seconds, resumable across processes and sessions.

The budget is CPU time (user + system seconds, ``time.process_time()``) of the
process that trains, counted from its start (Python start-up, TF import, graph
tracing and the steps), so it does not depend on what else the machine runs.
Evaluation after training is not counted.

A training may be spread over several processes (a session ends, the process
is killed, the machine restarts). A **ledger** (``cpu_ledger.json`` beside the
run) maps each checkpoint step ``s`` to ``C(s)``, the CPU seconds that the
processes spent to reach that checkpoint:

    C(s) = spent + process_time() at the moment the checkpoint at s was seen,

where ``spent`` is ``C(s0)`` of the checkpoint ``s0`` this process resumed
from (0 for a fresh start). A resumed process starts from the newest
checkpoint ``s`` with ``spent = C(s)``: the work a killed process did after its
last checkpoint is lost and not counted, its start-up before it is (so a
training split over n processes pays n start-ups out of its budget, a small
price that makes the count conservative). If the newest checkpoint is newer
than the ledger's newest entry (a hard kill in the instant between the save
and the ledger write), ``C`` is extrapolated at the ledger's CPU per step and
the result says ``cpu_estimated``.

:class:`CPUBudget` is the watchdog: a thread that every ``interval`` seconds
(a) writes the ledger entry of any new checkpoint of the run and (b) sends
SIGTERM to its own process once the budget is used up, or once the parent
process has gone (a killed session: the orphan checkpoints and stops rather
than train on unseen). ``vlae_tf.training.train`` takes SIGTERM as preemption:
it finishes the step, checkpoints and raises ``Preempted``; a hand-written
loop polls :meth:`CPUBudget.should_stop`. Stopping at the budget overshoots by
at most one step (the CPU seconds actually used are reported).

:func:`run_fresh_process` runs one model's training in its own fresh Python
process (so each model's count starts at zero and models do not share a
process's warm caches), its output appended to a log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from vlae_tf import atomic, checkpoints, training
from vlae_tf import workdir as vwork

LEDGER = "cpu_ledger.json"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERRUPTED_EXIT = 143


class Interrupted(SystemExit):
  """Training stopped before its budget (SIGTERM from outside, or the parent died); resumable."""

  def __init__(self):
    super().__init__(INTERRUPTED_EXIT)


# ==================================================================== the ledger
def read_ledger(path):
  """``{"checkpoints": {step: C(step)}, "processes": n, "estimated": bool}`` of the ledger at
  ``path`` (empty if there is none): ``processes`` counts the processes that reached a
  checkpoint, ``estimated`` says whether a resume extrapolated its CPU count."""
  if not path or not os.path.exists(path):
    return {"checkpoints": {}, "processes": 0, "estimated": False}
  with open(path) as f:
    raw = json.load(f)
  return {"checkpoints": {int(k): float(v) for k, v in raw["checkpoints"].items()},
          "processes": int(raw["processes"]), "estimated": bool(raw["estimated"])}


def write_ledger(path, ledger):
  out = dict(ledger, checkpoints={str(k): v for k, v in sorted(ledger["checkpoints"].items())})
  atomic.write_text(path, json.dumps(out, indent=1) + "\n")


def spent_at(entries, step):
  """``(C(step), estimated)``: CPU seconds spent to reach checkpoint ``step`` (module doc).

  ``entries``: the ledger's ``{step: C(step)}``. ``step`` None (no checkpoint)
  costs 0. A step newer than every entry is extrapolated from the newest older
  entry at its mean CPU per step; None if no entry is older (nothing to
  extrapolate from: the caller restarts).
  """
  if step is None:
    return 0.0, False
  if step in entries:
    return entries[step], False
  older = [s for s in entries if 0 < s < step]
  if not older:
    return None, True
  s = max(older)
  return entries[s] * step / s, True


def checkpoint_step(path):
  """The step of a ``.../ckpt-<step>`` checkpoint path (None for None)."""
  if path is None:
    return None
  m = re.search(r"ckpt-(\d+)$", path)
  return int(m.group(1)) if m else None


# ==================================================================== the watchdog
class CPUBudget:
  """SIGTERMs this process, again and again, once ``spent + process_time() >= seconds``.

  Also on the death of the parent process. With ``ckpt_dir``, records the CPU
  count of each new checkpoint found there in the ledger ``ledger_path``. Until
  a training loop installs its own SIGTERM handler, SIGTERM only sets
  :attr:`terminated` (so a run always gets at least one step).
  """

  def __init__(self, seconds, spent=0.0, ledger_path=None, ckpt_dir=None, interval=0.2,
               estimated=False):
    self.seconds, self.spent, self.interval = float(seconds), float(spent), interval
    self.ledger_path, self.ckpt_dir = ledger_path, ckpt_dir
    self.ledger = read_ledger(ledger_path)
    self.ledger["estimated"] = self.ledger["estimated"] or bool(estimated)
    self._counted = False
    self.terminated = False
    self._ppid = os.getppid()
    self._stop = threading.Event()
    self._lock = threading.Lock()

  def used(self):
    """CPU seconds of this training so far, over all its processes."""
    return self.spent + time.process_time()

  def exhausted(self):
    return self.used() >= self.seconds

  def orphaned(self):
    return os.getppid() != self._ppid

  def should_stop(self):
    return self.terminated or self.exhausted() or self.orphaned()

  def record(self, step):
    """Writes ``C(step) = used()`` into the ledger (call right after checkpointing ``step``)."""
    with self._lock:
      if step is None or step in self.ledger["checkpoints"] or not self.ledger_path:
        return
      self.ledger["checkpoints"][int(step)] = self.used()
      if not self._counted:
        self.ledger["processes"] += 1
        self._counted = True
      write_ledger(self.ledger_path, self.ledger)

  def _on_sigterm(self, *_):
    self.terminated = True

  def __enter__(self):
    self._old = signal.signal(signal.SIGTERM, self._on_sigterm)
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def _run(self):
    while not self._stop.wait(self.interval):
      if self.ckpt_dir:
        from_disk = checkpoints.latest(self.ckpt_dir) if os.path.isdir(self.ckpt_dir) else None
        self.record(checkpoint_step(from_disk))
      if self.should_stop():
        os.kill(os.getpid(), signal.SIGTERM)

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    signal.signal(signal.SIGTERM, self._old)


# ==================================================================== a VAE run
def resume_point(rundir, ledger_path):
  """``(spent, estimated)`` of the run in ``rundir``; a run that cannot be accounted is removed.

  A run with a checkpoint but no ledger entry to count it from (killed right
  after its first checkpoint) restarts from scratch: its folder is deleted.
  """
  step = checkpoint_step(vwork.latest_checkpoint(rundir)) if os.path.isdir(rundir) else None
  if step is None and os.path.exists(ledger_path):
    os.remove(ledger_path)                       # no checkpoint left to count from
  spent, estimated = spent_at(read_ledger(ledger_path)["checkpoints"], step)
  if spent is None:
    print(f"{rundir}: checkpoint at step {step} has no CPU count; restarting this run", flush=True)
    shutil.rmtree(rundir)
    if os.path.exists(ledger_path):
      os.remove(ledger_path)
    return 0.0, False
  return spent, estimated


def train_vae(cfg, rundir, budget_s, ledger_path):
  """Trains (or resumes) a ``vlae_tf`` run until ``budget_s`` CPU seconds; returns its record.

  The record: ``steps`` (of the last checkpoint), ``cpu_seconds`` (over all
  processes), ``cpu_estimated``, ``processes`` (how many processes trained it).
  Raises :class:`Interrupted` (after checkpointing) when stopped from outside
  before the budget. ``cfg.train.checkpoint_every`` sets how much work a hard
  kill can lose.
  """
  spent, estimated = resume_point(rundir, ledger_path)
  with CPUBudget(budget_s, spent, ledger_path, vwork.checkpoint_dir(rundir),
                 estimated=estimated) as budget:
    if spent:
      print(f"resuming {rundir} with {spent:.0f} of {budget_s:.0f} CPU s already spent",
            flush=True)
    try:
      training.train(cfg, rundir)
      finished = True
    except training.Preempted:
      finished = budget.exhausted()
    step = checkpoint_step(vwork.latest_checkpoint(rundir))
    budget.record(step)
    cpu = budget.used()
  if not finished:
    print(f"stopped from outside at step {step} after {cpu:.0f} CPU s; rerun to resume",
          flush=True)
    raise Interrupted()
  return {"steps": step, "cpu_seconds": cpu, **budget_record(ledger_path)}


def budget_record(ledger_path):
  """What a result says of how its training was counted: ``cpu_estimated``, ``processes``."""
  ledger = read_ledger(ledger_path)
  return {"cpu_estimated": ledger["estimated"], "processes": ledger["processes"]}


# ==================================================================== fresh processes
def run_fresh_process(argv, log):
  """Runs ``python argv...`` in a new process, output appended to ``log``; ``(rc, last line)``.

  The folder holding the ``experiments`` package leads its PYTHONPATH, so
  ``-m experiments.<script>`` works from any working directory.
  """
  path = [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
  with open(log, "a") as f:
    rc = subprocess.run([sys.executable] + list(argv), stdout=f, stderr=subprocess.STDOUT,
                        env=env).returncode
  with open(log) as f:
    tail = f.read().strip().splitlines()[-1:] or [""]
  return rc, tail[0]


__all__ = ["LEDGER", "CPUBudget", "Interrupted", "read_ledger", "write_ledger", "spent_at",
           "checkpoint_step", "resume_point", "train_vae", "budget_record", "run_fresh_process"]
