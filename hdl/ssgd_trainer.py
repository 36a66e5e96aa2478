"""On-chip training of an SSGD network, image after image (issue 21): the forward
(:class:`~spikegate.hdl.ssgd_network.SSGDNetwork`), the readout's backward and ``W2`` update
(:class:`~spikegate.hdl.ssgd_readout.SSGDReadoutBackward`), the hidden layer's gradient
(:class:`~spikegate.hdl.ssgd_backward.SSGDGradient`) and ``W1`` update
(:class:`~spikegate.hdl.ssgd_update.SSGDUpdate`), the specification being
:func:`spikegate.golden.ssgd_train_fixed.train_step` (``image_index`` = images learned since
reset).

Per image: a label (``l_stream``) is taken, then the image's beats; while they pass into the
network the trainer writes each input's spike step into the gradient engine, the hidden
layer's active events go into the engine's event lists and its trace into ``R``. After the
network's result: the loss request (logits and label) runs the readout's backward (``dlog``,
``u`` into the gradient engine, ``W2`` rewritten row by row), then the gradient engine walks the
events neuron by neuron and the update rewrites ``W1`` column by column; then the result goes
out. The weight ports of the two layers belong to the host while the trainer is idle, to the
update engines while they run.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.ssgd_train_fixed import TrainFormat
from .layouts import RESULT_COUNT_BITS, index_bits
from .lif_layouts import LIFEventLayout
from .params import checking
from .signatures import LIFTracePort, WeightPort
from .ssgd_backward import SSGDGradient
from .ssgd_network import SSGDNetwork, readout_format
from .ssgd_readout import SSGDReadoutBackward
from .ssgd_update import SSGDUpdate

__all__ = ["SSGDTrainer", "LabelLayout", "TrainResultLayout"]

_PORT_OUT = ("w_en", "w_src", "w_dst", "w_data", "rb_en", "rb_src", "rb_dst")


class LabelLayout(data.StructLayout):
    """The label of the next image and whether to learn from it."""
    def __init__(self, n_classes):
        super().__init__({"label": unsigned(index_bits(n_classes)), "learn": unsigned(1)})


class TrainResultLayout(data.StructLayout):
    """The result of one image: its class, its active events, the forward's cycles (first beat
    to the network's result) and the backward's (the network's result to this one; 0 when not
    learning)."""
    def __init__(self, n_classes):
        super().__init__({"klass": unsigned(index_bits(n_classes)),
                          "active": unsigned(RESULT_COUNT_BITS),
                          "forward_cycles": unsigned(RESULT_COUNT_BITS),
                          "backward_cycles": unsigned(RESULT_COUNT_BITS)})


class SSGDTrainer(wiring.Component):
    """A ``(n_in, H, C)`` SSGD network that learns on chip.

    Parameters
    ----------
    sizes, lanes, tfmt, weights
        As :class:`~spikegate.hdl.ssgd_network.SSGDNetwork`. Inputs must spike at most once per
        image (the golden training's encoding).

    Members
    -------
    l_stream : In(stream)
        :class:`LabelLayout`, one per image, before its beats.
    i_stream : In(stream)
        The image (:class:`~spikegate.hdl.lif_layouts.LIFEventLayout`), as the network's.
    o_stream : Out(stream)
        :class:`TrainResultLayout`.
    trace0, trace1 : Out(LIFTracePort)
        The network's traces.
    weights0, weights1 : In(WeightPort)
        The host's access to ``W1`` and ``W2``, only while ``idle``.
    idle : Out
    """

    def __init__(self, sizes, lanes, tfmt=None, *, weights=None):
        tfmt = TrainFormat() if tfmt is None else tfmt
        with checking(self):
            self._net = SSGDNetwork(sizes, lanes, tfmt, weights=weights)
        n_in, H, C = self._net.sizes
        self._grad = SSGDGradient(n_in, H, tfmt)
        self._rbwd = SSGDReadoutBackward(H, C, tfmt)
        self._update = SSGDUpdate(n_in, H, tfmt)
        self._sizes, self._tfmt = (n_in, H, C), tfmt
        step_bits = self._net.hidden.step_bits
        super().__init__({
            "l_stream": In(stream.Signature(LabelLayout(C))),
            "i_stream": In(stream.Signature(LIFEventLayout(n_in))),
            "o_stream": Out(stream.Signature(TrainResultLayout(C))),
            "trace0": Out(LIFTracePort(H, step_bits, tfmt.lif)),
            "trace1": Out(LIFTracePort(C, step_bits, readout_format(tfmt))),
            "weights0": In(WeightPort(n_in, H)),
            "weights1": In(WeightPort(H, C)),
            "idle": Out(1),
        })

    @property
    def network(self):
        return self._net

    def elaborate(self, platform):
        m = Module()
        net, grad, rbwd, upd = self._net, self._grad, self._rbwd, self._update
        n_in, H, C = self._sizes
        T = self._tfmt.n_steps
        m.submodules.net, m.submodules.grad = net, grad
        m.submodules.rbwd, m.submodules.update = rbwd, upd
        wiring.connect(m, net.trace0, rbwd.trace, wiring.flipped(self.trace0))
        wiring.connect(m, net.trace1, wiring.flipped(self.trace1))
        wiring.connect(m, net.a_stream, grad.e_stream)
        wiring.connect(m, rbwd.u, grad.u)
        wiring.connect(m, grad.o_stream, upd.i_stream)

        # The weight ports: the host's, or the update engines' while they run (W2's from the
        # loss request, W1's from the hidden layer's backward, both to the result; registers,
        # not the state's decode, select them: they lead to the weight memories' addresses).
        # Each select in two copies: one for the read-back's enable and address (the weight
        # lookup's address arithmetic and its block RAM's read-first logic follow), one for
        # the rest, so that neither has many loads. The copy toggles (it is set only while
        # clear and cleared only while set), so that Yosys does not merge the two.
        w1_internal, w2_internal = Signal(), Signal()
        w1_rb_internal, w2_rb_internal = Signal(), Signal()
        for host, engine, port, internals in ((self.weights0, upd.weights, net.weights0,
                                               (w1_internal, w1_rb_internal)),
                                              (self.weights1, rbwd.weights, net.weights1,
                                               (w2_internal, w2_rb_internal))):
            for name in _PORT_OUT:
                internal = internals[name.startswith("rb_")]
                m.d.comb += getattr(port, name).eq(Mux(internal, getattr(engine, name),
                                                       getattr(host, name)))
            m.d.comb += [host.rb_data.eq(port.rb_data), engine.rb_data.eq(port.rb_data)]

        image = Signal(max(self._tfmt.dither_bits, 1))       # images learned since reset
        m.d.comb += [rbwd.image.eq(image), upd.image.eq(image)]
        label, learn = Signal(index_bits(C)), Signal()
        bwd_cycles = Signal(RESULT_COUNT_BITS)

        # The image's beats into the network, the spike steps into the gradient engine.
        step = Signal(range(T))
        src, dst = self.i_stream, net.i_stream
        passing = Signal()
        m.d.comb += [dst.payload.eq(src.payload), dst.valid.eq(src.valid & passing),
                     src.ready.eq(dst.ready & passing)]
        taken = Signal()
        m.d.comb += taken.eq(src.valid & src.ready)
        # The spike steps are written a cycle after their beats (the network's ready and the
        # engine's input flags on separate paths); the last long before the engine starts.
        t_en = Signal()
        m.d.sync += [t_en.eq(taken & ~src.payload.last),
                     grad.times.w_addr.eq(src.payload.index), grad.times.w_data.eq(step)]
        m.d.comb += grad.times.w_en.eq(t_en)
        with m.If(taken & src.payload.last):
            m.d.sync += step.eq(step + 1)

        res = self.o_stream
        req = rbwd.i_stream
        m.d.comb += [req.payload.label.eq(label)]
        m.d.comb += [req.payload.z[c].eq(net.o_stream.payload.z[c]) for c in range(C)]
        # The class, active events and forward cycles are the network's result itself (no
        # copies): it is taken only with this one, and holds until then (no image is let in).
        p = net.o_stream.payload
        m.d.comb += [res.payload.klass.eq(p.klass), res.payload.active.eq(p.active),
                     res.payload.forward_cycles.eq(p.cycles),
                     res.payload.backward_cycles.eq(bwd_cycles)]
        with m.FSM(name="trainer"):
            with m.State("IDLE"):
                m.d.comb += [self.l_stream.ready.eq(1), self.idle.eq(net.idle)]
                with m.If(self.l_stream.valid):
                    m.d.sync += [label.eq(self.l_stream.payload.label),
                                 learn.eq(self.l_stream.payload.learn), step.eq(0),
                                 passing.eq(1), bwd_cycles.eq(0)]
                    m.d.comb += grad.clear.eq(1)
                    m.next = "FORWARD"
            with m.State("FORWARD"):
                # The network's result waits (valid) until this one is taken; the loss request
                # reads its logits.
                with m.If(net.o_stream.valid):
                    m.d.sync += passing.eq(0)
                    with m.If(learn):
                        m.d.sync += [w2_internal.eq(1), w2_rb_internal.eq(~w2_rb_internal)]
                        m.next = "LOSS"
                    with m.Else():
                        m.next = "RESULT"
            with m.State("LOSS"):
                m.d.sync += bwd_cycles.eq(bwd_cycles + 1)
                m.d.comb += req.valid.eq(1)
                with m.If(req.ready):
                    m.next = "READOUT"
            with m.State("READOUT"):
                m.d.sync += bwd_cycles.eq(bwd_cycles + 1)
                with m.If(~rbwd.busy):
                    m.d.comb += grad.start.eq(1)
                    m.d.sync += [w1_internal.eq(1), w1_rb_internal.eq(~w1_rb_internal)]
                    m.next = "HIDDEN"
            with m.State("HIDDEN"):
                m.d.sync += bwd_cycles.eq(bwd_cycles + 1)
                # The update's last write is on W1's port in the cycle its read-backs are
                # done (this one): the port goes back to the host the next.
                with m.If(~grad.busy & ~upd.reading):
                    m.d.sync += [image.eq(image + 1), w1_internal.eq(0), w2_internal.eq(0),
                                 w1_rb_internal.eq(~w1_rb_internal),
                                 w2_rb_internal.eq(~w2_rb_internal)]
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [res.valid.eq(1), net.o_stream.ready.eq(res.ready)]
                with m.If(res.ready):
                    m.next = "IDLE"
        return m
