"""The learning sequencer of the TTFS classifier: on-chip sign backprop after an image.

When the step scheduler has drained a learned image (:class:`~spikegate.hdl.signatures.
LearnHandshake`), the sequencer runs the rule of :mod:`spikegate.golden.sign_backprop` on
the layers' learning lanes (:func:`~spikegate.hdl.learning.sign_update_lanes`):

1. output deltas, from each output's spike step (the output layer's trace port);
2. hidden deltas, top down: a ``DELTA`` pass over each hidden neuron's row in the layer
   above, whose vote bits a :class:`~spikegate.hdl.learning.DeltaVoter` turns into the
   neuron's delta (two popcounts and a comparison);
3. updates: a ``LEARN`` read-modify-write pass over the row of every source that fired
   (the input events from the image's log, the hidden neurons from their trace ports), one
   layer after the other, so that the update LFSR is drawn in the golden order.

It owns the input log (the image's events, at most ``sizes[0]``; more is an error and the
image is not learned), the update LFSR and the voters.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.sign_backprop import LFSR_BITS, LFSR_SEED, MAX_LFSR_K
from .layouts import index_bits
from .learning import DeltaVoter
from .signatures import (LearnControl, LearnHandshake, LayerLearning, TracePort,
                         row_commands)
from .ttfs_layer import TTFSOp

__all__ = ["LearningSequencer"]


class LearningSequencer(wiring.Component):
    """Sequences the learning phase of a TTFS classifier with ``sizes`` and ``lanes``.

    Members
    -------
    learn : In(LearnControl)
        The request, sampled when an image starts (``handshake.image_start``). A label
        outside the classes is refused (``handshake.label_error``, nothing learned).
    handshake : In(LearnHandshake)
        From the step scheduler.
    layer{l} : Out(LayerLearning)
        Weight layer ``l``'s learning lanes.
    cmd{l} : Out(stream)
        Row commands (``DELTA``, ``LEARN``) for layer ``l`` (passed on by the scheduler).
    trace{l}, trace_en{l} : Out(TracePort), Out(1)
        Layer ``l``'s trace port, taken while ``trace_en{l}``.
    busy : In(n_layers)
        The layers' ``busy``.

    Latency: ``sizes[-1]`` two-cycle steps for the output deltas, a ``DELTA`` row per hidden
    neuron, two cycles per logged event or hidden neuron plus a ``LEARN`` row for each that
    fired, and the last pass's latency.
    """

    def __init__(self, sizes, lanes, config):
        self._sizes, self._lanes, self._config = tuple(sizes), tuple(lanes), config
        n_w = len(sizes) - 1
        step_bits = config.step_bits
        members = {
            "learn": In(LearnControl(sizes[-1])),
            "handshake": In(LearnHandshake(sizes, step_bits)),
            "busy": In(n_w),
        }
        for l in range(n_w):
            members[f"layer{l}"] = Out(LayerLearning(sizes[l + 1], lanes[l]))
            members[f"cmd{l}"] = Out(row_commands(sizes[l], TTFSOp, step_bits))
            members[f"trace{l}"] = Out(TracePort(sizes[l + 1], step_bits))
            members[f"trace_en{l}"] = Out(1)
        super().__init__(members)
        # voters[l - 1] turns the votes of weight layer l into deltas of neuron layer l.
        self.voters = [DeltaVoter(sizes[l + 1], lanes[l]) for l in range(1, n_w)]

    def _at(self, name, l):
        return getattr(self, f"{name}{l}")

    def elaborate(self, platform):
        m = Module()
        sizes, n_w = self._sizes, len(self._sizes) - 1
        hs, req = self.handshake, self.learn
        self._idx = Signal(range(max(sizes) + 1))
        self._out_idx = Signal(range(max(sizes) + 1))
        r = self._r = {"active": Signal(), "label": Signal(index_bits(sizes[-1])),
                       "shift": Signal.like(req.shift), "k": Signal(range(MAX_LFSR_K + 1)),
                       "errors_only": Signal(), "in_learn": Signal(),
                       "overflow": Signal()}
        self._log_entries(m)
        self._lfsr(m)
        for l, voter in enumerate(self.voters):
            m.submodules[f"voter{l}"] = voter
            wiring.connect(m, wiring.flipped(self._at("layer", l + 1).votes), voter.votes)

        # The request, sampled when an image starts.
        with m.If(hs.image_start):
            bad_label = req.label >= sizes[-1]
            m.d.sync += [r["active"].eq(req.en & ~bad_label),
                         hs.label_error.eq(req.en & bad_label),
                         r["label"].eq(req.label), r["shift"].eq(req.shift),
                         r["k"].eq(Mux(req.k > MAX_LFSR_K, MAX_LFSR_K, req.k)),
                         r["errors_only"].eq(req.errors_only), r["overflow"].eq(0),
                         hs.learn_cycles.eq(0)]
        with m.If(r["in_learn"]):
            m.d.sync += hs.learn_cycles.eq(hs.learn_cycles + 1)
        correct = hs.decided & (hs.klass == r["label"])
        m.d.comb += [hs.go.eq(r["active"] & ~r["overflow"] & ~(r["errors_only"] & correct)),
                     hs.log_overflow.eq(r["overflow"])]
        for l in range(n_w):
            layer = self._at("layer", l)
            m.d.comb += [layer.lr_shift.eq(r["shift"]), layer.lfsr_k.eq(r["k"]),
                         layer.lfsr_in.eq(self._lfsr_state)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(hs.start):
                    m.d.sync += [self._idx.eq(0), r["in_learn"].eq(1)]
                    m.next = "LD_OUT_ADDR"
            self._delta_states(m)
            self._update_states(m)
            with m.State("LEARN_WAIT"):
                with m.If(self.busy == 0):
                    m.d.comb += hs.done.eq(1)
                    m.d.sync += r["in_learn"].eq(0)
                    m.next = "IDLE"
        return m

    def _log_entries(self, m):
        """The input log: each event the scheduler takes, at most ``sizes[0]`` (more sets
        ``overflow``)."""
        hs, sizes = self.handshake, self._sizes
        log_lay = data.StructLayout({"index": index_bits(sizes[0]),
                                     "step": self._config.step_bits})
        m.submodules.in_log = in_log = memory.Memory(shape=log_lay, depth=sizes[0], init=[])
        log_w = in_log.write_port()
        self._log_r = in_log.read_port()
        m.d.comb += self._log_r.addr.eq(self._idx)   # re-reads entry idx every cycle
        with m.If(hs.head_taken):
            with m.If(hs.in_spikes < sizes[0]):
                m.d.comb += [log_w.addr.eq(hs.in_spikes), log_w.en.eq(1),
                             log_w.data.index.eq(hs.head_index),
                             log_w.data.step.eq(hs.head_step)]
            with m.Else():
                m.d.sync += self._r["overflow"].eq(1)

    def _lfsr(self, m):
        """The update LFSR: restarts at ``LFSR_SEED`` after reset and on ``lfsr_seed`` while
        idle, carries over from image to image. One layer learns at a time (the ``LEARN``
        phases wait for each other), so the draws follow the golden order: layer 0's rows,
        then layer 1's, ..."""
        self._lfsr_state = lfsr = Signal(LFSR_BITS, init=LFSR_SEED)
        with m.If(self.learn.lfsr_seed & self.handshake.idle):
            m.d.sync += lfsr.eq(LFSR_SEED)
        for l in range(len(self._sizes) - 1):
            layer = self._at("layer", l)
            with m.Elif(layer.lfsr_used):
                m.d.sync += lfsr.eq(layer.lfsr_out)

    def _delta_states(self, m):
        """1. Output deltas; 2. hidden deltas, top down."""
        sizes, n_w, T = self._sizes, len(self._sizes) - 1, self._config.timesteps
        hs, r, idx, out_idx = self.handshake, self._r, self._idx, self._out_idx
        out, out_trace = self._at("layer", n_w - 1), self._at("trace", n_w - 1)
        with m.State("LD_OUT_ADDR"):
            m.d.comb += [self._at("trace_en", n_w - 1).eq(1), out_trace.addr.eq(idx)]
            m.next = "LD_OUT_DATA"
        with m.State("LD_OUT_DATA"):
            fired = out_trace.step != T
            is_label = idx == r["label"]
            delta = Signal(signed(2))
            with m.If(fired & ~is_label):
                m.d.comb += delta.eq(-1)
            with m.Elif(is_label & ~(hs.decided & (hs.klass == r["label"]))):
                m.d.comb += delta.eq(1)
            m.d.comb += [out.delta_w_en.eq(1), out.delta_w_addr.eq(idx),
                         out.delta_w_data.eq(delta)]
            with m.If(idx == sizes[-1] - 1):
                m.d.sync += [idx.eq(0), out_idx.eq(0)]
                m.next = f"LD_HID{n_w - 1}" if n_w > 1 else "LU0_ADDR"
            with m.Else():
                m.d.sync += idx.eq(idx + 1)
                m.next = "LD_OUT_ADDR"
        for l in range(n_w - 1, 0, -1):
            above, below = self._at("cmd", l), self._at("layer", l - 1)
            voter = self.voters[l - 1]
            with m.State(f"LD_HID{l}"):
                with m.If(idx < sizes[l]):
                    m.d.comb += [above.valid.eq(1), above.payload.op.eq(TTFSOp.DELTA),
                                 above.payload.src.eq(idx)]
                    with m.If(above.ready):
                        m.d.sync += idx.eq(idx + 1)
                with m.If(voter.delta_valid):
                    m.d.comb += [below.delta_w_en.eq(1), below.delta_w_addr.eq(out_idx),
                                 below.delta_w_data.eq(voter.delta)]
                    m.d.sync += out_idx.eq(out_idx + 1)
                    with m.If(out_idx == sizes[l] - 1):
                        m.d.sync += [idx.eq(0), out_idx.eq(0)]
                        m.next = f"LD_HID{l - 1}" if l > 1 else "LU0_ADDR"

    def _update_states(self, m):
        """3. A ``LEARN`` pass over the row of every source that fired, layer by layer."""
        sizes, n_w, T = self._sizes, len(self._sizes) - 1, self._config.timesteps
        idx, log_r = self._idx, self._log_r
        cmd0 = self._at("cmd", 0)
        with m.State("LU0_ADDR"):
            with m.If(idx == self.handshake.in_spikes):
                m.d.sync += idx.eq(0)
                m.next = "LU1_WAIT" if n_w > 1 else "LEARN_WAIT"
            with m.Else():
                m.next = "LU0_CMD"
        with m.State("LU0_CMD"):
            m.d.comb += [cmd0.valid.eq(1), cmd0.payload.op.eq(TTFSOp.LEARN),
                         cmd0.payload.src.eq(log_r.data.index),
                         cmd0.payload.tag.eq(log_r.data.step)]
            with m.If(cmd0.ready):
                m.d.sync += idx.eq(idx + 1)
                m.next = "LU0_ADDR"
        for l in range(1, n_w):
            cmd, trace = self._at("cmd", l), self._at("trace", l - 1)
            trace_en = self._at("trace_en", l - 1)
            with m.State(f"LU{l}_WAIT"):
                # The layer below finishes its LEARN passes first (the update LFSR's order).
                with m.If(~self.busy[l - 1]):
                    m.next = f"LU{l}_ADDR"
            with m.State(f"LU{l}_ADDR"):
                with m.If(idx == sizes[l]):
                    m.d.sync += idx.eq(0)
                    m.next = f"LU{l + 1}_WAIT" if l + 1 < n_w else "LEARN_WAIT"
                with m.Else():
                    m.d.comb += [trace_en.eq(1), trace.addr.eq(idx)]
                    m.next = f"LU{l}_CMD"
            with m.State(f"LU{l}_CMD"):
                # Keep addressing neuron idx: the trace port re-reads it every cycle.
                m.d.comb += [trace_en.eq(1), trace.addr.eq(idx)]
                with m.If(trace.step == T):
                    m.d.sync += idx.eq(idx + 1)
                    m.next = f"LU{l}_ADDR"
                with m.Else():
                    m.d.comb += [cmd.valid.eq(1), cmd.payload.op.eq(TTFSOp.LEARN),
                                 cmd.payload.src.eq(idx), cmd.payload.tag.eq(trace.step)]
                    with m.If(cmd.ready):
                        m.d.sync += idx.eq(idx + 1)
                        m.next = f"LU{l}_ADDR"
