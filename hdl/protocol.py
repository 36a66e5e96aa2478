"""The board protocol's gateware: frame parser (CRC, length, timeout), command dispatcher
driving the classifier's ports, reply encoder. The protocol itself (framing, commands,
errors, payload layouts) is :mod:`spikegate.hdl.protocol_spec`, beside it; this module
implements it from the same constants, enums and layouts. The engine drives the classifier
through the :class:`~spikegate.hdl.signatures.ModelPort` and
:class:`~spikegate.hdl.signatures.LearnControl` signatures.

The receive, check, weight, event and reply states are each emitted by a method of their
own into one state machine; the signals they share live in one namespace built by
:meth:`ProtocolEngine._signals`.

A watchdog bounds the wait for the classifier (:func:`result_bound`): an image it has not
answered in time is given up on with a ``TIMEOUT`` reply, and its late result is dropped
(see :class:`ProtocolEngine`).
"""

import numbers
import types

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.ttfs_discrete import THETA_MAX, DiscreteConfig
from .layouts import ClassifierResultLayout, SpikeEventLayout
from .params import checking
from .protocol_spec import (CRC_INIT, MAX_CHUNK, MAX_LFSR_K, MAX_LR_SHIFT, SYNC,
                            VERSION, ChunkHeader, ClassifyReply, Command, DeviceInfo,
                            StatsReply,
                            Status, ThetaPayload, TrainHeader, crc16_update, encode_identify,
                            max_payload)
from .signatures import LearnControl, ModelPort
from .protocol_reply import Source as _Source, reply_content, reply_states
from .timing import Timing

__all__ = ["ProtocolEngine", "result_bound", "crc16_network", "PASS_SLACK", "STEP_SLACK"]

#: Cycles a row pass of a layer may take beyond its ``ceil(n_dst / lanes)`` beats, for
#: :func:`result_bound`: the pass latency (2, plus one per register cut of the
#: :class:`~spikegate.hdl.timing.Timing`, at most 5), the idle cycles that space the rows of a
#: layer with fewer lane groups than its write distance (at most 2), and as much again.
PASS_SLACK = 16
#: Cycles a timestep may take per layer beyond its passes, for :func:`result_bound`: the
#: step's start, the jump decision, the registered head's waits, the fire FIFO's latency.
STEP_SLACK = 16


