"""On-chip SSGD training in the generated Verilog (Verilator or Icarus) and its golden
reference.

:func:`simulate_ssgd_training` builds :class:`~spikegate.hdl.ssgd_trainer.SSGDTrainer`, runs
:mod:`spikegate.sim.ssgd_train_cocotb` (labels and images in, results out; after every image a
sample of both weight matrices read back through the ports, at the end all of them) and returns
the arrays; :func:`golden_training` runs :func:`~spikegate.golden.ssgd_train_fixed.train_step`
over the same images and returns the same quantities.
"""

import tempfile
from pathlib import Path

import numpy as np

from spikegate.golden import ssgd_train_fixed as stf
from spikegate.hdl import ssgd_backward
from spikegate.hdl.ssgd_trainer import SSGDTrainer
from .runner import run_cocotb

__all__ = ["simulate_ssgd_training", "golden_training", "sample_positions"]


def sample_positions(rng, shape, n):
    """``n`` random ``(src, dst)`` weight positions of a ``shape`` matrix, ``(n, 2)``."""
    return np.column_stack([rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)])


def golden_training(tfmt, weights, times, labels, samples):
    """Per image: class, active events, the sampled weights after it (``samples[l]`` per layer
    ``(B, n, 2)``), the gradient engine's cycle model; and the final weights."""
    params = tuple(np.asarray(a, np.int64) for a in weights)
    out = {"klass": [], "active": [], "w_sample0": [], "w_sample1": [], "grad_cycles": []}
    for b in range(len(times)):
        params, fwd, _ = stf.train_step(params, times[b], labels[b], tfmt, image_index=b)
        out["klass"].append(int(np.argmax(fwd.z[0])))
        out["active"].append(len(fwd.events))
        out["grad_cycles"].append(ssgd_backward.expected_cycles(fwd.events.j, params[0].shape[0]))
        for l in range(2):
            pos = samples[l][b]
            out[f"w_sample{l}"].append(params[l][pos[:, 0], pos[:, 1]])
    res = {k: np.array(v) for k, v in out.items()}
    res["w_final0"], res["w_final1"] = params
    return res


def simulate_ssgd_training(tfmt, weights, times, labels, lanes, samples, *, sim=None,
                           stall_in=0.0, stall_out=0.0, seed=None, timeout_s=None, name=None):
    """Train on ``times`` (spike steps ``(B, n_in)``) with ``labels`` in the Verilog of
    ``SSGDTrainer``; ``samples`` as :func:`golden_training`. Returns a dict of arrays: klass,
    active, forward_cycles, backward_cycles, w_sample0/1 ``(B, n)``, w_final0/1."""
    w1, w2 = (np.asarray(w, np.int64) for w in weights)
    sizes = (w1.shape[0], w1.shape[1], w2.shape[1])
    x = np.swapaxes(stf.input_raster(np.asarray(times), tfmt), 0, 1).astype(np.uint8)
    lanes_t = (lanes,) * 2 if isinstance(lanes, int) else tuple(lanes)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.npz"
        run_cocotb(SSGDTrainer, module="spikegate.sim.ssgd_train_cocotb", sim=sim,
                   name=name or "ssgd_trainer_l" + "_".join(map(str, lanes_t)),
                   params={"sizes": sizes, "lanes": lanes_t, "tfmt": tfmt,
                           "weights": (w1, w2)},
                   test_args={"sizes": list(sizes), "images": x,
                              "labels": np.asarray(labels, np.int64),
                              "sample0": np.asarray(samples[0]),
                              "sample1": np.asarray(samples[1]),
                              "stall_in": stall_in, "stall_out": stall_out, "seed": seed,
                              "out": str(out)},
                   timeout_s=timeout_s)
        with np.load(out) as z:
            return {k: z[k] for k in z.files}
