"""The board protocol's gateware: frame parser (CRC, length, timeout), command dispatcher
driving the classifier's ports, reply encoder. The protocol itself (framing, commands,
errors, payload layouts) is :mod:`spikegate.boards.protocol`; this module implements it from
the same constants, enums and layouts.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.boards.protocol import (CRC_INIT, MAX_CHUNK, REPLY_SYNC, SYNC, VERSION, ChunkHeader,
                                       ClassifyReply, Command, DeviceInfo, StatsReply, Status,
                                       ThetaPayload, TrainHeader, MAX_LFSR_K, MAX_LR_SHIFT, crc16_update, encode_identify, max_payload)
from spikegate.golden.fixed import unsigned_bits
from spikegate.golden.ttfs_discrete import THETA_BITS, THETA_MAX, WEIGHT_BITS, DiscreteConfig
from .layouts import ClassifierResultLayout, SpikeEventLayout, index_bits
from .params import checking

__all__ = ["ProtocolEngine"]


class _Source(enum.Enum, shape=3):
    """Where the bytes of a reply's payload come from."""
    NONE = 0
    IDENT = 1
    STATS = 2
    RESULT = 3
    READ = 4


_RX_STATES = ("HUNT", "CMD", "LEN0", "LEN1", "PAYLOAD", "CRC0", "CRC1")


