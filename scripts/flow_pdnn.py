"""The stages of ``spikegate run --algorithm pdnn``: train, eval, sim, compare, synth.

The PD twin of :mod:`spikegate.scripts.flow` and built on it (:class:`PDFlow` is a
:class:`~spikegate.scripts.flow.Flow`): the same run directory, the same keys of each stage's
inputs, the same atomic writes, the same reuse of a stage that is up to date.

train
    A PD network (:mod:`spikegate.golden.pdnn`, the training of ``spikegate train pdnn``) on
    the first 90 % of the training sequence, one epoch at a time; the epoch whose network is
    most accurate on the last 10 % (the validation split, never the test set) is kept,
    quantized (:meth:`~spikegate.golden.pd_model_file.PDModelFile.from_pdnetwork`) and written
    as ``model.npz`` (:mod:`spikegate.golden.pd_model_file`).
eval
    On the whole test sequence, from the zero state: the float PD network (herded, the trained
    weights and gains), the same weights without quantization (noise free), the fixed-point
    network (:class:`~spikegate.golden.pdnn_fixed.PDFixedNetwork`) with its spike events and
    row additions per frame and layer (``eval.json``).
sim
    The first ``images`` test frames through the Verilog of
    :class:`~spikegate.hdl.pd_classifier.PDClassifier` under cocotb + Verilator
    (:func:`~spikegate.sim.pd_run.simulate_pd_hardware`), saved as ``sim.npz``.
compare
    Hardware against the fixed-point golden model frame by frame, bit for bit
    (:func:`~spikegate.golden.pdnn_fixed.first_mismatch`: class, events, row additions and
    every neuron's spike count, accumulator, decoder and activation), and the hardware's cycles
    against the timing model (:func:`~spikegate.hdl.pd_classifier.expected_cycles`).
synth
    Per board (iCEBreaker, ULX3S-85F): :func:`~spikegate.boards.synth.make_pd_design` (the
    classifier behind :class:`~spikegate.boards.synth.PDClassifierShim`: no UART protocol for
    PD frames yet) and :func:`~spikegate.boards.synth.synthesize` (``synth_<board>.json``).
"""

import copy
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from spikegate.golden.pd_model_file import PDModelFile, load_pd_model, save_pd_model

from .flow import Flow, _code_version, _hash_file, _key, _log

__all__ = ["PDFlow", "PD_BOARDS", "VALIDATION_FRACTION", "default_epochs", "float_network",
           "mismatch_cycles"]

#: The boards the synth stage builds for: (board, variant).
PD_BOARDS = (("icebreaker", None), ("ulx3s", "85F"))
#: The share of the training sequence (its end) kept for validation.
VALIDATION_FRACTION = 0.1


def default_epochs(dataset):
    """Training epochs when ``--epochs`` is not given: digits is small (1 437 samples, about
    0.4 s an epoch for 64-64-10), MNIST is not."""
    return 20 if dataset == "digits" else 1


def float_network(model):
    """The float :class:`~spikegate.golden.pdnn.PDNetwork` of a
    :class:`~spikegate.golden.pd_model_file.PDModelFile`: its float weights, biases and forward
    gains (``k_alpha``, adapted ``k_beta``), for inference."""
    from spikegate.golden.pdnn import PDNetwork
    net = PDNetwork(model.sizes, weights=[np.asarray(w, np.float64) for w in model.float_weights])
    for layer, b, ka, kb in zip(net.layers, model.float_biases, model.k_alphas, model.k_betas):
        layer.b = np.asarray(b, np.float64).copy()
        layer.fwd.k_alpha, layer.fwd.k_beta = float(ka), float(kb)
    return net


def mismatch_cycles(hw_cycles, model_cycles):
    """``None`` when the hardware's cycles equal the timing model's on every frame, else a
    message naming the first frame that differs."""
    bad = np.flatnonzero(np.asarray(hw_cycles) != np.asarray(model_cycles))
    if not bad.size:
        return None
    k = int(bad[0])
    return f"frame {k}: {int(hw_cycles[k])} cycles, the timing model {int(model_cycles[k])}"


