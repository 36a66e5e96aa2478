"""The quiet horizon of a TTFS layer: how long it can go without a scan.

After each pass a layer knows, per lane, the quiet class of each armed neuron (the largest
quiet factor ``n / 2**d`` with ``2**d * acc_wz > n * z_k * (acc_w - theta)``,
:func:`~spikegate.golden.ttfs_discrete.quiet_horizons`): no neuron can fire without new
input before the horizon of the smallest class. Three variants, chosen by the layer's
:class:`~spikegate.hdl.timing.Timing`; none changes a result, only which scans are skipped:

* :func:`layer_horizon`: one horizon for the whole layer, the minimum class over the pass;
* the same with ``cut_quiet``: a register stage after the lanes' quiet tests (the classes as
  a thermometer code, so that the minimum is an AND);
* :func:`group_horizons` (``group_wake``): a wake step per lane group, written with the
  group's state (with ``cut_quiet``, one cycle after it, from the registered thermometer
  code of the beat's lanes); a ``SCAN`` visits only the groups that are due.

Each function takes the :class:`~spikegate.hdl.ttfs_layer.TTFSLayer` being elaborated and
drives its ``armed``, ``armed_any``, ``quiet_until`` and ``wake``.
"""

from amaranth.hdl import Cat, Mux, Signal

from .arith import min_tree, times_const

__all__ = ["quiet_class_min", "layer_horizon", "group_horizons"]


def _armed_change(c, lanes):
    """The change of the armed count that a beat makes (neurons armed after it, less before)."""
    return (sum(c[f"armed_after{l}"] for l in range(lanes)) -
            sum(c[f"was_armed{l}"] for l in range(lanes)))


def _quiet_test(c, l, i, n, d):
    """Lane ``l``'s test of its ``i``-th quiet factor ``n / 2**d``: ``2**d * acc_wz' > n * z *
    (acc_w' - theta)`` (``n * pz`` as shifts and adds); in a layer of binary inputs the
    layer's own test ``quiet{l}_{i}`` (a compare with a threshold, see
    :class:`~spikegate.hdl.ttfs_layer.TTFSLayer`'s ``binary_input``)."""
    if f"quiet{l}_{i}" in c:
        return c[f"quiet{l}_{i}"]
    return (c[f"acc_wz_new{l}"] << d) > times_const(c[f"pz{l}"], n)


def quiet_class_min(m, c, lanes, factors):
    """The beat's smallest quiet class over its lanes: per lane, class ``i + 1`` when the
    ``i``-th factor's test holds (the last that holds), ``len(factors)`` when the lane is not
    armed."""
    lane_class = []
    for l in range(lanes):
        cls = Signal(range(len(factors) + 1), name=f"quiet_class{l}")
        m.d.comb += cls.eq(len(factors))
        with m.If(c[f"armed_after{l}"]):
            m.d.comb += cls.eq(0)
            for i, (n, d) in enumerate(factors):
                with m.If(_quiet_test(c, l, i, n, d)):
                    m.d.comb += cls.eq(i + 1)
        lane_class.append(cls)
    return min_tree(m, lane_class, "quiet_min")


