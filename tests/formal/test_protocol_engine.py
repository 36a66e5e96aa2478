# amaranth: UnusedElaboratable=no
"""ProtocolEngine, proven with SBY (k-induction: for every input sequence of every length)
on a tiny engine: sizes (2, 2, 2), chunks of at most 2 weights (a 9-byte buffer), 4
timesteps, a frame timeout of 4 cycles and a watchdog of 4 cycles. The bytes that arrive are
anything, every cycle or not (the engine is always ready); the classifier is abstract
(``res_stream`` any stream that obeys the rules, ``ev_stream.ready``, ``model.idle`` and
``model.rb_data`` anything); ``o_stream`` is always ready (the bound below is in cycles of
a transmitter that takes every byte at once; a UART takes one per byte time).

The spec follows the request frames itself, from the engine's ports only: a frame starts
with a ``SYNC`` taken while the engine hunts (``busy`` low); then come CMD, LEN0, LEN1,
LEN payload bytes and the two CRC bytes, and a frame is abandoned after
``timeout_cycles`` cycles without a byte (the protocol's framing, as
:mod:`spikegate.hdl.protocol_spec` defines it). The spec computes the CRC of the frame's
bytes with its own register (the XOR network of ``crc16_update``).

* ``crc_write``, ``crc_theta``: a weight write (``model.w_en``) or a threshold write
  (``model.theta_en``) only after a frame received whole whose two CRC bytes are the CRC
  of its bytes.
* ``reply_bound``: once a frame has been received whole or abandoned (silence), a reply
  starts (a byte on ``o_stream``) within :attr:`ProtocolEngine.reply_bound_cycles`
  cycles (48 here: a CLASSIFY_BATCH of three empty images whose classifier answers each
  just before the watchdog), whatever bytes arrive meanwhile and whatever the classifier
  does; ``reply_sync``: that first byte is ``REPLY_SYNC``.

The invariants (``lemmas``) that make the properties inductive relate the engine's state
(``fsm_state``, ``timer``, ``length``, ``count``, ``crc``, ``crc_bad``, the chunk walker's
``left``, the event pointer ``ptr`` and ``ev_j``, the watchdog ``wd``, a batch's result
pointer ``wptr``) to the spec's frame
tracker and to its count ``wait`` of the cycles since the frame's end: in each state
between a frame's end and its reply, ``wait`` is a function (or at most one) of the
engine's registers, which grows by one per cycle while the state's own measure (weights
left, bytes checked, watchdog) moves towards the reply; the bound is the largest value
that any state hands to ``R_SYNC``.

Each mutation below makes its proof fail."""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cat, Elaboratable, Module, Mux, Signal

from spikegate.golden.ttfs_discrete import DiscreteConfig
from spikegate.hdl.protocol import ProtocolEngine, crc16_network
from spikegate.hdl.protocol_spec import CRC_INIT, REPLY_SYNC, SYNC, ChunkHeader, Command
from spikegate.sim.formal import fsm_codes, internal_signals, mutant, run_sby, stream_rules

pytestmark = pytest.mark.formal

SIZES = (2, 2, 2)
LANES = (1, 1)
MAX_CHUNK = 2
TIMEOUT = 4
RESULT_TIMEOUT = 4

#: The receive states, in the order of the spec's ``phase`` (1 to 6).
RX_STATES = ("CMD", "LEN0", "LEN1", "PAYLOAD", "CRC0", "CRC1")
EV_STATES = ("EV_ADDR", "EV_DATA", "EV_USE", "EV_END", "EV_WAIT", "EV_STORE")
#: The states between a frame's end and the first byte of its reply.
PENDING_STATES = ("CHECK", "WALK", "WR_ADDR", "WR_DATA") + EV_STATES + ("R_SYNC",)


def engine(dut_class=ProtocolEngine):
    return dut_class(SIZES, LANES, DiscreteConfig(timesteps=4), clk_freq_hz=1_000_000,
                     timeout_cycles=TIMEOUT, max_chunk=MAX_CHUNK,
                     result_timeout_cycles=RESULT_TIMEOUT)


