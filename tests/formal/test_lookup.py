# amaranth: UnusedElaboratable=no
"""WeightLookup, proven with SBY for every sequence of row commands (the stream rules
assumed), every read-back request and every ``group_en`` that obeys its rule: each row is
walked exactly once over its groups (all of them, in increasing order, or for a masked op
exactly the enabled ones), each issue is followed one cycle later by its beat (group,
first, last, op, tag, the row's weights), the read port is the walk's while a row is walked
(a read-back never moves it, a walk of an op that reads nothing never enables it) and the
read-back's otherwise, and ``cmd.ready`` is high exactly when the walker is idle or issuing
its row's last group. Each mutation below makes its check fail."""

import numpy as np
import pytest
from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import (Array, Assert, Assume, Cat, Const, Elaboratable, Module, Mux, Signal,
                          signed)
from amaranth.lib import enum

from spikegate.hdl.lookup import WeightLookup, weight_words
from spikegate.sim.formal import internal_signals, mutant, past, run_sby, stream_rules, transferred

pytestmark = pytest.mark.formal


class Op(enum.Enum, shape=2):
    """The proofs' op codes; the lookup knows them only through the sets below."""
    #: read the row's weights and count them (an unmasked read, like ``ACCUMULATE``)
    READ = 0
    #: walk every group, read nothing (like ``CLEAR``)
    VISIT = 1
    #: walk the enabled groups, read nothing (like a group-wake ``SCAN``)
    SCAN = 2
    #: walk the enabled groups and read their weights
    PICK = 3


READ_OPS = (Op.READ, Op.PICK)
COUNT_OPS = (Op.READ,)
MASKED_OPS = (Op.SCAN, Op.PICK)

TAG_BITS = 2


def weights(n_src, n_dst):
    """A weight for every (source, destination), each different and signed both ways, so
    that a beat or a read-back from the wrong word or lane cannot pass."""
    w = np.arange(1, n_src * n_dst + 1).reshape(n_src, n_dst)
    return np.where(w % 2, w, -w)


def upto(g, n):
    """``n`` bits, bit ``h`` set for every ``h <= g``."""
    return Cat(*(Const(h, range(n + 1)) <= g for h in range(n)))


def _walk_first(fragment):
    """The masked walker's ``first`` register (the walk has issued nothing yet): the one
    unnamed signal its ``sync`` domain assigns."""
    found = {id(sig): sig for stmt in fragment.statements["sync"]
             for sig in stmt._lhs_signals() if sig.name == "$signal"}
    (first,) = found.values()
    return first


