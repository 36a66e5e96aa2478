"""Networks and frame sequences for testing and measuring the PD hardware.

* :func:`stress_case`: a small random network with narrow widths, where every register
  saturates somewhere (``a``, ``s``, ``phi``, ``u``, ``y``, the activations), fed random
  full-range frames, all-zero frames, frames at the input's extremes and slowly changing ones;
* :func:`digits_network`: a 64-64-10 PD network trained on digits by the float model
  (:mod:`spikegate.golden.pdnn`) and converted (:func:`~spikegate.golden.pdnn_fixed.from_pdnetwork`);
* :func:`digits_frames`: digits test images as frames, in a temporally redundant order
  (:func:`~spikegate.golden.temporal.temporal_order`) or shuffled, plus random and all-zero
  frames.
"""

import functools

import numpy as np

from spikegate.golden.fixed import signed_range
from spikegate.golden.pdnn_fixed import PDFixedNetwork
from spikegate.golden.sigma_delta_fixed import SDFixedFormat

__all__ = ["STRESS_SIZES", "stress_formats", "stress_case", "digits_network", "digits_frames",
           "slowly_changing"]

#: The stress network's layers.
STRESS_SIZES = (12, 10, 6)


def stress_formats():
    """Narrow formats: 4-bit spike counts, 10- and 11-bit accumulators and decoder states."""
    f0 = SDFixedFormat.from_float(0.75, 0.08, ka_frac=6, gain_frac=4, kb_frac=6, x_width=10,
                                  x_frac=4, phi_frac=4, a_width=9, spike_width=4, phi_width=7,
                                  w_frac=3, acc_width=11, y_width=11, y_frac=5)
    f1 = SDFixedFormat.from_float(0.5, 0.25, ka_frac=5, gain_frac=5, kb_frac=5, x_width=9,
                                  x_frac=3, phi_frac=3, a_width=8, spike_width=4, phi_width=6,
                                  w_frac=2, acc_width=10, y_width=10, y_frac=4)
    return [f0, f1]


def slowly_changing(rng, T, n, lo, hi, step):
    """A random walk per input, clipped to ``[lo, hi]``: temporally redundant frames."""
    start = rng.integers(lo, hi + 1, n)
    return np.clip(start + np.cumsum(rng.integers(-step, step + 1, (T, n)), axis=0), lo, hi)


def stress_case(seed, T=240):
    """``(net, frames)``: the stress network with random weights and biases, and ``T`` frames:
    random full-range, all zero, the input's extremes, and slowly changing stretches."""
    rng = np.random.default_rng(seed)
    fmts = stress_formats()
    sizes = STRESS_SIZES
    ws = [rng.integers(-128, 128, (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.integers(-(1 << f.y_width - 3), 1 << f.y_width - 3, b)
          for f, b in zip(fmts, sizes[1:])]
    net = PDFixedNetwork(ws, bs, fmts)
    lo, hi = signed_range(fmts[0].x_width)
    n = sizes[0]
    parts = [
        rng.integers(lo, hi + 1, (T // 4, n)),                                 # random
        np.zeros((4, n), np.int64),                                            # all zero
        rng.choice([lo, hi], (T // 8, n)),                                     # saturating
        slowly_changing(rng, T // 4, n, 0, 1 << fmts[0].x_frac + 2, 3),        # temporal
        np.full((3, n), hi), np.full((3, n), lo), np.zeros((2, n), np.int64),
    ]
    rest = T - sum(len(p) for p in parts)
    parts.append(slowly_changing(rng, rest, n, lo // 4, hi // 4, 8))
    frames = np.concatenate(parts).astype(np.int64)
    return net, frames


@functools.lru_cache(maxsize=4)
def _trained(sizes, epochs, seed):
    from spikegate.golden.data import load_dataset
    from spikegate.golden.pdnn import PDNetwork, train_online
    ds = load_dataset("digits")
    net = PDNetwork(sizes, seed=seed)
    train_online(net, ds.x_train, ds.y_train, ds.x_test[:10], ds.y_test[:10], epochs=epochs,
                 evals_per_epoch=1, train_eval_size=10)
    return net


def digits_network(hidden=64, epochs=2, seed=1):
    """``(fixed network, float network)``: a 64-``hidden``-10 PD network trained online on the
    digits training set (``epochs`` passes, the paper's settings; a few seconds), converted."""
    from spikegate.golden.pdnn_fixed import from_pdnetwork
    net = _trained((64, int(hidden), 10), float(epochs), int(seed))
    return from_pdnetwork(net), net


def digits_frames(fixed, kind, T, seed=0, smoothing_steps=1000):
    """``(frames, labels)``: ``T`` digits test images in layer 0's format: ``"temporal"`` (the
    greedy nearest-neighbour order of :mod:`spikegate.golden.temporal`, from image 0),
    ``"shuffled"`` (a random order), ``"random"`` (uniform random pixels, labels -1) or
    ``"zeros"`` (labels -1)."""
    from spikegate.golden.data import load_dataset
    from spikegate.golden.temporal import temporal_order
    ds = load_dataset("digits")
    x, y = ds.x_test, ds.y_test
    rng = np.random.default_rng(seed)
    if kind == "temporal":
        order = temporal_order(x, smoothing_steps)
    elif kind == "shuffled":
        order = rng.permutation(len(x))
    elif kind == "random":
        return fixed.quantize_input(rng.random((T, x.shape[1]))), np.full(T, -1)
    elif kind == "zeros":
        return np.zeros((T, x.shape[1]), np.int64), np.full(T, -1)
    else:
        raise ValueError(f"kind must be temporal, shuffled, random or zeros, not {kind!r}")
    order = np.resize(order, T)
    return fixed.quantize_input(x[order]), y[order]