class ProtocolEngineSpec(Elaboratable):
    """The properties above of ``engine(dut_class)`` (``o_stream`` always ready)."""

    def __init__(self, dut_class=ProtocolEngine, *, lemmas=True):
        self.dut_class, self.lemmas = dut_class, lemmas
        self.props = {}
        self.invariants = {}    # the lemmas the mutations below break, by name
        self.bound = engine().reply_bound_cycles

    def elaborate(self, platform):
        m = Module()
        dut = engine(self.dut_class)
        fragment, internal = internal_signals(dut, platform)
        m.submodules.dut = fragment
        rx, byte = dut.i_stream.valid, dut.i_stream.payload
        m.d.comb += [rx.eq(AnySeq(1)), byte.eq(AnySeq(8)),
                     dut.o_stream.ready.eq(1),
                     dut.ev_stream.ready.eq(AnySeq(1)),
                     dut.res_stream.valid.eq(AnySeq(1)),
                     dut.res_stream.payload.eq(AnySeq(len(dut.res_stream.payload.as_value()))),
                     dut.model.idle.eq(AnySeq(1)),
                     dut.model.rb_data.eq(AnySeq(len(dut.model.rb_data)))]
        stream_rules(m, dut.res_stream, Assume, name="res")

        # The frame as the spec follows it. phase: 0 outside a frame, 1 CMD, 2 LEN0, 3 LEN1,
        # 4 payload, 5 CRC0, 6 CRC1.
        phase = Signal(range(7))
        length = Signal(16)
        count = Signal(16)
        crc = Signal(16)
        crc_lo = Signal(8)
        timer = Signal(range(TIMEOUT))
        good = Signal()         # the last frame received whole had its CRC right
        seen = Signal()         # a frame was received whole
        crc_next = crc16_network(crc, byte)
        with m.If(phase == 0):
            with m.If(rx & (byte == SYNC) & ~dut.busy):
                m.d.sync += [phase.eq(1), crc.eq(CRC_INIT), timer.eq(0)]
        with m.Elif(rx):
            m.d.sync += timer.eq(0)
            with m.Switch(phase):
                with m.Case(1):
                    m.d.sync += [crc.eq(crc_next), phase.eq(2)]
                with m.Case(2):
                    m.d.sync += [crc.eq(crc_next), length[:8].eq(byte), phase.eq(3)]
                with m.Case(3):
                    m.d.sync += [crc.eq(crc_next), length[8:].eq(byte), count.eq(0),
                                 phase.eq(Mux((length[:8] == 0) & (byte == 0), 5, 4))]
                with m.Case(4):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    with m.If(count + 1 == length):
                        m.d.sync += phase.eq(5)
                with m.Case(5):
                    m.d.sync += [crc_lo.eq(byte), phase.eq(6)]
                with m.Case(6):
                    m.d.sync += [good.eq((crc_lo == crc[:8]) & (byte == crc[8:])), seen.eq(1),
                                 phase.eq(0)]
        with m.Elif(timer == TIMEOUT - 1):
            m.d.sync += phase.eq(0)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)

        # The reply the frame is owed: ``wait`` counts the cycles since the frame ended
        # (its last CRC byte, or the silence that abandoned it) while no byte has gone out.
        ended = ((phase == 6) & rx) | ((phase != 0) & ~rx & (timer == TIMEOUT - 1))
        pending = Signal()
        wait = Signal(range(self.bound + 2))
        out = dut.o_stream.valid
        with m.If(ended):
            m.d.sync += [pending.eq(1), wait.eq(0)]
        with m.Elif(pending & out):
            m.d.sync += pending.eq(0)
        with m.Elif(pending):
            m.d.sync += wait.eq(wait + 1)

        ok = seen & good
        crc_w = Assert(~dut.model.w_en | ok, "a weight written from a frame whose CRC failed")
        crc_t = Assert(~dut.model.theta_en | ok,
                       "a threshold written from a frame whose CRC failed")
        bound = Assert(~pending | (wait <= self.bound),
                       f"no reply within {self.bound} cycles of a frame's end")
        sync = Assert(~(pending & out) | (dut.o_stream.payload == REPLY_SYNC),
                      "a reply that does not start with REPLY_SYNC")
        m.d.comb += [crc_w, crc_t, bound, sync]
        self.props.update(crc_write=crc_w, crc_theta=crc_t, reply_bound=bound, reply_sync=sync)
        if self.lemmas:
            self._lemmas(m, internal, phase=phase, length=length, count=count, crc=crc,
                         crc_lo=crc_lo, timer=timer, ok=ok, good=good, seen=seen,
                         pending=pending, wait=wait)
        return m

    def _lemmas(self, m, e, *, phase, length, count, crc, crc_lo, timer, ok, good, seen,
                pending, wait):
        state = e["fsm_state"]
        codes = fsm_codes(state)

        def at(*names):
            return Cat(state == codes[n] for n in names).any()

        def lemma(cond, *, when=None, what, key=None):
            stmt = Assert(cond if when is None else ~when | cond, f"lemma: {what}",
                          src_loc_at=1)
            m.d.comb += stmt
            if key is not None:
                self.invariants[key] = stmt

        # The spec's frame is the engine's: the receive state, its timer, length, payload
        # count, CRC register and first CRC byte's verdict.
        lemma(phase <= len(RX_STATES), what="a phase of the frame")
        for k, name in enumerate(RX_STATES, 1):
            lemma((phase == k) == at(name), what=f"phase {k} is {name}", key=f"phase_{name}")
        lemma((e["timer"] == timer) & (e["crc"] == crc), when=phase != 0,
              what="the frame timer and the running CRC")
        lemma(e["length"][:8] == length[:8], when=phase >= 3, what="LEN0")
        lemma(e["length"] == length, when=phase >= 4, what="LEN")
        lemma(e["count"] == count, when=phase == 4, what="the payload count")
        lemma(e["crc_bad"] == (crc_lo != crc[:8]), when=phase == 6,
              what="the first CRC byte's verdict")
        # From CHECK to the last weight written, the verdict is the spec's.
        lemma(seen & (e["crc_bad"] == ~good), when=at("CHECK", "WALK", "WR_ADDR", "WR_DATA"),
              what="the frame's verdict")
        lemma(~e["crc_bad"], when=at("WALK", "WR_ADDR", "WR_DATA"),
              what="a chunk is walked only after a good CRC", key="walk_good_crc")

        # The reply's bound. Between a frame's end and its reply the engine is in one of
        # PENDING_STATES, and wait is CHECK's 0 plus what each state has done since.
        BUF, CHUNK, RT = ProtocolEngine.buffer_bytes.fget(engine()), MAX_CHUNK, RESULT_TIMEOUT
        lemma(at(*PENDING_STATES), when=pending, what="a reply owed outside the pending states")
        lemma(wait == 0, when=pending & at("CHECK"), what="CHECK follows the frame's end")
        hdr = ChunkHeader()(e["hdr"])
        n, left = hdr.count, e["left"]
        length_e, ptr, j = e["length"], e["ptr"], e["ev_j"]
        # CHECK's registered checks are those of the frame (the registers were computed in
        # CRC1 from values that CRC1 does not change).
        lemma(~e["chunk_ok"] | ((n >= 1) & (n <= CHUNK)), when=at("CHECK"),
              what="chunk_ok: 1 <= count <= max_chunk")
        lemma(~e["length_ok"] | ((length_e <= BUF) &
                                 ((e["cmd"] != Command.TRAIN.value) | (length_e >= 3))),
              when=at("CHECK"), what="length_ok: LEN within the buffer")
        # The chunk walker: a dry walk of count cycles, then two cycles per weight.
        lemma((n >= 1) & (n <= CHUNK) & (left <= n), when=at("WALK"), what="WALK's count")
        lemma(wait + left <= 1 + n, when=pending & at("WALK"), what="WALK's wait")
        lemma((n <= CHUNK) & (left >= 1) & (left <= n), when=at("WR_ADDR", "WR_DATA"),
              what="WR's count")
        lemma(wait + 2 * left <= 2 + 3 * n, when=pending & at("WR_ADDR"), what="WR_ADDR's wait")
        lemma(wait + 2 * left <= 3 + 3 * n, when=pending & at("WR_DATA"), what="WR_DATA's wait")
        # The events: a check pass of seven cycles per event (three EV_ADDR / EV_DATA pairs
        # and EV_USE) from ptr = p0 (3 for TRAIN's header) to LEN, then the send pass, which
        # the watchdog ends within RESULT_TIMEOUT cycles of its start.
        ev_send, wd = e["ev_send"], e["wd"]
        p0 = Mux(e["is_train"], 3, 0)
        lemma((j <= 2) & (length_e <= BUF) & (p0 <= length_e) & (ptr <= length_e),
              when=at(*EV_STATES), what="the events' length")
        check = ~ev_send
        lemma((p0 <= ptr) & (ptr <= length_e), when=check & at("EV_ADDR", "EV_USE"),
              what="the check pass's pointer")
        lemma((p0 <= ptr) & (ptr < length_e), when=check & at("EV_DATA"),
              what="the check pass's pointer (EV_DATA)")
        lemma(j == 0, when=at("EV_USE"), what="EV_USE after the third byte")
        lemma(3 * wait + 7 * p0 + j == 3 + 7 * ptr, when=pending & check & at("EV_ADDR"),
              what="EV_ADDR's wait (check pass)")
        lemma(3 * wait + 7 * p0 + j == 6 + 7 * ptr, when=pending & check & at("EV_DATA"),
              what="EV_DATA's wait (check pass)")
        lemma(3 * wait + 7 * p0 == 7 * ptr, when=pending & check & at("EV_USE"),
              what="EV_USE's wait (check pass)")
        lemma(ev_send, when=at("EV_END", "EV_WAIT", "EV_STORE"),
              what="EV_END, EV_WAIT and EV_STORE send")
        lemma(wd < RT, when=ev_send & at(*EV_STATES), what="the watchdog's count")
        # CLASSIFY_BATCH: wptr, where the next result goes, is 3 per image classified (j
        # more in EV_STORE) and below the records read; the wait grows by at most the
        # watchdog and three cycles per image.
        wptr, batch = e["wptr"], e["is_batch"]
        lemma(batch & ~e["is_train"], when=at("EV_STORE"), what="EV_STORE in a batch")
        lemma(wptr == 0, when=~(batch & ev_send) & at(*EV_STATES), what="no results yet")
        lemma(Cat(wptr == k for k in range(0, BUF + 1, 3)).any(),
              when=at(*EV_STATES[:-1]), what="wptr: 3 per image")
        lemma((wptr + j <= ptr) & (ptr <= length_e), when=ev_send & at("EV_ADDR", "EV_DATA"),
              what="the results behind the records read")
        lemma((wptr + 3 <= ptr) & (ptr <= length_e), when=ev_send & at("EV_USE"),
              what="the results behind the record just read")
        lemma(wptr + 3 <= ptr, when=batch & at("EV_END", "EV_WAIT"),
              what="the results behind the image's marker")
        lemma((j <= 2) & (wptr + 3 <= ptr + j) &
              Cat(wptr == j + k for k in range(0, BUF + 1, 3)).any(),
              when=at("EV_STORE"), what="EV_STORE's results behind the records read",
              key="store_results")
        lemma(3 * wait + 7 * p0 <= 3 * wd + 6 + 7 * length_e + wptr * (RT + 3),
              when=pending & ev_send & at(*EV_STATES[:-1]), what="the send pass's wait",
              key="send_wait")
        lemma(3 * wait + 7 * p0 + j * (RT + 3) <= 3 * RT + 3 * j + 6 + 7 * length_e
              + wptr * (RT + 3), when=pending & at("EV_STORE"), what="EV_STORE's wait",
              key="store_wait")


