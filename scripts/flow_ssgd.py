"""The stages of ``spikegate run --algorithm ssgd``: train, eval, sim, compare, train-sim,
synth.

The SSGD twin of :mod:`spikegate.scripts.flow` and built on it (:class:`SSGDFlow` is a
:class:`~spikegate.scripts.flow.Flow`): the same run directory, the same keys of each stage's
inputs, the same atomic writes, the same reuse of a stage that is up to date.

train
    The 64-H-10 LIF network by the bit-exact fixed-point training of the hardware
    (:func:`~spikegate.golden.ssgd_train_fixed.train_fixed`, image by image, both learning
    rates halved every :data:`DECAY_EVERY` epochs) on the whole training set, from
    ``init_weights(seed)``; beside it the float counterpart (the same algorithm without
    rounding, from the same initial weights and image order), whose test accuracy goes into the
    model file's ``training``. Written as ``model.npz``
    (:mod:`spikegate.golden.ssgd_model_file`). No choice is made on the test set: the epochs
    are fixed.
eval
    On the whole test set: the fixed-point forward (accuracy, hidden spikes, active events and
    weight reads per image) and the float forward of the same weights
    (:func:`~spikegate.golden.ssgd_train_fixed.predict_float` of ``W / 2^frac_bits``)
    (``eval.json``).
sim
    The first ``images`` test images (golden encoding, rasters) through the Verilog of
    :class:`~spikegate.hdl.ssgd_network.SSGDNetwork` under cocotb + Verilator
    (:func:`~spikegate.sim.ssgd_run.simulate_ssgd_hardware`), saved as ``sim.npz``.
compare
    Hardware against the golden forward bit for bit (:func:`~spikegate.sim.ssgd_run.first_mismatch`:
    every hidden membrane, spike, active flag and surrogate value, readout membranes, the
    active events, logits, classes, counters) and the cycles against the timing model
    (:func:`~spikegate.hdl.ssgd_network.expected_cycles`).
train-sim
    On-chip training: the first ``train_images`` training images, from the model's weights,
    through the Verilog of :class:`~spikegate.hdl.ssgd_trainer.SSGDTrainer`
    (:func:`~spikegate.sim.ssgd_train_run.simulate_ssgd_training`; :data:`TRAIN_SAMPLES`
    weights of each matrix read back after every image, all of them at the end), against
    :func:`~spikegate.sim.ssgd_train_run.golden_training` (``train_sim.npz``).

synth
    Per board (iCEBreaker, ULX3S-85F, :data:`SSGD_BOARDS`):
    :func:`~spikegate.boards.synth.make_ssgd_design` (the model's trainer, its weights the block
    RAMs' initial contents, behind :class:`~spikegate.boards.synth.SSGDTrainerShim`: no UART
    protocol for on-chip training yet, so resources and Fmax only) with the board's lanes
    (:data:`~spikegate.boards.synth.SSGD_LANES`, or ``board_lanes``) and
    :func:`~spikegate.boards.synth.synthesize` (``synth_<board>.json``), and the forward's
    cycles per image at those lanes on the sample (the timing model
    :func:`~spikegate.hdl.ssgd_network.expected_cycles`, which the compare stage holds the
    hardware to). A build that does not fit is a result, not a failure: its file says
    ``"fits": false`` and which resource overflowed (nextpnr's count), and the other board is
    built all the same.
"""

import json
import time
import zipfile
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from spikegate.golden import ssgd_train_fixed as stf
from spikegate.golden.ssgd_model_file import SSGDModelFile, load_ssgd_model, save_ssgd_model

from .flow import Flow, _code_version, _hash_file, _key, _log, not_fitting

__all__ = ["SSGDFlow", "DEFAULT_EPOCHS", "DECAY_EVERY", "TRAIN_SAMPLES", "SSGD_BOARDS",
           "mismatch_cycles", "training_mismatch", "weight_reads", "not_fitting"]

#: The boards the synth stage builds for: (board, variant).
SSGD_BOARDS = (("icebreaker", None), ("ulx3s", "85F"))

#: Training epochs when ``--epochs`` is not given (``spikegate train ssgd-fixed``'s default).
DEFAULT_EPOCHS = 20
#: Both learning-rate shifts grow by one every this many epochs.
DECAY_EVERY = 4
#: Weights of each matrix read back from the trainer after every image.
TRAIN_SAMPLES = 24


