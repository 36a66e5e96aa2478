"""The TTFS classifier: input spike events in, the class of the first output spike out.

Schedule, one timestep ``k`` at a time, layers in order (the order of
:mod:`spikegate.golden.ttfs_discrete`):

* weight layer 0 takes the input events of step ``k`` straight from ``i_stream`` (they arrive
  in step order), one ``ACCUMULATE`` pass each; a later layer takes the spikes that the layer
  before it produced at step ``k`` (kept as lane-group fire masks in a small FIFO);
* a layer with no source spike at step ``k`` runs one ``SCAN`` pass, and only when some of
  its neurons are armed (could fire without new input); otherwise it is skipped;
* after the output layer, the first output spike decides; the rest of the image's events
  are drained and the result is sent.

When no layer is armed and no event is due, the step counter jumps to the next input's step
(or ends the image when the input has ended): idle timesteps cost nothing. Work is therefore
one cycle per ``lanes`` weights read, plus one scan of ``ceil(n / lanes)`` cycles per layer
and timestep while neurons are armed and idle, plus a few cycles per layer and step.
"""

import numpy as np

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.sign_backprop import LFSR_SEED, MAX_LFSR_K
from spikegate.golden.ttfs_discrete import (QUIET_FACTORS, THETA_BITS, DiscreteConfig,
                                            DiscreteNetwork, WEIGHT_BITS)
from .layouts import (RESULT_COUNT_BITS, ClassifierResultLayout, FireMaskLayout, RowOp,
                      SpikeEventLayout, index_bits)
from .params import checking
from .spike_queue import StreamRegister
from .ttfs_layer import TTFSLayer

__all__ = ["TTFSClassifier"]


