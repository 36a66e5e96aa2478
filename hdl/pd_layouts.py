"""Stream payload layouts of the PD network (:mod:`spikegate.hdl.pd_classifier`), defined once
and shared by the gateware, the test benches and the host side (through ``.const()`` /
``.from_bits()``).

They sit beside :mod:`spikegate.hdl.layouts` (which holds the TTFS classifier's) and would
move there when that module takes the PD network's.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from .layouts import RESULT_COUNT_BITS, index_bits

__all__ = ["PDActivationLayout", "PDEventLayout", "PDResultLayout", "out_width"]


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
