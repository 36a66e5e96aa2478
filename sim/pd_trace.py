"""What a PD layer's trace port (:class:`~spikegate.hdl.signatures.PDTracePort`) shows, put
back into per-frame arrays comparable with :class:`~spikegate.golden.pdnn_fixed.PDTrace`.

Plain Python: the Amaranth-simulator benches (:mod:`spikegate.sim.pd_amaranth_tb`) and the cocotb
bench (:mod:`spikegate.sim.pd_tb`) feed it the records they sample.
"""

import numpy as np

__all__ = ["LayerTraceRecorder"]


class LayerTraceRecorder:
    """Collects one layer's trace records, frame by frame.

    A frame's spike events end with the event marked ``end``; its decoded neurons are the next
    ``n_dst`` records. Events must come in ascending input order and neurons in order (the
    hardware's order); a record out of order raises ``AssertionError``.

    Members
    -------
    s : list of int64 arrays ``(n_src,)``
        Per complete frame, every input's spike count (0 where no event came).
    u, y, act : lists of int64 arrays ``(n_dst,)``
        Per complete frame, per neuron.
    """

    def __init__(self, n_src, n_dst, name="layer"):
        self.n_src, self.n_dst, self.name = n_src, n_dst, name
        self.s, self.u, self.y, self.act = [], [], [], []
        self._s = np.zeros(n_src, np.int64)
        self._last_index = -1
        self._d = []

    def event(self, index, count, end):
        """Input ``index`` sent ``count`` spikes; ``end``: the frame's last event."""
        assert index > self._last_index or (count == 0 and end), (
            f"{self.name}: event of input {index} after input {self._last_index} (frame "
            f"{len(self.s)})")
        assert count != 0 or end, f"{self.name}: event of input {index} with count 0"
        self._s[index] = count
        self._last_index = index
        if end:
            assert index == self.n_src - 1, f"{self.name}: frame ended at input {index}"
            self.s.append(self._s)
            self._s = np.zeros(self.n_src, np.int64)
            self._last_index = -1

    def decoded(self, index, u, y, act):
        """Neuron ``index`` was decoded."""
        assert index == len(self._d), (f"{self.name}: neuron {index} decoded as the "
                                       f"{len(self._d)}th of frame {len(self.u)}")
        self._d.append((u, y, act))
        if len(self._d) == self.n_dst:
            d = np.array(self._d, np.int64)
            self.u.append(d[:, 0])
            self.y.append(d[:, 1])
            self.act.append(d[:, 2])
            self._d = []

    def drop_partial(self):
        """Forget the records of an unfinished frame (the hardware was reset)."""
        self._s = np.zeros(self.n_src, np.int64)
        self._last_index = -1
        self._d = []

    def arrays(self, frames=None):
        """``{"s", "u", "y", "act"}`` as ``(T, n)`` arrays of the first ``frames`` (default:
        every complete) frames."""
        T = min(len(self.s), len(self.u)) if frames is None else frames
        out = {}
        for k, n in (("s", self.n_src), ("u", self.n_dst), ("y", self.n_dst), ("act", self.n_dst)):
            rows = getattr(self, k)[:T]
            out[k] = np.array(rows, np.int64).reshape(len(rows), n)
        return out
