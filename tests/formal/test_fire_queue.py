# amaranth: UnusedElaboratable=no
"""The fire-mask FIFOs between layers, checked with SBY in two halves that meet at the
:class:`~spikegate.hdl.signatures.TTFSSchedule` interface.

* The step scheduler with *abstract* layers: whatever the input stream, the result's
  back-pressure and the layers do within their contract (:func:`layer_contract`: busy
  from the cycle after a command until the pass is over, fire beats only in a running
  ``ACCUMULATE`` or ``SCAN`` pass, at most one fire beat per lane group and step), no
  write to a fire-mask FIFO is ever refused: proven by k-induction. The FIFO's depth,
  ``groups + 1``, is what that needs: with one entry fewer, two groups firing in
  consecutive cycles fill the memory before the first entry reaches the output register
  (a layer of two groups overflows it). By BMC, each spike of a layer becomes exactly one
  ``ACCUMULATE`` row of the next layer in the same step (none lost, none made up). The
  scheduler's promises to the layers (:func:`scheduler_contract`) are proven with it.
* A real :class:`~spikegate.hdl.ttfs_layer.TTFSLayer` keeps the layer contract (BMC),
  given the scheduler's promises and that each source is accumulated at most once per
  image, as in the golden model (a layer's neurons fire once per image at most, and the
  scheduler sends each spike on once; the input layer relies on its images having each
  input spike at most once, which the classifier does not check: an input repeated
  within an image wraps the accumulators, and then a group can fire more than once in a
  step).

A whole :class:`~spikegate.hdl.classifier.TTFSClassifier` is too much for BMC from reset
with this solver: 20 cycles of the (2, 3, 2) network (lanes 1, 4 timesteps) take about a
minute and each further cycle about 1.5 times the one before, while its first fire beat
comes some 19 cycles after the first input (simulation) and an image takes 35 or more.
"""

import numpy as np
import pytest
from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Const, Elaboratable, Module, Mux, Signal

from spikegate.golden.ttfs_discrete import DiscreteConfig
from spikegate.hdl.scheduler import StepScheduler
from spikegate.hdl.timing import Timing
from spikegate.hdl.ttfs_layer import TTFSLayer, TTFSOp
from spikegate.sim.formal import internal_signals, mutant, past, run_sby, stream_rules, transferred

pytestmark = pytest.mark.formal


def _ones(bits):
    """The number of set bits of ``bits``."""
    return sum((bits[k] for k in range(len(bits))), Const(0, range(len(bits) + 1)))


def _new_step(m, schedule, name):
    """A new step begins, as a layer sees it: ``step_start`` or a new ``step``."""
    return schedule.step_start | (schedule.step != past(m, schedule.step, name=f"{name}_p_step"))