def layer_horizon(layer, m, c3, stages, opts):
    """One horizon for the whole layer: ``armed``, ``quiet_until`` and ``wake`` from the
    passes' smallest quiet class, with a register stage after the quiet tests when the
    layer's timing has ``cut_quiet``. ``opts`` is ``(until_opts, wake_opts)``, the horizons
    of each class at the current step."""
    timing = layer.timing
    until_opts, wake_opts = opts
    if timing.cut_quiet:
        q_state, q_clear, q_last, sel_until, sel_wake, q_delta = _thermometer_cut(
            layer, m, c3, stages, opts)
    else:
        beat_min = quiet_class_min(m, c3, layer.lookup.lanes, timing.quiet_factors)
        pass_min = Signal(range(len(timing.quiet_factors) + 1))
        cur_min = Signal.like(pass_min)
        m.d.comb += cur_min.eq(Mux(c3["first"] | (beat_min < pass_min), beat_min, pass_min))
        with m.If(stages.ops(c3, "ACCUMULATE", "SCAN")):
            m.d.sync += pass_min.eq(cur_min)
        q_state, q_clear, q_last = stages.ops(c3, "ACCUMULATE", "SCAN"), stages.ops(c3, "CLEAR"), \
            c3["last"]
        sel_until, sel_wake = until_opts[cur_min], wake_opts[cur_min]
        q_delta = _armed_change(c3, layer.lookup.lanes)

    # ``armed`` and ``quiet_until`` change here only; ``wake`` follows them.
    next_until = Signal.like(layer.quiet_until)
    until1 = Signal.like(layer.schedule.wake, init=1)      # quiet_until + 1
    next_until1 = Signal.like(layer.schedule.wake)
    next_armed = Signal.like(layer.armed)
    m.d.comb += [next_until.eq(layer.quiet_until), next_until1.eq(until1),
                 next_armed.eq(layer.armed)]
    if timing.lazy_clear:
        # A CLEAR pass, or an image's start (``clear_stats``, the layer's lazy clear).
        q_clear = q_clear | layer.schedule.clear_stats
    with m.If(q_clear):
        m.d.comb += [next_until.eq(0), next_until1.eq(1)]
    with m.Elif(q_state):
        with m.If(q_last):
            m.d.comb += [next_until.eq(sel_until), next_until1.eq(sel_wake)]

    with m.If(q_clear):
        m.d.comb += next_armed.eq(0)
    with m.Elif(q_state):
        m.d.comb += next_armed.eq(layer.armed + q_delta)
    m.d.sync += [layer.quiet_until.eq(next_until), layer.armed.eq(next_armed),
                 layer.schedule.armed_any.eq(next_armed != 0),
                 until1.eq(next_until1),
                 layer.schedule.wake.eq(Mux(next_armed != 0, next_until1, layer.config.timesteps))]


def _beat_thermometer(m, c3, lanes, factors):
    """The beat's quiet class as a thermometer code over its lanes (``ge[j - 1]`` = every
    lane's class is at least ``j``; a lane that is not armed has the top class), so that the
    minimum over lanes (and over a pass) is an AND."""
    F = len(factors)
    lane_ge = []
    for l in range(lanes):
        tests = []
        for i, (n, d) in enumerate(factors):
            t = Signal(name=f"quiet_test{l}_{i}")
            m.d.comb += t.eq(_quiet_test(c3, l, i, n, d))
            tests.append(t)
        # Class >= j: not armed (class F), or the test of some factor i >= j - 1 holds
        # (the last test that holds sets the class).
        ge = Signal(F, name=f"quiet_ge{l}")
        for j in range(1, F + 1):
            m.d.comb += ge[j - 1].eq(~c3[f"armed_after{l}"] | Cat(*tests[j - 1:]).any())
        lane_ge.append(ge)
    beat_ge = Signal(F, name="quiet_beat_ge")
    m.d.comb += beat_ge.eq(lane_ge[0] if lanes == 1 else
                           Cat(*(Cat(*(g[j] for g in lane_ge)).all() for j in range(F))))
    return beat_ge


def _select(ge, options):
    """``options[j]`` for the highest ``j`` with ``ge[j - 1]`` set (``options[0]`` for none)."""
    out = options[0]
    for j in range(1, len(ge) + 1):
        out = Mux(ge[j - 1], options[j], out)
    return out


def _thermometer_cut(layer, m, c3, stages, opts):
    """The quiet horizon with a register stage after the lanes' quiet tests.

    The quiet class as a thermometer code, ``ge[j]`` = class >= j, so that the minimum over
    the lanes and over the pass is an AND. This stage: the tests, the AND over the lanes and
    the change of the armed count; the next: the pass's minimum and the horizon it selects.
    Returns (state, clear, last, until, wake, armed change) of the next stage.
    """
    L = layer.lookup.lanes
    factors = layer.timing.quiet_factors
    until_opts, wake_opts = opts
    F = len(factors)
    q = {"valid": c3["valid"], "op": c3["op"], "first": c3["first"], "last": c3["last"]}
    q["ge"] = _beat_thermometer(m, c3, L, factors)
    q["delta"] = Signal(range(-L, L + 1))
    m.d.comb += q["delta"].eq(_armed_change(c3, L))
    c4 = stages.cut(True, "p4", q)
    c4_state = stages.ops(c4, "ACCUMULATE", "SCAN")
    pass_ge = Signal(F)
    cur_ge = Signal(F)
    m.d.comb += cur_ge.eq(c4["ge"] & (pass_ge | c4["first"].replicate(F)))
    with m.If(c4_state):
        m.d.sync += pass_ge.eq(cur_ge)
    until, wake = _select(cur_ge, until_opts), _select(cur_ge, wake_opts)
    return c4_state, stages.ops(c4, "CLEAR"), c4["last"], until, wake, c4["delta"]