class ProtocolEngine(wiring.Component):
    """Receives request frames from a byte stream, carries them out on the classifier's
    ports and sends the reply frames (protocol version :data:`~spikegate.boards.protocol.VERSION`).

    A frame's payload is stored in a buffer of ``max_payload(sizes[0], max_chunk)`` bytes
    (one block RAM for digits-sized inputs) and nothing is written to the classifier before
    the whole frame has arrived and passed every check. Weight chunks are checked by a dry
    walk over their addresses before they are written (no divider needed); image events are
    checked (index, step, order) before the first one is sent.

    Latency: the reply starts 2 to ``2 * count + 4`` cycles after the last CRC byte (plus the
    classification for CLASSIFY / TRAIN). Throughput: one byte per cycle in and out; the
    UART is the limit. Bytes that arrive while a request is carried out or its reply is sent
    are dropped and answered by one BUSY reply after that reply.

    Parameters
    ----------
    sizes : sequence of int
        Neurons per layer, input first (each at most 65535).
    lanes : sequence of int
        Lanes per weight layer (reported by IDENTIFY).
    config : DiscreteConfig
        The classifier's time grid (at most 256 timesteps: a step travels as one byte).
    clk_freq_hz : int
        Reported by IDENTIFY.
    timeout_cycles : int
        A frame is abandoned (TIMEOUT reply) after this many cycles without a byte.
    learning : bool
        The classifier has the learning unit (TRAIN is carried out, else UNSUPPORTED).
    max_chunk : int
        Largest weight chunk (1 to 65535; default :data:`~spikegate.boards.protocol.MAX_CHUNK`).
    result_layout : data.StructLayout, optional
        The classifier's result layout (default :class:`ClassifierResultLayout`); a field
        ``label_error`` is reported in bit 1 of the reply's flags.
    rb_register : bool
        Register ``rb_data`` before the reply's byte mux (READ_WEIGHTS bytes leave one cycle
        later): the classifier's read-back is then the only logic before a register, for
        clock speed (the ECP5 board builds).
    rb_latency : int
        Cycles from ``rb_en`` to the weight on ``rb_data`` (the classifier's
        :attr:`~spikegate.hdl.classifier.TTFSClassifier.rb_latency`; default 1).

    Members
    -------
    i_stream : In(stream.Signature(8))
        Bytes from the UART receiver (always ready).
    o_stream : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    ev_stream, res_stream : Out, In
        To the classifier's ``i_stream`` and from its ``o_stream``.
    idle, w_en, w_layer, w_src, w_dst, w_data, rb_en, rb_data, theta_en, theta_data
        To the classifier's ports of the same names.
    learn_en, learn_label, learn_shift, learn_k, learn_errors_only : Out
        To the learning unit (``learn_en`` high for the whole image of a TRAIN request).
    busy : Out(1)
        A request is being carried out or answered.
    error : Out(1)
        The last reply had an error status.
    """

    def __init__(self, sizes, lanes, config, *, clk_freq_hz, timeout_cycles, learning=False,
                 max_chunk=MAX_CHUNK, result_layout=None, rb_register=False, rb_latency=1):
        with checking(self):
            sizes = tuple(sizes)
            if len(sizes) < 2 or not all(isinstance(s, int) and 1 <= s <= 0xFFFF for s in sizes):
                raise ValueError(f"sizes must be at least two integers from 1 to 65535, not {sizes!r}")
            if not isinstance(config, DiscreteConfig):
                raise TypeError(f"config must be a DiscreteConfig, not {config!r}")
            if config.timesteps > 256:
                raise ValueError(f"the protocol sends a step as one byte: at most 256 timesteps, "
                                 f"not {config.timesteps}")
            if not isinstance(timeout_cycles, int) or timeout_cycles < 2:
                raise ValueError(f"timeout_cycles must be an integer >= 2, not {timeout_cycles!r}")
            if not isinstance(rb_latency, int) or rb_latency < 1:
                raise ValueError(f"rb_latency must be a positive integer, not {rb_latency!r}")
            if not isinstance(max_chunk, int) or not 1 <= max_chunk <= 0xFFFF:
                raise ValueError(f"max_chunk must be an integer from 1 to 65535, not {max_chunk!r}")
            self._info = DeviceInfo(VERSION, sizes, lanes, clk_freq_hz, config.timesteps,
                                    config.dt, config.z_frac_bits, learning,
                                    max_payload(sizes[0], max_chunk), max_chunk)
            self._ident = encode_identify(self._info)
        self._sizes = sizes
        self._config = config
        self._timeout = timeout_cycles
        self._learning = bool(learning)
        self._max_chunk = max_chunk
        self._rb_register = bool(rb_register)
        self._rb_latency = rb_latency
        self._result_layout = result_layout or ClassifierResultLayout(sizes, config.step_bits)
        n_w = len(sizes) - 1
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "o_stream": Out(stream.Signature(8)),
            "ev_stream": Out(stream.Signature(SpikeEventLayout(sizes[0], config.step_bits))),
            "res_stream": In(stream.Signature(self._result_layout)),
            "idle": In(1),
            "w_en": Out(1),
            "w_layer": Out(index_bits(n_w)),
            "w_src": Out(index_bits(max(sizes[:-1]))),
            "w_dst": Out(index_bits(max(sizes[1:]))),
            "w_data": Out(WEIGHT_BITS),
            "rb_en": Out(1),
            "rb_data": In(WEIGHT_BITS),
            "theta_en": Out(1),
            "theta_data": Out(THETA_BITS),
            "learn_en": Out(1),
            "learn_label": Out(index_bits(sizes[-1])),
            "learn_shift": Out(3),
            "learn_k": Out(4),
            "learn_errors_only": Out(1),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def info(self):
        """The :class:`~spikegate.boards.protocol.DeviceInfo` that IDENTIFY reports."""
        return self._info

    @property
    def buffer_bytes(self):
        return self._info.max_payload

    def elaborate(self, platform):
        m = Module()
        sizes = self._sizes
        n_w = len(sizes) - 1
        T = self._config.timesteps
        BUF = self._info.max_payload
        ident = self._ident

        m.submodules.buf = buf = memory.Memory(shape=8, depth=BUF, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        byte = self.i_stream.payload
        rx = self.i_stream.valid
        m.d.comb += self.i_stream.ready.eq(1)

        cmd = Signal(8)
        length = Signal(16)
        count = Signal(16)            # payload bytes received / reply bytes sent
        crc = Signal(16, init=CRC_INIT)
        crc_in = Signal(8)
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_update(crc, crc_in))
        crc_bad = Signal()           # a CRC byte differed (compared as it arrives)
        hdr = Signal(ChunkHeader())   # the first 7 payload bytes
        hdr_bits = hdr.as_value()
        theta = ThetaPayload()(hdr_bits[:24])
        train_hdr = TrainHeader()(hdr_bits[:24])
        label = train_hdr.label
        mod3 = Signal(2)              # payload length mod 3
        timer = Signal(range(self._timeout + 1))
        overrun = Signal()
        status = Signal(Status)
        source = Signal(_Source)
        reply_len = Signal(16)
        # Index of a reply byte taken from a constant or a register (IDENT, STATS, RESULT).
        small = Signal(range(max(len(ident), 8, ClassifyReply(len(sizes)).size // 8)))
        m.d.comb += small.eq(count)
        tx_byte = Signal(8)
        rb_data = Signal.like(self.rb_data)      # the weight read back, registered or not
        if self._rb_register:
            m.d.sync += rb_data.eq(self.rb_data)
        else:
            m.d.comb += rb_data.eq(self.rb_data)
        ptr = Signal(range(BUF + 1))
        m.d.comb += [rd.addr.eq(ptr), wr.addr.eq(count), wr.data.eq(byte)]

        # The weight walker: (wsrc, wdst) row-major over layer hdr.layer, ``left`` to go.
        n_in_of = Array(Const(sizes[l], 17) for l in range(n_w))
        n_out_of = Array(Const(sizes[l + 1], 17) for l in range(n_w))
        n_in_l = n_in_of[hdr.layer]
        n_out_l = n_out_of[hdr.layer]
        wsrc = Signal(range(max(sizes[:-1]) + 1))
        wdst = Signal(range(max(sizes[1:])))
        left = Signal(range(self._max_chunk + 1))

        def advance():
            with m.If(wdst == n_out_l - 1):
                m.d.sync += [wdst.eq(0), wsrc.eq(wsrc + 1)]
            with m.Else():
                m.d.sync += wdst.eq(wdst + 1)
            m.d.sync += left.eq(left - 1)

        m.d.comb += [self.w_layer.eq(hdr.layer), self.w_src.eq(wsrc), self.w_dst.eq(wdst),
                     self.theta_data.eq(theta.theta), self.learn_label.eq(label),
                     self.learn_shift.eq(train_hdr.lr_shift), self.learn_k.eq(train_hdr.lfsr_k),
                     self.learn_errors_only.eq(train_hdr.errors_only)]

        # Image events: collected three bytes at a time; checked in one pass, sent in a second.
        ev = Signal(24)
        ev_j = Signal(2)
        ev_send = Signal()
        prev_step = Signal(8)
        is_train = Signal()
        ev_index, ev_step = ev[:16], ev[16:]
        ev_p = self.ev_stream.payload

        # Statistics and the classification reply.
        stats = Signal(StatsReply())
        res = self.res_stream.payload
        reply = Signal(ClassifyReply(len(sizes)))
        label_error = res.label_error if "label_error" in self._result_layout.members else 0
        m.d.comb += [reply.decided.eq(res.decided), reply.klass.eq(res.klass),
                     reply.decision_step.eq(res.decision_step),
                     reply.flags.eq(Cat(res.error, label_error)),
                     reply.cycles.eq(res.cycles)]
        # Spike and lookup counts cannot exceed these bounds (a neuron fires once; an image
        # has at most max_events events): only their low bits reach the reply's byte mux.
        max_events = BUF // 3
        max_spikes = [max_events] + list(sizes[1:])
        for i in range(len(sizes)):
            m.d.comb += reply.spikes[i].eq(res.spikes[i][:unsigned_bits(max_spikes[i])])
        for i in range(n_w):
            bound = max_spikes[i] * sizes[i + 1]
            m.d.comb += reply.lookups[i].eq(res.lookups[i][:unsigned_bits(bound)])
        if "learn_cycles" in self._result_layout.members:
            m.d.comb += reply.learn_cycles.eq(res.learn_cycles)
        reply_bytes = ClassifyReply(len(sizes)).size // 8
        ident_rom = Const(int.from_bytes(ident, "little"), 8 * len(ident))

        def send_reply(st, src=_Source.NONE, n=0):
            m.d.sync += [status.eq(st), source.eq(src), reply_len.eq(n)]
            m.next = "R_SYNC"

        def fail(st):
            send_reply(st)

        def frame_timer():
            """Inside a frame: a byte restarts the timer; silence ends the frame."""
            with m.If(rx):
                m.d.sync += timer.eq(0)
            with m.Elif(timer == self._timeout - 1):
                m.d.sync += [status.eq(Status.TIMEOUT), source.eq(_Source.NONE),
                             reply_len.eq(0), timer.eq(0)]
                m.next = "R_SYNC"
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        # The frame's checks, registered: they read only ``cmd``, ``length``, ``mod3`` and
        # ``hdr``, which are final two cycles or more before CHECK (the two CRC bytes come
        # after them), so CHECK sees registers and only dispatches (clock speed).
        len_ok_c = Signal()
        with m.Switch(cmd):
            with m.Case(Command.IDENTIFY, Command.STATS, Command.RESET_STATS):
                m.d.comb += len_ok_c.eq(length == 0)
            with m.Case(Command.LOAD_WEIGHTS):
                m.d.comb += len_ok_c.eq(length == hdr.count + 7)
            with m.Case(Command.READ_WEIGHTS):
                m.d.comb += len_ok_c.eq(length == 7)
            with m.Case(Command.LOAD_THETA):
                m.d.comb += len_ok_c.eq(length == 3)
            with m.Case(Command.CLASSIFY):
                m.d.comb += len_ok_c.eq(mod3 == 0)
            with m.Case(Command.TRAIN):
                m.d.comb += len_ok_c.eq((mod3 == 0) & (length >= 3))
        known = Signal()
        length_ok = Signal()
        chunk_ok = Signal()
        theta_ok = Signal()
        train_bad = Signal()
        layer_ok = hdr.layer < n_w
        m.d.sync += [
            known.eq(Cat(cmd == c.value for c in Command).any()),
            length_ok.eq((length <= BUF) & len_ok_c),
            chunk_ok.eq(layer_ok & (hdr.src < n_in_l) & (hdr.dst < n_out_l)
                        & (hdr.count != 0) & (hdr.count <= self._max_chunk)),
            theta_ok.eq((theta.layer < n_w) & (theta.theta != 0) & (theta.theta <= THETA_MAX)),
            train_bad.eq((label >= sizes[-1]) | (train_hdr.lr_shift > MAX_LR_SHIFT) |
                         (train_hdr.lfsr_k > MAX_LFSR_K)),
        ]

        with m.FSM() as fsm:
            # -------- receive a frame
            with m.State("HUNT"):
                with m.If(rx & (byte == SYNC)):
                    m.d.sync += [crc.eq(CRC_INIT), cmd.eq(0), timer.eq(0)]
                    m.next = "CMD"
            for state, nxt in (("CMD", "LEN0"), ("LEN0", "LEN1")):
                with m.State(state):
                    frame_timer()
                    with m.If(rx):
                        m.d.comb += crc_in.eq(byte)
                        m.d.sync += crc.eq(crc_next)
                        if state == "CMD":
                            m.d.sync += cmd.eq(byte)
                        else:
                            m.d.sync += length[:8].eq(byte)
                        m.next = nxt
            with m.State("LEN1"):
                frame_timer()
                with m.If(rx):
                    m.d.comb += crc_in.eq(byte)
                    m.d.sync += [crc.eq(crc_next), length[8:].eq(byte), count.eq(0), mod3.eq(0)]
                    with m.If((length[:8] == 0) & (byte == 0)):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                frame_timer()
                with m.If(rx):
                    m.d.comb += [crc_in.eq(byte), wr.en.eq(count < BUF)]
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1),
                                 mod3.eq(Mux(mod3 == 2, 0, mod3 + 1))]
                    with m.If(count < 7):
                        m.d.sync += hdr_bits.word_select(count[:3], 8).eq(byte)
                    with m.If(count + 1 == length):
                        m.next = "CRC0"
            with m.State("CRC0"):
                frame_timer()
                with m.If(rx):
                    m.d.sync += crc_bad.eq(byte != crc[:8])
                    m.next = "CRC1"
            with m.State("CRC1"):
                frame_timer()
                with m.If(rx):
                    m.d.sync += crc_bad.eq(crc_bad | (byte != crc[8:]))
                    m.next = "CHECK"

            # -------- check and dispatch
            with m.State("CHECK"):
                with m.If(crc_bad):
                    fail(Status.BAD_CRC)
                with m.Elif(~known):
                    fail(Status.BAD_COMMAND)
                with m.Elif(~length_ok):
                    fail(Status.BAD_LENGTH)
                with m.Elif((cmd == Command.TRAIN) & (not self._learning)):
                    fail(Status.UNSUPPORTED)
                with m.Else():
                    with m.Switch(cmd):
                        with m.Case(Command.IDENTIFY):
                            send_reply(Status.OK, _Source.IDENT, len(ident))
                        with m.Case(Command.STATS):
                            send_reply(Status.OK, _Source.STATS, StatsReply().size // 8)
                        with m.Case(Command.RESET_STATS):
                            m.d.sync += stats.eq(0)
                            send_reply(Status.OK)
                        with m.Case(Command.LOAD_THETA):
                            with m.If(theta_ok):
                                m.d.comb += self.theta_en.eq(1)
                                send_reply(Status.OK)
                            with m.Else():
                                fail(Status.OUT_OF_RANGE)
                        with m.Case(Command.LOAD_WEIGHTS, Command.READ_WEIGHTS):
                            with m.If(chunk_ok):
                                m.d.sync += [wsrc.eq(hdr.src), wdst.eq(hdr.dst),
                                             left.eq(hdr.count)]
                                m.next = "WALK"
                            with m.Else():
                                fail(Status.OUT_OF_RANGE)
                        with m.Case(Command.CLASSIFY, Command.TRAIN):
                            train = cmd == Command.TRAIN
                            with m.If(train & train_bad):
                                fail(Status.OUT_OF_RANGE)
                            with m.Else():
                                m.d.sync += [ptr.eq(Mux(train, 3, 0)), prev_step.eq(0),
                                             ev_j.eq(0), ev_send.eq(0), is_train.eq(train)]
                                m.next = "EV_ADDR"

            # -------- weight chunks: a dry walk over the addresses, then the real one
            with m.State("WALK"):
                with m.If(left == 0):
                    m.d.sync += [wsrc.eq(hdr.src), wdst.eq(hdr.dst), left.eq(hdr.count),
                                 ptr.eq(7)]
                    with m.If(cmd == Command.LOAD_WEIGHTS):
                        m.next = "WR_ADDR"
                    with m.Else():
                        send_reply(Status.OK, _Source.READ, hdr.count)
                with m.Elif(wsrc >= n_in_l):
                    fail(Status.OUT_OF_RANGE)
                with m.Else():
                    advance()
            with m.State("WR_ADDR"):
                m.next = "WR_DATA"
            with m.State("WR_DATA"):
                m.d.comb += [self.w_en.eq(1), self.w_data.eq(rd.data)]
                m.d.sync += ptr.eq(ptr + 1)
                advance()
                with m.If(left == 1):
                    send_reply(Status.OK)
                with m.Else():
                    m.next = "WR_ADDR"

            # -------- image events: check all, then send all and the end marker
            with m.State("EV_ADDR"):
                with m.If(ptr == length):
                    with m.If(ev_send):
                        m.next = "EV_END"
                    with m.Else():
                        m.d.sync += [ptr.eq(Mux(is_train, 3, 0)), ev_send.eq(1)]
                with m.Else():
                    m.next = "EV_DATA"
            with m.State("EV_DATA"):
                m.d.sync += [ev.word_select(ev_j, 8).eq(rd.data), ptr.eq(ptr + 1)]
                with m.If(ev_j == 2):
                    m.d.sync += ev_j.eq(0)
                    m.next = "EV_USE"
                with m.Else():
                    m.d.sync += ev_j.eq(ev_j + 1)
                    m.next = "EV_ADDR"
            with m.State("EV_USE"):
                with m.If(ev_send):
                    m.d.comb += [self.ev_stream.valid.eq(1), ev_p.index.eq(ev_index),
                                 ev_p.step.eq(ev_step), ev_p.end.eq(0)]
                    with m.If(self.ev_stream.ready):
                        m.next = "EV_ADDR"
                with m.Elif((ev_index >= sizes[0]) | (ev_step >= T) | (ev_step < prev_step)):
                    fail(Status.OUT_OF_RANGE)
                with m.Else():
                    m.d.sync += prev_step.eq(ev_step)
                    m.next = "EV_ADDR"
            with m.State("EV_END"):
                m.d.comb += [self.ev_stream.valid.eq(1), ev_p.end.eq(1)]
                with m.If(self.ev_stream.ready):
                    m.next = "EV_WAIT"
            with m.State("EV_WAIT"):
                with m.If(self.res_stream.valid):
                    send_reply(Status.OK, _Source.RESULT, reply_bytes)

            # -------- send the reply
            def put(value, nxt, *, update_crc=True):
                m.d.comb += [self.o_stream.valid.eq(1), self.o_stream.payload.eq(value)]
                with m.If(self.o_stream.ready):
                    if update_crc:
                        m.d.comb += crc_in.eq(value)
                        m.d.sync += crc.eq(crc_next)
                    m.next = nxt

            with m.State("R_SYNC"):
                put(REPLY_SYNC, "R_CMD", update_crc=False)
                with m.If(self.o_stream.ready):
                    m.d.sync += crc.eq(CRC_INIT)
            with m.State("R_CMD"):
                put(cmd, "R_STATUS")
            with m.State("R_STATUS"):
                put(status, "R_LEN0")
            with m.State("R_LEN0"):
                put(reply_len[:8], "R_LEN1")
            with m.State("R_LEN1"):
                put(reply_len[8:], "R_FETCH")
                m.d.sync += count.eq(0)
                with m.If(self.o_stream.ready & (reply_len == 0)):
                    m.next = "R_CRC0"
            # Wait states after R_FETCH: one per cycle of read-back latency beyond the first,
            # and one for the register; rb_data is valid in R_FETCH2.
            waits = self._rb_latency - 1 + self._rb_register
            with m.State("R_FETCH"):
                m.d.comb += self.rb_en.eq(source == _Source.READ)
                m.next = "R_FETCH_RB0" if waits else "R_FETCH2"
            for i in range(waits):
                with m.State(f"R_FETCH_RB{i}"):
                    m.next = f"R_FETCH_RB{i + 1}" if i + 1 < waits else "R_FETCH2"
            with m.State("R_FETCH2"):
                with m.Switch(source):
                    with m.Case(_Source.IDENT):
                        m.d.sync += tx_byte.eq(ident_rom.word_select(small, 8))
                    with m.Case(_Source.STATS):
                        m.d.sync += tx_byte.eq(stats.as_value().word_select(small, 8))
                    with m.Case(_Source.RESULT):
                        m.d.sync += tx_byte.eq(reply.as_value().word_select(small, 8))
                    with m.Case(_Source.READ):
                        m.d.sync += tx_byte.eq(rb_data)
                m.next = "R_DATA"
            with m.State("R_DATA"):
                put(tx_byte, "R_FETCH")
                with m.If(self.o_stream.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(source == _Source.READ):
                        advance()
                    with m.If(count + 1 == reply_len):
                        m.next = "R_CRC0"
            with m.State("R_CRC0"):
                put(crc[:8], "R_CRC1", update_crc=False)
            with m.State("R_CRC1"):
                put(crc[8:], "R_END", update_crc=False)
            with m.State("R_END"):
                with m.If(source == _Source.RESULT):
                    m.d.comb += self.res_stream.ready.eq(1)
                    m.d.sync += stats.images.eq(stats.images + 1)
                with m.If(status != Status.OK):
                    m.d.sync += stats.errors.eq(stats.errors + 1)
                m.d.sync += self.error.eq(status != Status.OK)
                with m.If(overrun):
                    m.d.sync += [overrun.eq(0), cmd.eq(0)]
                    send_reply(Status.BUSY)
                with m.Else():
                    m.next = "HUNT"

        receiving = Cat(fsm.ongoing(s) for s in _RX_STATES).any()
        # learn_en holds from the first event of a TRAIN image until the next CLASSIFY or
        # TRAIN is checked: the classifier samples it whenever its image starts.
        m.d.comb += [self.learn_en.eq(is_train & ev_send),
                     self.busy.eq(~fsm.ongoing("HUNT"))]
        # Bytes that arrive while a request is carried out or answered.
        with m.If(rx & ~receiving):
            m.d.sync += overrun.eq(1)
        return m