def mismatch_cycles(hw_cycles, model_cycles):
    """``None`` when the hardware's forward cycles equal the timing model's on every image,
    else a message naming the first image that differs."""
    bad = np.flatnonzero(np.asarray(hw_cycles) != np.asarray(model_cycles))
    if not bad.size:
        return None
    k = int(bad[0])
    return f"image {k}: {int(hw_cycles[k])} cycles, the timing model {int(model_cycles[k])}"


def training_mismatch(hw, g):
    """The first difference between the on-chip training ``hw`` and the golden ``g`` (dicts
    of :mod:`spikegate.sim.ssgd_train_run`), as text, or ``None``: every image's class and
    active events, the sampled weights after every image, every weight at the end."""
    for k in ("klass", "active", "w_sample0", "w_sample1"):
        a, b = np.asarray(hw[k]), np.asarray(g[k])
        if a.shape != b.shape:
            return f"training: {k} has shape {a.shape}, golden {b.shape}"
        bad = np.argwhere(a != b)
        if bad.size:
            i = tuple(int(v) for v in bad[0])
            return f"training: image {i[0]}: {k}{list(i[1:])} = {a[i]}, golden {b[i]}"
    for l in range(2):
        a, b = np.asarray(hw[f"w_final{l}"]), np.asarray(g[f"w_final{l}"])
        bad = np.argwhere(a != b) if a.shape == b.shape else np.zeros((1, 2), int)
        if bad.size:
            i = tuple(int(v) for v in bad[0])
            if a.shape != b.shape:
                return f"training: final W{l + 1} has shape {a.shape}, golden {b.shape}"
            return f"training: final W{l + 1}{list(i)} = {a[i]}, golden {b[i]}"
    return None


def weight_reads(in_spikes, hidden_spikes, sizes):
    """Forward weight reads per image: every input spike reads a row of ``H`` weights, every
    hidden spike (except the last step's, which no readout step sees) a row of ``C``."""
    return np.asarray(in_spikes) * sizes[1] + np.asarray(hidden_spikes) * sizes[2]


