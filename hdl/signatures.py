"""The interfaces that cross Component boundaries, each declared once as a
``wiring.Signature`` and joined with ``wiring.connect``.

Every signature is written from the side that drives its requests (the host side, the
controller); the block that serves it takes it ``In(...)`` (flipped).

========================  ==========================================================
signature                 between
========================  ==========================================================
:class:`WeightPort`       a layer (or the classifier's decoder) and a weight memory:
                          write one weight, read one back
:func:`row_commands`      a controller and a :class:`~spikegate.hdl.lookup.WeightLookup`
                          (through a layer): walk the row of one source
:class:`Beats`            a :class:`~spikegate.hdl.lookup.WeightLookup` and the neuron
                          arithmetic of its layer: one lane group's weights per cycle
:class:`TracePort`        read one neuron's spike step (optionally of a chosen layer)
:class:`ModelPort`        the protocol engine and the classifier: weights, thresholds,
                          read-back, the ``idle`` that allows them
:class:`LearnControl`     the protocol engine and the classifier's learning sequencer
:class:`SpikingLayer`     a classifier's step scheduler and one spiking layer
:class:`TTFSSchedule`     the same for a TTFS layer (wakes, first spike, scans)
:class:`LayerLearning`    a learning sequencer and one TTFS layer's learning lanes
:class:`Votes`            a layer's learning lanes and a delta voter
:class:`LearnHandshake`   a classifier's step scheduler and its learning sequencer
:class:`PDBiasPort`       the host side and a PD layer: write one bias
:class:`PDTracePort`      a PD layer and an observer (a test bench): every spike event
                          and every decoded neuron, as they happen
========================  ==========================================================
"""

from amaranth.hdl import signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.fixed import WEIGHT_BITS, unsigned_bits
from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from spikegate.golden.sign_backprop import LFSR_BITS, MAX_LFSR_K, MAX_LR_SHIFT
from spikegate.golden.ttfs_discrete import THETA_BITS
from .layouts import RESULT_COUNT_BITS, FireMaskLayout, RowCommandLayout, index_bits

__all__ = ["WeightPort", "row_commands", "Beats", "TracePort", "ModelPort", "LearnControl",
           "SpikingLayer", "TTFSSchedule", "Votes", "LayerLearning", "LearnHandshake", "PDBiasPort",
           "PDTracePort", "LEARN_SHIFT_BITS"]

class _Keyed(wiring.Signature):
    """A signature whose instances are equal when they are of one class and built from the
    same parameters (``_key``), as amaranth-soc's signatures are."""

    def __eq__(self, other):
        return type(other) is type(self) and other._key == self._key

    def __hash__(self):
        return hash((type(self), self._key))

    def __repr__(self):
        return f"{type(self).__name__}{self._key!r}"


#: Width of a learning step's shift (``2**shift`` weight units), from the golden model's
#: largest shift (:data:`~spikegate.golden.sign_backprop.MAX_LR_SHIFT`).
LEARN_SHIFT_BITS = unsigned_bits(MAX_LR_SHIFT)


class WeightPort(_Keyed):
    """Write one weight and read one back, addressed by (source, destination).

    Members
    -------
    w_en, w_src, w_dst, w_data : Out
        Write ``w_data`` (signed 8 bits) to weight (``w_src``, ``w_dst``); it lands one cycle
        later.
    rb_en, rb_src, rb_dst : Out
        Read weight (``rb_src``, ``rb_dst``) back.
    rb_data : In
        The weight read back, the memory's read-back latency after ``rb_en`` (one cycle
        for a plain :class:`~spikegate.hdl.lookup.WeightLookup`, three with weight banks;
        the classifier's ``rb_latency`` adds its own registers).
    """

    def __init__(self, n_src, n_dst):
        self._key = (n_src, n_dst)
        src, dst = index_bits(n_src), index_bits(n_dst)
        super().__init__({
            "w_en": Out(1), "w_src": Out(src), "w_dst": Out(dst),
            "w_data": Out(signed(WEIGHT_BITS)),
            "rb_en": Out(1), "rb_src": Out(src), "rb_dst": Out(dst),
            "rb_data": In(signed(WEIGHT_BITS)),
        })



def row_commands(n_src, op_shape, tag_bits=1):
    """The row-command stream (:class:`~spikegate.hdl.layouts.RowCommandLayout`): walk the
    row of ``src`` for the user's op code ``op``; ``tag`` travels with the beats."""
    return stream.Signature(RowCommandLayout(n_src, op_shape, tag_bits))


