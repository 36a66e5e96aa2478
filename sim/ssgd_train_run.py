"""On-chip SSGD training in the generated Verilog (Verilator or Icarus) and its golden
reference.

:func:`simulate_ssgd_training` builds :class:`~spikegate.hdl.ssgd_trainer.SSGDTrainer`, runs
:mod:`spikegate.sim.ssgd_train_cocotb` (labels and images in, results out; after every image a
sample of both weight matrices read back through the ports, at the end all of them) and returns
the arrays; :func:`golden_training` runs :func:`~spikegate.golden.ssgd_train_fixed.train_step`
over the same images and returns the same quantities.

A reset in the middle of an image (``actions``) aborts it: the weights stay in their block RAMs
(a reset is not a reload: ``W1`` and ``W2`` hold what was written before it, an update cut short
leaves its first weights new and the rest old, :func:`interrupted_cut`), every register starts
again, the image counter (the dither's, ``image_index`` of
:func:`~spikegate.golden.ssgd_train_fixed.train_step`) at 0. The golden training goes on from
the weights read back after the reset (``golden_training(resets=...)``).
"""

import tempfile
from pathlib import Path

import numpy as np

from spikegate.golden import ssgd_train_fixed as stf
from spikegate.hdl import ssgd_backward
from spikegate.hdl.ssgd_trainer import SSGDTrainer
from .runner import run_cocotb

__all__ = ["simulate_ssgd_training", "golden_training", "sample_positions", "interrupted_cut",
           "UPDATE_ORDER"]

#: The order in which the update engines write each matrix: ``W1`` column by column (only
#: the columns of neurons with events), ``W2`` row by row; NumPy ``order`` of ``ravel``.
UPDATE_ORDER = ("F", "C")


def sample_positions(rng, shape, n):
    """``n`` random ``(src, dst)`` weight positions of a ``shape`` matrix, ``(n, 2)``."""
    return np.column_stack([rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)])


def interrupted_cut(old, new, got, order):
    """Where an update from ``old`` to ``new`` stopped if it left ``got``: the ``c`` with
    ``got`` equal to the first ``c`` weights of ``new`` and the rest of ``old``, in the
    engine's write ``order`` (``"C"`` by rows, ``"F"`` by columns), the smallest such; None
    when ``got`` is no such mixture."""
    o, n, g = (np.asarray(a).ravel(order=order) for a in (old, new, got))
    off = np.flatnonzero(g != o)
    c = int(off[-1]) + 1 if off.size else 0
    return c if np.array_equal(g[:c], n[:c]) else None


def golden_training(tfmt, weights, times, labels, samples, resets=None):
    """Per image: class, active events, the sampled weights after it (``samples[l]`` per layer
    ``(B, n, 2)``), the gradient engine's cycle model; and the final weights. ``resets``
    (``{k: (W1, W2)}``): before image ``k`` the weights are these (read back after a reset)
    and the image counter starts again at 0; ``before`` holds each such image's weights as the
    golden training reached them, ``aborted`` what they would have been after it."""
    params = tuple(np.asarray(a, np.int64) for a in weights)
    resets = resets or {}
    out = {"klass": [], "active": [], "w_sample0": [], "w_sample1": [], "grad_cycles": []}
    before, aborted = {}, {}
    index = 0
    for b in range(len(times)):
        if b in resets:
            before[b] = params
            aborted[b] = stf.train_step(params, times[b], labels[b], tfmt, image_index=index)[0]
            params, index = tuple(np.asarray(a, np.int64) for a in resets[b]), 0
        params, fwd, _ = stf.train_step(params, times[b], labels[b], tfmt, image_index=index)
        index += 1
        out["klass"].append(int(np.argmax(fwd.z[0])))
        out["active"].append(len(fwd.events))
        out["grad_cycles"].append(ssgd_backward.expected_cycles(fwd.events.j, params[0].shape[0]))
        for l in range(2):
            pos = samples[l][b]
            out[f"w_sample{l}"].append(params[l][pos[:, 0], pos[:, 1]])
    res = {k: np.array(v) for k, v in out.items()}
    res["w_final0"], res["w_final1"] = params
    res["before"], res["aborted"] = before, aborted
    return res


def simulate_ssgd_training(tfmt, weights, times, labels, lanes, samples, *, sim=None,
                           stall_in=0.0, stall_out=0.0, seed=None, actions=None,
                           timeout_s=None, name=None, factory=SSGDTrainer):
    """Train on ``times`` (spike steps ``(B, n_in)``) with ``labels`` in the Verilog of
    ``SSGDTrainer``; ``samples`` as :func:`golden_training`. ``actions`` (``{k: {"reset":
    "forward" | "backward", "delay": cycles}}``, :mod:`spikegate.sim.ssgd_train_cocotb`): a
    reset in the middle of image ``k`` before it is trained. Returns a dict of arrays: klass,
    active, forward_cycles, backward_cycles, w_sample0/1 ``(B, n)``, w_final0/1, and
    w_reset0/1 (every weight after each reset, in the order of the images). ``factory``: the
    trainer's class (a mutant, in tests)."""
    w1, w2 = (np.asarray(w, np.int64) for w in weights)
    sizes = (w1.shape[0], w1.shape[1], w2.shape[1])
    x = np.swapaxes(stf.input_raster(np.asarray(times), tfmt), 0, 1).astype(np.uint8)
    lanes_t = (lanes,) * 2 if isinstance(lanes, int) else tuple(lanes)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.npz"
        run_cocotb(factory, module="spikegate.sim.ssgd_train_cocotb", sim=sim,
                   name=name or "ssgd_trainer_l" + "_".join(map(str, lanes_t)),
                   params={"sizes": sizes, "lanes": lanes_t, "tfmt": tfmt,
                           "weights": (w1, w2)},
                   test_args={"sizes": list(sizes), "timesteps": tfmt.n_steps, "images": x,
                              "actions": {str(int(k)): dict(v)
                                          for k, v in (actions or {}).items()},
                              "labels": np.asarray(labels, np.int64),
                              "sample0": np.asarray(samples[0]),
                              "sample1": np.asarray(samples[1]),
                              "stall_in": stall_in, "stall_out": stall_out, "seed": seed,
                              "out": str(out)},
                   timeout_s=timeout_s)
        with np.load(out) as z:
            return {k: z[k] for k in z.files}