class PDFlow(Flow):
    """One run directory of the PD flow and the options of its stages.

    ``temporal`` reorders the training and test sets by the greedy nearest-neighbour walk
    (Temporal MNIST, :func:`spikegate.scripts.train_pdnn.prepare_data`; the order is cached
    in the run directory). ``board_lanes`` (one or per weight layer) replace the boards' PD
    lanes (:data:`spikegate.boards.synth.PD_LANES`) in the synth stage.
    """

    def __init__(self, out, *, temporal=False, smoothing_steps=1000, **kwargs):
        super().__init__(out, **kwargs)
        self.temporal, self.smoothing_steps = temporal, smoothing_steps
        self._data = None

    # -- inputs ---------------------------------------------------------------------------
    def model(self, path):
        """The PD model file at ``path``, parsed once (as :meth:`Flow.model`)."""
        path = Path(path)
        if not path.is_file():
            return load_pd_model(path)
        key = (str(path.resolve()), _hash_file(path))
        if key not in self._models:
            self._models[key] = load_pd_model(path)
        return self._models[key]

    def sequences(self):
        """``(x_train, y_train, x_test, y_test)``, temporally ordered when asked for."""
        if self._data is None:
            from .train_pdnn import prepare_data
            self.ds                                   # loads and checks the data set once
            self._data = prepare_data(self.dataset_name, self.data_root(), temporal=self.temporal,
                                      smoothing_steps=self.smoothing_steps, cache_dir=self.out,
                                      quiet=True)
        return self._data

    def data_root(self):
        return self.data if self.data is not None else os.environ.get("SPIKEGATE_DATA")

    def sample(self):
        _, _, x, y = self.sequences()
        n = min(self.images, len(y))
        return x[:n], y[:n]

    def _data_key(self):
        return {"dataset": self.dataset_name, "data": self.data, "temporal": self.temporal,
                "smoothing_steps": self.smoothing_steps if self.temporal else None}

    # -- stages ---------------------------------------------------------------------------
    def train(self, model=None, *, hidden=(64,), epochs=None, seed=0):
        """The PD model file: ``model`` when given (checked), else trained (module docstring)."""
        if model is not None:
            self.model(model)
            self.stages["train"] = {"seconds": 0.0, "cached": True, "model": str(model)}
            return Path(model)
        epochs = default_epochs(self.dataset_name) if epochs is None else int(epochs)
        path = self.out / "model.npz"
        key = _key(stage="train-pdnn", hidden=list(hidden), epochs=epochs, seed=seed,
                   validation=VALIDATION_FRACTION, **self._data_key(),
                   code=_code_version(("golden",), ("train_pdnn.py", "flow_pdnn.py")))
        if self._cached("train", path, key):
            return path
        from spikegate.golden.pdnn import PDNetwork, train_online
        t0 = time.perf_counter()
        xtr, ytr, _, _ = self.sequences()
        n_val = max(1, int(round(VALIDATION_FRACTION * len(ytr))))
        x_fit, y_fit, x_val, y_val = xtr[:-n_val], ytr[:-n_val], xtr[-n_val:], ytr[-n_val:]
        sizes = (xtr.shape[1], *hidden, int(self.ds.n_classes))
        _log(f"== train: PD network {'-'.join(map(str, sizes))} on {self.dataset_name}"
             f"{' (temporal)' if self.temporal else ''}, {epochs} epochs of {len(y_fit)} samples, "
             f"validation {len(y_val)}")
        net = PDNetwork(sizes, seed=seed)
        best, curve = None, []
        for epoch in range(1, epochs + 1):
            res = train_online(net, x_fit, y_fit, x_val, y_val, epochs=1.0, evals_per_epoch=1,
                               train_eval_size=1)
            if res.diverged:
                _log(f"== train: epoch {epoch} diverged ({res.diverged['reason']}); stopping")
                break
            acc = res.history[-1]["test_acc"]
            curve.append(acc)
            _log(f"   epoch {epoch}: validation accuracy {100 * acc:.2f} %")
            if best is None or acc > best[0]:
                best = (acc, epoch, copy.deepcopy(net))
        if best is None:
            raise ValueError(f"training diverged in the first epoch (seed {seed})")
        acc, epoch, net = best
        model = PDModelFile.from_pdnetwork(net, training={
            "dataset": self.dataset_name, "temporal": self.temporal, "seed": seed,
            "epochs": epochs, "best_epoch": epoch, "validation_samples": len(y_val),
            "validation_accuracy": acc, "validation_curve": curve})
        self.out.mkdir(parents=True, exist_ok=True)
        save_pd_model(path, model)
        self._done("train", path, key, t0)
        return path

    def eval(self, model_path):
        """Float and fixed-point accuracy and the fixed-point counts on the test sequence."""
        path = self.out / "eval.json"
        key = _key(stage="eval-pdnn", model=_hash_file(model_path), **self._data_key(),
                   code=_code_version(("golden",), ("flow_pdnn.py",)))
        if self._cached("eval", path, key):
            return json.loads(path.read_text())
        t0 = time.perf_counter()
        model = self.model(model_path)
        _, _, x, y = self.sequences()
        _log(f"== eval: float and fixed-point PD networks on {len(y)} test frames")
        fnet = float_network(model)
        pred, fwd_kops = fnet.predict(x)
        fixed = model.network
        g = fixed.run(fixed.quantize_input(x))
        summary = {
            "samples": len(y),
            "float_accuracy": float(np.mean(pred == y)),
            "float_noise_free_accuracy": float(np.mean(fnet.predict_noise_free(x) == y)),
            "float_weight_additions_per_frame": 1e3 * fwd_kops,
            "fixed_accuracy": float(np.mean(g.klass == y)),
            "float_fixed_agreement": float(np.mean(g.klass == pred)),
            "events_mean": [float(v) for v in g.events.mean(0)],
            "row_additions_mean": [float(v) for v in g.spikes.mean(0)],
            "row_additions_median": [float(v) for v in np.median(g.spikes, 0)],
        }
        atomic.write_text(path, json.dumps(summary, indent=1))
        self._done("eval", path, key, t0)
        return summary

    def sim(self, model_path):
        """The first ``images`` test frames in Verilator; a
        :class:`~spikegate.sim.pd_run.PDHardwareResult`, saved as ``sim.npz``."""
        from spikegate.sim.pd_run import PDHardwareResult, simulate_pd_hardware
        path = self.out / "sim.npz"
        key = _key(stage="sim-pdnn", model=_hash_file(model_path), code=_code_version(),
                   **self._data_key(), images=self.images, lanes=self.lanes, waves=self.waves)
        if self._cached("sim", path, key):
            try:
                return PDHardwareResult.load(path)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
                _log(f"== sim: {path} cannot be read ({e}); simulating again")
                Path(str(path) + ".key").unlink(missing_ok=True)
        t0 = time.perf_counter()
        fixed = self.model(model_path).network
        x, _ = self.sample()
        _log(f"== sim: generate Verilog, build with Verilator, run {len(x)} frames "
             f"(lanes {self.lanes})")
        hw = simulate_pd_hardware(fixed, fixed.quantize_input(x), self.lanes,
                                  waves=self.waves or None)
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(path) as tmp:
            with open(tmp, "wb") as f:
                hw.save(f)
        self._done("sim", path, key, t0)
        return hw

    def compare(self, model_path, hw):
        """``(first mismatch or None, cycles mismatch or None, golden trace, model cycles)`` of
        the hardware against the fixed-point golden model on the sample."""
        from spikegate.golden.pdnn_fixed import first_mismatch
        from spikegate.hdl.pd_classifier import expected_cycles
        fixed = self.model(model_path).network
        x, _ = self.sample()
        g = fixed.run(fixed.quantize_input(x))
        model_cycles = expected_cycles(g, fixed.sizes, self.lanes)
        return (first_mismatch(hw, g), mismatch_cycles(hw.cycles, model_cycles), g,
                model_cycles)

    def synth(self, model_path):
        """Resources and Fmax on each of :data:`PD_BOARDS`: ``{board: report dict}`` (a
        :class:`~spikegate.boards.synth.SynthReport`'s with ``"fits": true``, or
        :func:`~spikegate.scripts.flow.not_fitting`'s)."""
        from spikegate.boards.synth import make_pd_design
        fixed = self.model(model_path).network
        return self._synth_boards(
            model_path, PD_BOARDS, "pdnn",
            lambda board, **kw: make_pd_design(board, fixed, self.board_lanes, **kw),
            lambda d: "PD classifier (shim top)")
