"""Run images through the TTFS classifier's generated Verilog (Verilator or Icarus) and
compare the results with the discrete golden model.

:func:`simulate_hardware` is what ``spikegate sim``, ``spikegate compare`` and the benchmarks
call; :func:`first_mismatch` names the first disagreement (image, layer, neuron, quantity,
hardware and golden values).
"""

import tempfile
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from spikegate.golden.model_file import read_npz
from spikegate.golden.ttfs_discrete import NO_SPIKE, DiscreteNetwork
from spikegate.hdl.classifier import TTFSClassifier
from spikegate.hdl.timing import Timing
from .runner import run_cocotb

__all__ = ["HardwareResult", "HardwareResultError", "simulate_hardware", "first_mismatch",
           "small_digits_network"]


class HardwareResultError(ValueError):
    """A hardware results file that cannot be read: not an ``.npz`` archive (truncated or
    corrupt), or not the arrays of a :class:`HardwareResult`. The message names the file."""


def _per_layer(first):
    """A field holding one array per layer, saved as ``NAME{first}``, ``NAME{first + 1}``, ...
    (``first``: the number of its first layer)."""
    return field(default=None, metadata={"first_layer": first})


@dataclass
class HardwareResult:
    """Per-image results read back from the simulated hardware (arrays over images).

    This dataclass is the one list of the results: :meth:`from_images` builds it from the
    classifier's result payloads (:class:`~spikegate.hdl.layouts.ClassifierResultLayout`),
    :meth:`save` and :meth:`load` write and read it (``spikegate run``'s ``sim.npz``).

    ``decision`` is -1 and ``decision_step`` -1 where the hardware reported no decision, as
    in :class:`~spikegate.golden.ttfs_discrete.DiscreteResult`; ``spike_steps`` (per layer
    after the input, NO_SPIKE for none) is present when traced.

    File format: an ``.npz`` archive with one array per field named as the field, except the
    per-layer fields, one array per layer: ``spike_steps1`` .. ``spike_steps{L}`` (numbered
    by neuron layer, the input being 0) and ``weights0`` .. ``weights{L-1}`` (numbered by
    weight layer). Fields that are ``None`` are not written. Arrays keep their dtypes.
    """
    decision: np.ndarray
    decision_step: np.ndarray
    error: np.ndarray
    cycles: np.ndarray
    scan_cycles: np.ndarray
    #: ``(n_images, n_layers)``: spikes per neuron layer, input first
    spikes: np.ndarray
    #: ``(n_images, n_layers - 1)``: weights read per weight layer
    lookups: np.ndarray
    #: per layer after the input, ``(n_images, n_neurons)``
    spike_steps: list = _per_layer(1)
    label_error: np.ndarray = None
    learn_cycles: np.ndarray = None
    #: with ``read_weights``: per weight layer, ``(n_images, n_in, n_out)`` int8, the weights
    #: after each image
    weights: list = _per_layer(0)

    @classmethod
    def from_images(cls, results, timesteps, *, traces=None, weights=None):
        """Stack the results of single images.

        Parameters
        ----------
        results : list of dict
            One per image, keyed by the members of
            :class:`~spikegate.hdl.layouts.ClassifierResultLayout`
            (:func:`spikegate.sim.ttfs_tb.unpack_result`).
        timesteps : int
            The trace port's "no spike" value (``DiscreteConfig.timesteps``).
        traces : list, optional
            Per image, per layer after the input, every neuron's spike step as read from the
            trace port.
        weights : list, optional
            Per image, per weight layer, the ``(n_in, n_out)`` weights after the image.
        """
        if not results:
            raise ValueError("no images: results is empty")
        col = {k: np.array([r[k] for r in results], np.int64) for k in results[0]}
        decided = col.pop("decided").astype(bool)
        col["decision"] = np.where(decided, col.pop("klass"), -1)
        col["decision_step"] = np.where(decided, col["decision_step"], -1)
        if traces:
            col["spike_steps"] = [np.where(t == timesteps, NO_SPIKE, t)
                                  for t in (np.array(layer, np.int64) for layer in zip(*traces))]
        if weights:
            col["weights"] = [np.array(layer, np.int8) for layer in zip(*weights)]
        return cls(**col)

    def save(self, path):
        """Write to ``path`` (an ``.npz`` archive, format above) atomically: a hidden
        temporary file in the same directory, flushed, then renamed over ``path``."""
        arrays = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            first = f.metadata.get("first_layer")
            if first is None:
                arrays[f.name] = np.asarray(value)
            else:
                for l, a in enumerate(value, first):
                    arrays[f"{f.name}{l}"] = np.asarray(a)
        with atomic.replacing(path) as tmp:
            with open(tmp, "wb") as file:
                np.savez(file, **arrays)

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save`.

        Raises ``FileNotFoundError`` for a missing file and :class:`HardwareResultError` for
        one that is truncated, corrupt, lacks a field or holds an array that is no field's.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"hardware results {str(path)!r} do not exist")

        def fail(msg):
            raise HardwareResultError(f"hardware results {str(path)!r}: {msg}")

        arrays = read_npz(path, fail)
        values, missing = {}, []
        for f in fields(cls):
            first = f.metadata.get("first_layer")
            if first is None:
                if f.name in arrays:
                    values[f.name] = arrays.pop(f.name)
                elif f.default is MISSING:      # a field without default: required
                    missing.append(f.name)
            else:
                layers = []
                while f"{f.name}{first + len(layers)}" in arrays:
                    layers.append(arrays.pop(f"{f.name}{first + len(layers)}"))
                values[f.name] = layers or None
        if missing:
            fail(f"lacks {', '.join(missing)} (written by another version of spikegate?)")
        if arrays:
            fail(f"unexpected arrays {sorted(arrays)}: not the results of a HardwareResult")
        n = len(values["decision"]) if values["decision"].ndim else None
        for name, v in values.items():
            for a in (v if isinstance(v, list) else [] if v is None else [v]):
                if a.ndim == 0 or len(a) != n or not np.issubdtype(a.dtype, np.integer):
                    fail(f"{name} has shape {a.shape} and dtype {a.dtype}, expected integers "
                         f"over {n} images (as decision)")
        return cls(**values)


def simulate_hardware(net, steps, lanes, *, trace=True, sim=None, waves=None, out_dir=None,
                      stall_in=0.0, stall_out=0.0, seed=None, timeout_s=None,
                      labels=None, lr_shift=0, read_weights=False, timing=None,
                      binary_input=False):
    """Classify ``steps`` (``(n, n_in)`` input steps) on the Verilog of
    ``TTFSClassifier.from_network(net, lanes, timing=timing, binary_input=binary_input)``
    (``timing``: a :class:`~spikegate.hdl.timing.Timing`, default none; a board's is
    :func:`spikegate.boards.timing.board_timing`; ``binary_input``: the multiplier-free first
    layer, for inputs at step 0 only); returns a :class:`HardwareResult`.

    With ``labels`` (one per image) the classifier is built with on-chip learning and learns
    from every image (step ``2**lr_shift``); ``read_weights`` reads every weight back after
    each image."""
    if not isinstance(net, DiscreteNetwork):
        raise TypeError(f"net must be a DiscreteNetwork, not {net!r}")
    steps = np.asarray(steps, dtype=np.int64)
    if steps.ndim != 2 or steps.shape[1] != net.sizes[0] or len(steps) == 0:
        raise ValueError(f"steps must have shape (n >= 1, {net.sizes[0]}), not {steps.shape}")
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        # The cocotb module saves a HardwareResult (HardwareResult.from_images, .save).
        out = Path(tmp) / "results.npz"
        lanes_name = "_".join(map(str, (lanes,) if isinstance(lanes, int) else lanes)) + \
            ("_learn" if labels is not None else "") + \
            ("" if timing is None else "_" + timing.key()) + ("_bin" if binary_input else "")
        run_cocotb(TTFSClassifier, module="spikegate.sim.ttfs_cocotb", sim=sim, waves=waves,
                   name=f"ttfs_classifier_l{lanes_name}",
                   params={"sizes": net.sizes, "thetas": net.thetas, "lanes": lanes,
                           "config": net.config, "weights": net.weights,
                           "learning": labels is not None,
                           **({} if timing is None else {"timing": timing}),
                           **({"binary_input": True} if binary_input else {})},
                   test_args={"config": net.config.to_dict(), "sizes": list(net.sizes),
                              "steps": steps, "trace": bool(trace), "out": str(out),
                              "stall_in": stall_in, "stall_out": stall_out, "seed": seed,
                              "labels": None if labels is None else np.asarray(labels, np.int64),
                              "lr_shift": int(lr_shift), "read_weights": bool(read_weights),
                              "rb_latency": (Timing() if timing is None else timing).rb_latency},
                   timeout_s=timeout_s)
        return HardwareResult.load(out)


def first_mismatch(hw, golden, steps=None):
    """The first disagreement between a :class:`HardwareResult` and a golden
    :class:`~spikegate.golden.ttfs_discrete.DiscreteResult`, as a dict (image, quantity,
    layer, neuron, hardware, golden), or ``None`` when they agree on every image."""
    n = len(hw.decision)
    for b in range(n):
        if hw.error[b]:
            return {"image": b, "quantity": "error flag", "hardware": 1, "golden": 0}
        for q in ("decision", "decision_step"):
            h, g = int(getattr(hw, q)[b]), int(getattr(golden, q)[b])
            if h != g:
                return {"image": b, "quantity": q, "hardware": h, "golden": g}
        for q in ("spikes", "lookups"):
            h, g = getattr(hw, q)[b], getattr(golden, q)[b]
            bad = np.flatnonzero(h != g)
            if len(bad):
                return {"image": b, "quantity": q, "layer": int(bad[0]),
                        "hardware": int(h[bad[0]]), "golden": int(g[bad[0]])}
        if hw.spike_steps is not None:
            for l, tr in enumerate(hw.spike_steps):
                bad = np.flatnonzero(tr[b] != golden.spike_steps[l + 1][b])
                if len(bad):
                    return {"image": b, "quantity": "spike step", "layer": l + 1,
                            "neuron": int(bad[0]), "hardware": int(tr[b][bad[0]]),
                            "golden": int(golden.spike_steps[l + 1][b][bad[0]])}
    return None


def small_digits_network(epochs=8, seed=0):
    """A 64-64-10 digits network trained by the golden model (seeded, a few seconds), for
    test benches: ``(DiscreteNetwork, test input steps, test labels)``."""
    from spikegate.golden import ttfs
    from spikegate.golden.data import load_dataset
    from spikegate.golden.encoding import EncodingConfig, encode
    from spikegate.golden.ttfs_discrete import times_to_steps
    d = load_dataset("digits")
    enc = EncodingConfig(mode="graded")
    net = ttfs.TTFSNetwork.create((64, 64, 10), seed=seed)
    ttfs.train(net, ttfs.times_to_z(encode(d.x_train, enc)), d.y_train,
               ttfs.TrainConfig(epochs=epochs, seed=seed))
    dnet = DiscreteNetwork.from_float(net.weights)
    return dnet, times_to_steps(encode(d.x_test, enc), dnet.config), d.y_test