def test_reply_bound_formula():
    """The bound the proof uses is the engine's documented one: on this engine the event
    path (a full buffer checked, seven cycles per three bytes; three batch images, each
    the watchdog and three cycles to store; the watchdog once more)."""
    e = engine()
    assert e.buffer_bytes == 9
    assert e.reply_bound_cycles == max(
        2 + (7 * 9) // 3 + RESULT_TIMEOUT + 3 * (RESULT_TIMEOUT + 3), 2 + 3 * MAX_CHUNK)
    assert e.reply_bound_cycles == 48


#: k-induction depth of the proof.
PROOF_DEPTH = 2


def test_protocol_engine_proof():
    spec = ProtocolEngineSpec()
    result = run_sby(spec, "protocol_engine", mode="prove", depth=PROOF_DEPTH)
    assert result.passed, result.summary()


_PHASES = tuple(f"phase_{name}" for name in RX_STATES)

# mutation: (method, old, new, (mode, depth, lemmas), what fails: keys of ``props`` or
# ``invariants``). A lemma is a step of the proof, so its failure is the proof's. Where the
# shortest counterexample from reset is short, BMC finds it (depth: its length plus one);
# where it is long (a wait must outgrow the bound, some 35 cycles, or a chunk must be
# written, 19), BMC with z3 takes many minutes, and the mutant is shown to break the
# proof itself: k-induction of the proof's depth no longer closes, at the lemma named.
MUTATIONS = {
    # CHECK ignores crc_bad: a LOAD_THETA frame with a wrong CRC writes (step 9).
    "no_crc_check": ("_check_state", "with m.If(v.crc_bad):", "with m.If(0):",
                     ("bmc", 10, False), ("crc_theta",)),
    # Silence never ends a frame: an abandoned frame is never answered (the spec leaves the
    # frame in step 5, the engine stays in it).
    "no_frame_timeout": ("_signals", "with m.Elif(v.timer == self._timeout - 1):",
                         "with m.Elif(0):", ("bmc", 6, True), _PHASES),
    # LOAD_WEIGHTS is dispatched before the CRC verdict: a chunk with a wrong CRC is walked
    # and written (from step 15 and 18).
    "weights_before_crc": ("_check_state", "with m.If(v.crc_bad):",
                           "with m.If(v.crc_bad & (v.cmd != Command.LOAD_WEIGHTS)):",
                           ("prove", PROOF_DEPTH, True), ("walk_good_crc", "crc_write")),
    # EV_WAIT without the watchdog: a classifier that never answers is waited for forever.
    "wait_no_watchdog": ("_event_states", "v.watchdog(owe_event=0, owe_end=0)", "pass",
                         ("prove", PROOF_DEPTH, True), ("send_wait", "reply_bound")),
    # EV_STORE never counts its bytes: a batch image's result is stored forever (its count
    # of bytes stored leaves 0 to 2).
    "store_never_ends": ("_event_states", "v.wptr.eq(v.wptr + 1), v.ev_j.eq(v.ev_j + 1)]",
                         "v.wptr.eq(v.wptr + 1)]", ("prove", PROOF_DEPTH, True),
                         ("store_results", "store_wait", "reply_bound")),
    # The watchdog never fires: its count wraps, the image is waited for forever.
    "watchdog_never_fires": ("_signals", "with m.If(v.wd == self._result_timeout - 1):",
                             "with m.If(0):", ("prove", PROOF_DEPTH, True),
                             ("send_wait", "reply_bound")),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_protocol_engine_proof_catches(mutation):
    method, old, new, (mode, depth, lemmas), breaks = MUTATIONS[mutation]
    spec = ProtocolEngineSpec(mutant(ProtocolEngine, old, new, method=method), lemmas=lemmas)
    result = run_sby(spec, f"protocol_engine_{mutation}", mode=mode, depth=depth)
    props = {**spec.props, **spec.invariants}
    broken = [props[k] for k in breaks]
    if mode == "bmc":
        assert result.status == "FAIL", result.summary()
        assert result.failed_at(*broken), result.summary()
    else:
        assert result.status != "PASS", result.summary()
        assert result.failed_at(*broken) or result.induction_failed_at(*broken), result.summary()