class Beats(_Keyed):
    """The beats of a row walk, from the weight lookup to its user's neuron arithmetic.

    Members
    -------
    issue_valid, issue_group : Out
        The group whose memory read is issued this cycle (for the user's own state memory,
        read at the same address so that both arrive together).
    valid, group, first, last, op, tag, weights : Out
        One cycle after issue: the weights of that group (zero for ops that read none),
        whether it is the first / last group of its row, the row's op and tag. No
        back-pressure: the user takes every beat.
    ww_en, ww_data : In
        Write back, during a beat, lanes ``ww_en`` of the beat's word (read-modify-write).
    group_en : In (``masked`` only)
        The groups a masked walk visits (see :class:`~spikegate.hdl.lookup.WeightLookup`).
    walk_masked : Out (``masked`` only)
        A masked walk is issuing this cycle.
    """

    def __init__(self, groups, lanes, op_shape, tag_bits=1, *, masked=False):
        self._key = (groups, lanes, op_shape, tag_bits, masked)
        words = _weight_word(lanes)
        group = index_bits(groups)
        super().__init__({
            "issue_valid": Out(1), "issue_group": Out(group),
            "valid": Out(1), "group": Out(group), "first": Out(1), "last": Out(1),
            "op": Out(op_shape), "tag": Out(tag_bits), "weights": Out(words),
            "ww_en": In(lanes), "ww_data": In(words),
            **({"group_en": In(groups), "walk_masked": Out(1)} if masked else {}),
        })



def _weight_word(lanes):
    return data.ArrayLayout(signed(WEIGHT_BITS), lanes)


class TracePort(_Keyed):
    """Read the spike step of neuron ``addr`` (of layer ``layer`` when there are several);
    ``step`` holds it one cycle later (``timesteps`` = never)."""

    def __init__(self, n_neurons, step_bits, n_layers=None):
        self._key = (n_neurons, step_bits, n_layers)
        super().__init__({
            **({"layer": Out(index_bits(n_layers))} if n_layers is not None else {}),
            "addr": Out(index_bits(n_neurons)),
            "step": In(step_bits),
        })



class ModelPort(_Keyed):
    """The stored model of a classifier with ``sizes`` neurons per layer: weights and
    thresholds written, weights read back, while the classifier is ``idle``.

    Members
    -------
    idle : In
        No image in progress: the writes and reads below are taken.
    w_en, w_layer, w_src, w_dst, w_data : Out
        Write one weight of layer ``w_layer``.
    rb_en : Out; rb_data : In
        Read back the weight addressed by ``w_layer``, ``w_src``, ``w_dst`` (the classifier's
        read-back latency, :attr:`~spikegate.hdl.timing.Timing.rb_latency`).
    theta_en, theta_data : Out
        Set the threshold of layer ``w_layer``.
    """

    def __init__(self, sizes):
        self._key = (tuple(sizes),)
        super().__init__({
            "idle": In(1),
            "w_en": Out(1),
            "w_layer": Out(index_bits(len(sizes) - 1)),
            "w_src": Out(index_bits(max(sizes[:-1]))),
            "w_dst": Out(index_bits(max(sizes[1:]))),
            "w_data": Out(WEIGHT_BITS),
            "rb_en": Out(1),
            "rb_data": In(WEIGHT_BITS),
            "theta_en": Out(1),
            "theta_data": Out(THETA_BITS),
        })



class LearnControl(_Keyed):
    """On-chip learning requests (:mod:`spikegate.golden.sign_backprop`), sampled when an
    image starts.

    Members
    -------
    en, label, shift : Out
        Learn from the image with this label and step ``2**shift``.
    k : Out
        Stochastic rounding with ``k`` LFSR bits per candidate write (0 = off).
    errors_only : Out
        Skip an image whose decision is already the label.
    lfsr_seed : Out
        Restart the update LFSR (taken while idle).
    """

    def __init__(self, n_classes):
        self._key = (n_classes,)
        super().__init__({
            "en": Out(1), "label": Out(index_bits(n_classes)),
            "shift": Out(LEARN_SHIFT_BITS), "k": Out(range(MAX_LFSR_K + 1)),
            "errors_only": Out(1), "lfsr_seed": Out(1),
        })



