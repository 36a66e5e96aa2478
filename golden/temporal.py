"""Temporal reordering of a data set: neighbouring samples are similar (Temporal MNIST).

The greedy nearest-neighbour walk of petered/pdnn ``pdnn/helpers/temporal_mnist.py``,
``temporalize``: start at sample 0; keep a buffer of the next ``smoothing_steps`` unvisited samples
(in data-set order); step to the buffer's sample nearest (L1, or L2) to the current one, and refill
its slot with the next unvisited sample. Every sample is visited exactly once. pdnn uses
``smoothing_steps=1000`` for both the training and the test set.

Each step is one vectorized distance computation against the buffer (``O(smoothing_steps * d)``).
"""

import numpy as np

__all__ = ["temporal_order", "smoothness"]


def temporal_order(x, smoothing_steps=1000, distance="L1", progress=None):
    """A permutation of ``range(len(x))`` that makes consecutive samples similar.

    Parameters
    ----------
    x : array, shape (n, ...)
        The samples (flattened internally).
    smoothing_steps : int
        Size of the look-ahead buffer (>= 1).
    distance : {"L1", "L2"}
        Distance between samples.
    progress : callable or None
        Called as ``progress(n_done)`` every 1000 samples (e.g. a progress bar's update).

    Returns
    -------
    order : int64 array, shape (n,)
    """
    if distance not in ("L1", "L2"):
        raise ValueError(f"distance must be 'L1' or 'L2', not {distance!r}")
    if not isinstance(smoothing_steps, (int, np.integer)) or smoothing_steps < 1:
        raise ValueError(f"smoothing_steps must be an integer >= 1, not {smoothing_steps!r}")
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    n = len(flat)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(int(smoothing_steps), max(n - 1, 1))
    index_buffer = np.arange(1, k + 1)
    buffer = flat[1:k + 1].copy()
    valid = index_buffer < n
    buffer[~valid] = np.inf
    order = np.zeros(n, dtype=np.int64)
    current = 0
    for i in range(n):
        order[i] = current
        if i == n - 1:
            break
        diff = buffer - flat[current]
        d = np.abs(diff).sum(axis=1) if distance == "L1" else np.square(diff).sum(axis=1)
        closest = int(np.argmin(d))
        current = int(index_buffer[closest])
        nxt = i + k + 1
        if nxt < n:
            buffer[closest] = flat[nxt]
            index_buffer[closest] = nxt
        else:
            buffer[closest] = np.inf
            index_buffer[closest] = -1
        if progress is not None and (i + 1) % 1000 == 0:
            progress(i + 1)
    return order


def smoothness(x):
    """Mean L1 distance between consecutive samples (lower is more temporally redundant)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(flat) < 2:
        return 0.0
    return float(np.abs(np.diff(flat, axis=0)).sum(axis=1).mean())
