"""The simulation results path without a simulator: :class:`HardwareResult` built from the
classifier's result payloads, saved and loaded (``sim.npz``) exactly, bad files refused
naming the file; ``spikegate run``, ``sim`` and ``compare`` parse the model file once, and
the sim stage is redone when its file cannot be read or the code that defines it changes.

The Verilator simulation is replaced by the golden model (a stand-in returning what correct
hardware would), so these tests take seconds; ``tests/test_cli_run.py`` runs the real one.
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from spikegate.golden import model_file
from spikegate.golden.model_file import TTFSModelFile, save_model
from spikegate.golden.ttfs_discrete import NO_SPIKE, DiscreteConfig, simulate
from spikegate.scripts import flow as flow_module
from spikegate.scripts.cli import main
from spikegate.scripts.flow import Flow
from spikegate.sim import ttfs_run
from spikegate.sim.ttfs_run import HardwareResult, HardwareResultError
from spikegate.sim.ttfs_tb import unpack_result
from spikegate.hdl.layouts import ClassifierResultLayout

SEED = 0


def _result(n, sizes=(64, 16, 10), *, traced=True, learned=True, weights=False, seed=SEED):
    """A HardwareResult of random values over ``n`` images (dtypes as the simulation's)."""
    rng = np.random.default_rng(seed)
    ints = lambda *shape: rng.integers(-1, 1000, shape, dtype=np.int64)  # noqa: E731
    return HardwareResult(
        decision=rng.integers(-1, sizes[-1], n), decision_step=ints(n), error=ints(n) % 2,
        cycles=ints(n), scan_cycles=ints(n), spikes=ints(n, len(sizes)),
        lookups=ints(n, len(sizes) - 1),
        spike_steps=[rng.integers(NO_SPIKE, 32, (n, s)) for s in sizes[1:]] if traced else None,
        label_error=ints(n) % 2 if learned else None, learn_cycles=ints(n) if learned else None,
        weights=[rng.integers(-128, 128, (n, a, b), dtype=np.int8)
                 for a, b in zip(sizes[:-1], sizes[1:])] if weights else None)


def _assert_same(got, want):
    for f in dataclasses.fields(HardwareResult):
        g, w = getattr(got, f.name), getattr(want, f.name)
        if w is None:
            assert g is None, f"{f.name}: {g!r} instead of None (seed {SEED})"
            continue
        g, w = (g, w) if isinstance(w, list) else ([g], [w])
        assert len(g) == len(w), f"{f.name}: {len(g)} layers instead of {len(w)}"
        for l, (a, b) in enumerate(zip(g, w)):
            assert a.dtype == b.dtype, f"{f.name}[{l}]: dtype {a.dtype} instead of {b.dtype}"
            assert np.array_equal(a, b), f"{f.name}[{l}] differs (seed {SEED})"


# One case per combination of the optional fields: none, traced, learned, all with weights.
@pytest.mark.parametrize("traced, learned, weights", [
    (False, False, False), (True, False, False), (False, True, False), (True, True, True),
], ids=["bare", "traced", "learned", "traced-learned-weights"])
def test_save_load_round_trip(tmp_path, traced, learned, weights):
    hw = _result(7, traced=traced, learned=learned, weights=weights)
    path = tmp_path / "sim.npz"
    hw.save(path)
    _assert_same(HardwareResult.load(path), hw)
    # Atomic: nothing but the file itself is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.npz"]


def test_file_names_layers_as_before(tmp_path):
    """``spike_steps{l}`` numbered by neuron layer (input 0), ``weights{l}`` by weight layer:
    the names sim.npz has always had for the traces."""
    _result(3, (8, 5, 4, 2), weights=True).save(tmp_path / "sim.npz")
    with np.load(tmp_path / "sim.npz") as z:
        names = set(z.files)
    assert {"spike_steps1", "spike_steps2", "spike_steps3"} <= names and "spike_steps0" not in names
    assert {"weights0", "weights1", "weights2"} <= names and "weights3" not in names


def test_an_older_sim_file_loads(tmp_path):
    """sim.npz as ``spikegate run`` wrote it before (no label_error, learn_cycles)."""
    hw = _result(4, learned=False)
    arrays = {f: getattr(hw, f) for f in ("decision", "decision_step", "error", "cycles",
                                          "scan_cycles", "spikes", "lookups")}
    arrays.update({f"spike_steps{l}": s for l, s in enumerate(hw.spike_steps, 1)})
    np.savez(tmp_path / "sim.npz", **arrays)
    _assert_same(HardwareResult.load(tmp_path / "sim.npz"), hw)


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "sim.npz"
    old = _result(3)
    old.save(path)
    before = path.read_bytes()

    def half_then_fail(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        _result(5, seed=1).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.npz"]


def _without(path, name):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != name}
    np.savez(path, **arrays)


def _truncated(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _garbage(path):
    path.write_bytes(b"this is not an archive")


def _foreign(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **arrays, w_int8_0=np.zeros((2, 2), np.int8))


def _short(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **dict(arrays, cycles=arrays["cycles"][:-1]))


def _floats(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **dict(arrays, lookups=arrays["lookups"].astype(float)))


# One case per way a results file can be bad; each names the file and what is wrong.
@pytest.mark.parametrize("spoil, message", [
    (_truncated, "truncated or corrupt"),
    (_garbage, "not an .npz archive"),
    (lambda p: _without(p, "cycles"), "lacks cycles"),
    (_foreign, r"unexpected arrays \['w_int8_0'\]"),
    (_short, "cycles has shape"),
    (_floats, "lookups has shape .* dtype float64"),
], ids=["truncated", "garbage", "missing-field", "foreign-array", "short", "floats"])
def test_bad_file_is_refused_naming_it(tmp_path, spoil, message):
    path = tmp_path / "results-under-test.npz"
    _result(6).save(path)
    spoil(path)
    with pytest.raises(HardwareResultError, match=message) as e:
        HardwareResult.load(path)
    assert "results-under-test.npz" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here.npz"):
        HardwareResult.load(tmp_path / "nothing-here.npz")


def test_from_images_follows_the_result_layout():
    """Every member of the classifier's result layout lands in a field: a member added to
    the layout without a field fails here, not silently."""
    sizes, config = (6, 4, 3), DiscreteConfig()
    lay = ClassifierResultLayout(sizes, config.step_bits)
    T = config.timesteps
    payloads = [
        {"decided": 1, "klass": 2, "decision_step": 5, "error": 0, "cycles": 90,
         "spikes": [3, 2, 1], "lookups": [12, 8], "scan_cycles": 4, "label_error": 0,
         "learn_cycles": 0},
        {"decided": 0, "klass": 0, "decision_step": T, "error": 1, "cycles": 70,
         "spikes": [1, 0, 0], "lookups": [4, 0], "scan_cycles": 9, "label_error": 1,
         "learn_cycles": 6},
    ]
    results = [unpack_result(int(lay.const(p).as_value().value), sizes, config) for p in payloads]
    assert results == payloads
    traces = [[np.array([0, T, 3, T]), np.array([T, 5, T])],
              [np.array([T, T, T, T]), np.array([T, T, T])]]
    weights = [[np.full((6, 4), -3), np.full((4, 3), 7)], [np.full((6, 4), 127), np.zeros((4, 3))]]
    hw = HardwareResult.from_images(results, T, traces=traces, weights=weights)
    assert hw.decision.tolist() == [2, -1] and hw.decision_step.tolist() == [5, -1]
    assert hw.error.tolist() == [0, 1] and hw.cycles.tolist() == [90, 70]
    assert hw.spikes.tolist() == [[3, 2, 1], [1, 0, 0]] and hw.lookups.tolist() == [[12, 8], [4, 0]]
    assert hw.label_error.tolist() == [0, 1] and hw.learn_cycles.tolist() == [0, 6]
    assert hw.spike_steps[0].tolist() == [[0, NO_SPIKE, 3, NO_SPIKE], [NO_SPIKE] * 4]
    assert hw.spike_steps[1].tolist() == [[NO_SPIKE, 5, NO_SPIKE], [NO_SPIKE] * 3]
    assert [w.dtype for w in hw.weights] == [np.int8, np.int8]
    assert hw.weights[0][1].min() == 127 and hw.weights[1][0].max() == 7
    with pytest.raises(TypeError, match="unexpected keyword argument 'new_member'"):
        HardwareResult.from_images([dict(results[0], new_member=1)], T)


# -- the flow: the model parsed once; sim.npz reused only when it is this version's -------

@pytest.fixture
def golden_hardware(monkeypatch):
    """Replace the Verilator simulation by the golden model; count its calls."""
    calls = []

    def fake(net, steps, lanes, *, trace=True, **kwargs):
        calls.append(len(steps))
        g = simulate(net, steps)
        n = len(steps)
        return HardwareResult(
            decision=g.decision, decision_step=g.decision_step, error=np.zeros(n, np.int64),
            cycles=np.full(n, 100, np.int64), scan_cycles=np.zeros(n, np.int64),
            spikes=g.spikes, lookups=g.lookups,
            spike_steps=[s.astype(np.int64) for s in g.spike_steps[1:]] if trace else None)

    monkeypatch.setattr(ttfs_run, "simulate_hardware", fake)
    return calls


@pytest.fixture
def model_parses(monkeypatch):
    """Count the model file parses, wherever spikegate calls load_model from."""
    real = model_file.load_model
    calls = []

    def counting(path):
        calls.append(Path(path).name)
        return real(path)

    for name, module in list(sys.modules.items()):
        if name.startswith("spikegate") and getattr(module, "load_model", None) is real:
            monkeypatch.setattr(module, "load_model", counting)
    return calls


def _model(path, hidden=8, seed=SEED):
    rng = np.random.default_rng(seed)
    save_model(path, TTFSModelFile.from_float([rng.normal(0.1, 0.4, (64, hidden)),
                                               rng.normal(0.1, 0.4, (hidden, 10))]))
    return path


def test_run_parses_the_model_once(tmp_path, golden_hardware, model_parses, capsys):
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--images", "6", "--epochs", "1", "--hidden", "8",
            "--lanes", "4", "--no-synth"]
    assert main(argv) == 0
    assert golden_hardware == [6], "the simulation was not the stand-in"
    assert model_parses == ["model.npz"], model_parses
    assert "6/6 images (100.0 %)" in (out / "report" / "report.md").read_text()
    # Again with every stage reused, and with --model: still one parse.
    model_parses.clear()
    assert main(argv) == 0
    assert golden_hardware == [6] and model_parses == ["model.npz"], model_parses
    model_parses.clear()
    assert main([*argv, "--model", str(out / "model.npz")]) == 0
    assert model_parses == ["model.npz"], model_parses


@pytest.mark.parametrize("command", ["sim", "compare"])
def test_sim_and_compare_parse_the_model_once(tmp_path, golden_hardware, model_parses, command,
                                              capsys):
    model = _model(tmp_path / "m.npz")
    model_parses.clear()
    argv = [command, str(model), "--out", str(tmp_path / "out"), "--images", "5", "--lanes", "4"]
    assert main(argv) == 0
    assert golden_hardware == [5]
    assert model_parses == ["m.npz"], model_parses


def test_flow_model_is_reparsed_when_the_file_changes(tmp_path, model_parses):
    path = _model(tmp_path / "m.npz")
    flow = Flow(tmp_path, images=1)
    first = flow.model(path)
    assert flow.model(path) is first and len(model_parses) == 1
    _model(path, hidden=5)
    assert flow.model(path).sizes == (64, 5, 10) and len(model_parses) == 2


def test_sim_stage_reuses_reads_and_redoes(tmp_path, golden_hardware, monkeypatch):
    """Reused with nothing changed; redone when sim.npz is unreadable (not a crash) and when
    the code defining it (sim/ttfs_run.py) changes."""
    model = _model(tmp_path / "m.npz")
    out = tmp_path / "run"
    out.mkdir()

    def sim():
        flow = Flow(out, images=4, lanes=4)
        return flow.sim(model), flow.stages["sim"]["cached"]

    hw, cached = sim()
    assert not cached and golden_hardware == [4]
    _assert_same(HardwareResult.load(out / "sim.npz"), hw)
    again, cached = sim()
    assert cached and golden_hardware == [4]
    _assert_same(again, hw)

    _truncated(out / "sim.npz")
    again, cached = sim()
    assert not cached and golden_hardware == [4, 4]
    _assert_same(again, hw)
    _assert_same(HardwareResult.load(out / "sim.npz"), hw)

    real = Path.read_bytes

    def edited(self):
        data = real(self)
        if self.name == "ttfs_run.py" and self.parent.name == "sim":
            data += b"\n# a new version\n"
        return data

    monkeypatch.setattr(Path, "read_bytes", edited)
    _, cached = sim()
    assert not cached and golden_hardware == [4, 4, 4], \
        f"a change of sim/ttfs_run.py did not invalidate sim.npz (code {flow_module._code_version()})"