def group_horizons(layer, m, c3, stages, opts):
    """Per-group quiet horizons: a wake step per lane group (``timesteps`` = none of its
    lanes is armed), written with the group's state; the groups due at ``step`` enable a
    masked ``SCAN``; ``wake`` is the minimum over the groups."""
    lk = layer.lookup
    L, G = lk.lanes, lk.groups
    T = layer.config.timesteps
    factors = layer.timing.quiet_factors
    group_armed = Cat(*(c3[f"armed_after{l}"] for l in range(L))).any()
    opt = Signal.like(layer.schedule.wake)
    if layer.timing.cut_quiet:
        # The lanes' quiet tests, then a register stage, then the wake option and the write:
        # a group's wake is written one cycle after its state. Nothing reads it before: a
        # masked SCAN starts only when no pass is in flight (this stage counts in ``busy``),
        # and a walk changes only the wakes of groups it has passed.
        q = {"valid": c3["valid"], "op": c3["op"], "group": c3["group"],
             "ge": _beat_thermometer(m, c3, L, factors), "armed": group_armed,
             "delta": Signal(range(-L, L + 1), name="quiet_delta")}
        m.d.comb += q["delta"].eq(_armed_change(c3, L))
        c3 = stages.cut(True, "p4", q)
        group_armed, delta = c3["armed"], c3["delta"]
        m.d.comb += opt.eq(_select(c3["ge"], opts[1]))
    else:
        beat_min = quiet_class_min(m, c3, L, factors)
        delta = _armed_change(c3, L)
        m.d.comb += opt.eq(opts[1][beat_min])
    c3_state, c3_clear = stages.ops(c3, "ACCUMULATE", "SCAN"), stages.ops(c3, "CLEAR")
    image_start = layer.schedule.clear_stats if layer.timing.lazy_clear else 0
    gwake = [Signal(range(T + 1), init=T, name=f"group_wake{g}") for g in range(G)]
    new = Signal(range(T + 1))
    m.d.comb += new.eq(Mux(~group_armed | (opt >= T), T, opt))
    for g in range(G):
        # A CLEAR pass, or an image's start (``clear_stats``, the layer's lazy clear).
        with m.If(image_start | (c3_clear & (c3["group"] == g))):
            m.d.sync += gwake[g].eq(T)
        with m.Elif(c3_state & (c3["group"] == g)):
            m.d.sync += gwake[g].eq(new)
        m.d.comb += lk.beat.group_en[g].eq(gwake[g] <= layer.schedule.step)
    wake = min_tree(m, gwake, "wake_min")
    if layer.timing.cut_wake:
        # The minimum over the groups, registered: it settles a cycle after a group's wake is
        # written, a cycle that counts in ``busy``; an image's start sets it at once.
        wake_r = Signal.like(layer.schedule.wake, init=T, name="wake_min_r")
        settling = Signal(name="wake_settling")
        m.d.sync += [wake_r.eq(Mux(image_start, T, wake)), settling.eq(c3_state | c3_clear)]
        stages.valids.append(settling)
        wake = wake_r
    m.d.comb += [layer.schedule.wake.eq(wake), layer.quiet_until.eq(wake - 1)]

    next_armed = Signal.like(layer.armed)
    m.d.comb += next_armed.eq(layer.armed)
    with m.If(c3_clear | image_start):
        m.d.comb += next_armed.eq(0)
    with m.Elif(c3_state):
        m.d.comb += next_armed.eq(layer.armed + delta)
    m.d.sync += [layer.armed.eq(next_armed), layer.schedule.armed_any.eq(next_armed != 0)]
