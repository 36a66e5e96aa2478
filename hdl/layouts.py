"""Stream payload layouts, defined once and shared by the gateware, the test benches and the
host side (through ``.const()`` / ``.from_bits()``): the TTFS classifier's, then the PD
network's (:mod:`spikegate.hdl.pd_classifier`)."""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from spikegate.golden.fixed import unsigned_bits
from spikegate.golden.sigma_delta_fixed import SDFixedFormat

__all__ = ["index_bits", "SpikeEventLayout", "RowCommandLayout", "FireMaskLayout",
           "ClassifierResultLayout", "RESULT_COUNT_BITS", "PDActivationLayout", "PDEventLayout",
           "PDResultLayout", "out_width"]

RESULT_COUNT_BITS = 32


def index_bits(n):
    """Width of an index into ``n`` things (at least 1)."""
    if n < 1:
        raise ValueError(f"need at least one item, not {n!r}")
    return unsigned_bits(n - 1)


class SpikeEventLayout(data.StructLayout):
    """One input spike, or the end-of-image marker.

    Members
    -------
    index : unsigned(index_bits(n_inputs))
        The neuron that spiked.
    step : unsigned(step_bits)
        The timestep of the spike. Events of one image arrive in non-decreasing step order.
    end : 1
        1 marks the end of the image (``index`` and ``step`` are ignored); every image ends
        with exactly one such beat, an image with no spikes is just that beat.
    """
    def __init__(self, n_inputs, step_bits):
        super().__init__({"index": unsigned(index_bits(n_inputs)), "step": unsigned(step_bits),
                          "end": unsigned(1)})


class RowCommandLayout(data.StructLayout):
    """A request to the sparse weight-lookup datapath: walk the row of ``src``.

    ``op`` is the user's op code, of shape ``op_shape`` (an enum of the layer that uses the
    datapath, e.g. :class:`~spikegate.hdl.ttfs_layer.TTFSOp`); the datapath does not
    interpret it beyond the sets of ops it is told read weights, count lookups or walk
    masked. ``tag`` travels with the row's beats untouched (the TTFS layer passes the
    source's spike step for learning)."""
    def __init__(self, n_src, op_shape, tag_bits=1):
        super().__init__({"src": unsigned(index_bits(n_src)), "op": op_shape,
                          "tag": unsigned(tag_bits)})


class FireMaskLayout(data.StructLayout):
    """The neurons of one lane group that fired in the current step."""
    def __init__(self, n_groups, lanes):
        super().__init__({"group": unsigned(index_bits(n_groups)), "mask": unsigned(lanes)})


class ClassifierResultLayout(data.StructLayout):
    """The result of one image.

    Members
    -------
    decided : 1
        0 when no output neuron fired by the last step (``klass`` is then 0).
    klass : unsigned(index_bits(n_outputs))
        The lowest-indexed output neuron among the first to fire.
    decision_step : unsigned(step_bits)
        The step of the decision (``timesteps`` when none).
    error : 1
        An input event was out of range or out of order; it was dropped.
    cycles : unsigned(32)
        Clock cycles from the image's first beat to the result.
    spikes : array of unsigned(32), one per neuron layer (input first)
        Spikes processed up to the decision.
    lookups : array of unsigned(32), one per weight layer
        Weights read.
    scan_cycles : unsigned(32)
        Cycles spent in scan passes (fire checks without input), all layers added up.
    label_error : 1
        A training image's label was out of range: it was refused, no weight changed.
    learn_cycles : unsigned(32)
        Cycles of the learning phase (0 when the image was not learned).
    """
    def __init__(self, sizes, step_bits):
        n_layers = len(sizes)
        super().__init__({
            "decided": unsigned(1),
            "klass": unsigned(index_bits(sizes[-1])),
            "decision_step": unsigned(step_bits),
            "error": unsigned(1),
            "cycles": unsigned(RESULT_COUNT_BITS),
            "spikes": data.ArrayLayout(unsigned(RESULT_COUNT_BITS), n_layers),
            "lookups": data.ArrayLayout(unsigned(RESULT_COUNT_BITS), n_layers - 1),
            "scan_cycles": unsigned(RESULT_COUNT_BITS),
            "label_error": unsigned(1),
            "learn_cycles": unsigned(RESULT_COUNT_BITS),
        })


def out_width(fmt, next_fmt):
    """Width of a PD layer's output activations: the next layer's ``x_width``, or for the last
    layer (``next_fmt`` None) that of ``z = y + b``, ``y_width + 1``."""
    if not isinstance(fmt, SDFixedFormat):
        raise TypeError(f"fmt must be an SDFixedFormat, not {fmt!r}")
    return fmt.y_width + 1 if next_fmt is None else next_fmt.x_width


class PDActivationLayout(data.StructLayout):
    """One activation of a frame: a frame of ``n`` neurons is ``n`` beats, neuron 0 first.

    Members
    -------
    x : signed(width)
        The activation in the receiving layer's input format (``x_width`` bits, ``x_frac``
        fractional), or the last layer's ``z``.
    """
    def __init__(self, width):
        super().__init__({"x": signed(width)})


class PDEventLayout(data.StructLayout):
    """A spike event of a PD encoder: input ``index`` sends ``count`` spikes.

    Members
    -------
    index : unsigned(index_bits(n_src))
    count : signed(spike_width)
        Non-zero, except on a frame's end marker with no spike.
    end : 1
        The frame's last event (its last input's, or a marker with ``count`` 0 when that
        input sent nothing): every frame ends with exactly one.
    """
    def __init__(self, n_src, spike_width):
        super().__init__({"index": unsigned(index_bits(n_src)), "count": signed(spike_width),
                          "end": unsigned(1)})


class PDResultLayout(data.StructLayout):
    """The result of one frame.

    Members
    -------
    klass : unsigned(index_bits(n_classes))
        ``argmax`` of the last layer's ``z`` (lowest index on ties).
    cycles : unsigned(32)
        Clock cycles from the transfer of the frame's first beat to the cycle the result is
        valid (counting the first, not the last).
    events : array of unsigned(32), one per weight layer
        Inputs of the layer with a non-zero spike count.
    spikes : array of unsigned(32), one per weight layer
        The sum of ``|count|``: row additions.
    """
    def __init__(self, sizes):
        sizes = tuple(sizes)
        L = len(sizes) - 1
        super().__init__({
            "klass": unsigned(index_bits(sizes[-1])),
            "cycles": unsigned(RESULT_COUNT_BITS),
            "events": data.ArrayLayout(unsigned(RESULT_COUNT_BITS), L),
            "spikes": data.ArrayLayout(unsigned(RESULT_COUNT_BITS), L),
        })
