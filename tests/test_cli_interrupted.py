"""A stage of ``spikegate run`` killed (SIGKILL) part way leaves nothing a later run reuses.

The stage runs in a subprocess whose ``open`` is wrapped: when the stage opens the file named
by the test for writing (the result, or its key, or their temporary files), the process kills
itself, either at the open (``before-open``) or after writing half of the first ``write``
(``mid-write``). The test then runs the stage again in this process and checks that it did
the work again and returned a complete, correct result instead of the killed run's partial
(or foreign) one.
"""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from spikegate.golden.data import load_dataset
from spikegate.golden.model_file import TTFSModelFile, load_model, save_model
from spikegate.scripts.eval_ttfs import evaluate
from spikegate.scripts.flow import Flow

# Runs one stage in a subprocess; dies when the stage opens a file whose name holds PATTERN.
_KILLED_STAGE = r'''
import builtins, io, os, signal, sys

out, stage, arg, when, pattern = sys.argv[1:6]
real_open = io.open

def _name(file):
    if isinstance(file, int):                     # os.fdopen: the path behind the descriptor
        return os.readlink(f"/proc/self/fd/{file}")
    return os.fspath(file)

def _die():
    os.kill(os.getpid(), signal.SIGKILL)

class _HalfThenDie:
    def __init__(self, f):
        self._f = f
    def write(self, data):
        self._f.write(data[:max(1, len(data) // 2)])
        self._f.flush()
        _die()
    def __getattr__(self, name):
        return getattr(self._f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self._f.close()

def dying_open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+") and pattern in os.path.basename(_name(file)):
        if when == "before-open":
            _die()
        return _HalfThenDie(real_open(file, mode, *args, **kwargs))
    return real_open(file, mode, *args, **kwargs)

io.open = builtins.open = dying_open
from spikegate.scripts.flow import Flow
flow = Flow(out, images=1)
if stage == "eval":
    flow.eval(arg)
else:
    flow.train(hidden=(4,), epochs=int(arg))
print("the stage finished")
'''


def _kill_stage(out, stage, arg, when, pattern):
    r = subprocess.run([sys.executable, "-c", _KILLED_STAGE, str(out), stage, str(arg), when,
                        pattern], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == -signal.SIGKILL, \
        f"the stage was not killed at {pattern!r} ({when}): exit {r.returncode}\n{r.stdout}{r.stderr}"
    assert "the stage finished" not in r.stdout


def _model(path, hidden, seed):
    rng = np.random.default_rng(seed)
    save_model(path, TTFSModelFile.from_float([rng.normal(0.1, 0.4, (64, hidden)),
                                               rng.normal(0.1, 0.4, (hidden, 10))]))
    return path


def _same_summary(got, model_path):
    """``got`` is eval's summary of ``model_path`` (timings aside)."""
    ds = load_dataset("digits")
    want, _ = evaluate(load_model(model_path), ds.x_test, ds.y_test)
    timings = ("discrete_seconds", "discrete_samples_per_s")
    got = {k: v for k, v in got.items() if k not in timings}
    want = {k: v for k, v in want.items() if k not in timings}
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True), \
        f"eval returned the summary of sizes {got['sizes']}, not {want['sizes']}"


def test_eval_killed_while_writing_its_result_is_redone(tmp_path):
    out = tmp_path / "run"
    out.mkdir()                               # as spikegate run does before its stages
    a, b = _model(tmp_path / "a.npz", 4, 0), _model(tmp_path / "b.npz", 5, 1)
    Flow(out, images=1).eval(a)
    _kill_stage(out, "eval", b, "mid-write", "eval.json")
    # No file under its own name is partial: eval.json is the first run's, complete.
    json.loads((out / "eval.json").read_text())
    flow = Flow(out, images=1)
    _same_summary(flow.eval(a), a)
    _same_summary(Flow(out, images=1).eval(b), b)


@pytest.mark.parametrize("stage, first, second, key", [
    ("eval", "a", "b", "eval.json.key"),
    ("train", 1, 2, "model.npz.key"),
], ids=["eval", "train"])
def test_stage_killed_before_its_key_is_written_is_redone(tmp_path, stage, first, second, key):
    """Killed after writing its new result but before its key: the old key must not make a
    later run with the old inputs take the new result for its own."""
    out = tmp_path / "run"
    out.mkdir()                               # as spikegate run does before its stages
    models = {"a": _model(tmp_path / "a.npz", 4, 0), "b": _model(tmp_path / "b.npz", 5, 1)}
    arg = models.get(first, first), models.get(second, second)

    def run_stage(flow, x):
        return flow.eval(x) if stage == "eval" else flow.train(hidden=(4,), epochs=x)

    run_stage(Flow(out, images=1), arg[0])
    done_first = (out / key.removesuffix(".key")).read_bytes()
    _kill_stage(out, stage, arg[1], "before-open", key)
    assert (out / key.removesuffix(".key")).read_bytes() != done_first, \
        "the killed run did not get as far as writing its result"
    flow = Flow(out, images=1)
    result = run_stage(flow, arg[0])
    assert not flow.stages[stage]["cached"], "reused the killed run's result as the first's"
    if stage == "eval":
        _same_summary(result, arg[0])
    else:
        assert load_model(result).training["epochs_done"] == 1
    flow = Flow(out, images=1)
    run_stage(flow, arg[0])
    assert flow.stages[stage]["cached"], "a complete stage is reused"


def test_killed_model_write_leaves_the_old_model(tmp_path):
    """``train``'s model file: killed half way through the archive, the old one is intact."""
    out = tmp_path / "run"
    out.mkdir()                               # as spikegate run does before its stages
    path = Flow(out, images=1).train(hidden=(4,), epochs=1)
    before = path.read_bytes()
    _kill_stage(out, "train", 2, "mid-write", "model.npz")
    assert path.read_bytes() == before
    assert load_model(path).training["epochs_done"] == 1
    # The killed run had deleted the key (its inputs differ), so nothing counts as done.
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["model.npz"]
    flow = Flow(out, images=1)
    flow.train(hidden=(4,), epochs=2)
    assert not flow.stages["train"]["cached"]
    assert load_model(out / "model.npz").training["epochs_done"] == 2