class SSGDFlow(Flow):
    """One run directory of the SSGD flow and the options of its stages; ``train_images``:
    the training images of the on-chip training run."""

    def __init__(self, out, *, train_images=4, **kwargs):
        super().__init__(out, **kwargs)
        self.train_images = train_images

    # -- inputs ---------------------------------------------------------------------------
    def model(self, path):
        """The SSGD model file at ``path``, parsed once (as :meth:`Flow.model`)."""
        path = Path(path)
        if not path.is_file():
            return load_ssgd_model(path)
        key = (str(path.resolve()), _hash_file(path))
        if key not in self._models:
            self._models[key] = load_ssgd_model(path)
        return self._models[key]

    def _data_key(self):
        return {"dataset": self.dataset_name, "data": self.data}

    def sample(self, tfmt):
        """``(rasters (n, T, n_in), labels)`` of the first ``images`` test images."""
        n = min(self.images, len(self.ds.y_test))
        times = stf.encode(self.ds.x_test[:n], tfmt)
        return np.swapaxes(stf.input_raster(times, tfmt), 0, 1), self.ds.y_test[:n]

    def train_sample(self, tfmt):
        """``(spike steps (n, n_in), labels)`` of the first ``train_images`` training images."""
        n = min(self.train_images, len(self.ds.y_train))
        return stf.encode(self.ds.x_train[:n], tfmt), self.ds.y_train[:n]

    def _lanes(self):
        return (self.lanes,) * 2 if isinstance(self.lanes, int) else tuple(self.lanes)

    # -- stages ---------------------------------------------------------------------------
    def train(self, model=None, *, hidden=64, epochs=None, seed=0):
        """The SSGD model file: ``model`` when given (checked), else trained (module
        docstring)."""
        if model is not None:
            self.model(model)
            self.stages["train"] = {"seconds": 0.0, "cached": True, "model": str(model)}
            return Path(model)
        epochs = DEFAULT_EPOCHS if epochs is None else int(epochs)
        tfmt = stf.TrainFormat()
        path = self.out / "model.npz"
        key = _key(stage="train-ssgd", hidden=int(hidden), epochs=epochs, seed=seed,
                   decay_every=DECAY_EVERY, fmt=repr(tfmt), **self._data_key(),
                   code=_code_version(("golden",), ("flow_ssgd.py",)))
        if self._cached("train", path, key):
            return path
        t0 = time.perf_counter()
        ds = self.ds
        sizes = (int(ds.n_inputs), int(hidden), int(ds.n_classes))
        xtr, ytr = stf.encode(ds.x_train, tfmt), ds.y_train
        _log(f"== train: SSGD network {'-'.join(map(str, sizes))} on {self.dataset_name}, "
             f"{epochs} epochs of {len(ytr)} images, fixed point and float")
        w0 = stf.init_weights(sizes, tfmt, seed=seed)
        w, h = stf.train_fixed(w0, xtr, ytr, tfmt, epochs=epochs, seed=seed,
                               decay_every=DECAY_EVERY)
        f = 1 << tfmt.lif.frac_bits
        wf, _ = stf.train_float(tuple(a / f for a in w0), xtr, ytr, tfmt, epochs=epochs,
                                seed=seed, decay_every=DECAY_EVERY)
        xte = stf.encode(ds.x_test, tfmt)
        float_acc = float(np.mean(stf.predict_float(wf, xte, tfmt) == ds.y_test))
        info = {"dataset": self.dataset_name, "seed": seed, "epochs": epochs,
                "decay_every": DECAY_EVERY, "hidden": int(hidden), "n_train": len(ytr),
                "images_trained": epochs * len(ytr),
                "active_fraction": float(np.sum(h["events"]) / np.sum(h["entries"])),
                "float_trained_test_acc": float_acc,
                "train_loss": [float(v) for v in h["loss"]]}
        self.out.mkdir(parents=True, exist_ok=True)
        save_ssgd_model(path, SSGDModelFile(tuple(np.asarray(a, np.int64) for a in w), tfmt,
                                            info))
        self._done("train", path, key, t0)
        return path

    def eval(self, model_path):
        """Fixed-point and float accuracy and the fixed-point counts on the test set."""
        path = self.out / "eval.json"
        key = _key(stage="eval-ssgd", model=_hash_file(model_path), **self._data_key(),
                   code=_code_version(("golden",), ("flow_ssgd.py",)))
        if self._cached("eval", path, key):
            return json.loads(path.read_text())
        t0 = time.perf_counter()
        m = self.model(model_path)
        tfmt, w = m.fmt, m.weights
        x, y = stf.encode(self.ds.x_test, tfmt), self.ds.y_test
        _log(f"== eval: fixed-point and float forward on {len(y)} test images")
        fwd = stf.forward_fixed(w, x, tfmt)
        klass = np.argmax(fwd.z, axis=1)
        f = 1 << tfmt.lif.frac_bits
        pred_f = stf.predict_float(tuple(np.asarray(a, np.float64) / f for a in w), x, tfmt)
        T, H = tfmt.n_steps, m.sizes[1]
        xs = np.swapaxes(fwd.x, 0, 1)                       # (B, T, n_in)
        s = np.swapaxes(fwd.s, 0, 1)                        # (B, T, H)
        in_spikes = xs[:, :-1].sum(axis=(1, 2))
        h_spikes = s.sum(axis=(1, 2))
        h_read = s[:, :-1].sum(axis=(1, 2))
        events = np.bincount(fwd.events.b, minlength=len(y))
        reads = weight_reads(in_spikes, h_read, m.sizes)
        summary = {
            "samples": int(len(y)),
            "fixed_accuracy": float(np.mean(klass == y)),
            "float_accuracy": float(np.mean(pred_f == y)),
            "float_fixed_agreement": float(np.mean(pred_f == klass)),
            "input_spikes_mean": float(in_spikes.mean()),
            "hidden_spikes_mean": float(h_spikes.mean()),
            "active_events_mean": float(events.mean()),
            "hidden_entries": int((T - 1) * H),
            "hidden_active_fraction": float(events.mean() / ((T - 1) * H)),
            "hidden_spike_fraction": float(h_spikes.mean() / (T * H)),
            "weight_reads_mean": float(reads.mean()),
        }
        atomic.write_text(path, json.dumps(summary, indent=1))
        self._done("eval", path, key, t0)
        return summary

    def sim(self, model_path):
        """The first ``images`` test images in Verilator; a
        :class:`~spikegate.sim.ssgd_run.SSGDHardwareResult`, saved as ``sim.npz``."""
        from spikegate.sim.ssgd_run import SSGDHardwareResult, simulate_ssgd_hardware
        path = self.out / "sim.npz"
        key = _key(stage="sim-ssgd", model=_hash_file(model_path), code=_code_version(),
                   **self._data_key(), images=self.images, lanes=self.lanes, waves=self.waves)
        if self._cached("sim", path, key):
            try:
                return SSGDHardwareResult.load(path)
            except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
                _log(f"== sim: {path} cannot be read ({e}); simulating again")
                Path(str(path) + ".key").unlink(missing_ok=True)
        t0 = time.perf_counter()
        m = self.model(model_path)
        x, _ = self.sample(m.fmt)
        _log(f"== sim: generate Verilog, build with Verilator, run {len(x)} images "
             f"(lanes {self._lanes()})")
        hw = simulate_ssgd_hardware(m.fmt, m.weights, x, self._lanes(), waves=self.waves or None,
                                    name="ssgd_run_l" + "_".join(map(str, self._lanes())))
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(path) as tmp:
            with open(tmp, "wb") as fh:
                hw.save(fh)
        self._done("sim", path, key, t0)
        return hw

    def compare(self, model_path, hw):
        """``(first mismatch or None, cycles mismatch or None, golden trace, model cycles)`` of
        the hardware's forward against the golden model on the sample."""
        from spikegate.hdl.ssgd_network import expected_cycles
        from spikegate.sim.ssgd_run import expected_run, first_mismatch
        m = self.model(model_path)
        x, _ = self.sample(m.fmt)
        g = expected_run(x, m.weights, m.fmt)
        model_cycles = expected_cycles(x, g.hidden.spike, m.sizes, self._lanes(), m.fmt.n_steps)
        return (first_mismatch(hw, g, x, "forward"), mismatch_cycles(hw.cycles, model_cycles),
                g, model_cycles)

    def train_sim(self, model_path):
        """On-chip training of ``train_images`` images: ``(hardware dict, golden dict,
        mismatch or None)``; the hardware's arrays saved as ``train_sim.npz``."""
        from spikegate.sim.ssgd_train_run import (golden_training, sample_positions,
                                                  simulate_ssgd_training)
        m = self.model(model_path)
        times, labels = self.train_sample(m.fmt)
        sizes = m.sizes
        rng = np.random.default_rng(0)
        samples = [np.stack([sample_positions(rng, s, TRAIN_SAMPLES) for _ in range(len(labels))])
                   for s in ((sizes[0], sizes[1]), (sizes[1], sizes[2]))]
        path = self.out / "train_sim.npz"
        key = _key(stage="train-sim-ssgd", model=_hash_file(model_path), code=_code_version(),
                   **self._data_key(), train_images=self.train_images, lanes=self.lanes,
                   samples=TRAIN_SAMPLES)
        hw = None
        if self._cached("train-sim", path, key):
            try:
                with np.load(path) as z:
                    hw = {k: z[k] for k in z.files}
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
                _log(f"== train-sim: {path} cannot be read ({e}); simulating again")
                Path(str(path) + ".key").unlink(missing_ok=True)
        if hw is None:
            t0 = time.perf_counter()
            _log(f"== train-sim: generate the trainer's Verilog, build with Verilator, train on "
                 f"{len(labels)} images (lanes {self._lanes()})")
            hw = simulate_ssgd_training(m.fmt, m.weights, times, labels, self._lanes(), samples,
                                        name="ssgd_run_trainer_l"
                                        + "_".join(map(str, self._lanes())))
            self.out.mkdir(parents=True, exist_ok=True)
            with atomic.replacing(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **hw)
            self._done("train-sim", path, key, t0)
        g = golden_training(m.fmt, m.weights, times, labels, samples)
        return hw, g, training_mismatch(hw, g)

    def synth(self, model_path):
        """Resources and Fmax of the trainer on each of :data:`SSGD_BOARDS`: ``{board: report
        dict}`` (a :class:`~spikegate.boards.synth.SynthReport`'s with ``"fits": true`` and
        ``board_forward``, or :func:`~spikegate.scripts.flow.not_fitting`'s)."""
        from spikegate.boards.synth import make_ssgd_design
        from spikegate.hdl.ssgd_network import expected_cycles
        from spikegate.sim.ssgd_run import expected_run
        m = self.model(model_path)

        def board_forward(design):
            x, _ = self.sample(m.fmt)
            g = expected_run(x, m.weights, m.fmt)
            cyc = expected_cycles(x, g.hidden.spike, m.sizes, design.lanes, m.fmt.n_steps)
            return {"board_forward": {"lanes": list(design.lanes), "images": len(x),
                                      "cycles_mean": float(cyc.mean()),
                                      "cycles_median": float(np.median(cyc))}}

        return self._synth_boards(
            model_path, SSGD_BOARDS, "ssgd",
            lambda board, **kw: make_ssgd_design(board, m, self.board_lanes, **kw),
            lambda d: f"SSGD trainer {'-'.join(map(str, m.sizes))} (shim top, lanes {d.lanes})",
            key_extra={"images": self.images, **self._data_key()}, extra=board_forward)
