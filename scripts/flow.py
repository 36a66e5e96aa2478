"""The stages of ``spikegate run``: train, eval, sim, compare, synth, report.

Each stage writes its result into the run directory together with the key of its inputs
(a hash of the model file's bytes and the stage's options); ``run`` skips a stage whose
result exists under the same key, so a second run with nothing changed only re-renders the
report. Inputs (model file, data set) are checked before anything is written. The model
file is parsed once per run (:meth:`Flow.model`) and shared by every stage.

A run killed at any moment leaves nothing a later run would take for a result: a stage that is
not up to date first deletes its key (the old result no longer counts as done), then writes its
result and finally its key, each atomically (:mod:`spikegate.golden.atomic`: the old file or
the complete new one, never part of one). The report is written to a temporary folder and
moved into place at the end, so there is never a partial report.
"""

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from spikegate.golden.data import load_dataset
from spikegate.golden.model_file import load_model, save_model
from spikegate.golden.ttfs_discrete import simulate

from spikegate.golden import atomic

__all__ = ["Flow", "PROTOTYPE", "not_fitting"]

#: The FPGA prototype's figures (Mostafa et al. 2017): MNIST 784-600-10, 8-bit weights.
PROTOTYPE = {"accuracy": 0.97, "lookup_fraction": [0.13, 0.05], "spikes": 139}


