"""The TTFS classifier: input spike events in, the class of the first output spike out.

It instantiates and connects:

* one :class:`~spikegate.hdl.ttfs_layer.TTFSLayer` per weight layer (the shared weight
  lookup with the TTFS neuron arithmetic);
* the :class:`~spikegate.hdl.scheduler.StepScheduler`, which runs each image through the
  layers step by step and sends the result (its module docstring gives the schedule);
* with ``learning``, the :class:`~spikegate.hdl.sequencer.LearningSequencer` (input log,
  update LFSR, delta voters), which runs on-chip sign backprop after a learned image;
* the decoder of its :class:`~spikegate.hdl.signatures.ModelPort` (weights, thresholds,
  read-back) and of its trace port onto the layers.

Work is one cycle per ``lanes`` weights read, plus one scan of ``ceil(n / lanes)`` cycles
per layer and timestep while neurons may fire without input, plus a few cycles per layer and
step; idle timesteps cost nothing.
"""

import numpy as np

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.ttfs_discrete import THETA_BITS, DiscreteConfig, DiscreteNetwork
from .layouts import ClassifierResultLayout, SpikeEventLayout
from .lookup import MAX_LANES
from .params import checking
from .scheduler import StepScheduler
from .signatures import LearnControl, ModelPort, TracePort
from .timing import Timing
from .ttfs_layer import TTFSLayer

__all__ = ["TTFSClassifier", "MAX_LAYER_SIZE", "MAX_LEARN_VOTES"]

#: The most neurons in one layer.
MAX_LAYER_SIZE = 65536
#: On-chip learning counts the votes of at most this many neurons per layer after the first
#: hidden one (the widest :class:`~spikegate.hdl.popcount.Popcount`).
MAX_LEARN_VOTES = 1024