class WeightLookupSpec(Elaboratable):
    """The properties of ``dut_class(n_src, n_dst, lanes)`` with fixed weights (no writes:
    ``w_en`` and ``ww_en`` are 0), with ``masked_ops`` when ``masked``.

    Inputs: ``cmd`` any stream that obeys the rules; ``rb_en``, ``rb_src``, ``rb_dst``,
    ``clear_count`` anything; ``group_en`` anything, except that during a masked walk the
    bits of the groups not yet passed (above the last group issued, every group before the
    first issue) keep the value they had in the walk's first cycle (its documented rule).

    The reference is the documented walk: a command taken starts a walk in the next cycle,
    whose groups to visit are every group or (masked op) the enabled ones; each cycle it
    issues the lowest group still to visit, and it ends in the cycle that issues the last
    one (a masked walk with none ends in its first cycle, issuing nothing). The spec keeps
    the walk's op, tag and source, the groups ``visited`` and ``passed`` (every group up to
    the last issued), and asserts (``contract``):

    * (a) ``in_walk``: an issue only during a walk; ``increasing``: the group issued is a
      group above every group the walk issued before (in order, none twice);
      ``enabled``: a masked walk issues only enabled groups; ``no_skip``: no group to visit
      lies below the one issued; ``no_stall``: a walk with a group left to visit issues
      one each cycle; ``exactly``: at a walk's end, the groups it issued are all groups
      (unmasked) or exactly those enabled at its start (masked);
    * (b) ``beat_valid``, ``beat_group``, ``first``, ``last``, ``op_tag``: one cycle after
      each issue, and only then, a beat of that group with the first / last flags of its
      walk, its op and tag; ``weights``: the weights of (source, group) for a reading op,
      zero for the others; ``busy``: a walk or a beat;
    * (c) ``no_read``: the walk of an op that reads nothing never enables the read port;
    * (d) ``walk_port``: during a walk the read port is enabled exactly when a reading op
      issues, at the issued group's address, whatever ``rb_en`` does;
      ``read_back_port``: outside a walk the port is the read-back's (enabled by
      ``rb_en`` at its address); ``read_back``: ``rb_data`` is the weight asked for one
      cycle after an ``rb_en`` while not ``busy``;
    * (e) ``ready``: ``cmd.ready`` exactly while idle or at the walk's end.

    (c) and (d)'s port properties are on the design's read-port signals (``rp__en``,
    ``rp__addr``). With ``lemmas`` the spec also asserts that the walker's registers hold
    what the reference says, which makes the contract inductive.
    """

    def __init__(self, n_src, n_dst, lanes, *, masked, dut_class=WeightLookup, lemmas=True):
        self.n_src, self.n_dst, self.lanes, self.masked = n_src, n_dst, lanes, masked
        self.dut_class, self.lemmas = dut_class, lemmas
        self.contract = {}

    def elaborate(self, platform):
        m = Module()
        n_src, n_dst, L = self.n_src, self.n_dst, self.lanes
        w = weights(n_src, n_dst)
        dut = self.dut_class(n_src, n_dst, L, w, tag_bits=TAG_BITS, weight_memory="ebr",
                             op_shape=Op, read_ops=READ_OPS, count_ops=COUNT_OPS,
                             masked_ops=MASKED_OPS if self.masked else ())
        G = dut.groups
        fragment, internal = internal_signals(dut, platform)
        m.submodules.dut = fragment
        cmd, beat, port = dut.cmd, dut.beat, dut.weights

        m.d.comb += [cmd.valid.eq(AnySeq(1)), cmd.payload.eq(AnySeq(len(cmd.payload.as_value()))),
                     port.rb_en.eq(AnySeq(1)), port.rb_src.eq(AnySeq(len(port.rb_src))),
                     port.rb_dst.eq(AnySeq(len(port.rb_dst))), dut.clear_count.eq(AnySeq(1))]
        stream_rules(m, cmd, Assume, name="cmd")
        group_en = Signal(G)
        if self.masked:
            m.d.comb += [group_en.eq(AnySeq(G)), beat.group_en.eq(group_en)]

        # The reference walk.
        walking = Signal()
        w_op = Signal(Op)
        w_tag = Signal(TAG_BITS)
        w_src = Signal.like(cmd.payload.src)
        w_masked, w_reads = Signal(), Signal()
        visited, passed = Signal(G), Signal(G)
        started = Signal()                  # the walk's first cycle is over
        en_start = Signal(G)                # group_en in the walk's first cycle
        en_ref = Signal(G)                  # the groups the walk visits
        m.d.comb += en_ref.eq(Mux(w_masked, Mux(started, en_start, group_en), (1 << G) - 1))
        todo = Signal(G)                    # the groups still to visit
        m.d.comb += todo.eq(en_ref & ~passed)

        issue, g = beat.issue_valid, beat.issue_group
        issued = Signal(G)                  # upto(g) when issuing, else none
        m.d.comb += issued.eq(Mux(issue, upto(g, G), 0))
        ending = Signal()
        m.d.comb += ending.eq(walking & ((todo & ~issued) == 0))
        bit = Signal(G)
        m.d.comb += bit.eq(Mux(issue, Const(1, G) << g, 0))

        take = transferred(cmd)
        with m.If(take):
            m.d.sync += [walking.eq(1), w_op.eq(cmd.payload.op), w_tag.eq(cmd.payload.tag),
                         w_src.eq(cmd.payload.src), visited.eq(0), passed.eq(0),
                         started.eq(0),
                         w_masked.eq(Cat(cmd.payload.op == o for o in MASKED_OPS).any()
                                     if self.masked else 0),
                         w_reads.eq(Cat(cmd.payload.op == o for o in READ_OPS).any())]
        with m.Else():
            with m.If(ending):
                m.d.sync += walking.eq(0)
            with m.If(walking):
                m.d.sync += [visited.eq(visited | bit), passed.eq(passed | issued),
                             started.eq(1)]
                with m.If(~started):
                    m.d.sync += en_start.eq(group_en)
        if self.masked:
            # group_en's rule: the bits of the groups not passed keep their first value.
            m.d.comb += Assume(~(walking & w_masked & started) |
                               ((group_en & ~passed) == (en_start & ~passed)))

        c = self.contract
        # (a) the groups of each walk
        c["in_walk"] = Assert(~issue | walking, "an issue outside a walk")
        c["increasing"] = Assert(~issue | ((g < G) & ~passed.bit_select(g, 1)),
                                 "a group issued at or below one issued before in the walk")
        c["enabled"] = Assert(~(issue & w_masked) | group_en.bit_select(g, 1),
                              "a masked walk issued a disabled group")
        below = Cat(Const(h, range(G + 1)) < g for h in range(G))
        c["no_skip"] = Assert(~issue | ((todo & below) == 0), "a group to visit skipped")
        c["no_stall"] = Assert(~(walking & (todo != 0)) | issue,
                               "a walk with groups to visit issued nothing")
        c["exactly"] = Assert(~ending | ((visited | bit) == en_ref),
                              "a walk ended without visiting exactly its groups")
        # (b) the beats
        p_issue = past(m, issue, name="p_issue")
        p_group = past(m, g, name="p_group")
        p_first = past(m, visited == 0, name="p_first")
        p_last = past(m, issue & ending, name="p_last")
        p_op = past(m, w_op, name="p_op")
        p_tag = past(m, w_tag, name="p_tag")
        p_reads = past(m, w_reads, name="p_reads")
        p_src = past(m, w_src, name="p_src")
        words = [dut.beat.weights.shape().const(word).as_value() for word in weight_words(w, L)]
        zero = Const(0, len(beat.weights.as_value()))
        expected = Mux(p_reads, Array(words)[p_src * G + p_group], zero)
        on = ~Initial() & beat.valid
        c["beat_valid"] = Assert(Initial() | (beat.valid == p_issue),
                                 "a beat without an issue one cycle before, or none after one")
        c["beat_group"] = Assert(~on | (beat.group == p_group), "a beat of another group")
        c["first"] = Assert(~on | (beat.first == p_first), "first flag wrong")
        c["last"] = Assert(~on | (beat.last == p_last), "last flag wrong")
        c["op_tag"] = Assert(~on | ((beat.op.as_value() == p_op) & (beat.tag == p_tag)),
                             "a beat with another row's op or tag")
        c["weights"] = Assert(~on | (p_src >= n_src) | (beat.weights.as_value() == expected),
                              "a beat with the wrong weights")
        c["busy"] = Assert(dut.busy == (walking | beat.valid), "busy is not walk or beat")
        # (c), (d) the read port
        rp_en, rp_addr = internal["rp__en"], internal["rp__addr"]
        c["no_read"] = Assert(~(walking & ~w_reads) | ~rp_en,
                              "the walk of an op that reads nothing enabled the read port")
        def addr(src, group):
            # The word's address as the port holds it (a source out of range wraps there).
            return (src * G + group)[:len(rp_addr)]

        c["walk_port"] = Assert(~walking | ((rp_en == (issue & w_reads)) &
                                            (~rp_en | (rp_addr == addr(w_src, g)))),
                                "the read port is not the walk's during a walk")
        rb_addr = addr(port.rb_src, port.rb_dst // L)
        c["read_back_port"] = Assert(walking | ((rp_en == port.rb_en) &
                                                (~rp_en | (rp_addr == rb_addr))),
                                     "the read port is not the read-back's outside a walk")
        rb_asked = past(m, port.rb_en & ~dut.busy & (port.rb_src < n_src) & (port.rb_dst < n_dst),
                        name="rb_asked")
        rb_index = past(m, port.rb_src * n_dst + port.rb_dst, name="rb_index")
        flat = [Const(int(v), signed(8)) for v in w.reshape(-1)]
        c["read_back"] = Assert(Initial() | ~rb_asked | (port.rb_data == Array(flat)[rb_index]),
                                "rb_data is not the weight asked for")
        # (e)
        c["ready"] = Assert(cmd.ready == (~walking | ending),
                            "cmd.ready is not 'idle or issuing the last group'")
        m.d.comb += list(c.values())

        if self.lemmas:
            m.d.comb += [
                Assert(internal["walking"] == walking),
                Assert(~walking | (internal["op"] == w_op.as_value())),
                Assert(~walking | (internal["tag"] == w_tag)),
                Assert(~walking | (internal["base"] == w_src * G)),
                Assert(~walking | (visited == (passed & en_ref))),
            ]
            if self.masked:
                rem = internal["rem"]
                m.d.comb += [
                    Assert(~walking | (internal["masked"] == w_masked)),
                    Assert(~walking | (_walk_first(fragment) == (visited == 0))),
                    Assert(~(walking & w_masked) | (((rem & passed) == 0) &
                                                    ((todo & ~rem) == 0))),
                ]
            unmasked_group = ~w_masked if self.masked else Const(1)
            m.d.comb += Assert(~(walking & unmasked_group) |
                               (passed == Mux(internal["group"] == 0, 0,
                                              upto(internal["group"] - 1, G))))
        return m


# (n_src, n_dst, lanes, masked): one lane and five groups; three lanes with a partial last
# group (8 = 3 + 3 + 2); two lanes with a partial last group (7), masked; one lane and eight
# groups, masked; a single group (the walk is its own last issue), masked.
CASES = [(3, 5, 1, False), (3, 8, 3, False), (3, 7, 2, True), (3, 8, 1, True), (2, 3, 3, True)]


def _name(n_src, n_dst, lanes, masked):
    return f"{n_src}x{n_dst}_l{lanes}{'_masked' if masked else ''}"


@pytest.mark.parametrize("n_src,n_dst,lanes,masked", CASES)
def test_lookup_proof(n_src, n_dst, lanes, masked, tmp_path):
    spec = WeightLookupSpec(n_src, n_dst, lanes, masked=masked)
    result = run_sby(spec, f"lookup_{_name(n_src, n_dst, lanes, masked)}", mode="prove",
                     depth=1, build_dir=tmp_path)
    assert result.passed, result.summary()


UNMASKED, MASKED = (3, 5, 1, False), (3, 7, 2, True)

# mutation: (method, old, new, case, the contract's properties a counterexample breaks); each
# checked against the contract alone (no lemmas) by BMC from reset to MUTANT_DEPTH cycles.
MUTATIONS = {
    # (a) A masked walk ignores the enables: it issues disabled groups.
    "ignores_enables": ("_elaborate_walk", "cand.eq(rem & self.beat.group_en)", "cand.eq(rem)",
                        MASKED, ("enabled",)),
    # (a) The group issued is not crossed off: a masked walk issues it again.
    "issues_twice": ("_elaborate_walk", "m.d.sync += rem.eq(rest)", "m.d.sync += rem.eq(cand)",
                     MASKED, ("increasing",)),
    # (a) The walk counts by two: every other group is skipped.
    "skips_groups": ("elaborate", "m.d.sync += group.eq(group + 1)",
                     "m.d.sync += group.eq(group + 2)", UNMASKED, ("no_skip",)),
    # (a), (e) An unmasked walk ends one group early: the last group is never visited.
    "ends_early": ("_elaborate_walk", 'w["last_issue"].eq(walking & (group == G - 1))',
                   'w["last_issue"].eq(walking & (group == G - 2))', UNMASKED,
                   ("exactly", "ready", "no_stall")),
    # (b) Every beat is flagged first.
    "first_every_beat": ("elaborate", 'beat.first.eq(issuing & walk["first"])',
                         "beat.first.eq(issuing)", MASKED, ("first",)),
    # (b) The beats carry the tag on cmd (the next row's) instead of their row's.
    "tag_of_next_row": ("elaborate", "beat.tag.eq(tag)", "beat.tag.eq(self.cmd.payload.tag)",
                        MASKED, ("op_tag",)),
    # (b), (d) A masked walk reads at the group counter, not at the group it issues.
    "reads_counter_group": ("elaborate", "rp.addr.eq(base + cur)", "rp.addr.eq(base + group)",
                            MASKED, ("weights", "walk_port")),
    # (b) busy drops while the last beat is still in flight.
    "busy_walk_only": ("elaborate", "self.busy.eq(walking | beat.valid)",
                       "self.busy.eq(walking)", MASKED, ("busy",)),
    # (c) Every walk enables the read port, reading or not.
    "reads_every_walk": ("elaborate", "rp.en.eq(reads & issuing)", "rp.en.eq(issuing)", MASKED,
                         ("no_read",)),
    # (d) A read-back asked for during a walk takes the read port from it.
    "read_back_takes_port": ("_elaborate_read_back", "with m.If(~walking):",
                             "with m.If(~walking | port.rb_en):", MASKED, ("walk_port",)),
    # (d) The read-back's lane is not registered: rb_data shows the lane asked for now.
    "read_back_lane_late": ("_elaborate_read_back", "m.d.sync += rb_lane.eq(rb_lane_now)",
                            "m.d.comb += rb_lane.eq(rb_lane_now)", MASKED, ("read_back",)),
    # (e) A row is taken in the middle of a walk: the rest of the walk is lost.
    "ready_mid_walk": ("elaborate", 'self.cmd.ready.eq(~walking | walk["last_issue"])',
                       "self.cmd.ready.eq(~walking | issuing)", MASKED, ("ready",)),
    # (e) No row is taken while the last group issues: a gap between rows.
    "gap_between_rows": ("elaborate", 'self.cmd.ready.eq(~walking | walk["last_issue"])',
                         "self.cmd.ready.eq(~walking)", UNMASKED, ("ready",)),
}

# A walk of the mutants' cases has 5 (unmasked) or 4 groups; 8 cycles hold a command, a
# whole walk, the next command taken at its last issue and part of that walk.
MUTANT_DEPTH = 8


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_lookup_proof_catches(mutation, tmp_path):
    method, old, new, (n_src, n_dst, lanes, masked), breaks = MUTATIONS[mutation]
    spec = WeightLookupSpec(n_src, n_dst, lanes, masked=masked, lemmas=False,
                            dut_class=mutant(WeightLookup, old, new, method=method))
    result = run_sby(spec, f"lookup_{mutation}", mode="bmc", depth=MUTANT_DEPTH,
                     build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(*(spec.contract[k] for k in breaks)), result.summary()