def result_bound(sizes, lanes, timesteps, max_events, *, learning=False):
    """A safe bound on the cycles from the first event of an image offered to a
    :class:`~spikegate.hdl.classifier.TTFSClassifier` to its result: the default of the
    :class:`ProtocolEngine`'s watchdog.

    The work of one image is counted pass by pass from the classifier's documented
    schedule, each pass of weight layer ``l`` costing its ``G_l = ceil(sizes[l + 1] /
    lanes[l])`` beats plus :data:`PASS_SLACK`:

    * per weight layer, one row pass per source spike (layer 0: every event of the image,
      at most ``max_events``, duplicates included; a later layer: every neuron of the
      layer before it, each fires at most once), one scan per timestep, the clear pass,
      and one cycle per fire mask taken from the layer before;
    * :data:`STEP_SLACK` per timestep and layer (and once more per timestep);
    * the drain of the image's remaining events (one per cycle);
    * with ``learning``, the learning phase as the sequencer's docstring states it: two
      cycles per output neuron, a ``DELTA`` row per hidden neuron, two cycles per logged
      event or hidden neuron, and a ``LEARN`` read-modify-write row (counted as two
      passes) per source that fired.

    The bound is twice that work, plus eight cycles per event (the engine offers an event
    every seven cycles, so the classifier may wait that long for each) and 1024. The
    classifier's reported ``cycles`` stay well under half of it in the tests
    (``tests/amaranth/test_protocol.py``, images with the most events the buffer takes, no
    decision, every timing level's cuts).

    Parameters
    ----------
    sizes, lanes : sequence of int
        Neurons per layer (input first) and lanes per weight layer.
    timesteps : int
    max_events : int
        The most events an image can have (the engine's buffer bytes // 3).
    learning : bool
        Include the learning phase (TRAIN).
    """
    sizes, lanes = tuple(sizes), tuple(lanes)
    n_w = len(sizes) - 1
    groups = [-(-sizes[l + 1] // lanes[l]) for l in range(n_w)]
    passes = [g + PASS_SLACK for g in groups]
    sources = [max_events] + list(sizes[1:-1])
    work = sum((sources[l] + timesteps + 1) * passes[l] for l in range(n_w))
    work += sum(sources[1:]) + timesteps * STEP_SLACK * (n_w + 1) + max_events
    if learning:
        hidden = sum(sizes[1:-1])
        work += 2 * sizes[-1] + sum(sizes[l] * passes[l] for l in range(1, n_w))
        work += 2 * (max_events + hidden)
        work += sum(sources[l] * (groups[l] + passes[l]) for l in range(n_w))
    return 2 * work + 8 * max_events + 1024


def crc16_network(crc, byte):
    """:func:`~spikegate.hdl.protocol_spec.crc16_update` of a 16-bit ``crc`` and an 8-bit
    ``byte`` (Amaranth values) as an XOR network, 16 bits wide.

    ``crc16_update`` itself takes Amaranth values too, but it reads its running value
    twice per bit, and the Verilog backend does not share the repeated subexpression:
    ``2**8`` copies of the first step (half of the engine's Verilog; half the board top's
    simulation time under Verilator). The update is linear over GF(2), so each output bit
    is the XOR of the input bits whose unit vectors set it, and those are found with
    ``crc16_update`` itself (on Python ints): still the one definition."""
    inputs = [crc[i] for i in range(16)] + [byte[i] for i in range(8)]
    columns = ([crc16_update(1 << i, 0) for i in range(16)] +
               [crc16_update(0, 1 << i) for i in range(8)])
    assert crc16_update(0, 0) == 0      # linear: no constant term
    return Cat(*(Cat(*(b for b, col in zip(inputs, columns) if (col >> k) & 1)).xor()
                 for k in range(16)))


_RX_STATES = ("HUNT", "CMD", "LEN0", "LEN1", "PAYLOAD", "CRC0", "CRC1")


class ProtocolEngine(wiring.Component):
    """Receives request frames from a byte stream, carries them out on the classifier's
    ports and sends the reply frames (protocol version :data:`~spikegate.hdl.protocol_spec.VERSION`).

    A frame's payload is stored in a buffer of ``buffer_bytes`` bytes
    (one block RAM for digits-sized inputs) and nothing is written to the classifier before
    the whole frame has arrived and passed every check. Weight chunks are checked by a dry
    walk over their addresses before they are written (no divider needed); image events are
    checked (index, step, order) before the first one is sent.

    CLASSIFY_BATCH is checked like CLASSIFY (every record, the step order restarting after
    each marker, the last record a marker); then each image is sent, its end marker, and its
    result written as a :class:`~spikegate.hdl.protocol_spec.BatchResult` into the payload
    buffer over records already read (image ``k``'s 3 bytes at ``3 * k``, never past its own
    marker), three cycles; the reply's payload is read back from the buffer. Each image has
    the watchdog's full bound; a batch one of whose images is given up on is answered
    ``TIMEOUT`` (its results so far are dropped).

    Latency: the reply's first byte leaves 1 to ``3 * count + 2`` cycles after CHECK (the
    cycle after the last CRC byte) for a weight chunk of ``count`` weights, or after up to
    seven cycles per event and ``result_timeout_cycles`` more for CLASSIFY / TRAIN: at most
    :attr:`reply_bound_cycles` in all (proven, with ``o_stream`` always ready).
    Throughput: one byte per cycle in and out; the UART is the limit. Bytes that arrive while a request is carried out or its reply is sent
    are dropped and answered by one BUSY reply after that reply.

    Watchdog: from the first event of a CLASSIFY or TRAIN image offered to the classifier,
    the engine waits at most ``result_timeout_cycles`` for the classifier to take the
    events and answer. When they pass (a hung or broken classifier: the default bound,
    :func:`result_bound`, is far above any real classification) the engine replies
    ``TIMEOUT`` (the status of a frame given up on; the protocol has no status of its own
    for this) and hunts for the next frame. The image given up on is finished in the
    background, as the stream rules require: the beat on offer stays on offer until taken,
    then the end marker follows (the rest of the image is not sent), and its result is
    taken and dropped whenever it comes, so it never answers a later request. Until then
    the classifier is not idle, and a request that needs it (LOAD_WEIGHTS, READ_WEIGHTS,
    LOAD_THETA, CLASSIFY, TRAIN) that passes every other check is answered ``BUSY`` and
    changes nothing (the classifier takes no model write while an image is in progress);
    IDENTIFY, STATS and RESET_STATS are answered as usual. ``learn.en`` drops when the
    engine gives up, so a TRAIN image is learned from (as far as it was sent) only if the
    classifier had started it and ever finishes it.

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
        Largest weight chunk (1 to 65535; default :data:`~spikegate.hdl.protocol_spec.MAX_CHUNK`).
    result_timeout_cycles : int, optional
        The watchdog's bound, in cycles (at least 2; default :func:`result_bound` of the
        sizes, lanes, timesteps, buffer and ``learning``: :attr:`result_timeout_cycles`).
    result_layout : data.StructLayout, optional
        The classifier's result layout (default :class:`ClassifierResultLayout`); a field
        ``label_error`` is reported in bit 1 of the reply's flags.
    buffer_bytes : int, optional
        Bytes of the payload buffer, the largest LEN taken (IDENTIFY's ``max_payload``):
        at least and by default ``max_payload(sizes[0], max_chunk)``; more lets a
        CLASSIFY_BATCH carry more images.
    timing : Timing
        The design's :class:`~spikegate.hdl.timing.Timing`: a READ_WEIGHTS byte waits the
        classifier's read-back latency (:attr:`~spikegate.hdl.timing.Timing.rb_latency`: one
        cycle more with ``rb_register``, two more with weight banks); with ``rb_register``
        the engine registers ``rb_data`` again before the reply's byte mux (one cycle more;
        the classifier's read-back is then the only logic before a register, for clock
        speed).

    Members
    -------
    i_stream : In(stream.Signature(8))
        Bytes from the UART receiver (always ready).
    o_stream : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    ev_stream, res_stream : Out, In
        To the classifier's ``i_stream`` and from its ``o_stream``.
    model : Out(ModelPort)
        To the classifier's :class:`~spikegate.hdl.signatures.ModelPort`.
    learn : Out(LearnControl) (``learning`` only)
        To the classifier's learning sequencer (``en`` high for the whole image of a TRAIN
        request; ``lfsr_seed`` with every weight written: a training run starts from a
        loaded model, so the update LFSR restarts).
    busy : Out(1)
        A request is being carried out or answered (an image given up on by the watchdog
        and still in the classifier does not count).
    error : Out(1)
        The last reply had an error status.
    """

    def __init__(self, sizes, lanes, config, *, clk_freq_hz, timeout_cycles, learning=False,
                 max_chunk=MAX_CHUNK, result_timeout_cycles=None, result_layout=None,
                 timing=None, buffer_bytes=None):
        timing = Timing() if timing is None else timing
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
            if not isinstance(timing, Timing):
                raise TypeError(f"timing must be a Timing, not {timing!r}")
            if not isinstance(max_chunk, int) or not 1 <= max_chunk <= 0xFFFF:
                raise ValueError(f"max_chunk must be an integer from 1 to 65535, not {max_chunk!r}")
            lanes = tuple(lanes)
            if len(lanes) != len(sizes) - 1 or not all(isinstance(x, numbers.Integral) and
                                                       1 <= x <= 255 for x in lanes):
                raise ValueError(f"lanes must be {len(sizes) - 1} integers from 1 to 255 (one per "
                                 f"weight layer), not {lanes!r}")
            lanes = tuple(int(x) for x in lanes)
            least = max_payload(sizes[0], max_chunk)
            if buffer_bytes is None:
                buffer_bytes = least
            if (isinstance(buffer_bytes, bool) or not isinstance(buffer_bytes, int)
                    or not least <= buffer_bytes <= 0xFFFF):
                raise ValueError(f"buffer_bytes must be an integer from {least} (max_payload) "
                                 f"to 65535, not {buffer_bytes!r}")
            if result_timeout_cycles is None:
                result_timeout_cycles = result_bound(
                    sizes, lanes, config.timesteps, buffer_bytes // 3, learning=learning)
            if not isinstance(result_timeout_cycles, int) or result_timeout_cycles < 2:
                raise ValueError(f"result_timeout_cycles must be an integer >= 2, not "
                                 f"{result_timeout_cycles!r}")
            self._info = DeviceInfo(VERSION, sizes, lanes, clk_freq_hz, config.timesteps,
                                    config.dt, config.z_frac_bits, learning,
                                    buffer_bytes, max_chunk)
            self._ident = encode_identify(self._info)
        self._sizes = sizes
        self._config = config
        self._timeout = timeout_cycles
        self._result_timeout = result_timeout_cycles
        self._learning = bool(learning)
        self._max_chunk = max_chunk
        self._timing = timing
        self._result_layout = result_layout or ClassifierResultLayout(sizes, config.step_bits)
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "o_stream": Out(stream.Signature(8)),
            "ev_stream": Out(stream.Signature(SpikeEventLayout(sizes[0], config.step_bits))),
            "res_stream": In(stream.Signature(self._result_layout)),
            "model": Out(ModelPort(sizes)),
            **({"learn": Out(LearnControl(sizes[-1]))} if learning else {}),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def info(self):
        """The :class:`~spikegate.hdl.protocol_spec.DeviceInfo` that IDENTIFY reports."""
        return self._info

    @property
    def buffer_bytes(self):
        return self._info.max_payload

    @property
    def reply_bound_cycles(self):
        """Cycles from a frame's end (the cycle after its last CRC byte, or after the
        silence that abandoned it) to the first byte of its reply, at most, whatever bytes
        arrive and whatever the classifier does, with ``o_stream`` always ready (proven in
        ``tests/formal/test_protocol_engine.py``): the larger of

        * ``2 + (7 * buffer_bytes) // 3 + result_timeout_cycles + (buffer_bytes // 3) *
          (result_timeout_cycles + 3)``: CLASSIFY, TRAIN or CLASSIFY_BATCH, the check pass
          (seven cycles per three payload bytes) and the step into the send pass, then per
          image of a batch (at most one per record) the watchdog and three cycles to store
          its result, and the watchdog once more (a bound: CLASSIFY and TRAIN have no
          stored image, a batch no watchdog after its last);
        * ``2 + 3 * max_chunk``: LOAD_WEIGHTS, the dry walk (a cycle per weight) and the
          write (two per weight).

        Every other request is answered within 2 cycles (CHECK, then the reply), and a
        frame abandoned by silence at once."""
        buf, rt = self.buffer_bytes, self._result_timeout
        return max(2 + (7 * buf) // 3 + rt + (buf // 3) * (rt + 3), 2 + 3 * self._max_chunk)

    @property
    def result_timeout_cycles(self):
        """The watchdog's bound: cycles from an image's first event offered to the
        classifier to its result."""
        return self._result_timeout

    def elaborate(self, platform):
        m = Module()
        v = self._signals(m)
        self._checks(m, v)
        with m.FSM() as fsm:
            self._receive_states(m, v)
            self._check_state(m, v)
            self._weight_states(m, v)
            self._event_states(m, v)
            reply_states(self, m, v)
        self._abandoned_image(m, v)
        receiving = Cat(fsm.ongoing(s) for s in _RX_STATES).any()
        if self._learning:
            # learn.en holds from the first event of a TRAIN image until the next CLASSIFY or
            # TRAIN is checked, or the watchdog gives the image up: the classifier samples it
            # whenever its image starts. A
            # training run starts from a loaded model: the update LFSR restarts.
            m.d.comb += [self.learn.en.eq(v.is_train & v.ev_send),
                         self.learn.lfsr_seed.eq(self.model.w_en)]
        m.d.comb += [self.busy.eq(~fsm.ongoing("HUNT")), v.storing.eq(fsm.ongoing("EV_STORE"))]
        # Bytes that arrive while a request is carried out or answered.
        with m.If(v.rx & ~receiving):
            m.d.sync += v.overrun.eq(1)
        return m

    def _receive_states(self, m, v):
        """A frame's bytes: sync, command, length, payload (into the buffer), CRC."""
        # -------- receive a frame
        with m.State("HUNT"):
            with m.If(v.rx & (v.byte == SYNC)):
                m.d.sync += [v.crc.eq(CRC_INIT), v.cmd.eq(0), v.timer.eq(0)]
                m.next = "CMD"
        for state, nxt in (("CMD", "LEN0"), ("LEN0", "LEN1")):
            with m.State(state):
                v.frame_timer()
                with m.If(v.rx):
                    m.d.comb += v.crc_in.eq(v.byte)
                    m.d.sync += v.crc.eq(v.crc_next)
                    if state == "CMD":
                        m.d.sync += v.cmd.eq(v.byte)
                    else:
                        m.d.sync += v.length[:8].eq(v.byte)
                    m.next = nxt
        with m.State("LEN1"):
            v.frame_timer()
            with m.If(v.rx):
                m.d.comb += v.crc_in.eq(v.byte)
                m.d.sync += [v.crc.eq(v.crc_next), v.length[8:].eq(v.byte), v.count.eq(0), v.mod3.eq(0)]
                with m.If((v.length[:8] == 0) & (v.byte == 0)):
                    m.next = "CRC0"
                with m.Else():
                    m.next = "PAYLOAD"
        with m.State("PAYLOAD"):
            v.frame_timer()
            with m.If(v.rx):
                m.d.comb += [v.crc_in.eq(v.byte), v.wr.en.eq(v.count < v.BUF)]
                m.d.sync += [v.crc.eq(v.crc_next), v.count.eq(v.count + 1),
                             v.mod3.eq(Mux(v.mod3 == 2, 0, v.mod3 + 1))]
                with m.If(v.count < 7):
                    m.d.sync += v.hdr_bits.word_select(v.count[:3], 8).eq(v.byte)
                with m.If(v.count + 1 == v.length):
                    m.next = "CRC0"
        with m.State("CRC0"):
            v.frame_timer()
            with m.If(v.rx):
                m.d.sync += v.crc_bad.eq(v.byte != v.crc[:8])
                m.next = "CRC1"
        with m.State("CRC1"):
            v.frame_timer()
            with m.If(v.rx):
                m.d.sync += v.crc_bad.eq(v.crc_bad | (v.byte != v.crc[8:]))
                m.next = "CHECK"

    def _check_state(self, m, v):
        """CHECK: the frame's verdict from the registered checks, and its dispatch."""
        # -------- check and dispatch
        with m.State("CHECK"):
            with m.If(v.crc_bad):
                v.fail(Status.BAD_CRC)
            with m.Elif(~v.known):
                v.fail(Status.BAD_COMMAND)
            with m.Elif(~v.length_ok):
                v.fail(Status.BAD_LENGTH)
            with m.Elif((v.cmd == Command.TRAIN) & (not self._learning)):
                v.fail(Status.UNSUPPORTED)
            with m.Else():
                with m.Switch(v.cmd):
                    with m.Case(Command.IDENTIFY):
                        v.send_reply(Status.OK, _Source.IDENT, len(v.ident))
                    with m.Case(Command.STATS):
                        v.send_reply(Status.OK, _Source.STATS, StatsReply().size // 8)
                    with m.Case(Command.RESET_STATS):
                        m.d.sync += v.stats.eq(0)
                        v.send_reply(Status.OK)
                    with m.Case(Command.LOAD_THETA):
                        with m.If(~v.theta_ok):
                            v.fail(Status.OUT_OF_RANGE)
                        with m.Elif(v.clf_busy):
                            v.fail(Status.BUSY)
                        with m.Else():
                            m.d.comb += self.model.theta_en.eq(1)
                            v.send_reply(Status.OK)
                    with m.Case(Command.LOAD_WEIGHTS, Command.READ_WEIGHTS):
                        with m.If(v.chunk_ok):
                            m.d.sync += [v.wsrc.eq(v.hdr.src), v.wdst.eq(v.hdr.dst),
                                         v.left.eq(v.hdr.count)]
                            m.next = "WALK"
                        with m.Else():
                            v.fail(Status.OUT_OF_RANGE)
                    with m.Case(Command.CLASSIFY, Command.TRAIN, Command.CLASSIFY_BATCH):
                        train = v.cmd == Command.TRAIN
                        with m.If(train & v.train_bad):
                            v.fail(Status.OUT_OF_RANGE)
                        with m.Else():
                            m.d.sync += [v.ptr.eq(Mux(train, 3, 0)), v.prev_step.eq(0),
                                         v.ev_j.eq(0), v.ev_send.eq(0), v.is_train.eq(train),
                                         v.is_batch.eq(v.cmd == Command.CLASSIFY_BATCH),
                                         v.marked.eq(0), v.wptr.eq(0)]
                            m.next = "EV_ADDR"

    def _weight_states(self, m, v):
        """Weight chunks: a dry walk over the addresses, then the real one."""
        # -------- weight chunks: a dry walk over the addresses, then the real one
        with m.State("WALK"):
            with m.If((v.left == 0) & v.clf_busy):
                v.fail(Status.BUSY)
            with m.Elif(v.left == 0):
                m.d.sync += [v.wsrc.eq(v.hdr.src), v.wdst.eq(v.hdr.dst), v.left.eq(v.hdr.count),
                             v.ptr.eq(7)]
                with m.If(v.cmd == Command.LOAD_WEIGHTS):
                    m.next = "WR_ADDR"
                with m.Else():
                    v.send_reply(Status.OK, _Source.READ, v.hdr.count)
            with m.Elif(v.wsrc >= v.n_in_l):
                v.fail(Status.OUT_OF_RANGE)
            with m.Else():
                v.advance()
        with m.State("WR_ADDR"):
            m.next = "WR_DATA"
        with m.State("WR_DATA"):
            m.d.comb += [self.model.w_en.eq(1), self.model.w_data.eq(v.rd.data)]
            m.d.sync += v.ptr.eq(v.ptr + 1)
            v.advance()
            with m.If(v.left == 1):
                v.send_reply(Status.OK)
            with m.Else():
                m.next = "WR_ADDR"

    def _event_states(self, m, v):
        """Image events: check all, then send all and the end marker; wait for the result
        (the watchdog runs from the first event sent to the result)."""
        # -------- image events: check all, then send all and the end marker
        with m.State("EV_ADDR"):
            with m.If(v.ptr == v.length):
                with m.If(v.ev_send & v.is_batch):
                    # every image classified: the results are in the buffer
                    m.d.sync += v.ev_send.eq(0)
                    v.send_reply(Status.OK, _Source.BUF, v.wptr)
                with m.Elif(v.ev_send):
                    m.next = "EV_END"
                with m.Elif(v.is_batch & ~v.marked):
                    v.fail(Status.OUT_OF_RANGE)
                with m.Elif(v.clf_busy):
                    v.fail(Status.BUSY)
                with m.Else():
                    m.d.sync += [v.ptr.eq(Mux(v.is_train, 3, 0)), v.ev_send.eq(1), v.wd.eq(0),
                                 v.ev_j.eq(0)]
            with m.Else():
                m.next = "EV_DATA"
            with m.If(v.ev_send):
                v.watchdog(owe_event=0, owe_end=1)
        with m.State("EV_DATA"):
            m.d.sync += [v.ev.word_select(v.ev_j, 8).eq(v.rd.data), v.ptr.eq(v.ptr + 1)]
            with m.If(v.ev_j == 2):
                m.d.sync += v.ev_j.eq(0)
                m.next = "EV_USE"
            with m.Else():
                m.d.sync += v.ev_j.eq(v.ev_j + 1)
                m.next = "EV_ADDR"
            with m.If(v.ev_send):
                v.watchdog(owe_event=0, owe_end=1)
        with m.State("EV_USE"):
            with m.If(v.ev_send & v.is_batch & v.marker):
                # the end of an image of a batch
                m.next = "EV_END"
                v.watchdog(owe_event=0, owe_end=1)
            with m.Elif(v.ev_send):
                m.d.comb += [self.ev_stream.valid.eq(1), v.ev_p.index.eq(v.ev_index),
                             v.ev_p.step.eq(v.ev_step), v.ev_p.end.eq(0)]
                with m.If(self.ev_stream.ready):
                    m.next = "EV_ADDR"
                v.watchdog(owe_event=~self.ev_stream.ready, owe_end=1)
            with m.Elif(v.is_batch & v.marker):
                m.d.sync += [v.prev_step.eq(0), v.marked.eq(1)]
                m.next = "EV_ADDR"
            with m.Elif((v.ev_index >= v.sizes[0]) | (v.ev_step >= v.T) | (v.ev_step < v.prev_step)):
                v.fail(Status.OUT_OF_RANGE)
            with m.Else():
                m.d.sync += [v.prev_step.eq(v.ev_step), v.marked.eq(0)]
                m.next = "EV_ADDR"
        with m.State("EV_END"):
            m.d.comb += [self.ev_stream.valid.eq(1), v.ev_p.end.eq(1)]
            with m.If(self.ev_stream.ready):
                m.next = "EV_WAIT"
            v.watchdog(owe_event=0, owe_end=~self.ev_stream.ready)
        with m.State("EV_WAIT"):
            with m.If(self.res_stream.valid & v.is_batch):
                m.d.sync += v.ev_j.eq(0)
                m.next = "EV_STORE"
            with m.Elif(self.res_stream.valid):
                v.send_reply(Status.OK, _Source.RESULT, v.reply_bytes)
            with m.Else():
                v.watchdog(owe_event=0, owe_end=0)
        with m.State("EV_STORE"):
            # A batch image's result, into the buffer over records already read (the
            # image's results end at 3 * images <= its marker's end), a byte per cycle;
            # then the next image, with the watchdog's count restarted.
            m.d.comb += [v.wr.en.eq(1), v.wr.addr.eq(v.wptr),
                         v.wr.data.eq(v.batch_res.as_value().word_select(v.ev_j, 8))]
            m.d.sync += [v.wptr.eq(v.wptr + 1), v.ev_j.eq(v.ev_j + 1)]
            with m.If(v.ev_j == 2):
                m.d.comb += self.res_stream.ready.eq(1)
                m.d.sync += [v.ev_j.eq(0), v.wd.eq(0), v.stats.images.eq(v.stats.images + 1)]
                m.next = "EV_ADDR"

    def _abandoned_image(self, m, v):
        """The rest of an image the watchdog gave up on, outside the state machine: the
        beat that was on offer (held, as the stream rules require), then the end marker,
        then its result, taken and dropped. The event states are not entered meanwhile
        (``clf_busy``), so nothing else drives ``ev_stream``."""
        with m.If(v.owe_event):
            m.d.comb += [self.ev_stream.valid.eq(1), v.ev_p.index.eq(v.ev_index),
                         v.ev_p.step.eq(v.ev_step), v.ev_p.end.eq(0)]
            with m.If(self.ev_stream.ready):
                m.d.sync += v.owe_event.eq(0)
        with m.Elif(v.owe_end):
            m.d.comb += [self.ev_stream.valid.eq(1), v.ev_p.end.eq(1)]
            with m.If(self.ev_stream.ready):
                m.d.sync += v.owe_end.eq(0)
        with m.Elif(v.abandoned):
            m.d.comb += self.res_stream.ready.eq(1)
            with m.If(self.res_stream.valid):
                m.d.sync += v.abandoned.eq(0)

    def _checks(self, m, v):
        """The frame's checks, registered: they read only ``cmd``, ``length``, ``mod3`` and
        ``hdr``, which are final two cycles or more before CHECK (the two CRC bytes come after
        them), so CHECK sees registers and only dispatches (clock speed)."""
        v.len_ok_c = Signal()
        with m.Switch(v.cmd):
            with m.Case(Command.IDENTIFY, Command.STATS, Command.RESET_STATS):
                m.d.comb += v.len_ok_c.eq(v.length == 0)
            with m.Case(Command.LOAD_WEIGHTS):
                m.d.comb += v.len_ok_c.eq(v.length == v.hdr.count + 7)
            with m.Case(Command.READ_WEIGHTS):
                m.d.comb += v.len_ok_c.eq(v.length == 7)
            with m.Case(Command.LOAD_THETA):
                m.d.comb += v.len_ok_c.eq(v.length == 3)
            with m.Case(Command.CLASSIFY):
                m.d.comb += v.len_ok_c.eq(v.mod3 == 0)
            with m.Case(Command.CLASSIFY_BATCH):
                m.d.comb += v.len_ok_c.eq((v.mod3 == 0) & (v.length >= 3))
            with m.Case(Command.TRAIN):
                m.d.comb += v.len_ok_c.eq((v.mod3 == 0) & (v.length >= 3))
        v.known = Signal()
        v.length_ok = Signal()
        v.chunk_ok = Signal()
        v.theta_ok = Signal()
        v.train_bad = Signal()
        v.layer_ok = v.hdr.layer < v.n_w
        m.d.sync += [
            v.known.eq(Cat(v.cmd == c.value for c in Command).any()),
            v.length_ok.eq((v.length <= v.BUF) & v.len_ok_c),
            v.chunk_ok.eq(v.layer_ok & (v.hdr.src < v.n_in_l) & (v.hdr.dst < v.n_out_l)
                        & (v.hdr.count != 0) & (v.hdr.count <= self._max_chunk)),
            v.theta_ok.eq((v.theta.layer < v.n_w) & (v.theta.theta != 0) & (v.theta.theta <= THETA_MAX)),
            v.train_bad.eq((v.label >= v.sizes[-1]) | (v.train_hdr.lr_shift > MAX_LR_SHIFT) |
                         (v.train_hdr.lfsr_k > MAX_LFSR_K)),
        ]

    def _signals(self, m):
        """The payload buffer and the registers and helpers the states share, in one
        namespace."""
        v = types.SimpleNamespace()
        v.sizes = self._sizes
        v.n_w = len(v.sizes) - 1
        v.T = self._config.timesteps
        v.BUF = self._info.max_payload
        v.ident = self._ident
        m.submodules.buf = v.buf = memory.Memory(shape=8, depth=v.BUF, init=[])
        v.wr = v.buf.write_port()
        v.rd = v.buf.read_port()

        v.byte = self.i_stream.payload
        v.rx = self.i_stream.valid
        m.d.comb += self.i_stream.ready.eq(1)

        v.cmd = Signal(8)
        v.length = Signal(16)
        v.count = Signal(16)            # payload bytes received / reply bytes sent
        v.crc = Signal(16, init=CRC_INIT)
        v.crc_in = Signal(8)
        v.crc_next = Signal(16)
        m.d.comb += v.crc_next.eq(crc16_network(v.crc, v.crc_in))
        v.crc_bad = Signal()           # a CRC byte differed (compared as it arrives)
        v.hdr = Signal(ChunkHeader())   # the first 7 payload bytes
        v.hdr_bits = v.hdr.as_value()
        v.theta = ThetaPayload()(v.hdr_bits[:24])
        v.train_hdr = TrainHeader()(v.hdr_bits[:24])
        v.label = v.train_hdr.label
        v.mod3 = Signal(2)              # payload length mod 3
        v.timer = Signal(range(self._timeout + 1))
        v.overrun = Signal()
        # The watchdog: cycles since the image's first event was offered; an image given up
        # on and what of it is still owed to the classifier.
        v.wd = Signal(range(self._result_timeout))
        v.abandoned = Signal()      # its result is still to come (and to be dropped)
        v.owe_event = Signal()      # the event that was on offer is still to be sent
        v.owe_end = Signal()        # its end marker is still to be sent
        # The classifier cannot take a request now: an image given up on is in it.
        v.clf_busy = Signal()
        m.d.comb += v.clf_busy.eq(v.abandoned | ~self.model.idle)
        v.status = Signal(Status)
        v.source = Signal(_Source)
        v.reply_len = Signal(16)
        # Index of a reply byte taken from a constant or a register (IDENT, STATS, RESULT).
        v.small = Signal(range(max(len(v.ident), 8, ClassifyReply(len(v.sizes)).size // 8)))
        m.d.comb += v.small.eq(v.count)
        v.tx_byte = Signal(8)
        v.rb_data = Signal.like(self.model.rb_data)      # the weight read back, registered or not
        if self._timing.rb_register:
            m.d.sync += v.rb_data.eq(self.model.rb_data)
        else:
            m.d.comb += v.rb_data.eq(self.model.rb_data)
        v.ptr = Signal(range(v.BUF + 1))
        v.storing = Signal()        # EV_STORE: the buffer's write port is the results'
        m.d.comb += v.rd.addr.eq(v.ptr)
        with m.If(~v.storing):
            m.d.comb += [v.wr.addr.eq(v.count), v.wr.data.eq(v.byte)]

        # The weight walker: (wsrc, wdst) row-major over layer hdr.layer, ``left`` to go.
        v.n_in_of = Array(Const(v.sizes[l], 17) for l in range(v.n_w))
        v.n_out_of = Array(Const(v.sizes[l + 1], 17) for l in range(v.n_w))
        v.n_in_l = v.n_in_of[v.hdr.layer]
        v.n_out_l = v.n_out_of[v.hdr.layer]
        v.wsrc = Signal(range(max(v.sizes[:-1]) + 1))
        v.wdst = Signal(range(max(v.sizes[1:])))
        v.left = Signal(range(self._max_chunk + 1))

        def advance():
            with m.If(v.wdst == v.n_out_l - 1):
                m.d.sync += [v.wdst.eq(0), v.wsrc.eq(v.wsrc + 1)]
            with m.Else():
                m.d.sync += v.wdst.eq(v.wdst + 1)
            m.d.sync += v.left.eq(v.left - 1)

        m.d.comb += [self.model.w_layer.eq(v.hdr.layer), self.model.w_src.eq(v.wsrc),
                     self.model.w_dst.eq(v.wdst), self.model.theta_data.eq(v.theta.theta)]
        if self._learning:
            m.d.comb += [self.learn.label.eq(v.label), self.learn.shift.eq(v.train_hdr.lr_shift),
                         self.learn.k.eq(v.train_hdr.lfsr_k),
                         self.learn.errors_only.eq(v.train_hdr.errors_only)]

        # Image events: collected three bytes at a time; checked in one pass, sent in a second.
        v.ev = Signal(24)
        v.ev_j = Signal(2)
        v.ev_send = Signal()
        v.prev_step = Signal(8)
        v.is_train = Signal()
        v.ev_index, v.ev_step = v.ev[:16], v.ev[16:]
        v.ev_p = self.ev_stream.payload
        # CLASSIFY_BATCH: a record that ends an image; the last record checked was one;
        # where the next image's result goes in the buffer.
        v.is_batch = Signal()
        v.marker = (v.ev_index == 0xFFFF) & (v.ev_step == 0xFF)
        v.marked = Signal()
        v.wptr = Signal(range(v.BUF + 1))

        reply_content(self, m, v)

        def send_reply(st, src=_Source.NONE, n=0):
            m.d.sync += [v.status.eq(st), v.source.eq(src), v.reply_len.eq(n)]
            m.next = "R_SYNC"

        def fail(st):
            v.send_reply(st)

        def frame_timer():
            """Inside a frame: a byte restarts the timer; silence ends the frame."""
            with m.If(v.rx):
                m.d.sync += v.timer.eq(0)
            with m.Elif(v.timer == self._timeout - 1):
                m.d.sync += [v.status.eq(Status.TIMEOUT), v.source.eq(_Source.NONE),
                             v.reply_len.eq(0), v.timer.eq(0)]
                m.next = "R_SYNC"
            with m.Else():
                m.d.sync += v.timer.eq(v.timer + 1)

        def watchdog(owe_event, owe_end):
            """In a state of an image sent to the classifier: count; at the bound, give the
            image up (reply TIMEOUT) and owe the classifier what is left of it: the beat on
            offer now (``owe_event``), the end marker (``owe_end``), then its result."""
            m.d.sync += v.wd.eq(v.wd + 1)
            with m.If(v.wd == self._result_timeout - 1):
                # ev_send low: learn.en drops (an image not started yet is not learned).
                m.d.sync += [v.abandoned.eq(1), v.owe_event.eq(owe_event),
                             v.owe_end.eq(owe_end), v.ev_send.eq(0)]
                v.send_reply(Status.TIMEOUT)

        def put(value, nxt, *, update_crc=True):
            m.d.comb += [self.o_stream.valid.eq(1), self.o_stream.payload.eq(value)]
            with m.If(self.o_stream.ready):
                if update_crc:
                    m.d.comb += v.crc_in.eq(value)
                    m.d.sync += v.crc.eq(v.crc_next)
                m.next = nxt
        v.advance, v.send_reply, v.fail, v.frame_timer, v.put = (advance, send_reply, fail,
                                                                 frame_timer, put)
        v.watchdog = watchdog
        return v

