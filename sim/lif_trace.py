"""What a LIF layer shows on its trace port (:class:`~spikegate.hdl.signatures.LIFTracePort`)
and its output streams, put back into per-image arrays comparable with the golden model
(:func:`spikegate.sim.ssgd_reference.expected_layer`).

Plain Python: the Amaranth-simulator benches and the cocotb bench feed it the records they
sample.
"""

import numpy as np

__all__ = ["LIFTraceRecorder", "EventRecorder"]


class LIFTraceRecorder:
    """Collects one layer's trace records, image by image.

    Records must come in the hardware's order: step ``1 .. T-1``, neuron ``0 .. n-1`` within
    a step; a record out of order raises ``AssertionError`` naming it.

    Members
    -------
    v, spike, active, g : lists of int64 arrays ``(T, n)``
        Per complete image; row 0 (the initial state) is zero.
    """

    def __init__(self, n, timesteps, name="layer"):
        self.n, self.T, self.name = int(n), int(timesteps), name
        self.v, self.spike, self.active, self.g = [], [], [], []
        self._reset()

    def _reset(self):
        self._cur = np.zeros((4, self.T, self.n), np.int64)
        self._next = (1, 0)

    def record(self, step, index, v, spike, active, g):
        """Neuron ``index`` at ``step``."""
        assert (step, index) == self._next, (
            f"{self.name}: image {len(self.v)}: neuron {index} of step {step} where neuron "
            f"{self._next[1]} of step {self._next[0]} was due")
        self._cur[:, step, index] = (v, spike, active, g)
        if index + 1 < self.n:
            self._next = (step, index + 1)
        elif step + 1 < self.T:
            self._next = (step + 1, 0)
        else:
            for k, a in zip(("v", "spike", "active", "g"), self._cur):
                getattr(self, k).append(a)
            self._reset()

    def drop_partial(self):
        """Forget the records of an unfinished image (the hardware was reset)."""
        self._reset()

    def arrays(self, images=None):
        """``{"v", "spike", "active", "g"}`` as ``(B, T, n)`` arrays of the first ``images``
        (default: every complete) images."""
        B = len(self.v) if images is None else images
        return {k: np.array(getattr(self, k)[:B], np.int64).reshape(B, self.T, self.n)
                for k in ("v", "spike", "active", "g")}


class EventRecorder:
    """Collects a stream of :class:`~spikegate.hdl.lif_layouts.LIFEventLayout` beats as
    spike rasters: ``steps`` steps per image (markers close them).

    Members
    -------
    rasters : list of bool arrays ``(steps, n)``
        Per complete image.
    """

    def __init__(self, n, steps, name="o_stream"):
        self.n, self.steps, self.name = int(n), int(steps), name
        self.rasters = []
        self.drop_partial()

    def beat(self, index, last):
        if last:
            self._step += 1
            if self._step == self.steps:
                self.rasters.append(self._cur)
                self.drop_partial()
            return
        assert not self._cur[self._step, index], (
            f"{self.name}: image {len(self.rasters)}: neuron {index} twice in step {self._step}")
        self._cur[self._step, index] = True

    def drop_partial(self):
        self._cur = np.zeros((self.steps, self.n), bool)
        self._step = 0