class SpikingLayer(_Keyed):
    """What a step scheduler sees of a spiking layer of ``n_dst`` neurons fed by ``n_src``
    sources over ``lanes`` lanes, whatever its neuron arithmetic.

    Members
    -------
    cmd : Out(stream)
        :func:`row_commands` with the layer's op codes and the step as tag.
    step, step_start : Out
        The current timestep (steady from a cycle before a command to the end of its pass);
        a strobe at the start of each step.
    busy : In
        A pass is in flight.
    fire_valid, fire : In
        :class:`~spikegate.hdl.layouts.FireMaskLayout`: the neurons of one lane group that
        spiked (no back-pressure).
    clear_stats : Out; spikes, lookups : In
        Spikes of the layer's neurons and weights read since ``clear_stats``.
    """

    def __init__(self, n_src, n_dst, lanes, step_bits, op_shape, extra=None):
        self._key = (n_src, n_dst, lanes, step_bits, op_shape)
        groups = -(-n_dst // lanes)
        super().__init__({
            "cmd": Out(row_commands(n_src, op_shape, step_bits)),
            "step": Out(step_bits),
            "step_start": Out(1),
            "busy": In(1),
            "fire_valid": In(1),
            "fire": In(FireMaskLayout(groups, lanes)),
            "clear_stats": Out(1),
            "spikes": In(RESULT_COUNT_BITS),
            "lookups": In(RESULT_COUNT_BITS),
            **(extra or {}),
        })



class TTFSSchedule(SpikingLayer):
    """A TTFS layer's :class:`SpikingLayer` interface (``timesteps`` steps) with what its
    scheduler needs besides.

    Members
    -------
    wake, armed_any : In
        The first step at which the layer may fire without new input (initially
        ``timesteps``); some neuron is armed.
    step_fired, step_first : In
        Some neuron fired in the current step; the lowest-indexed one.
    scan_cycles : In
        Cycles of scan passes since ``clear_stats``.
    """

    def __init__(self, n_src, n_dst, lanes, timesteps, op_shape):
        step_bits = unsigned_bits(timesteps)
        super().__init__(n_src, n_dst, lanes, step_bits, op_shape, {
            "wake": In(step_bits + 3, init=timesteps),
            "armed_any": In(1),
            "step_fired": In(1),
            "step_first": In(index_bits(n_dst)),
            "scan_cycles": In(RESULT_COUNT_BITS),
        })
        self._key += (timesteps,)


class Votes(_Keyed):
    """The vote beats of a ``DELTA`` pass over a layer of ``n_dst`` neurons on ``lanes`` lanes,
    from the layer's learning lanes to a :class:`~spikegate.hdl.learning.DeltaVoter`.

    Members
    -------
    valid, group, last : Out
        A beat of lane group ``group``; the row's last.
    p, n : Out
        Per lane, the "earlier" and "later" vote bits (see :mod:`spikegate.hdl.learning`).
    """

    def __init__(self, n_dst, lanes):
        self._key = (n_dst, lanes)
        super().__init__({"valid": Out(1), "group": Out(index_bits(-(-n_dst // lanes))),
                          "last": Out(1), "p": Out(lanes), "n": Out(lanes)})



class LayerLearning(_Keyed):
    """A learning sequencer and the learning lanes of one TTFS layer of ``n_dst`` neurons
    over ``lanes`` lanes (:func:`~spikegate.hdl.learning.sign_update_lanes`).

    Members
    -------
    lr_shift, lfsr_k, lfsr_in : Out
        The step's shift, the LFSR bits per candidate write, the update LFSR's state.
    lfsr_out, lfsr_used : In
        The LFSR state after a ``LEARN`` beat; the beat drew from it.
    delta_w_en, delta_w_addr, delta_w_data : Out
        Set the delta (-1, 0, +1) of one neuron.
    votes : In(Votes)
        A ``DELTA`` beat's vote bits (see :class:`~spikegate.hdl.learning.DeltaVoter`).
    """

    def __init__(self, n_dst, lanes):
        self._key = (n_dst, lanes)
        super().__init__({
            "lr_shift": Out(LEARN_SHIFT_BITS),
            "lfsr_k": Out(range(MAX_LFSR_K + 1)),
            "lfsr_in": Out(LFSR_BITS),
            "lfsr_out": In(LFSR_BITS),
            "lfsr_used": In(1),
            "delta_w_en": Out(1),
            "delta_w_addr": Out(index_bits(n_dst)),
            "delta_w_data": Out(signed(2)),
            "votes": In(Votes(n_dst, lanes)),
        })



class LearnHandshake(_Keyed):
    """The step scheduler and the learning sequencer of a classifier with ``sizes`` neurons
    per layer and steps of ``step_bits``.

    Members
    -------
    idle, image_start : Out
        No image in progress; an image starts (the sequencer samples the learning request).
    head_taken, head_index, head_step, in_spikes : Out
        An input event was taken (its index and step; ``in_spikes`` events before it): the
        sequencer logs it.
    decided, klass : Out
        The image's decision.
    start : Out
        The image's end marker was taken while ``go``: learning starts.
    go : In
        Learn from the image (requested, label valid, log complete, not skipped).
    done : In
        Learning finished (the result may be sent).
    log_overflow, label_error : In
        The input log overflowed (an error, nothing learned); the label was out of range.
    learn_cycles : In
        Cycles of the learning phase.
    """

    def __init__(self, sizes, step_bits):
        self._key = (tuple(sizes), step_bits)
        super().__init__({
            "idle": Out(1), "image_start": Out(1),
            "head_taken": Out(1), "head_index": Out(index_bits(sizes[0])),
            "head_step": Out(step_bits), "in_spikes": Out(RESULT_COUNT_BITS),
            "decided": Out(1), "klass": Out(index_bits(sizes[-1])),
            "start": Out(1), "go": In(1), "done": In(1),
            "log_overflow": In(1), "label_error": In(1),
            "learn_cycles": In(RESULT_COUNT_BITS),
        })


class PDBiasPort(_Keyed):
    """Write the bias of one of ``n_dst`` neurons (``width`` bits signed, the layer's
    ``y_width``, ``y_frac`` fractional bits). The layer takes it ``In``.

    Members
    -------
    w_en, w_dst, w_data : Out
        Write ``w_data`` to the bias of neuron ``w_dst``; it is used from the next cycle on.
    """

    def __init__(self, n_dst, width):
        self._key = (n_dst, width)
        super().__init__({"w_en": Out(1), "w_dst": Out(index_bits(n_dst)),
                          "w_data": Out(signed(width))})


class PDTracePort(_Keyed):
    """What a PD layer of ``n_src`` inputs and ``n_dst`` neurons computes, as it happens (no
    back-pressure: an observer samples it every cycle). The layer drives it (``Out``).

    Members
    -------
    s_valid, s_index, s_count, s_end : Out
        The encoder emits event ``(s_index, s_count)``; ``s_end`` marks the frame's last
        (``s_count`` is then possibly 0: a marker, no spike). Inputs without a spike emit
        nothing: their count is 0.
    d_valid, d_index, d_u, d_y, d_act : Out
        Neuron ``d_index`` is decoded: the frame's accumulator ``d_u``, the new decoder state
        ``d_y`` and the activation handed on ``d_act`` (``out_bits`` wide).
    """

    def __init__(self, n_src, n_dst, fmt, out_bits):
        if not isinstance(fmt, SDFixedFormat):
            raise TypeError(f"fmt must be an SDFixedFormat, not {fmt!r}")
        self._key = (n_src, n_dst, fmt, out_bits)
        super().__init__({
            "s_valid": Out(1), "s_index": Out(index_bits(n_src)),
            "s_count": Out(signed(fmt.spike_width)), "s_end": Out(1),
            "d_valid": Out(1), "d_index": Out(index_bits(n_dst)),
            "d_u": Out(signed(fmt.acc_width)), "d_y": Out(signed(fmt.y_width)),
            "d_act": Out(signed(out_bits)),
        })


# ----------------------------------------------------------------------------------------
# Sparse spiking gradient descent (issue 21): the LIF layers' interfaces
# (:mod:`spikegate.hdl.lif_layer`, :mod:`spikegate.hdl.ssgd_network`). Their stream payloads
# are in :mod:`spikegate.hdl.lif_layouts`.

from spikegate.golden.ssgd_fixed import FixedFormat as _LIFFormat  # noqa: E402

__all__ += ["LIFTracePort"]


class LIFTracePort(_Keyed):
    """What a LIF layer of ``n_dst`` neurons computes, neuron by neuron, as it happens (no
    back-pressure: an observer samples it every cycle). The layer drives it (``Out``).

    Members
    -------
    valid, step, index : Out
        Neuron ``index`` has its state of timestep ``step`` (``1 .. T-1``), in order of
        ``index`` within a step.
    v : Out(signed(fmt.v_bits))
        Its membrane ``V[step]`` (:func:`~spikegate.golden.ssgd_fixed.lif_step`), or the
        readout's ``O[step]``.
    spike, active : Out
        ``S[step]``; ``|V[step] - V_th| < B_th`` (both 0 in a readout).
    g : Out(unsigned(fmt.g_bits))
        The surrogate value (0 when not active).
    """

    def __init__(self, n_dst, step_bits, fmt):
        if not isinstance(fmt, _LIFFormat):
            raise TypeError(f"fmt must be a ssgd_fixed.FixedFormat, not {fmt!r}")
        self._key = (n_dst, step_bits, fmt)
        super().__init__({
            "valid": Out(1), "step": Out(step_bits), "index": Out(index_bits(n_dst)),
            "v": Out(signed(fmt.v_bits)), "spike": Out(1), "active": Out(1),
            "g": Out(fmt.g_bits),
        })


__all__ += ["TableWritePort"]


class TableWritePort(_Keyed):
    """Write one entry of a table of ``depth`` values of ``shape`` (the block that holds the
    table takes it ``In``).

    Members
    -------
    w_en, w_addr, w_data : Out
        Write ``w_data`` to entry ``w_addr``; it is read from the next cycle on.
    """

    def __init__(self, depth, shape):
        self._key = (depth, shape)
        super().__init__({"w_en": Out(1), "w_addr": Out(index_bits(depth)),
                          "w_data": Out(shape)})
