"""Networks and image sequences for testing and measuring the SSGD hardware.

* :func:`digits_network`: a 64-H-10 network trained for one epoch on the digits training set by
  the fixed-point golden training (:func:`~spikegate.golden.ssgd_train_fixed.train_fixed`,
  about 5 s), and its test images as spike rasters (the golden encoding);
* :func:`random_rasters`: random input rasters within the input contract (each input at most
  once per step): sparse ones, dense ones (more beats than the input queue holds), inputs
  spiking once per image (as the encoding's), all-silent ones;
* :func:`stress_weights`: weights skewed positive, under which dense inputs drive hidden and
  readout membranes into saturation.
"""

import functools

import numpy as np

from spikegate.golden import ssgd_train_fixed as stf

__all__ = ["digits_network", "digits_rasters", "random_rasters", "stress_weights"]


@functools.lru_cache(maxsize=4)
def digits_network(hidden=64, epochs=1, seed=0):
    """``(tfmt, (W1, W2))``: the default :class:`~spikegate.golden.ssgd_train_fixed.TrainFormat`
    and weights trained from ``init_weights(seed)`` for ``epochs`` epochs on the digits
    training set."""
    from spikegate.golden.data import load_dataset
    d = load_dataset("digits")
    tfmt = stf.TrainFormat()
    w = stf.init_weights((64, hidden, 10), tfmt, seed=seed)
    times = stf.encode(d.x_train, tfmt)
    w, _ = stf.train_fixed(w, times, d.y_train, tfmt, epochs=epochs, seed=seed)
    return tfmt, tuple(np.asarray(a, np.int64) for a in w)


def digits_rasters(tfmt, n, start=0):
    """``(x, labels)``: digits test images ``start .. start+n-1`` as rasters ``(n, T, 64)``
    (bool) and their labels."""
    from spikegate.golden.data import load_dataset
    d = load_dataset("digits")
    times = stf.encode(d.x_test[start:start + n], tfmt)
    x = np.swapaxes(stf.input_raster(times, tfmt), 0, 1)
    return x, d.y_test[start:start + n]


def random_rasters(rng, n, T, n_in, kind):
    """``n`` rasters ``(n, T, n_in)`` of one ``kind``: ``"sparse"`` (each entry spikes with
    probability 0.03), ``"dense"`` (0.3), ``"full"`` (0.7), ``"once"`` (each input once, at a random step, with
    probability 0.7) or ``"silent"``."""
    if kind == "sparse":
        return rng.random((n, T, n_in)) < 0.03
    if kind == "dense":
        return rng.random((n, T, n_in)) < 0.3
    if kind == "full":
        return rng.random((n, T, n_in)) < 0.7
    if kind == "silent":
        return np.zeros((n, T, n_in), bool)
    if kind == "once":
        x = np.zeros((n, T, n_in), bool)
        b, i = np.nonzero(rng.random((n, n_in)) < 0.7)
        x[b, rng.integers(0, T - 1, len(b)), i] = True
        return x
    raise ValueError(f"kind must be sparse, dense, full, once or silent, not {kind!r}")


def stress_weights(rng, sizes):
    """``(W1, W2)`` skewed positive (``W1`` in ``[30, 127]``, a quarter of its columns in
    ``[-128, 127]``; ``W2`` in ``[-128, 127]`` with a third of its columns in ``[60, 127]``
    and one in ``[-128, -60]``) so that full inputs saturate the 16-bit membranes."""
    n_in, H, C = sizes
    w1 = rng.integers(30, 128, (n_in, H))
    w1[:, : max(1, H // 4)] = rng.integers(-128, 128, (n_in, max(1, H // 4)))
    w2 = rng.integers(-128, 128, (H, C))
    w2[:, : max(1, C // 3)] = rng.integers(60, 128, (H, max(1, C // 3)))
    w2[:, -1] = rng.integers(-128, -59, H)
    return w1.astype(np.int64), w2.astype(np.int64)
