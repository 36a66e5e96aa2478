"""The reply encoder of the :class:`~spikegate.hdl.protocol.ProtocolEngine`: what a reply's
payload bytes come from (:class:`Source`), the classification reply built from the
classifier's result, and the states that send a reply frame. The engine's other states and
the namespace ``v`` of the registers they share are in :mod:`spikegate.hdl.protocol`.
"""

from amaranth.hdl import Cat, Const, Signal
from amaranth.lib import enum

from spikegate.golden.fixed import unsigned_bits
from .protocol_spec import REPLY_SYNC, CRC_INIT, BatchResult, ClassifyReply, StatsReply, Status

__all__ = ["Source", "reply_content", "reply_states"]


class Source(enum.Enum, shape=3):
    """Where the bytes of a reply's payload come from."""
    NONE = 0
    IDENT = 1
    STATS = 2
    RESULT = 3
    READ = 4
    BUF = 5     #: the payload buffer from address 0 (CLASSIFY_BATCH's results)


def reply_content(self, m, v):
    """The registers and constants the reply bytes come from: the statistics, the
    classification reply built from the classifier's result, the identity bytes."""
    # Statistics and the classification reply.
    v.stats = Signal(StatsReply())
    v.res = self.res_stream.payload
    v.reply = Signal(ClassifyReply(len(v.sizes)))
    v.label_error = v.res.label_error if "label_error" in self._result_layout.members else 0
    m.d.comb += [v.reply.decided.eq(v.res.decided), v.reply.klass.eq(v.res.klass),
                 v.reply.decision_step.eq(v.res.decision_step),
                 v.reply.flags.eq(Cat(v.res.error, v.label_error)),
                 v.reply.cycles.eq(v.res.cycles)]
    # Spike and lookup counts cannot exceed these bounds (a neuron fires once; an image
    # has at most max_events events): only their low bits reach the reply's byte mux.
    v.max_events = v.BUF // 3
    v.max_spikes = [v.max_events] + list(v.sizes[1:])
    for i in range(len(v.sizes)):
        m.d.comb += v.reply.spikes[i].eq(v.res.spikes[i][:unsigned_bits(v.max_spikes[i])])
    for i in range(v.n_w):
        v.bound = v.max_spikes[i] * v.sizes[i + 1]
        m.d.comb += v.reply.lookups[i].eq(v.res.lookups[i][:unsigned_bits(v.bound)])
    if "learn_cycles" in self._result_layout.members:
        m.d.comb += v.reply.learn_cycles.eq(v.res.learn_cycles)
    v.reply_bytes = ClassifyReply(len(v.sizes)).size // 8
    # A CLASSIFY_BATCH image's result.
    v.batch_res = Signal(BatchResult())
    m.d.comb += [v.batch_res.klass.eq(v.res.klass),
                 v.batch_res.flags.eq(Cat(v.res.decided, v.res.error))]
    v.ident_rom = Const(int.from_bytes(v.ident, "little"), 8 * len(v.ident))


def reply_states(self, m, v):
    """The reply states of ``self`` (a :class:`~spikegate.hdl.protocol.ProtocolEngine`): header,
    payload bytes (fetched one by one: identity, statistics, result, or weights read back),
    CRC; then hunt again."""
    # -------- send the reply
    with m.State("R_SYNC"):
        v.put(REPLY_SYNC, "R_CMD", update_crc=False)
        with m.If(self.o_stream.ready):
            m.d.sync += v.crc.eq(CRC_INIT)
    with m.State("R_CMD"):
        v.put(v.cmd, "R_STATUS")
    with m.State("R_STATUS"):
        v.put(v.status, "R_LEN0")
    with m.State("R_LEN0"):
        v.put(v.reply_len[:8], "R_LEN1")
    with m.State("R_LEN1"):
        v.put(v.reply_len[8:], "R_FETCH")
        m.d.sync += [v.count.eq(0), v.ptr.eq(0)]
        with m.If(self.o_stream.ready & (v.reply_len == 0)):
            m.next = "R_CRC0"
    # Wait states after R_FETCH: one per cycle of read-back latency beyond the first,
    # and one for the register; rb_data is valid in R_FETCH2.
    waits = self._timing.rb_latency - 1 + self._timing.rb_register
    with m.State("R_FETCH"):
        m.d.comb += self.model.rb_en.eq(v.source == Source.READ)
        m.next = "R_FETCH_RB0" if waits else "R_FETCH2"
    for i in range(waits):
        with m.State(f"R_FETCH_RB{i}"):
            m.next = f"R_FETCH_RB{i + 1}" if i + 1 < waits else "R_FETCH2"
    with m.State("R_FETCH2"):
        with m.Switch(v.source):
            with m.Case(Source.IDENT):
                m.d.sync += v.tx_byte.eq(v.ident_rom.word_select(v.small, 8))
            with m.Case(Source.STATS):
                m.d.sync += v.tx_byte.eq(v.stats.as_value().word_select(v.small, 8))
            with m.Case(Source.RESULT):
                m.d.sync += v.tx_byte.eq(v.reply.as_value().word_select(v.small, 8))
            with m.Case(Source.READ):
                m.d.sync += v.tx_byte.eq(v.rb_data)
            with m.Case(Source.BUF):
                m.d.sync += v.tx_byte.eq(v.rd.data)
        m.next = "R_DATA"
    with m.State("R_DATA"):
        v.put(v.tx_byte, "R_FETCH")
        with m.If(self.o_stream.ready):
            m.d.sync += v.count.eq(v.count + 1)
            with m.If(v.source == Source.READ):
                v.advance()
            m.d.sync += v.ptr.eq(v.ptr + 1)     # the next BUF byte's address
            with m.If(v.count + 1 == v.reply_len):
                m.next = "R_CRC0"
    with m.State("R_CRC0"):
        v.put(v.crc[:8], "R_CRC1", update_crc=False)
    with m.State("R_CRC1"):
        v.put(v.crc[8:], "R_END", update_crc=False)
    with m.State("R_END"):
        with m.If(v.source == Source.RESULT):
            m.d.comb += self.res_stream.ready.eq(1)
            m.d.sync += v.stats.images.eq(v.stats.images + 1)
        with m.If(v.status != Status.OK):
            m.d.sync += v.stats.errors.eq(v.stats.errors + 1)
        m.d.sync += self.error.eq(v.status != Status.OK)
        with m.If(v.overrun):
            m.d.sync += [v.overrun.eq(0), v.cmd.eq(0)]
            v.send_reply(Status.BUSY)
        with m.Else():
            m.next = "HUNT"
