"""Benchmark: cycles of the SSGD hardware per digits image, forward and sparse backward, from
the hardware's cycle models (:func:`spikegate.hdl.ssgd_network.expected_cycles`,
:func:`spikegate.hdl.ssgd_backward.expected_cycles`; the tests check both equal the hardware's
counters image by image), against the events they process.

Trains the digits 64-H-10 network with the golden fixed-point training (``--epochs``), runs the
golden forward on the digits test set and prints, per image (mean, median, max): input spikes,
hidden spikes, active events, forward cycles, backward cycles (the gradient engine's walk), the
dense backward on the same datapath (every ``(t >= 1, j)`` an event: ``(T-1) H`` events), their
ratio, and a least-squares fit of backward cycles against active events (the issue's target: the
sparse backward at least 10x fewer cycles than the dense one).

Usage::

    OMP_NUM_THREADS=1 python -m spikegate.scripts.bench_ssgd_hw --epochs 5 [--json out.json]
"""

import argparse
import json
import sys

import numpy as np

from spikegate.golden import atomic
from spikegate.golden import ssgd_train_fixed as stf
from spikegate.hdl import ssgd_backward, ssgd_network
from spikegate.scripts.args import positive_int

__all__ = ["main", "measure"]


def measure(epochs=5, hidden=64, lanes=(8, 10), images=None):
    """The per-image numbers (a dict of arrays) and the trained network's test accuracy."""
    from spikegate.golden.data import load_dataset
    from spikegate.sim.ssgd_cases import digits_network
    tfmt, w = digits_network(hidden, epochs)
    d = load_dataset("digits")
    n = len(d.x_test) if images is None else images
    times = stf.encode(d.x_test[:n], tfmt)
    fwd = stf.forward_fixed(w, times, tfmt)
    T, H, n_in = tfmt.n_steps, hidden, 64
    x = np.swapaxes(fwd.x, 0, 1)
    s = np.swapaxes(fwd.s, 0, 1)
    fcyc = ssgd_network.expected_cycles(x, s, (n_in, H, 10), lanes, T)
    ev = fwd.events
    dense = ssgd_backward.expected_cycles(np.repeat(np.arange(H), T - 1), n_in)
    bcyc = np.array([ssgd_backward.expected_cycles(ev.j[ev.b == b], n_in) for b in range(n)])
    out = {"in_spikes": x[:, :-1].sum(axis=(1, 2)), "hidden_spikes": s.sum(axis=(1, 2)),
           "events": np.bincount(ev.b, minlength=n), "forward_cycles": fcyc,
           "backward_cycles": bcyc, "dense_backward_cycles": np.full(n, dense)}
    acc = float(np.mean(np.argmax(fwd.z, axis=1) == d.y_test[:n]))
    return out, acc, tfmt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--hidden", type=positive_int, default=64)
    p.add_argument("--json", default=None, help="write the numbers here")
    a = p.parse_args(argv)
    m, acc, tfmt = measure(a.epochs, a.hidden)
    H, T = a.hidden, tfmt.n_steps
    print(f"digits 64-{H}-10, T = {T}, {a.epochs} epochs of golden fixed-point training; "
          f"test accuracy {100 * acc:.2f} % ({len(m['events'])} images); lanes (8, 10)")
    print("| per image | mean | median | max |")
    print("|---|---|---|---|")
    for k in ("in_spikes", "hidden_spikes", "events", "forward_cycles", "backward_cycles",
              "dense_backward_cycles"):
        v = m[k]
        print(f"| {k.replace('_', ' ')} | {v.mean():.1f} | {np.median(v):.0f} | {v.max()} |")
    ratio = m["dense_backward_cycles"] / m["backward_cycles"]
    print(f"| dense / sparse backward cycles | {ratio.mean():.1f} | {np.median(ratio):.1f} | "
          f"min {ratio.min():.1f} |")
    slope, icpt = np.polyfit(m["events"], m["backward_cycles"], 1)
    resid = m["backward_cycles"] - (slope * m["events"] + icpt)
    print(f"fit: backward cycles = {slope:.2f} x events + {icpt:.1f} (max |residual| "
          f"{np.abs(resid).max():.1f}); active fraction {m['events'].mean() / ((T - 1) * H):.3%}"
          f" of (T-1) H")
    ok = np.median(ratio) >= 10
    print(f"target: dense >= 10x sparse backward cycles: {'met' if ok else 'NOT met'} "
          f"(median {np.median(ratio):.1f}x)")
    if a.json:
        atomic.write_text(a.json, json.dumps({k: v.tolist() for k, v in m.items()} |
                                             {"accuracy": acc, "fit": [slope, icpt]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
