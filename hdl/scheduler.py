"""The step scheduler of the TTFS classifier: input events in, row commands to the layers,
the result out.

Schedule, one timestep ``k`` at a time, layers in order (the order of
:mod:`spikegate.golden.ttfs_discrete`):

* weight layer 0 takes the input events of step ``k`` straight from ``i_stream`` (they arrive
  in step order), one ``ACCUMULATE`` pass each; a later layer takes the spikes that the layer
  before it produced at step ``k`` (kept as lane-group fire masks in a small FIFO);
* a layer with no source spike at step ``k`` runs one ``SCAN`` pass, and only when some of
  its neurons may fire without new input (its ``wake`` is due); otherwise it is skipped;
* after the output layer, the first output spike decides; the rest of the image's events
  are drained and the result is sent (after the learning phase, when the image is learned).

When no layer may fire and no event is due, the step counter jumps to the next input's step
(or ends the image when the input has ended): idle timesteps cost nothing.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import lowest_set_bit
from .layouts import (RESULT_COUNT_BITS, ClassifierResultLayout, FireMaskLayout,
                      SpikeEventLayout)
from .signatures import LearnHandshake, TTFSSchedule, row_commands
from .spike_queue import StreamRegister
from .ttfs_layer import TTFSOp

__all__ = ["StepScheduler"]


class StepScheduler(wiring.Component):
    """Runs the images of a TTFS network through its layers, step by step.

    Parameters
    ----------
    sizes : tuple of int
        Neurons per layer, input first.
    lanes : tuple of int
        Lanes per weight layer.
    config : DiscreteConfig
        The time grid.
    timing : Timing
        Uses ``registered_head`` (the tests of the input head and of the wakes against the
        step are registers, which the decisions wait for after a new head, step or pass,
        and a step's start is a cycle of its own), ``tree_jump`` (the jump target as a
        tree of minimums), ``lazy_clear`` (an image starts, once every layer is idle, with
        ``clear_stats`` alone; else a ``CLEAR`` pass of every layer follows) and
        ``head_issue`` (a fire mask's lowest spike offered from the FIFO's head).
    learning : bool
        Hand the end of each learned image to a learning sequencer (``handshake``) and pass
        its row commands (``learn_cmd{l}``) to the layers meanwhile.

    Members
    -------
    i_stream : In(stream)
        :class:`SpikeEventLayout` beats (see :class:`~spikegate.hdl.classifier.TTFSClassifier`).
    o_stream : Out(stream)
        :class:`ClassifierResultLayout`, one beat per image.
    idle : Out(1)
        No image in progress.
    layer{l} : Out(TTFSSchedule)
        Weight layer ``l``'s :class:`~spikegate.hdl.signatures.TTFSSchedule` interface.
    learn_cmd{l} : In(stream) (``learning`` only)
        The learning sequencer's row commands for layer ``l``.
    handshake : Out(LearnHandshake) (``learning`` only)

    Latency: the result follows the image's end marker by the drain and, when learned, the
    learning phase; a timestep costs the row passes of its events, a scan per layer that may
    fire, and a few cycles per layer.
    """

    def __init__(self, sizes, lanes, config, timing, *, learning=False):
        self._sizes, self._lanes = tuple(sizes), tuple(lanes)
        self._config, self._timing, self._learning = config, timing, bool(learning)
        n_w = len(sizes) - 1
        T, step_bits = config.timesteps, config.step_bits
        members = {
            "i_stream": In(stream.Signature(SpikeEventLayout(sizes[0], step_bits))),
            "o_stream": Out(stream.Signature(ClassifierResultLayout(self._sizes, step_bits))),
            "idle": Out(1),
        }
        for l in range(n_w):
            members[f"layer{l}"] = Out(TTFSSchedule(sizes[l], sizes[l + 1], lanes[l], T, TTFSOp))
            if learning:
                members[f"learn_cmd{l}"] = In(row_commands(sizes[l], TTFSOp, step_bits))
        if learning:
            members["handshake"] = Out(LearnHandshake(sizes, step_bits))
        super().__init__(members)

    @property
    def layers(self):
        """The ``layer{l}`` interfaces, in order."""
        return [getattr(self, f"layer{l}") for l in range(len(self._sizes) - 1)]

    def _groups(self, l):
        return -(-self._sizes[l + 1] // self._lanes[l])

    def elaborate(self, platform):
        m = Module()
        self._m = m
        layers = self.layers
        n_w = len(layers)
        self._fifos = self._fire_fifos(m)

        self._k = k = Signal(self._config.step_bits)
        self._k1 = Signal(self._config.step_bits + 1)        # k + 1, kept in a register
        self._step_start = Signal()
        self._clear_stats = Signal()
        for layer in layers:
            m.d.comb += [layer.step.eq(k), layer.step_start.eq(self._step_start),
                         layer.clear_stats.eq(self._clear_stats),
                         # Only LEARN commands use the tag (the learning sequencer's);
                         # driving it from a signal rather than leaving it constant also
                         # keeps Yosys from emitting a constant-only ``always @*`` that
                         # Icarus never runs.
                         layer.cmd.payload.tag.eq(k)]

        # The input passes a register slice: nothing combinational reaches from the
        # producer (a host link, a protocol engine) into the layers' control, or back.
        m.submodules.in_reg = in_reg = StreamRegister(self.i_stream.payload.shape())
        wiring.connect(m, wiring.flipped(self.i_stream), in_reg.i_stream)
        self._in = in_reg.o_stream
        r = self._r = {
            "in_spikes": Signal(RESULT_COUNT_BITS), "error": Signal(),
            "cycles": Signal(RESULT_COUNT_BITS), "counting": Signal(), "decided": Signal(),
            "klass": Signal.like(self.o_stream.payload.klass),
            "dstep": Signal.like(self.o_stream.payload.decision_step),
        }
        self._no_learning = (Signal(name="label_error"), Signal.like(r["cycles"], name="learn_cycles"))
        self._any_armed = Signal()
        m.d.comb += self._any_armed.eq(Cat(*(layer.armed_any for layer in layers)).any())
        self._head_bad, self._head_now, _ = self._head_status(k)
        # Per layer and step: ``done`` = no more commands will be issued to it this step.
        self._done = [Signal(name=f"done{l}") for l in range(n_w)]
        self._issued0 = Signal()
        self._masks = self._mask_registers(m)
        # An input event taken by layer 0 (one place for its effects, from every state).
        self._head_taken = Signal()
        self._k_set = Signal()                   # k is written this cycle
        self._jump_inputs(m)

        with m.If(r["counting"]):
            m.d.sync += r["cycles"].eq(r["cycles"] + 1)
        m.d.sync += self._step_start.eq(0)
        m.d.comb += self.idle.eq(0)
        with m.FSM():
            self._image_states(m)
            with m.State("STEP_START"):
                if self._timing.registered_head:
                    # k1 follows k here: a jump sets k alone, and the flags are not fresh in
                    # the cycle after it, so nothing reads k1 before it is k + 1.
                    m.d.sync += self._k1.eq(k + 1)
                self._start_step(k, "STEP_START")
            with m.State("STEP"):
                self._step_state(m)
            self._end_states(m)

        with m.If(self._head_taken):
            m.d.sync += [self._issued0.eq(1), r["in_spikes"].eq(r["in_spikes"] + 1)]
        # A fire mask the FIFO refuses is a lost spike: never within the input contract
        # (each input at most once per image, proven in tests/formal/test_fire_queue.py), but
        # an input repeated many times can overflow layer 0's accumulators; then the result
        # says so (``error``) instead of losing the spike silently.
        for f, _ in self._fifos:
            with m.If(f.w_en & ~f.w_rdy):
                m.d.sync += r["error"].eq(1)
        if self._learning:
            hs = self.handshake
            head = self._in.payload
            m.d.comb += [hs.idle.eq(self.idle), hs.head_taken.eq(self._head_taken),
                         hs.head_index.eq(head.index), hs.head_step.eq(head.step),
                         hs.in_spikes.eq(r["in_spikes"]), hs.decided.eq(r["decided"]),
                         hs.klass.eq(r["klass"])]
        return m

    def _fire_fifos(self, m):
        """Fire-mask FIFOs between layers: at most one entry per lane group and step."""
        fifos = []
        for l in range(len(self._sizes) - 2):
            lay = FireMaskLayout(self._groups(l), self._lanes[l])
            # Buffered: its storage is a block RAM, not flip-flops and a wide read mux. Its
            # writes are never refused (no back-pressure on fire masks; proven for groups + 1
            # in tests/formal/test_fire_queue.py): the output register takes a cycle to
            # fill, so the memory holds a step's ``groups`` masks only with one entry more.
            f = fifo.SyncFIFOBuffered(width=lay.size, depth=self._groups(l) + 1)
            m.submodules[f"fires{l}"] = f
            fifos.append((f, lay))
            layer = self.layers[l]
            m.d.comb += [f.w_data.eq(layer.fire.as_value()), f.w_en.eq(layer.fire_valid)]
        return fifos

    def _mask_registers(self, m):
        """Per later layer: the fire mask being issued, its group, whether one is held, and
        its lowest lane; and (``_entry_lanes``) the lowest lane of the FIFO's head entry and
        the entry without it."""
        masks = []
        self._entry_lanes = []
        for l, (f, lay) in enumerate(self._fifos if self._timing.head_issue else ()):
            mask = Signal(self._lanes[l], name=f"entry_mask{l + 1}")
            rest = Signal(self._lanes[l], name=f"entry_rest{l + 1}")
            m.d.comb += [mask.eq(lay(f.r_data).mask), rest.eq(mask & (mask - 1))]
            self._entry_lanes.append((lowest_set_bit(m, mask, f"entry_low{l + 1}"), rest))
        for l in range(1, len(self._sizes) - 1):
            L = self._lanes[l - 1]      # the fire masks come from the layer before
            cur_mask = Signal(L, name=f"cur_mask{l}")
            cur_group = Signal(range(self._groups(l - 1)), name=f"cur_group{l}")
            have = Signal(name=f"have_mask{l}")
            low = lowest_set_bit(m, cur_mask, f"low_lane{l}")
            masks.append((cur_mask, cur_group, have, low))
        return masks

    def _head_status(self, kk):
        """(bad, now, later) of the input head relative to step ``kk``: an event that is out
        of range or late; an event of step ``kk``; the end marker or a later event."""
        head, T = self._in.payload, self._config.timesteps
        bad = ~head.end & ((head.index >= self._sizes[0]) | (head.step >= T) | (head.step < kk))
        return bad, ~head.end & ~bad & (head.step == kk), head.end | (~bad & (head.step > kk))

    def _jump_inputs(self, m):
        """What the jump decision reads: whether a jump may go straight to the head event's
        step (no layer may fire before it, and no later layer at it), and with
        ``registered_head`` the registered tests of the head and the wakes against ``k``,
        computed every cycle; ``fresh`` says they describe the head, ``k`` and the wakes of
        this cycle (none changed at the last edge)."""
        head, k, T = self._in.payload, self._k, self._config.timesteps
        layers = self.layers
        self._direct = Signal()
        self._head_step1 = Signal.like(self._k1)
        m.d.comb += [self._direct.eq(~head.end & (layers[0].wake >= head.step) &
                                     Cat(*(layer.wake > head.step for layer in layers[1:])).all()),
                     self._head_step1.eq(head.step + 1)]
        self._flags = flags = {}
        if not self._timing.registered_head:
            return
        self._head_fresh, self._fresh, self._w0_fresh = Signal(), Signal(), Signal()
        moves = self._in.ready | ~self._in.valid
        any_busy = Cat(*(layer.busy for layer in layers)).any()
        m.d.sync += [self._head_fresh.eq(~moves & ~self._k_set),
                     self._fresh.eq(~moves & ~self._k_set & ~any_busy),
                     self._w0_fresh.eq(~layers[0].busy)]
        comb = dict(zip(("bad", "now", "later"), self._head_status(k)))
        comb["after"] = Mux(head.end, T - 1, head.step) > k
        comb["direct"] = self._direct
        comb["due0"] = layers[0].wake <= k
        for l, layer in enumerate(layers):
            comb[f"wait{l}"] = layer.wake > k
        for key, v in comb.items():
            flags[key] = Signal(name=f"head_{key}")
            m.d.sync += flags[key].eq(v)

    def _accumulate_head(self):
        """Layer 0 takes the input event at the head (a row pass)."""
        l0 = self.layers[0]
        self._m.d.comb += [l0.cmd.valid.eq(1),
                           l0.cmd.payload.op.eq(TTFSOp.ACCUMULATE),
                           l0.cmd.payload.src.eq(self._in.payload.index),
                           self._in.ready.eq(l0.cmd.ready),
                           self._head_taken.eq(l0.cmd.ready)]

    def _jump_target(self, head_at):
        """The earliest step at which a layer may fire or an input is due."""
        def vmin(a, b):
            return Mux(a < b, a, b)
        if self._timing.tree_jump:
            # A tree, without the clamp to T - 1: a jump needs ~bad, and then head_at is at
            # most T - 1 (the same target, fewer compares in series).
            level = [layer.wake for layer in self.layers] + [head_at]
            while len(level) > 1:
                level = ([vmin(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
                         + level[len(level) - len(level) % 2:])
            return level[0]
        target = head_at
        for layer in self.layers:
            target = vmin(target, layer.wake)
        return vmin(target, self._config.timesteps - 1)

    def _start_step(self, kk, stay):
        """Begin step ``kk`` (every layer idle, every FIFO empty): jump over steps in which
        nothing can happen, end a finished image, or issue the step's first commands. Each
        layer's ``wake`` is compared with ``kk`` on its own (no chain of minimums in the
        decision; the jump target is data)."""
        m, r, k, T = self._m, self._r, self._k, self._config.timesteps
        head = self._in.payload
        layers, done = self.layers, self._done
        head_at = Mux(head.end, T - 1, head.step)
        if self._timing.registered_head:         # kk is k (STEP_START only)
            flags = self._flags
            bad, now, later = flags["bad"], flags["now"], flags["later"]
            waits = [flags[f"wait{l}"] for l in range(len(layers))]
            after, jump_direct = flags["after"], flags["direct"]
            valid = self._in.valid & self._fresh
        else:
            bad, now, later = self._head_status(kk)
            # The first step at which some armed layer may fire without input.
            waits = [layer.wake > kk for layer in layers]
            after, jump_direct, valid = head_at > kk, self._direct, self._in.valid
        target = self._jump_target(head_at)
        with m.If(valid & ~self._any_armed & head.end):
            # Input over and nothing armed: no neuron can ever fire again.
            m.d.sync += [r["decided"].eq(0), r["dstep"].eq(T)]
            m.next = "DRAIN"
        with m.Elif(valid & ~bad & later & after & (kk < T - 1) & Cat(*waits).all()):
            # No input and no possible spike before ``target``: jump there. When that is
            # the next input's step and no later layer scans then, the step starts at once
            # with that input's row (layer 0's fire check is fused with it).
            m.d.comb += self._k_set.eq(1)
            with m.If(jump_direct):
                m.d.sync += [k.eq(head.step), self._k1.eq(self._head_step1),
                             self._issued0.eq(0)]
                m.d.sync += [d.eq(0) for d in done]
                self._accumulate_head()
                m.next = "STEP"
            with m.Else():
                m.d.sync += k.eq(target)
                if not self._timing.registered_head:   # else STEP_START sets k1 while it waits
                    m.d.sync += self._k1.eq(target + 1)
                m.next = "STEP_START"
        with m.Elif(valid):
            # Layers after the first scan now if some neuron may fire: their check at step kk
            # does not depend on the spikes that reach them during step kk. The first layer
            # scans now if no input is due at step kk, else takes the step's first input
            # event now. (Commands issued now reach the neurons two cycles later, when ``k``
            # is ``kk``.)
            for l in range(1, len(layers)):
                with m.If(~waits[l]):
                    m.d.comb += [layers[l].cmd.valid.eq(1),
                                 layers[l].cmd.payload.op.eq(TTFSOp.SCAN)]
            m.d.sync += [self._issued0.eq(0), done[0].eq(later)] + [d.eq(0) for d in done[1:]]
            with m.If(later & ~waits[0]):
                m.d.comb += [layers[0].cmd.valid.eq(1), layers[0].cmd.payload.op.eq(TTFSOp.SCAN)]
            with m.Elif(now):
                self._accumulate_head()
            m.next = "STEP"
        with m.Else():
            m.next = stay

    def _step_state(self, m):
        """Step ``k``: layer 0's input events (or one scan), the later layers' fire masks,
        then the decision or the next step."""
        r, k, T = self._r, self._k, self._config.timesteps
        layers, done, n_w = self.layers, self._done, len(self.layers)
        l0, out = layers[0], layers[-1]
        quiet = [~layer.busy for layer in layers]
        if self._timing.registered_head:
            flags = self._flags
            h_valid, h_bad, h_now = self._in.valid & self._head_fresh, flags["bad"], flags["now"]
            due0, wait0 = flags["due0"] & self._w0_fresh, ~self._w0_fresh
        else:
            h_valid, h_bad, h_now = self._in.valid, self._head_bad, self._head_now
            due0, wait0 = l0.wake <= k, 0
        with m.If(~done[0] & h_valid):
            with m.If(h_bad):
                m.d.comb += self._in.ready.eq(1)
                m.d.sync += r["error"].eq(1)
            with m.Elif(h_now):
                self._accumulate_head()
            with m.Else():     # head_later
                with m.If(~self._issued0 & due0):
                    m.d.comb += [l0.cmd.valid.eq(1), l0.cmd.payload.op.eq(TTFSOp.SCAN)]
                    with m.If(l0.cmd.ready):
                        m.d.sync += done[0].eq(1)
                with m.Elif(~self._issued0 & wait0):
                    pass       # layer 0's wake settles
                with m.Else():
                    m.d.sync += done[0].eq(1)
        # Later layers: the spikes the layer before produced at step k. A layer is finished
        # when the one before it is finished and quiet and nothing is queued.
        finished = [Signal(name=f"finished{l}") for l in range(n_w)]
        for l in range(n_w):
            m.d.comb += finished[l].eq(done[l])
        for l in range(1, n_w):
            layer = layers[l]
            f, lay = self._fifos[l - 1]
            entry = lay(f.r_data)
            cur_mask, cur_group, have, low = self._masks[l - 1]
            e_low, e_rest = self._entry_lanes[l - 1] if self._timing.head_issue else (None, None)
            with m.If(have):
                m.d.comb += [layer.cmd.valid.eq(1),
                             layer.cmd.payload.op.eq(TTFSOp.ACCUMULATE),
                             layer.cmd.payload.src.eq(cur_group * self._lanes[l - 1] + low)]
                with m.If(layer.cmd.ready):
                    m.d.sync += [cur_mask.eq(cur_mask & (cur_mask - 1)),
                                 have.eq((cur_mask & (cur_mask - 1)) != 0)]
            with m.Elif(f.r_rdy):
                m.d.comb += f.r_en.eq(1)
                if self._timing.head_issue:
                    # The entry's lowest spike is offered straight from the FIFO's output
                    # register (no cycle to load the mask first) while the entry is read into
                    # the mask register, less that spike when the layer takes it (the FIFO's
                    # read does not wait for the layer: its control is the same as without
                    # the offer).
                    m.d.comb += [layer.cmd.valid.eq(1),
                                 layer.cmd.payload.op.eq(TTFSOp.ACCUMULATE),
                                 layer.cmd.payload.src.eq(entry.group * self._lanes[l - 1] + e_low)]
                    m.d.sync += cur_group.eq(entry.group)
                    with m.If(layer.cmd.ready):
                        m.d.sync += [cur_mask.eq(e_rest), have.eq(e_rest != 0)]
                    with m.Else():
                        m.d.sync += [cur_mask.eq(entry.mask), have.eq(1)]
                else:
                    m.d.sync += [cur_mask.eq(entry.mask), cur_group.eq(entry.group), have.eq(1)]
            with m.Elif(finished[l - 1] & quiet[l - 1] & (f.level == 0)):
                m.d.comb += finished[l].eq(1)
                m.d.sync += done[l].eq(1)
        # The step ends when the last layer is done and its passes are through.
        with m.If(finished[-1] & quiet[-1]):
            with m.If(out.step_fired):
                m.d.sync += [r["decided"].eq(1), r["klass"].eq(out.step_first), r["dstep"].eq(k)]
                m.next = "DRAIN"
            with m.Elif(k == T - 1):
                m.d.sync += [r["decided"].eq(0), r["dstep"].eq(T)]
                m.next = "DRAIN"
            with m.Else():
                m.d.sync += [k.eq(self._k1), self._k1.eq(self._k1 + 1),
                             self._step_start.eq(1)]
                m.d.comb += self._k_set.eq(1)
                if self._timing.registered_head:
                    # The next step's decisions in a cycle of their own: the end of this
                    # step and the start of the next are separate paths.
                    m.next = "STEP_START"
                else:
                    self._start_step(self._k1, "STEP_START")

    def _image_states(self, m):
        """IDLE: an image starts; ``clear_stats`` clears the statistics and every layer's
        state: with the timing's ``lazy_clear`` in the layers, in no cycle (the first step
        starts in the next cycle), else by a ``CLEAR`` pass of every layer (states CLEAR and
        CLEAR_WAIT)."""
        r, layers = self._r, self.layers
        lazy = self._timing.lazy_clear
        with m.State("IDLE"):
            m.d.comb += self.idle.eq(1)
            # With the lazy clear an image starts only when every layer is idle (a layer can
            # be busy between images: the binary-input layer's threshold table after a
            # theta write); the CLEAR pass waits for them in CLEAR_WAIT.
            start = self._in.valid
            if lazy:
                start &= sum(layer.busy for layer in layers) == 0
            with m.If(start):
                m.d.comb += [self._clear_stats.eq(1), self._k_set.eq(1)]
                m.d.sync += [r["cycles"].eq(1), r["counting"].eq(1), r["in_spikes"].eq(0),
                             r["error"].eq(0), self._k.eq(0), self._k1.eq(1),
                             self._step_start.eq(1)]
                if self._learning:
                    m.d.comb += self.handshake.image_start.eq(1)
                else:
                    # Registers, not constants: Yosys would put a constant into an
                    # ``always @*`` of constants only, which Icarus never runs (X results).
                    m.d.sync += [self._no_learning[0].eq(0), self._no_learning[1].eq(0)]
                m.next = "STEP_START" if lazy else "CLEAR"
        if not lazy:
            with m.State("CLEAR"):
                for layer in layers:
                    m.d.comb += [layer.cmd.valid.eq(1), layer.cmd.payload.op.eq(TTFSOp.CLEAR)]
                m.next = "CLEAR_WAIT"
            with m.State("CLEAR_WAIT"):
                with m.If(sum(layer.busy for layer in layers) == 0):
                    m.next = "STEP_START"

    def _end_states(self, m):
        """DRAIN (the rest of the image's events), LEARN (the learning sequencer runs) and
        RESULT."""
        r, layers = self._r, self.layers
        with m.State("DRAIN"):
            m.d.comb += self._in.ready.eq(1)
            with m.If(self._in.valid & self._in.payload.end):
                if self._learning:
                    hs = self.handshake
                    with m.If(hs.go):
                        m.d.comb += hs.start.eq(1)
                        m.next = "LEARN"
                    with m.Else():
                        m.d.sync += [r["counting"].eq(0), r["error"].eq(r["error"] |
                                                                        hs.log_overflow)]
                        m.next = "RESULT"
                else:
                    m.d.sync += r["counting"].eq(0)
                    m.next = "RESULT"
        if self._learning:
            with m.State("LEARN"):
                # The learning sequencer's row commands go to the layers.
                for l, layer in enumerate(layers):
                    cmd = getattr(self, f"learn_cmd{l}")
                    m.d.comb += [layer.cmd.valid.eq(cmd.valid), layer.cmd.payload.eq(cmd.payload),
                                 cmd.ready.eq(layer.cmd.ready)]
                with m.If(self.handshake.done):
                    m.d.sync += r["counting"].eq(0)
                    m.next = "RESULT"
        with m.State("RESULT"):
            p = self.o_stream.payload
            m.d.comb += [
                self.o_stream.valid.eq(1),
                p.decided.eq(r["decided"]),
                p.klass.eq(r["klass"]),
                p.decision_step.eq(r["dstep"]),
                p.error.eq(r["error"]),
                p.cycles.eq(r["cycles"]),
                p.spikes[0].eq(r["in_spikes"]),
                p.scan_cycles.eq(sum(layer.scan_cycles for layer in layers)),
            ]
            if self._learning:
                m.d.comb += [p.label_error.eq(self.handshake.label_error),
                             p.learn_cycles.eq(self.handshake.learn_cycles)]
            else:
                m.d.comb += [p.label_error.eq(self._no_learning[0]),
                             p.learn_cycles.eq(self._no_learning[1])]
            for l, layer in enumerate(layers):
                m.d.comb += [p.spikes[l + 1].eq(layer.spikes), p.lookups[l].eq(layer.lookups)]
            with m.If(self.o_stream.ready):
                m.next = "IDLE"