def _hash_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _code_version(subdirs=("hdl", "sim", "boards", "golden"), scripts=()):
    """A hash of the code a stage runs (by default the gateware, simulation, board and
    golden code): a change there invalidates the stage as surely as a new model does."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    files = [f for sub in subdirs for f in sorted((root / sub).glob("*.py"))]
    files += [root / "scripts" / name for name in scripts]
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _key(**parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def not_fitting(board, device, error):
    """A synth stage's record of a build that does not fit (a
    :class:`~spikegate.boards.fit.ResourceError`): JSON-able."""
    return {"board": board, "device": device, "fits": False, "resource": error.resource,
            "used": error.used, "available": error.available, "error": str(error)}


class Flow:
    """One run directory and the options of its stages."""

    def __init__(self, out, *, dataset="digits", data=None, images=100, lanes=8,
                 board="icebreaker", board_lanes=None, waves=False, force=False):
        if images < 1:
            raise ValueError(f"--images must be >= 1, not {images!r}")
        self.out = Path(out)
        self.dataset_name, self.data = dataset, data
        self.images, self.lanes, self.board = images, lanes, board
        self.board_lanes, self.waves, self.force = board_lanes, waves, force
        self._ds = None
        self._models = {}          # (path, sha256 of its bytes) -> TTFSModelFile
        self.stages = {}           # name -> {"seconds", "cached"}

    # -- inputs ---------------------------------------------------------------------------
    @property
    def ds(self):
        if self._ds is None:
            self._ds = load_dataset(self.dataset_name, self.data)
        return self._ds

    def model(self, path):
        """The model file at ``path``, parsed (and checked) once: later calls with the same
        path and the same bytes return the same object. Raises as
        :func:`~spikegate.golden.model_file.load_model`."""
        path = Path(path)
        if not path.is_file():
            return load_model(path)             # its FileNotFoundError names the file
        key = (str(path.resolve()), _hash_file(path))
        if key not in self._models:
            self._models[key] = load_model(path)
        return self._models[key]

    def _cached(self, name, path, key):
        meta = Path(str(path) + ".key")
        if not self.force and Path(path).exists() and meta.is_file() and meta.read_text() == key:
            self.stages[name] = {"seconds": 0.0, "cached": True}
            _log(f"== {name}: up to date ({path})")
            return True
        # The stage runs: until its new key is written, neither the old result nor a new one
        # may count as done (a run killed after the result but before the key must not leave
        # the old key beside the new result).
        meta.unlink(missing_ok=True)
        return False

    def _done(self, name, path, key, t0):
        atomic.write_text(Path(str(path) + ".key"), key)
        self.stages[name] = {"seconds": round(time.perf_counter() - t0, 1), "cached": False}
        _log(f"== {name}: {self.stages[name]['seconds']} s")

    # -- stages ---------------------------------------------------------------------------
    def train(self, model=None, *, hidden=(64,), epochs=None, seed=0):
        """The model file: ``model`` when given (checked), else trained on the data set."""
        if model is not None:
            self.model(model)          # raises ModelFileError with a clear message
            self.stages["train"] = {"seconds": 0.0, "cached": True, "model": str(model)}
            return Path(model)
        from .train_ttfs import configs_for, train_model
        path = self.out / "model.npz"
        overrides = {"seed": seed} if epochs is None else {"seed": seed, "epochs": epochs}
        enc, cfg, discrete = configs_for(self.dataset_name, **overrides)
        # The key holds every setting training uses (the data set's defaults included, so a
        # change of defaults retrains) and the training code itself.
        key = _key(stage="train", dataset=self.dataset_name, data=self.data, hidden=list(hidden),
                   encoding=repr(enc), training=repr(cfg), discrete=repr(discrete),
                   code=_code_version(("golden",), ("train_ttfs.py",)))
        if self._cached("train", path, key):
            return path
        t0 = time.perf_counter()
        _log(f"== train: {self.dataset_name}, hidden {list(hidden)}, {cfg.epochs} epochs")
        model_file, _, _ = train_model(self.ds, list(hidden), enc, cfg, discrete=discrete)
        self.out.mkdir(parents=True, exist_ok=True)
        save_model(path, model_file)
        self._done("train", path, key, t0)
        return path

    def eval(self, model_path):
        from .eval_ttfs import evaluate
        path = self.out / "eval.json"
        key = _key(stage="eval", model=_hash_file(model_path), dataset=self.dataset_name)
        if self._cached("eval", path, key):
            return json.loads(path.read_text())
        t0 = time.perf_counter()
        _log(f"== eval: float and 8-bit golden models on {len(self.ds.y_test)} test images")
        summary, _ = evaluate(self.model(model_path), self.ds.x_test, self.ds.y_test)
        atomic.write_text(path, json.dumps(summary, indent=1))
        self._done("eval", path, key, t0)
        return summary

    def sample(self):
        n = min(self.images, len(self.ds.y_test))
        return self.ds.x_test[:n], self.ds.y_test[:n]

    def sim(self, model_path):
        """Simulate the Verilog on the sample; returns the
        :class:`~spikegate.sim.ttfs_run.HardwareResult`, saved as ``sim.npz``."""
        from spikegate.sim.ttfs_run import HardwareResult, HardwareResultError, simulate_hardware
        path = self.out / "sim.npz"
        # The code version covers sim/ttfs_run.py, which defines sim.npz's format: a file of
        # another version is never reused.
        key = _key(stage="sim", model=_hash_file(model_path), code=_code_version(),
                   dataset=self.dataset_name,
                   images=self.images, lanes=self.lanes, waves=self.waves)
        if self._cached("sim", path, key):
            try:
                return HardwareResult.load(path)
            except HardwareResultError as e:
                _log(f"== sim: {e}; simulating again")
                Path(str(path) + ".key").unlink(missing_ok=True)
        t0 = time.perf_counter()
        model = self.model(model_path)
        x, _ = self.sample()
        _log(f"== sim: generate Verilog, build with Verilator, run {len(x)} images "
             f"(lanes {self.lanes})")
        hw = simulate_hardware(model.network(), model.encode(x), self.lanes, trace=True,
                               waves=self.waves)
        hw.save(path)
        self._done("sim", path, key, t0)
        return hw

    def compare(self, model_path, hw):
        """Hardware (a :class:`~spikegate.sim.ttfs_run.HardwareResult`) against golden on
        the sample: ``(None or the first mismatch, the golden result)``."""
        from spikegate.sim.ttfs_run import first_mismatch
        model = self.model(model_path)
        x, _ = self.sample()
        g = simulate(model.network(), model.encode(x))
        return first_mismatch(hw, g), g

    def _synth_boards(self, model_path, boards, algorithm, make_design, describe,
                      key_extra=None, extra=None):
        """The PD and SSGD synth stages: for each ``(board, variant)`` of ``boards``, the
        design ``make_design(board, **kw)`` (``(design, platform)``) built with nextpnr seeds
        :data:`~spikegate.boards.synth.DEFAULT_SEEDS`, cached in ``synth_<name>.json`` under a
        key of the model, board, lanes and ``key_extra``. A build that does not fit is a record
        (:func:`not_fitting`), not a failure, and the other boards are built all the same;
        ``extra(design)`` adds entries to each record. ``{name: record}``."""
        from spikegate.boards.fit import ResourceError
        from spikegate.boards.synth import DEFAULT_SEEDS, synthesize
        out = {}
        for board, variant in boards:
            name = board + (f"-{variant}" if variant else "")
            path = self.out / f"synth_{name}.json"
            key = _key(stage=f"synth-{algorithm}", model=_hash_file(model_path), board=name,
                       lanes=self.board_lanes, seeds=list(DEFAULT_SEEDS), **(key_extra or {}),
                       code=_code_version(scripts=(f"flow_{algorithm}.py",)))
            stage = f"synth {name}"
            if self._cached(stage, path, key):
                out[name] = json.loads(path.read_text())
                continue
            t0 = time.perf_counter()
            kw = {} if variant is None else {"variant": variant}
            design, platform = make_design(board, **kw)
            _log(f"== {stage}: {describe(design)} with YoWASP (Yosys, nextpnr)")
            try:
                report = synthesize(design, platform, self.out / f"synth-build-{name}",
                                    seed=DEFAULT_SEEDS, check_timing=False)
            except ResourceError as e:
                _log(f"== {stage}: does not fit: {e}")
                d = not_fitting(name, design.device.name, e)
            else:
                d = {**report.to_dict(), "fits": True}
            if extra is not None:
                d.update(extra(design))
            atomic.write_text(path, json.dumps(d, indent=1))
            self._done(stage, path, key, t0)
            out[name] = d
        return out

    def synth(self, model_path):
        """Bitstream and resource/timing report for the board (``synth.json``)."""
        path = self.out / "synth.json"
        # The stage also simulates the board's classifier on the sample: its images count.
        key = _key(stage="synth", model=_hash_file(model_path),
                   code=_code_version(scripts=("flow.py",)), board=self.board,
                   lanes=self.board_lanes, dataset=self.dataset_name, images=self.images)
        if self._cached("synth", path, key):
            return json.loads(path.read_text())
        from spikegate.boards.synth import DEFAULT_SEEDS, make_design, synthesize
        t0 = time.perf_counter()
        model = self.model(model_path)
        _log(f"== synth: {self.board} bitstream with YoWASP (Yosys, nextpnr)")
        design, platform = make_design(self.board, model.network(), self.board_lanes)
        report = synthesize(design, platform, self.out / "synth-build", seed=DEFAULT_SEEDS,
                            check_timing=False)
        d = report.to_dict()
        # The board's own cycles per classification: its lanes and classifier options, which
        # may differ from the sim stage's (the UP5K: lanes (2, 1) for digits).
        from spikegate.boards.timing import board_timing
        from spikegate.sim.ttfs_run import simulate_hardware
        lanes = design.lanes
        x, _ = self.sample()
        _log(f"== synth: {self.board} cycles per classification (lanes {lanes}) in Verilator")
        hw = simulate_hardware(model.network(), model.encode(x), lanes, trace=False,
                               timing=board_timing(self.board, model.network().sizes, lanes))
        d["board_classifier"] = {
            "lanes": list(lanes) if not isinstance(lanes, int) else lanes,
            "cycles_mean": float(hw.cycles.mean()), "cycles_median": float(np.median(hw.cycles)),
            "images": len(x)}
        atomic.write_text(path, json.dumps(d, indent=1))
        self._done("synth", path, key, t0)
        return d