class TTFSClassifier(wiring.Component):
    """A feed-forward TTFS network with an event-driven, sparse weight-lookup datapath.

    Parameters
    ----------
    sizes : sequence of int
        Neurons per layer, input first (at least 2 layers; each 1 to 65536).
    thetas : sequence of int
        One threshold per weight layer (>= 1).
    lanes : int or sequence of int
        Weights read per cycle (1 to 16): one number for every weight layer, or one per
        weight layer (a small output layer needs fewer lanes than a wide hidden one; each
        lane costs two multipliers).
    config : DiscreteConfig
        Time grid and z fixed point.
    weights : sequence of arrays, optional
        Initial signed 8-bit weights per layer, shape ``(sizes[l], sizes[l+1])``.
    pipeline : int
        Register stages in each layer's neuron arithmetic (0 to 5,
        :class:`~spikegate.hdl.ttfs_layer.TTFSLayer`): a faster clock for a few more cycles
        per timestep; results never change. From 4 the jump target is a tree of minimums;
        with 5 a step's end and the next step's start are separate cycles, and the tests of
        the input head against the step and of the wakes against it are registers that the
        decisions wait for after a new head, step or pass (a few cycles more per timestep).
    quiet_factors : sequence of (n, d)
        The scan scheduler's quiet factors (:class:`~spikegate.hdl.ttfs_layer.TTFSLayer`).
    group_wake : bool
        Per-group quiet horizons in every layer that has 2 to
        :data:`~spikegate.hdl.lookup.MAX_MASKED_GROUPS` lane groups (default on; layers with
        more or fewer use one layer-wide horizon): scans visit only the groups that may fire
        (:class:`~spikegate.hdl.ttfs_layer.TTFSLayer`). Fewer cycles, more logic; results
        never change.
    rb_register : bool
        Register each layer's read-back word before the layer mux (default off): ``rb_data``
        then holds the weight two cycles after ``rb_en`` instead of one
        (:attr:`rb_latency`), and the weight memory's read and lane mux are the only logic
        before a register, for clock speed (the ECP5 board builds). The datapath's weight
        reads are unchanged.

    Members
    -------
    i_stream : In(stream)
        :class:`SpikeEventLayout` beats; each image is its spikes in non-decreasing step order
        followed by one ``end`` beat. An event whose index is not below ``sizes[0]``, whose step
        is not below ``timesteps``, or whose step is below the current step is dropped and
        sets ``error`` in the result.
    o_stream : Out(stream)
        :class:`ClassifierResultLayout`, one beat per image.
    idle : Out(1)
        No image in progress: weights may be written and traced values read.
    w_en, w_layer, w_src, w_dst, w_data : In
        Write one weight of layer ``w_layer`` (taken only while ``idle``).
    rb_en, rb_data : In, Out
        Read back the weight addressed by ``w_layer``, ``w_src``, ``w_dst``: ``rb_data``
        holds it :attr:`rb_latency` cycles after ``rb_en`` (taken only while ``idle``).
    theta_en, theta_data : In
        Set the threshold of layer ``w_layer`` (taken only while ``idle``).
    learn_en, learn_label, learn_shift : In (``learning=True`` only)
        Sampled when an image starts: learn from it with this label and step
        ``2**learn_shift`` (:mod:`spikegate.golden.sign_backprop`). A label outside the
        classes is refused: ``label_error`` in the result, no weight changes. Learning runs
        after the image's end marker and before the result: output deltas, hidden deltas (a
        ``DELTA`` pass per neuron of each hidden layer, two popcounts and a comparison each),
        then a ``LEARN`` read-modify-write pass over the weight row of every source that
        fired.
    learn_k, learn_errors_only, lfsr_seed : In (``learning=True`` only)
        Sampled with ``learn_en``: stochastic rounding with ``learn_k`` LFSR bits per
        candidate write (0 = off; above :data:`~spikegate.golden.sign_backprop.MAX_LFSR_K`
        counts as the maximum), and skipping an image whose decision is already the label
        (``errors_only`` of :func:`~spikegate.golden.sign_backprop.sign_backprop_step`).
        The update LFSR starts at ``LFSR_SEED`` after reset and whenever ``lfsr_seed`` is high
        while idle; it carries over from image to image.
    trace_layer, trace_addr, trace_step : In, In, Out
        The spike step of neuron ``trace_addr`` of neuron layer ``trace_layer`` (1 = first
        hidden layer), one cycle later; ``timesteps`` means it did not fire. Read while idle;
        valid for the last image until the next one starts.
    """

    def __init__(self, sizes, thetas, lanes, config=None, weights=None, *, learning=False,
                 pipeline=0, quiet_factors=QUIET_FACTORS, group_wake=True, rb_register=False):
        with checking(self):
            config = self._check(sizes, thetas, lanes, config, weights)
            if learning and any(s > 1024 for s in sizes[2:]):
                raise ValueError(f"on-chip learning counts votes over at most 1024 neurons per "
                                 f"layer after the first hidden one, not {sizes[2:]!r}")
        self._learning = bool(learning)
        self._rb_register = bool(rb_register)
        self._sizes = tuple(int(s) for s in sizes)
        self._lanes = self._lanes_per_layer(lanes, len(sizes) - 1)
        self._config = config
        self.layers = [TTFSLayer(sizes[l], sizes[l + 1], self._lanes[l], int(thetas[l]), config,
                                 None if weights is None else weights[l], learning=learning,
                                 pipeline=pipeline, quiet_factors=quiet_factors,
                                 group_wake=group_wake)
                       for l in range(len(sizes) - 1)]
        if learning:
            from .learning import DeltaVoter
            # voters[l - 1] turns the votes of weight layer l into deltas of neuron layer l.
            self.voters = [DeltaVoter(sizes[l + 1], self._lanes[l]) for l in range(1, len(sizes) - 1)]
        step_bits = config.step_bits
        n_w = len(self.layers)
        super().__init__({
            "i_stream": In(stream.Signature(SpikeEventLayout(sizes[0], step_bits))),
            "o_stream": Out(stream.Signature(ClassifierResultLayout(self._sizes, step_bits))),
            "idle": Out(1),
            "w_en": In(1),
            "w_layer": In(index_bits(n_w)),
            "w_src": In(index_bits(max(sizes[:-1]))),
            "w_dst": In(index_bits(max(sizes[1:]))),
            "w_data": In(WEIGHT_BITS),
            "rb_en": In(1),
            "rb_data": Out(WEIGHT_BITS),
            "theta_en": In(1),
            "theta_data": In(THETA_BITS),
            "trace_layer": In(index_bits(len(sizes))),
            "trace_addr": In(index_bits(max(sizes[1:]))),
            "trace_step": Out(step_bits),
            **({"learn_en": In(1), "learn_label": In(index_bits(sizes[-1])),
                "learn_shift": In(3), "learn_k": In(range(MAX_LFSR_K + 1)),
                "learn_errors_only": In(1), "lfsr_seed": In(1)} if learning else {}),
        })

    @staticmethod
    def _check(sizes, thetas, lanes, config, weights):
        sizes = tuple(sizes)
        if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and 1 <= s <= 65536 for s in sizes):
            raise ValueError(f"sizes must be at least two integers from 1 to 65536, not {sizes!r}")
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
        if len(per) != n_w or not all(isinstance(x, (int, np.integer)) and 1 <= x <= 16 for x in per):
            raise ValueError(f"lanes must be an integer from 1 to 16, or {n_w} of them (one per "
                             f"weight layer), not {lanes!r}")
        return tuple(int(x) for x in per)

    @classmethod
    def from_network(cls, net, lanes, *, learning=False, pipeline=0, quiet_factors=QUIET_FACTORS,
                     group_wake=True, rb_register=False):
        """Build from a :class:`~spikegate.golden.ttfs_discrete.DiscreteNetwork`."""
        if not isinstance(net, DiscreteNetwork):
            raise TypeError(f"net must be a DiscreteNetwork, not {net!r}")
        return cls(net.sizes, net.thetas, lanes, net.config, net.weights, learning=learning,
                   pipeline=pipeline, quiet_factors=quiet_factors, group_wake=group_wake,
                   rb_register=rb_register)

    @property
    def rb_latency(self):
        """Cycles from ``rb_en`` to the weight on ``rb_data``: 1, or 2 with ``rb_register``."""
        return 2 if self._rb_register else 1

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
        T = self._config.timesteps
        sizes = self._sizes
        n_w = len(self.layers)
        for l, layer in enumerate(self.layers):
            m.submodules[f"layer{l}"] = layer

        # Fire-mask FIFOs between layers: at most one entry per lane group and step.
        fifos = []
        for l in range(n_w - 1):
            lay = FireMaskLayout(self.layers[l].groups, self._lanes[l])
            # Buffered: its storage is a block RAM, not flip-flops and a wide read mux. Its
            # writes are never refused (no back-pressure on fire masks): the memory holds
            # ``depth - 1`` entries besides the output register, so depth is groups + 1.
            f = fifo.SyncFIFOBuffered(width=lay.size, depth=self.layers[l].groups + 1)
            m.submodules[f"fires{l}"] = f
            fifos.append((f, lay))
            m.d.comb += [f.w_data.eq(self.layers[l].fire.as_value()),
                         f.w_en.eq(self.layers[l].fire_valid)]

        k = Signal(self._config.step_bits)
        k1 = Signal(self._config.step_bits + 1)         # k + 1, kept in a register
        step_start = Signal()
        for layer in self.layers:
            m.d.comb += [layer.step.eq(k), layer.step_start.eq(step_start),
                         # Only LEARN commands use the tag (set below); driving it from a
                         # signal rather than leaving it constant also keeps Yosys from
                         # emitting a constant-only ``always @*`` that Icarus never runs.
                         layer.cmd.payload.tag.eq(k)]

        # The input passes a register slice: nothing combinational reaches from the
        # producer (a host link, a protocol engine) into the layers' control, or back.
        m.submodules.in_reg = in_reg = StreamRegister(self.i_stream.payload.shape())
        wiring.connect(m, wiring.flipped(self.i_stream), in_reg.i_stream)
        i_stream = in_reg.o_stream
        head = i_stream.payload
        in_spikes = Signal(RESULT_COUNT_BITS)
        error = Signal()
        cycles = Signal(RESULT_COUNT_BITS)
        counting = Signal()
        decided = Signal()
        klass = Signal.like(self.o_stream.payload.klass)
        dstep = Signal.like(self.o_stream.payload.decision_step)
        clear_stats = Signal()
        for layer in self.layers:
            m.d.comb += layer.clear_stats.eq(clear_stats)

        any_armed = Signal()
        m.d.comb += any_armed.eq(Cat(*(layer.armed_any for layer in self.layers)).any())
        def head_status(kk):
            """(bad, now, later) of the input head relative to step ``kk``: an event that is
            out of range or late; an event of step ``kk``; the end marker or a later event."""
            bad = ~head.end & ((head.index >= sizes[0]) | (head.step >= T) | (head.step < kk))
            return bad, ~head.end & ~bad & (head.step == kk), head.end | (~bad & (head.step > kk))

        head_bad, head_now, head_later = head_status(k)

        # Per layer and step: ``done`` = no more commands will be issued to it this step.
        done = [Signal(name=f"done{l}") for l in range(n_w)]
        issued0 = Signal()
        quiet = [~layer.busy for layer in self.layers]
        masks = []
        for l in range(1, n_w):
            L = self._lanes[l - 1]      # the fire masks come from the layer before
            cur_mask = Signal(L, name=f"cur_mask{l}")
            cur_group = Signal(range(self.layers[l - 1].groups), name=f"cur_group{l}")
            have = Signal(name=f"have_mask{l}")
            low = Signal(range(L), name=f"low_lane{l}")
            for i in reversed(range(L)):
                with m.If(cur_mask[i]):
                    m.d.comb += low.eq(i)
            masks.append((cur_mask, cur_group, have, low))

        # On-chip learning: the label and step of the image, and the log of its input spikes.
        learning = self._learning
        learn_active = Signal()
        label = Signal(index_bits(sizes[-1]))
        label_error = Signal()
        lr_shift = Signal(3)
        lfsr_k = Signal(range(MAX_LFSR_K + 1))
        errors_only = Signal()
        learn_cycles = Signal(RESULT_COUNT_BITS)
        in_learn = Signal()
        trace_en = [Signal(name=f"learn_trace_en{l}") for l in range(n_w)]
        trace_addr = [Signal(index_bits(sizes[l + 1]), name=f"learn_trace_addr{l}") for l in range(n_w)]
        idx = Signal(range(max(sizes) + 1))
        out_idx = Signal(range(max(sizes) + 1))
        if learning:
            log_lay = data.StructLayout({"index": index_bits(sizes[0]), "step": self._config.step_bits})
            m.submodules.in_log = in_log = memory.Memory(shape=log_lay, depth=sizes[0], init=[])
            log_w = in_log.write_port()
            log_r = in_log.read_port()
            log_overflow = Signal()
            lfsr = Signal(16, init=LFSR_SEED)
            for layer in self.layers:
                m.d.comb += [layer.lr_shift.eq(lr_shift), layer.lfsr_k.eq(lfsr_k),
                             layer.lfsr_in.eq(lfsr)]
            # One layer learns at a time (the LEARN phases wait for each other), so the draws
            # follow the golden order: layer 0's rows, then layer 1's, ...
            with m.If(self.lfsr_seed & self.idle):
                m.d.sync += lfsr.eq(LFSR_SEED)
            for layer in self.layers:
                with m.Elif(layer.lfsr_used):
                    m.d.sync += lfsr.eq(layer.lfsr_out)
            for l, voter in enumerate(self.voters):
                m.submodules[f"voter{l}"] = voter
                above = self.layers[l + 1]
                m.d.comb += [voter.votes_valid.eq(above.votes_valid),
                             voter.votes_group.eq(above.votes_group),
                             voter.votes_last.eq(above.votes_last),
                             voter.votes_p.eq(above.votes_p), voter.votes_n.eq(above.votes_n)]
            with m.If(in_learn):
                m.d.sync += learn_cycles.eq(learn_cycles + 1)

        # An input event taken by layer 0 (one place for its effects, from every state).
        head_taken = Signal()
        # A jump may go straight to the head event's step (no layer may fire before it, and
        # no later layer at it): computed once for both uses of ``start_step``.
        direct = Signal()
        head_step1 = Signal.like(k1)
        m.d.comb += [direct.eq(~head.end & (self.layers[0].wake >= head.step) &
                               Cat(*(layer.wake > head.step for layer in self.layers[1:])).all()),
                     head_step1.eq(head.step + 1)]

        # Pipeline 5: the tests of the head against ``k`` and the layers' wakes are registers,
        # computed every cycle; ``fresh`` says they describe the head, ``k`` and the wakes of
        # this cycle (none changed at the last edge), and the decisions that use them wait
        # for it (one cycle after a new head, a new step or a pass).
        reg_head = self.layers[0].pipeline >= 5
        k_set = Signal()                 # k is written this cycle
        flags = {}
        if reg_head:
            head_fresh, fresh, w0_fresh = Signal(), Signal(), Signal()
            moves = in_reg.o_stream.ready | ~in_reg.o_stream.valid
            any_busy = Cat(*(layer.busy for layer in self.layers)).any()
            m.d.sync += [head_fresh.eq(~moves & ~k_set), fresh.eq(~moves & ~k_set & ~any_busy),
                         w0_fresh.eq(~self.layers[0].busy)]
            comb = dict(zip(("bad", "now", "later"), head_status(k)))
            comb["after"] = Mux(head.end, T - 1, head.step) > k
            comb["direct"] = direct
            comb["due0"] = self.layers[0].wake <= k
            for l, layer in enumerate(self.layers):
                comb[f"wait{l}"] = layer.wake > k
            for key, v in comb.items():
                flags[key] = Signal(name=f"head_{key}")
                m.d.sync += flags[key].eq(v)

        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.sync += step_start.eq(0)
        m.d.comb += self.idle.eq(0)
        out = self.layers[-1]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(i_stream.valid):
                    m.d.comb += clear_stats.eq(1)
                    m.d.sync += [cycles.eq(1), counting.eq(1), in_spikes.eq(0), error.eq(0),
                                 k.eq(0), k1.eq(1), step_start.eq(1), learn_cycles.eq(0)]
                    m.d.comb += k_set.eq(1)
                    if learning:
                        bad_label = self.learn_label >= sizes[-1]
                        m.d.sync += [learn_active.eq(self.learn_en & ~bad_label),
                                     label_error.eq(self.learn_en & bad_label),
                                     label.eq(self.learn_label), lr_shift.eq(self.learn_shift),
                                     lfsr_k.eq(Mux(self.learn_k > MAX_LFSR_K, MAX_LFSR_K,
                                                   self.learn_k)),
                                     errors_only.eq(self.learn_errors_only),
                                     log_overflow.eq(0)]
                    else:
                        m.d.sync += [learn_active.eq(0), label_error.eq(0)]
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                for layer in self.layers:
                    m.d.comb += [layer.cmd.valid.eq(1), layer.cmd.payload.op.eq(RowOp.CLEAR)]
                m.next = "CLEAR_WAIT"
            with m.State("CLEAR_WAIT"):
                with m.If(sum(layer.busy for layer in self.layers) == 0):
                    m.next = "STEP_START"

            def accumulate_head():
                """Layer 0 takes the input event at the head (a row pass)."""
                l0 = self.layers[0]
                m.d.comb += [l0.cmd.valid.eq(1),
                             l0.cmd.payload.op.eq(RowOp.ACCUMULATE),
                             l0.cmd.payload.src.eq(head.index),
                             i_stream.ready.eq(l0.cmd.ready),
                             head_taken.eq(l0.cmd.ready)]

            def start_step(kk, stay):
                """Begin step ``kk`` (every layer idle, every FIFO empty):
                jump over steps in which nothing can happen, end a finished image, or issue the
                step's first commands. Each layer's ``wake`` is compared with ``kk`` on its own
                (no chain of minimums in the decision; the jump target is data)."""
                head_at = Mux(head.end, T - 1, head.step)
                if reg_head:         # kk is k (STEP_START only)
                    bad, now, later = flags["bad"], flags["now"], flags["later"]
                    waits = [flags[f"wait{l}"] for l in range(n_w)]
                    after, jump_direct, valid = flags["after"], flags["direct"], i_stream.valid & fresh
                else:
                    bad, now, later = head_status(kk)
                    # The first step at which some armed layer may fire without input.
                    waits = [layer.wake > kk for layer in self.layers]
                    after, jump_direct, valid = head_at > kk, direct, i_stream.valid

                def vmin(a, b):
                    return Mux(a < b, a, b)
                if self.layers[0].pipeline >= 4:
                    # A tree, without the clamp to T - 1: a jump needs ~bad, and then head_at
                    # is at most T - 1 (the same target, fewer compares in series).
                    level = [layer.wake for layer in self.layers] + [head_at]
                    while len(level) > 1:
                        level = ([vmin(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
                                 + level[len(level) - len(level) % 2:])
                    target = level[0]
                else:
                    target = head_at
                    for layer in self.layers:
                        target = vmin(target, layer.wake)
                    target = vmin(target, T - 1)
                with m.If(valid & ~any_armed & head.end):
                    # Input over and nothing armed: no neuron can ever fire again.
                    m.d.sync += [decided.eq(0), dstep.eq(T)]
                    m.next = "DRAIN"
                with m.Elif(valid & ~bad & later & after & (kk < T - 1) & Cat(*waits).all()):
                    # No input and no possible spike before ``target``: jump there. When that
                    # is the next input's step and no later layer scans then, the step starts
                    # at once with that input's row (layer 0's fire check is fused with it).
                    m.d.comb += k_set.eq(1)
                    with m.If(jump_direct):
                        m.d.sync += [k.eq(head.step), k1.eq(head_step1), issued0.eq(0)]
                        m.d.sync += [d.eq(0) for d in done]
                        accumulate_head()
                        m.next = "STEP"
                    with m.Else():
                        m.d.sync += k.eq(target)
                        if not reg_head:     # else STEP_START sets k1 while it waits
                            m.d.sync += k1.eq(target + 1)
                        m.next = "STEP_START"
                with m.Elif(valid):
                    # Layers after the first scan now if some neuron may fire: their check at
                    # step kk does not depend on the spikes that reach them during step kk.
                    # The first layer scans now if no input is due at step kk, else takes the
                    # step's first input event now. (Commands issued now reach the neurons
                    # two cycles later, when ``k`` is ``kk``.)
                    for l in range(1, n_w):
                        with m.If(~waits[l]):
                            m.d.comb += [self.layers[l].cmd.valid.eq(1),
                                         self.layers[l].cmd.payload.op.eq(RowOp.SCAN)]
                    l0 = self.layers[0]
                    m.d.sync += [issued0.eq(0), done[0].eq(later)] + [d.eq(0) for d in done[1:]]
                    with m.If(later & ~waits[0]):
                        m.d.comb += [l0.cmd.valid.eq(1), l0.cmd.payload.op.eq(RowOp.SCAN)]
                    with m.Elif(now):
                        accumulate_head()
                    m.next = "STEP"
                with m.Else():
                    m.next = stay

            with m.State("STEP_START"):
                if reg_head:
                    # k1 follows k here: a jump sets k alone, and the flags are not fresh in
                    # the cycle after it, so nothing reads k1 before it is k + 1.
                    m.d.sync += k1.eq(k + 1)
                start_step(k, "STEP_START")

            with m.State("STEP"):
                # Layer 0: the input events of step k, or one scan.
                l0 = self.layers[0]
                if reg_head:
                    h_valid, h_bad, h_now = i_stream.valid & head_fresh, flags["bad"], flags["now"]
                    due0, wait0 = flags["due0"] & w0_fresh, ~w0_fresh
                else:
                    h_valid, h_bad, h_now = i_stream.valid, head_bad, head_now
                    due0, wait0 = l0.wake <= k, 0
                with m.If(~done[0] & h_valid):
                    with m.If(h_bad):
                        m.d.comb += i_stream.ready.eq(1)
                        m.d.sync += error.eq(1)
                    with m.Elif(h_now):
                        accumulate_head()
                    with m.Else():     # head_later
                        with m.If(~issued0 & due0):
                            m.d.comb += [l0.cmd.valid.eq(1), l0.cmd.payload.op.eq(RowOp.SCAN)]
                            with m.If(l0.cmd.ready):
                                m.d.sync += done[0].eq(1)
                        with m.Elif(~issued0 & wait0):
                            pass       # layer 0's wake settles
                        with m.Else():
                            m.d.sync += done[0].eq(1)
                # Later layers: the spikes the layer before produced at step k. A layer is
                # finished when the one before it is finished and quiet and nothing is queued.
                finished = [Signal(name=f"finished{l}") for l in range(n_w)]
                for l in range(n_w):
                    m.d.comb += finished[l].eq(done[l])
                for l in range(1, n_w):
                    layer = self.layers[l]
                    f, lay = fifos[l - 1]
                    entry = lay(f.r_data)
                    cur_mask, cur_group, have, low = masks[l - 1]
                    with m.If(have):
                        m.d.comb += [layer.cmd.valid.eq(1),
                                     layer.cmd.payload.op.eq(RowOp.ACCUMULATE),
                                     layer.cmd.payload.src.eq(cur_group * self._lanes[l - 1] + low)]
                        with m.If(layer.cmd.ready):
                            m.d.sync += [cur_mask.eq(cur_mask & (cur_mask - 1)),
                                         have.eq((cur_mask & (cur_mask - 1)) != 0)]
                    with m.Elif(f.r_rdy):
                        m.d.comb += f.r_en.eq(1)
                        m.d.sync += [cur_mask.eq(entry.mask), cur_group.eq(entry.group),
                                     have.eq(1)]
                    with m.Elif(finished[l - 1] & quiet[l - 1] & (f.level == 0)):
                        m.d.comb += finished[l].eq(1)
                        m.d.sync += done[l].eq(1)
                # The step ends when the last layer is done and its passes are through.
                with m.If(finished[-1] & quiet[-1]):
                    with m.If(out.step_fired):
                        m.d.sync += [decided.eq(1), klass.eq(out.step_first), dstep.eq(k)]
                        m.next = "DRAIN"
                    with m.Elif(k == T - 1):
                        m.d.sync += [decided.eq(0), dstep.eq(T)]
                        m.next = "DRAIN"
                    with m.Else():
                        m.d.sync += [k.eq(k1), k1.eq(k1 + 1), step_start.eq(1)]
                        m.d.comb += k_set.eq(1)
                        if self.layers[0].pipeline >= 5:
                            # The next step's decisions in a cycle of their own: the end of
                            # this step and the start of the next are separate paths.
                            m.next = "STEP_START"
                        else:
                            start_step(k1, "STEP_START")

            with m.State("DRAIN"):
                m.d.comb += i_stream.ready.eq(1)
                with m.If(i_stream.valid & head.end):
                    if learning:
                        correct = decided & (klass == label)
                        with m.If(learn_active & ~log_overflow & ~(errors_only & correct)):
                            m.d.sync += [idx.eq(0), in_learn.eq(1)]
                            m.next = "LD_OUT_ADDR"
                        with m.Else():
                            m.d.sync += [counting.eq(0), error.eq(error | log_overflow)]
                            m.next = "RESULT"
                    else:
                        m.d.sync += counting.eq(0)
                        m.next = "RESULT"

            if learning:
                self._learning_states(m, sizes, n_w, T, decided, klass, label, idx, out_idx,
                                      trace_en, trace_addr, log_r, in_spikes, counting, in_learn)
            with m.State("RESULT"):
                p = self.o_stream.payload
                m.d.comb += [
                    self.o_stream.valid.eq(1),
                    p.decided.eq(decided),
                    p.klass.eq(klass),
                    p.decision_step.eq(dstep),
                    p.error.eq(error),
                    p.cycles.eq(cycles),
                    p.spikes[0].eq(in_spikes),
                    p.scan_cycles.eq(sum(layer.scan_cycles for layer in self.layers)),
                    p.label_error.eq(label_error),
                    p.learn_cycles.eq(learn_cycles),
                ]
                for l, layer in enumerate(self.layers):
                    m.d.comb += [p.spikes[l + 1].eq(layer.spikes), p.lookups[l].eq(layer.lookups)]
                with m.If(self.o_stream.ready):
                    m.next = "IDLE"

        with m.If(head_taken):
            m.d.sync += [issued0.eq(1), in_spikes.eq(in_spikes + 1)]
            if learning:
                with m.If(in_spikes < sizes[0]):
                    m.d.comb += [log_w.addr.eq(in_spikes), log_w.en.eq(1),
                                 log_w.data.index.eq(head.index),
                                 log_w.data.step.eq(head.step)]
                with m.Else():
                    m.d.sync += log_overflow.eq(1)

        # Weight and threshold writes, weight read-back, and the trace port.
        for l, layer in enumerate(self.layers):
            sel = self.idle & (self.w_layer == l)
            m.d.comb += [layer.w_en.eq(self.w_en & sel),
                         layer.w_src.eq(self.w_src), layer.w_dst.eq(self.w_dst),
                         layer.w_data.eq(self.w_data),
                         layer.rb_en.eq(self.rb_en & sel),
                         layer.rb_src.eq(self.w_src), layer.rb_dst.eq(self.w_dst),
                         layer.theta_w_en.eq(self.theta_en & sel),
                         layer.theta_w_data.eq(self.theta_data),
                         layer.trace_addr.eq(Mux(trace_en[l], trace_addr[l], self.trace_addr))]
        rb_sel = Signal.like(self.w_layer)
        m.d.sync += rb_sel.eq(self.w_layer)
        rb_words = [layer.rb_data for layer in self.layers]
        if self._rb_register:
            # Each layer's word into a register at the layer, then the layer mux.
            rb_regs = [Signal.like(w, name=f"rb_word{l}") for l, w in enumerate(rb_words)]
            rb_sel_r = Signal.like(rb_sel)
            m.d.sync += [r.eq(w) for r, w in zip(rb_regs, rb_words)]
            m.d.sync += rb_sel_r.eq(rb_sel)
            rb_words, rb_sel = rb_regs, rb_sel_r
        m.d.comb += self.rb_data.eq(Array(rb_words)[rb_sel])
        trace_sel = Signal.like(self.trace_layer)
        m.d.sync += trace_sel.eq(self.trace_layer)
        steps = Array([self.layers[0].trace_step] + [layer.trace_step for layer in self.layers])
        m.d.comb += self.trace_step.eq(steps[trace_sel])
        return m

    def _learning_states(self, m, sizes, n_w, T, decided, klass, label, idx, out_idx,
                         trace_en, trace_addr, log_r, in_spikes, counting, in_learn):
        """The learning phase, after the image's end marker (see the class docstring)."""
        out = self.layers[-1]
        # 1. Output deltas, from each output's spike step (trace port of the last layer).
        with m.State("LD_OUT_ADDR"):
            m.d.comb += [trace_en[-1].eq(1), trace_addr[-1].eq(idx)]
            m.next = "LD_OUT_DATA"
        with m.State("LD_OUT_DATA"):
            fired = out.trace_step != T
            is_label = idx == label
            delta = Signal(signed(2))
            with m.If(fired & ~is_label):
                m.d.comb += delta.eq(-1)
            with m.Elif(is_label & ~(decided & (klass == label))):
                m.d.comb += delta.eq(1)
            m.d.comb += [out.delta_w_en.eq(1), out.delta_w_addr.eq(idx), out.delta_w_data.eq(delta)]
            with m.If(idx == sizes[-1] - 1):
                m.d.sync += [idx.eq(0), out_idx.eq(0)]
                m.next = f"LD_HID{n_w - 1}" if n_w > 1 else "LU0_ADDR"
            with m.Else():
                m.d.sync += idx.eq(idx + 1)
                m.next = "LD_OUT_ADDR"
        # 2. Hidden deltas, top down: a DELTA pass over each neuron's row in the layer above.
        for l in range(n_w - 1, 0, -1):
            above, below, voter = self.layers[l], self.layers[l - 1], self.voters[l - 1]
            with m.State(f"LD_HID{l}"):
                with m.If(idx < sizes[l]):
                    m.d.comb += [above.cmd.valid.eq(1), above.cmd.payload.op.eq(RowOp.DELTA),
                                 above.cmd.payload.src.eq(idx)]
                    with m.If(above.cmd.ready):
                        m.d.sync += idx.eq(idx + 1)
                with m.If(voter.delta_valid):
                    m.d.comb += [below.delta_w_en.eq(1), below.delta_w_addr.eq(out_idx),
                                 below.delta_w_data.eq(voter.delta)]
                    m.d.sync += out_idx.eq(out_idx + 1)
                    with m.If(out_idx == sizes[l] - 1):
                        m.d.sync += [idx.eq(0), out_idx.eq(0)]
                        m.next = f"LD_HID{l - 1}" if l > 1 else "LU0_ADDR"
        # 3. Updates: a LEARN pass over the row of every source that fired.
        l0 = self.layers[0]
        m.d.comb += log_r.addr.eq(idx)      # the read port re-reads entry idx every cycle
        with m.State("LU0_ADDR"):
            with m.If(idx == in_spikes):
                m.d.sync += idx.eq(0)
                m.next = "LU1_WAIT" if n_w > 1 else "LEARN_WAIT"
            with m.Else():
                m.next = "LU0_CMD"
        with m.State("LU0_CMD"):
            m.d.comb += [l0.cmd.valid.eq(1), l0.cmd.payload.op.eq(RowOp.LEARN),
                         l0.cmd.payload.src.eq(log_r.data.index),
                         l0.cmd.payload.tag.eq(log_r.data.step)]
            with m.If(l0.cmd.ready):
                m.d.sync += idx.eq(idx + 1)
                m.next = "LU0_ADDR"
        for l in range(1, n_w):
            layer, below = self.layers[l], self.layers[l - 1]
            with m.State(f"LU{l}_WAIT"):
                # The layer below finishes its LEARN passes first (the update LFSR's order).
                with m.If(~below.busy):
                    m.next = f"LU{l}_ADDR"
            with m.State(f"LU{l}_ADDR"):
                with m.If(idx == sizes[l]):
                    m.d.sync += idx.eq(0)
                    m.next = f"LU{l + 1}_WAIT" if l + 1 < n_w else "LEARN_WAIT"
                with m.Else():
                    m.d.comb += [trace_en[l - 1].eq(1), trace_addr[l - 1].eq(idx)]
                    m.next = f"LU{l}_CMD"
            with m.State(f"LU{l}_CMD"):
                # Keep addressing neuron idx: the trace port re-reads it every cycle.
                m.d.comb += [trace_en[l - 1].eq(1), trace_addr[l - 1].eq(idx)]
                with m.If(below.trace_step == T):
                    m.d.sync += idx.eq(idx + 1)
                    m.next = f"LU{l}_ADDR"
                with m.Else():
                    m.d.comb += [layer.cmd.valid.eq(1), layer.cmd.payload.op.eq(RowOp.LEARN),
                                 layer.cmd.payload.src.eq(idx),
                                 layer.cmd.payload.tag.eq(below.trace_step)]
                    with m.If(layer.cmd.ready):
                        m.d.sync += idx.eq(idx + 1)
                        m.next = f"LU{l}_ADDR"
        with m.State("LEARN_WAIT"):
            with m.If(sum(layer.busy for layer in self.layers) == 0):
                m.d.sync += [counting.eq(0), in_learn.eq(0)]
                m.next = "RESULT"