class TTFSClassifier(wiring.Component):
    """A feed-forward TTFS network with an event-driven, sparse weight-lookup datapath.

    Parameters
    ----------
    sizes : sequence of int
        Neurons per layer, input first (at least 2 layers; each 1 to :data:`MAX_LAYER_SIZE`).
    thetas : sequence of int
        One threshold per weight layer (>= 1).
    lanes : int or sequence of int
        Weights read per cycle (1 to :data:`~spikegate.hdl.lookup.MAX_LANES`): one number for
        every weight layer, or one per weight layer (a small output layer needs fewer lanes
        than a wide hidden one; each lane costs two multipliers, none in the first layer with
        ``binary_input``).
    config : DiscreteConfig
        Time grid and z fixed point.
    weights : sequence of arrays, optional
        Initial signed 8-bit weights per layer, shape ``(sizes[l], sizes[l+1])``.
    timing : Timing
        Register cuts and options (:class:`~spikegate.hdl.timing.Timing`, default none) for
        the layers, the scheduler and the read-back: a faster clock for a few more cycles
        per timestep; results never change. With ``rb_register`` each layer's read-back word
        is registered before the layer mux: ``rb_data`` then holds the weight one cycle
        later; with weight banks (``weight_bank_depth``) two cycles later
        (:attr:`rb_latency`: 1, 2, 3 or 4 cycles after ``rb_en``).
    learning : bool
        Build the learning sequencer (on-chip sign backprop).
    binary_input : bool
        Every input spike comes at step 0 (binary input encoding): the first layer is the
        multiplier-free :class:`~spikegate.hdl.ttfs_layer.TTFSLayer` of ``binary_input=True``
        (an adder and comparators per lane; results unchanged for such inputs). A threshold
        write to it keeps the classifier from starting an image for
        :attr:`~spikegate.hdl.ttfs_layer.TTFSLayer.table_cycles` cycles, and so does a reset
        (its scheduler waits for the layers: before the image's start with the timing's
        ``lazy_clear``, else after its ``CLEAR``). Refused with ``learning``.

    Members
    -------
    i_stream : In(stream)
        :class:`SpikeEventLayout` beats; each image is its spikes in non-decreasing step order
        followed by one ``end`` beat. An event whose index is not below ``sizes[0]``, whose step
        is not below ``timesteps``, or whose step is below the current step is dropped and
        sets ``error`` in the result.
    o_stream : Out(stream)
        :class:`ClassifierResultLayout`, one beat per image.
    model : In(ModelPort)
        :class:`~spikegate.hdl.signatures.ModelPort`: weights and thresholds written and
        weights read back, taken only while ``model.idle`` (no image in progress).
    trace : In(TracePort)
        The spike step of neuron ``addr`` of neuron layer ``layer`` (1 = first hidden
        layer), one cycle later; ``timesteps`` means it did not fire. Read while idle; valid
        for the last image until the next one starts.
    learn : In(LearnControl) (``learning=True`` only)
        Sampled when an image starts: learn from it with this label and step
        ``2**shift`` (:mod:`spikegate.golden.sign_backprop`). A label outside the classes is
        refused: ``label_error`` in the result, no weight changes. Learning runs after the
        image's end marker and before the result (:class:`~spikegate.hdl.sequencer.
        LearningSequencer`). ``k``: stochastic rounding with ``k`` LFSR bits per candidate
        write (0 = off; above :data:`~spikegate.golden.sign_backprop.MAX_LFSR_K` counts as the
        maximum); ``errors_only``: skip an image whose decision is already the label. The
        update LFSR starts at ``LFSR_SEED`` after reset and whenever ``lfsr_seed`` is high
        while idle; it carries over from image to image.
    binary_input_error : Out(1) (``binary_input=True`` only)
        An input spike of the current image (or of the last one, until the next starts)
        came at a step other than 0, so its result is not the model's: that result has
        ``error`` set. The next image starts clean.
    """

    def __init__(self, sizes, thetas, lanes, config=None, weights=None, *, learning=False,
                 timing=None, binary_input=False):
        timing = Timing() if timing is None else timing
        with checking(self):
            config = self._check(sizes, thetas, lanes, config, weights)
            if not isinstance(timing, Timing):
                raise TypeError(f"timing must be a Timing, not {timing!r}")
            if learning and any(s > MAX_LEARN_VOTES for s in sizes[2:]):
                raise ValueError(f"on-chip learning counts votes over at most {MAX_LEARN_VOTES} "
                                 f"neurons per layer after the first hidden one, not "
                                 f"{tuple(sizes[2:])!r}")
            if not isinstance(binary_input, bool):
                raise TypeError(f"binary_input must be a bool, not {binary_input!r}")
        self._binary_input = binary_input
        self._learning = bool(learning)
        self._timing = timing
        self._sizes = tuple(int(s) for s in sizes)
        self._lanes = self._lanes_per_layer(lanes, len(sizes) - 1)
        self._config = config
        with checking(self):      # the layers check the rest (binary_input with learning)
            self.layers = [TTFSLayer(sizes[l], sizes[l + 1], self._lanes[l], int(thetas[l]),
                                     config, None if weights is None else weights[l],
                                     learning=learning, timing=timing,
                                     binary_input=binary_input and l == 0)
                           for l in range(len(sizes) - 1)]
        # The protocol engine waits timing.rb_latency for a weight: the hardware's must agree.
        assert self.rb_latency == timing.rb_latency, (self.rb_latency, timing.rb_latency)
        self.scheduler = StepScheduler(self._sizes, self._lanes, config, timing,
                                       learning=learning)
        if learning:
            from .sequencer import LearningSequencer
            self.sequencer = LearningSequencer(self._sizes, self._lanes, config)
        step_bits = config.step_bits
        super().__init__({
            "i_stream": In(stream.Signature(SpikeEventLayout(sizes[0], step_bits))),
            "o_stream": Out(stream.Signature(ClassifierResultLayout(self._sizes, step_bits))),
            "model": In(ModelPort(self._sizes)),
            "trace": In(TracePort(max(sizes[1:]), step_bits, n_layers=len(sizes))),
            **({"learn": In(LearnControl(sizes[-1]))} if learning else {}),
            **({"binary_input_error": Out(1)} if binary_input else {}),
        })

    @staticmethod
    def _check(sizes, thetas, lanes, config, weights):
        sizes = tuple(sizes)
        if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and
                                     1 <= s <= MAX_LAYER_SIZE for s in sizes):
            raise ValueError(f"sizes must be at least two integers from 1 to {MAX_LAYER_SIZE}, "
                             f"not {sizes!r}")
        if len(thetas) != len(sizes) - 1:
            raise ValueError(f"{len(sizes) - 1} weight layers need as many thresholds, not {len(thetas)}")
        TTFSClassifier._lanes_per_layer(lanes, len(sizes) - 1)
        config = config or DiscreteConfig()
        if not isinstance(config, DiscreteConfig):
            raise TypeError(f"config must be a DiscreteConfig, not {config!r}")
        for l, th in enumerate(thetas):
            if not isinstance(th, (int, np.integer)) or not 1 <= th <= (1 << THETA_BITS) - 1:
                raise ValueError(f"thetas[{l}] must be an integer from 1 to "
                                 f"{(1 << THETA_BITS) - 1}, not {th!r}")
        if weights is not None:
            if len(weights) != len(sizes) - 1:
                raise ValueError(f"{len(sizes) - 1} weight layers expected, not {len(weights)}")
            for l, w in enumerate(weights):
                w = np.asarray(w)
                if w.shape != (sizes[l], sizes[l + 1]):
                    raise ValueError(f"weights[{l}] must have shape ({sizes[l]}, {sizes[l + 1]}), "
                                     f"not {w.shape}")
                if w.size and (w.min() < -128 or w.max() > 127):
                    raise ValueError(f"weights[{l}] must be in [-128, 127]")
        return config

    @staticmethod
    def _lanes_per_layer(lanes, n_w):
        per = [lanes] * n_w if isinstance(lanes, (int, np.integer)) else list(lanes)
        if len(per) != n_w or not all(isinstance(x, (int, np.integer)) and 1 <= x <= MAX_LANES
                                      for x in per):
            raise ValueError(f"lanes must be an integer from 1 to {MAX_LANES}, or {n_w} of them "
                             f"(one per weight layer), not {lanes!r}")
        return tuple(int(x) for x in per)

    @classmethod
    def from_network(cls, net, lanes, *, learning=False, timing=None, binary_input=False):
        """Build from a :class:`~spikegate.golden.ttfs_discrete.DiscreteNetwork`."""
        if not isinstance(net, DiscreteNetwork):
            raise TypeError(f"net must be a DiscreteNetwork, not {net!r}")
        return cls(net.sizes, net.thetas, lanes, net.config, net.weights, learning=learning,
                   timing=timing, binary_input=binary_input)

    @property
    def binary_input(self):
        return self._binary_input

    @property
    def rb_latency(self):
        """Cycles from ``rb_en`` to the weight on ``rb_data``: the layers' weight read-back
        (:attr:`~spikegate.hdl.ttfs_layer.TTFSLayer.rb_latency`) plus one with
        ``rb_register``; the timing's :attr:`~spikegate.hdl.timing.Timing.rb_latency`, which
        the protocol engine waits for, says the same (checked at construction)."""
        return self.layers[0].rb_latency + int(self._timing.rb_register)

    @property
    def timing(self):
        return self._timing

    @property
    def learning(self):
        return self._learning

    @property
    def sizes(self):
        return self._sizes

    @property
    def lanes(self):
        """Lanes per weight layer (a tuple)."""
        return self._lanes

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.submodules.scheduler = sched = self.scheduler
        wiring.connect(m, wiring.flipped(self.i_stream), sched.i_stream)
        wiring.connect(m, sched.o_stream, wiring.flipped(self.o_stream))
        if self._binary_input:
            err = self.layers[0].binary_input_error
            m.d.comb += [self.binary_input_error.eq(err),
                         self.o_stream.payload.error.eq(sched.o_stream.payload.error | err)]
        m.d.comb += self.model.idle.eq(sched.idle)
        for l, layer in enumerate(self.layers):
            m.submodules[f"layer{l}"] = layer
            wiring.connect(m, getattr(sched, f"layer{l}"), layer.schedule)
        trace_addr = [self.trace.addr for _ in self.layers]
        if self._learning:
            m.submodules.sequencer = seq = self.sequencer
            wiring.connect(m, wiring.flipped(self.learn), seq.learn)
            wiring.connect(m, sched.handshake, seq.handshake)
            m.d.comb += seq.busy.eq(sum(layer.schedule.busy << l
                                        for l, layer in enumerate(self.layers)))
            for l, layer in enumerate(self.layers):
                wiring.connect(m, getattr(seq, f"layer{l}"), layer.learn)
                wiring.connect(m, getattr(seq, f"cmd{l}"), getattr(sched, f"learn_cmd{l}"))
                seq_trace = getattr(seq, f"trace{l}")
                m.d.comb += seq_trace.step.eq(layer.trace.step)
                trace_addr[l] = Mux(getattr(seq, f"trace_en{l}"), seq_trace.addr, self.trace.addr)
        self._model_port(m)

        # The trace port.
        for layer, addr in zip(self.layers, trace_addr):
            m.d.comb += layer.trace.addr.eq(addr)
        trace_sel = Signal.like(self.trace.layer)
        m.d.sync += trace_sel.eq(self.trace.layer)
        steps = Array([self.layers[0].trace.step] + [layer.trace.step for layer in self.layers])
        m.d.comb += self.trace.step.eq(steps[trace_sel])
        return m

    def _model_port(self, m):
        """Weight and threshold writes and the weight read-back, to the layer ``w_layer``
        (taken only while idle)."""
        port = self.model
        for l, layer in enumerate(self.layers):
            sel = port.idle & (port.w_layer == l)
            wp = layer.weights
            m.d.comb += [wp.w_en.eq(port.w_en & sel),
                         wp.w_src.eq(port.w_src), wp.w_dst.eq(port.w_dst),
                         wp.w_data.eq(port.w_data),
                         wp.rb_en.eq(port.rb_en & sel),
                         wp.rb_src.eq(port.w_src), wp.rb_dst.eq(port.w_dst),
                         layer.theta_w_en.eq(port.theta_en & sel),
                         layer.theta_w_data.eq(port.theta_data)]
        # The layer of each read-back, delayed with it (the layers' read-back latency).
        rb_sel = port.w_layer
        for i in range(self.layers[0].rb_latency):
            delayed = Signal.like(port.w_layer, name=f"rb_sel{i}")
            m.d.sync += delayed.eq(rb_sel)
            rb_sel = delayed
        rb_words = [layer.weights.rb_data for layer in self.layers]
        if self._timing.rb_register:
            # Each layer's word into a register at the layer, then the layer mux.
            rb_regs = [Signal.like(w, name=f"rb_word{l}") for l, w in enumerate(rb_words)]
            rb_sel_r = Signal.like(rb_sel)
            m.d.sync += [r.eq(w) for r, w in zip(rb_regs, rb_words)]
            m.d.sync += rb_sel_r.eq(rb_sel)
            rb_words, rb_sel = rb_regs, rb_sel_r
        m.d.comb += port.rb_data.eq(Array(rb_words)[rb_sel])