def layer_contract(m, schedule, n_dst, lanes, kind, *, name):
    """What the step scheduler may expect of a layer of ``n_dst`` neurons on ``lanes`` lanes
    behind ``schedule`` (its :class:`~spikegate.hdl.signatures.TTFSSchedule`), as ``kind``
    statements (``Assume`` for an abstract layer, ``Assert`` for a real one):

    * ``busy_after_take``: ``busy`` in the cycle after a command is taken;
    * ``busy_in_pass``: ``busy`` only while a pass runs (some command taken, and ``busy``
      ever since);
    * ``fire_in_pass``: a fire beat only while ``busy`` in a running ``ACCUMULATE`` or
      ``SCAN`` pass (never from a ``CLEAR``);
    * ``fire_mask``: a fire beat names a group of the layer and some of its neurons;
    * ``fire_once``: at most one fire beat per group and step (a step begins with
      ``step_start`` or a new ``step``).

    Returns ``(props, state)``: ``{key: statement}`` and the registers ``live`` (a pass
    runs), ``live_fire`` (an ``ACCUMULATE`` or ``SCAN`` pass runs) and ``fired`` (the groups
    that fired in this step), for invariants.
    """
    G = -(-n_dst // lanes)
    cmd, busy, fire_valid, fire = schedule.cmd, schedule.busy, schedule.fire_valid, schedule.fire
    take = transferred(cmd)
    op = cmd.payload.op
    live = Signal(name=f"{name}_live")
    live_fire = Signal(name=f"{name}_live_fire")
    m.d.sync += [live.eq(take | (live & busy)),
                 live_fire.eq((take & ((op == TTFSOp.ACCUMULATE) | (op == TTFSOp.SCAN))) |
                              (live_fire & busy))]
    last_lanes = n_dst - (G - 1) * lanes
    fired_reg = Signal(G, name=f"{name}_fired_reg")
    fired = Signal(G, name=f"{name}_fired")
    m.d.comb += fired.eq(Mux(_new_step(m, schedule, name), 0, fired_reg))
    m.d.sync += fired_reg.eq(fired | Mux(fire_valid, Const(1, G) << fire.group, 0))
    props = {
        "busy_after_take": kind(Initial() | ~past(m, take, name=f"{name}_p_take") | busy,
                                f"{name}: not busy after a command"),
        "busy_in_pass": kind(~busy | live, f"{name}: busy with no pass"),
        "fire_in_pass": kind(~fire_valid | (busy & live_fire),
                             f"{name}: a fire beat outside an ACCUMULATE or SCAN pass"),
        "fire_mask": kind(~fire_valid | ((fire.group < G) & (fire.mask != 0) &
                                         ((fire.group != G - 1) | (fire.mask >> last_lanes == 0))),
                          f"{name}: a fire beat of no neuron"),
        "fire_once": kind(~fire_valid | ~fired.bit_select(fire.group, 1),
                          f"{name}: a group fired twice in one step"),
    }
    m.d.comb += list(props.values())
    return props, {"live": live, "live_fire": live_fire, "fired": fired}


def scheduler_contract(m, schedule, timesteps, kind, *, name):
    """What a layer behind ``schedule`` may expect of the step scheduler, as ``kind``
    statements: ``step_steady``: ``step`` does not change between two cycles in which the
    layer is busy (a pass's beats, and their ``z``, follow its command by a cycle and more:
    the step may change in the cycle after a command only if the layer was idle);
    ``clear_starts``: a ``CLEAR`` is taken only with ``step_start`` (a new image);
    ``clear_idle``: ``clear_stats`` (an image's start, which clears the layer lazily) only
    while the layer is idle and takes no command; ``clear_then_start``: ``step_start`` in
    the cycle after it; ``start_is_step``: ``step_start`` only when the step changes, a
    ``CLEAR`` is offered or an image starts (so that "a step" of :func:`layer_contract` is
    not cut short); ``step_range``: ``step`` below ``timesteps``. Returns ``{key:
    statement}``."""
    step = schedule.step
    p_step = past(m, step, name=f"{name}_p_step2")
    p_busy = past(m, schedule.busy, name=f"{name}_p_busy")
    take = transferred(schedule.cmd)
    clear = schedule.cmd.payload.op == TTFSOp.CLEAR
    p_clear_stats = past(m, schedule.clear_stats, name=f"{name}_p_clear_stats")
    props = {
        "step_steady": kind(Initial() | ~(schedule.busy & p_busy) | (step == p_step),
                            f"{name}: step changed during a pass"),
        "clear_starts": kind(~(take & clear) | schedule.step_start,
                             f"{name}: a CLEAR within an image"),
        "clear_idle": kind(~schedule.clear_stats | ~(schedule.busy | take),
                           f"{name}: clear_stats during a pass"),
        "clear_then_start": kind(Initial() | ~p_clear_stats | schedule.step_start,
                                 f"{name}: clear_stats not followed by step_start"),
        "start_is_step": kind(Initial() | ~schedule.step_start | (step != p_step) |
                              (schedule.cmd.valid & clear) | p_clear_stats,
                              f"{name}: step_start within a step"),
        "step_range": kind(step < timesteps, f"{name}: step out of range"),
    }
    m.d.comb += list(props.values())
    return props


class FireQueueSpec(Elaboratable):
    """``dut_class(sizes, lanes, DiscreteConfig(timesteps=T), timing)`` with abstract layers.

    Inputs: ``i_stream`` any stream that obeys the rules (any events: bad, late or repeated
    ones too); ``o_stream.ready`` anything; per layer, ``cmd.ready`` anything and ``busy``,
    ``fire_valid``, ``fire``, ``wake``, ``armed_any``, ``step_fired``, ``step_first`` and the
    counts anything within :func:`layer_contract` (assumed).

    ``contract``: per FIFO ``j`` (from layer ``j`` to ``j + 1``), ``never_refused{j}``: no
    write while it is not ready; per layer ``l``, the :func:`scheduler_contract` (keys
    suffixed with ``l``). With ``delivery``, per FIFO ``j``, a reference set of the spikes
    of layer ``j`` in this step not yet delivered: ``row_is_spike{j}``: every ``ACCUMULATE``
    row taken by layer ``j + 1`` is one of them (nothing made up or delivered twice);
    ``none_lost{j}``: none left when a step begins or the result is offered. It depends on
    the FIFO's contents, which no invariant here reaches: BMC only.

    With ``lemmas`` the spec also asserts invariants on the scheduler's state (``fsm_state``,
    ``done{l}``, ``have_mask{l}``, ``_step_start``, ``_k``, ``_k1``): passes run only in the state ``STEP``
    (``ACCUMULATE`` and ``SCAN``; with the timing's ``lazy_clear`` an image's start clears
    lazily, else also in ``CLEAR_WAIT``, ``CLEAR``, which follows ``IDLE`` with
    ``step_start``); outside ``STEP`` every FIFO is
    empty and no fire mask is held; a FIFO holds at most as many entries as its layer has
    groups that fired in this step; once layer ``l + 1`` is done for the step, layer ``l``
    is done and idle and its FIFO is empty; ``_k1`` is ``_k + 1`` wherever it is read. These make the contract
    inductive.
    """

    def __init__(self, sizes, lanes, *, timesteps=4, timing=Timing(), dut_class=StepScheduler,
                 lemmas=True, delivery=False):
        self.sizes, self.lanes, self.timesteps, self.timing = sizes, lanes, timesteps, timing
        self.dut_class, self.lemmas, self.delivery = dut_class, lemmas, delivery
        self.contract = {}

    def elaborate(self, platform):
        m = Module()
        sizes, lanes, T = self.sizes, self.lanes, self.timesteps
        dut = self.dut_class(sizes, lanes, DiscreteConfig(timesteps=T), self.timing)
        fragment, internal = internal_signals(dut, platform)
        m.submodules.dut = fragment
        i, o = dut.i_stream, dut.o_stream
        m.d.comb += [i.valid.eq(AnySeq(1)), i.payload.eq(AnySeq(len(i.payload.as_value()))),
                     o.ready.eq(AnySeq(1))]
        stream_rules(m, i, Assume, name="i")

        state = []
        for l, layer in enumerate(dut.layers):
            for member in ("busy", "fire_valid", "wake", "armed_any", "step_fired", "step_first",
                           "spikes", "lookups", "scan_cycles"):
                sig = getattr(layer, member)
                m.d.comb += sig.eq(AnySeq(len(sig)))
            m.d.comb += [layer.cmd.ready.eq(AnySeq(1)),
                         layer.fire.eq(AnySeq(len(layer.fire.as_value())))]
            _, s = layer_contract(m, layer, sizes[l + 1], lanes[l], Assume, name=f"layer{l}")
            promises = scheduler_contract(m, layer, T, Assert, name=f"layer{l}")
            self.contract.update({f"{key}{l}": p for key, p in promises.items()})
            state.append(s)

        fifos = dut._fifos        # (SyncFIFOBuffered, FireMaskLayout) per FIFO, after elaboration
        for j, (f, _) in enumerate(fifos):
            self.contract[f"never_refused{j}"] = Assert(~(f.w_en & ~f.w_rdy),
                                                        f"fires{j}: a write refused")
            m.d.comb += self.contract[f"never_refused{j}"]
            if self.delivery:
                self._delivery(m, dut, j)

        if self.lemmas:
            fsm = internal["fsm_state"]
            codes = {}
            for value in range(1 << len(fsm)):
                try:
                    codes[fsm.decoder(value).split("/")[0]] = value
                except KeyError:
                    pass
            in_step = fsm == codes["STEP"]
            passes = in_step
            # k1 is k + 1 wherever it is read (with registered_head, STEP_START sets it).
            k1_set = in_step
            if not self.timing.registered_head:
                k1_set |= fsm == codes["STEP_START"]
            if not self.timing.lazy_clear:
                # The CLEAR pass: CLEAR follows IDLE (with step_start).
                clearing = (fsm == codes["CLEAR"]) | (fsm == codes["CLEAR_WAIT"])
                passes |= fsm == codes["CLEAR_WAIT"]
                k1_set |= clearing
                m.d.comb += Assert((fsm != codes["CLEAR"]) | internal["_step_start"])
            m.d.comb += Assert(~k1_set | (internal["_k1"] == internal["_k"] + 1))
            for s in state:
                m.d.comb += [Assert(~s["live_fire"] | s["live"]),
                             Assert(in_step | ~s["live_fire"]),
                             Assert(passes | ~s["live"]),
                             Assert(~in_step | (s["live"] == s["live_fire"]))]
            for j, (f, _) in enumerate(fifos):
                have, done = internal[f"have_mask{j + 1}"], internal[f"done{j + 1}"]
                m.d.comb += [
                    Assert(f.level <= _ones(state[j]["fired"])),
                    Assert(in_step | ((f.level == 0) & ~have)),
                    Assert(~(in_step & done) | (internal[f"done{j}"] & (f.level == 0) & ~have &
                                                ~state[j]["live"])),
                ]
        return m

    def _delivery(self, m, dut, j):
        src_layer, dst_layer = dut.layers[j], dut.layers[j + 1]
        n, L = self.sizes[j + 1], self.lanes[j]
        pending = Signal(n, name=f"pending{j}")
        fire = src_layer.fire
        fired = Mux(src_layer.fire_valid, (fire.mask << (fire.group * L))[:n], 0)
        cmd = dst_layer.cmd
        row = transferred(cmd) & (cmd.payload.op == TTFSOp.ACCUMULATE)
        src = cmd.payload.src
        m.d.sync += pending.eq((pending | fired) & ~Mux(row, (Const(1, n) << src)[:n], 0))
        new_step = _new_step(m, dst_layer, f"delivery{j}")
        self.contract[f"row_is_spike{j}"] = Assert(~row | ((src < n) & pending.bit_select(src, 1)),
                                                   f"layer {j + 1}: a row of no pending spike")
        self.contract[f"none_lost{j}"] = Assert(~(new_step | dut.o_stream.valid) | (pending == 0),
                                                f"layer {j + 1}: a spike of layer {j} lost")
        m.d.comb += [self.contract[f"row_is_spike{j}"], self.contract[f"none_lost{j}"]]


# (sizes, lanes, timing): one FIFO of three groups of one lane; two FIFOs, the first of
# three groups of two lanes (the last one partial), with the default timing and with level
# 5's (registered head tests, tree jump: the scheduler's other structure).
CASES = {
    "2-3-2": ((2, 3, 2), (1, 1), Timing()),
    "2-5-3-2_l2": ((2, 5, 3, 2), (2, 1, 1), Timing()),
    "2-5-3-2_l2_t5": ((2, 5, 3, 2), (2, 2, 1), Timing.preset(5)),
    # The iCEBreaker's scheduler: a CLEAR pass at an image's start, masks issued from the
    # mask register only.
    "2-5-3-2_l2_t5_eager": ((2, 5, 3, 2), (2, 2, 1),
                            Timing.preset(5, lazy_clear=False, head_issue=False)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fire_queue_proof(case, tmp_path):
    sizes, lanes, timing = CASES[case]
    spec = FireQueueSpec(sizes, lanes, timing=timing)
    result = run_sby(spec, f"fire_queue_{case}", mode="prove", depth=2, build_dir=tmp_path)
    assert result.passed, result.summary()


# 14 cycles from reset hold a whole image in which a spike crosses the FIFO: the input
# register, CLEAR, a step (rows, fire beats, the FIFO read, the next layer's row), the
# result (SBY cover: 12 cycles at the shortest), and every behaviour of the input, the
# layers and the back-pressure within the contracts up to that length.
DELIVERY_BMC_DEPTH = 14


@pytest.mark.slow
def test_fire_queue_delivery_bmc(tmp_path):
    spec = FireQueueSpec((2, 4, 3), (2, 1), lemmas=False, delivery=True)
    result = run_sby(spec, "fire_queue_delivery", mode="bmc", depth=DELIVERY_BMC_DEPTH,
                     build_dir=tmp_path)
    assert result.passed, result.summary()


# mutation: (method, old, new, (sizes, lanes), with delivery?, the properties a counterexample
# breaks); each checked without lemmas by BMC from reset to MUTANT_DEPTH cycles.
MUTATIONS = {
    # One entry short: two groups firing in consecutive cycles fill the memory before the
    # first entry reaches the output register.
    "fifo_one_short": ("_fire_fifos", "depth=self._groups(l) + 1", "depth=self._groups(l)",
                       ((2, 4, 3), (2, 1)), False, ("never_refused0",)),
    # The step ends with fire masks still queued: they are read in the next step.
    "step_ends_early": ("_step_state", "quiet[l - 1] & (f.level == 0)", "quiet[l - 1]",
                        ((2, 4, 3), (2, 1)), True, ("none_lost0",)),
    # Only the lowest lane of each fire mask is issued (from the FIFO's head): the other
    # spikes are lost.
    "drops_lanes": ("_step_state", "have.eq(e_rest != 0)", "have.eq(0)",
                    ((2, 4, 3), (2, 1)), True, ("none_lost0",)),
    # The next mask is read while one is being issued: its remaining spikes are lost.
    "reads_while_issuing": ("_step_state", "with m.Elif(f.r_rdy):", "with m.If(f.r_rdy):",
                            ((2, 4, 3), (2, 1)), True, ("none_lost0", "row_is_spike0")),
}

MUTANT_DEPTH = 14


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_fire_queue_proof_catches(mutation, tmp_path):
    method, old, new, (sizes, lanes), delivery, breaks = MUTATIONS[mutation]
    spec = FireQueueSpec(sizes, lanes, lemmas=False, delivery=delivery,
                         dut_class=mutant(StepScheduler, old, new, method=method))
    result = run_sby(spec, f"fire_queue_{mutation}", mode="bmc", depth=MUTANT_DEPTH,
                     build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(*(spec.contract[k] for k in breaks)), result.summary()


class LayerFireSpec(Elaboratable):
    """``dut_class(n_src, n_dst, lanes, THETA, CONFIG, weights(n_src, n_dst))`` keeps the
    :func:`layer_contract` (``contract``, asserted), given (assumed): any commands of the ops
    the scheduler sends (``ACCUMULATE``, ``SCAN``, ``CLEAR``; not necessarily held until
    taken: the scheduler offers a scan for one cycle), the :func:`scheduler_contract`, each
    source accumulated at most once between two clears (a ``CLEAR`` or ``clear_stats``; and
    below ``n_src``), any trace address. Fixed weights and threshold (no writes).

    The fire beats' arithmetic is symbolic (which sources when, at which step): a group that
    fires in one pass of a step fires in no later pass of it, because the compare at step
    ``k`` is the same before and after step ``k``'s inputs, exactly
    (:mod:`spikegate.golden.ttfs_discrete`) and the accumulators never wrap when each source
    comes once. Checked by BMC: the state memory is beyond the reach of invariants here.
    """

    def __init__(self, n_src, n_dst, lanes, *, dut_class=TTFSLayer):
        self.n_src, self.n_dst, self.lanes, self.dut_class = n_src, n_dst, lanes, dut_class
        self.contract = {}

    def elaborate(self, platform):
        m = Module()
        n_src, n_dst = self.n_src, self.n_dst
        dut = self.dut_class(n_src, n_dst, self.lanes, LAYER_THETA, LAYER_CONFIG,
                             layer_weights(n_src, n_dst))
        m.submodules.dut = dut
        s = dut.schedule
        cmd = s.cmd
        m.d.comb += [cmd.valid.eq(AnySeq(1)), cmd.payload.eq(AnySeq(len(cmd.payload.as_value()))),
                     s.step.eq(AnySeq(len(s.step))), s.step_start.eq(AnySeq(1)),
                     s.clear_stats.eq(AnySeq(1)), dut.trace.addr.eq(AnySeq(len(dut.trace.addr)))]
        op, src = cmd.payload.op, cmd.payload.src
        m.d.comb += Assume((op == TTFSOp.ACCUMULATE) | (op == TTFSOp.SCAN) | (op == TTFSOp.CLEAR))
        scheduler_contract(m, s, LAYER_CONFIG.timesteps, Assume, name="sched")
        take = transferred(cmd)
        used = Signal(n_src)            # the sources accumulated since the last clear
        accumulate = take & (op == TTFSOp.ACCUMULATE)
        m.d.comb += Assume(~accumulate | ((src < n_src) & ~used.bit_select(src, 1)))
        with m.If((take & (op == TTFSOp.CLEAR)) | s.clear_stats):
            m.d.sync += used.eq(0)
        with m.Elif(accumulate):
            m.d.sync += used.eq(used | (Const(1, n_src) << src)[:n_src])
        self.contract, _ = layer_contract(m, s, n_dst, self.lanes, Assert, name="layer")
        return m


#: The layer checks' time grid: z = 1, 3, 7, 20 (narrow products, a quicker solver; the
#: argument does not depend on the values).
LAYER_CONFIG = DiscreteConfig(timesteps=4, dt=1.0, z_frac_bits=0)
LAYER_THETA = 20


def layer_weights(n_src, n_dst, seed=23):
    """Weights that make neurons fire within the check's few steps (seed fixed)."""
    return np.random.default_rng(seed).integers(-40, 100, (n_src, n_dst))


# 10 cycles from reset: a CLEAR and three passes of a layer of two groups (two lanes, the
# second group partial, group-wake scans), e.g. two sources' rows at one step and a scan.
LAYER_BMC_DEPTH = 10


@pytest.mark.slow
def test_layer_keeps_contract_bmc(tmp_path):
    result = run_sby(LayerFireSpec(2, 3, 2), "fire_layer", mode="bmc", depth=LAYER_BMC_DEPTH,
                     build_dir=tmp_path)
    assert result.passed, result.summary()


# mutation: (method, old, new, the contract's properties a counterexample breaks)
LAYER_MUTATIONS = {
    # The fired bit is ignored: a neuron fires again in every later pass.
    "refires": ("_write", '~c2[f"fired{l}"] & state_op', "state_op", ("fire_once",)),
    # CLEAR passes run the fire check too: a fire beat from a CLEAR.
    "fires_in_clear": ("_write", 'state_op = stages.ops(c2, "ACCUMULATE", "SCAN")',
                       'state_op = stages.ops(c2, "ACCUMULATE", "SCAN", "CLEAR")',
                       ("fire_in_pass",)),
}


@pytest.mark.parametrize("mutation", sorted(LAYER_MUTATIONS))
def test_layer_proof_catches(mutation, tmp_path):
    method, old, new, breaks = LAYER_MUTATIONS[mutation]
    spec = LayerFireSpec(2, 3, 2, dut_class=mutant(TTFSLayer, old, new, method=method))
    result = run_sby(spec, f"fire_layer_{mutation}", mode="bmc", depth=LAYER_BMC_DEPTH,
                     build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(*(spec.contract[k] for k in breaks)), result.summary()
