"""A pipelined population count (radix-4 adder tree) with valid/ready streams."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.popcount import FAN_IN, MAX_WIDTH, count_width, pipeline_latency

__all__ = ["Popcount"]


class Popcount(wiring.Component):
    """Counts the set bits of each input word.

    A radix-:data:`~spikegate.golden.popcount.FAN_IN` adder tree, one register level per
    reduction level: level 1 counts the ones in each group of 4 input bits, every further
    level adds up to 4 partial counts. Every partial count is exactly as wide as its
    largest possible value, so nothing overflows. The reference is
    :func:`spikegate.golden.popcount.popcount`.

    Latency is :attr:`latency` cycles (:func:`spikegate.golden.popcount.pipeline_latency`:
    ``max(1, ceil(log4(width)))``, so 1 for width 1, 2 for 7, 3 for 64, 5 for 600 and
    1024): a word accepted on ``i_stream`` in cycle ``t`` is offered on ``o_stream`` in
    cycle ``t + latency`` when the output is not stalled. Throughput is one word per cycle.
    Back-pressure stalls the whole pipeline: ``i_stream.ready`` is
    ``~o_stream.valid | o_stream.ready`` (combinational from ``o_stream.ready``;
    ``o_stream.valid`` comes from a register and never depends on ``ready``).

    Parameters
    ----------
    width : int
        Bits per input word, ``1 .. 1024``.

    Members
    -------
    i_stream : ``In(stream.Signature(width))``
        The input words.
    o_stream : ``Out(stream.Signature(count_width))``
        Their counts, in order, ``0 .. width``.

    Raises
    ------
    TypeError
        If ``width`` is not an integer.
    ValueError
        If ``width`` is not in ``1 .. 1024``.
    """

    def __init__(self, width):
        if isinstance(width, bool) or not isinstance(width, int):
            raise TypeError(f"Popcount width must be an integer, not {width!r}")
        if not 1 <= width <= MAX_WIDTH:
            raise ValueError(f"Popcount width must be between 1 and {MAX_WIDTH}, not {width!r}")
        self._width = width
        super().__init__({
            "i_stream": In(stream.Signature(width)),
            "o_stream": Out(stream.Signature(count_width(width))),
        })

    @property
    def width(self):
        """Bits per input word."""
        return self._width

    @property
    def count_width(self):
        """Bits of each output count (``width.bit_length()``)."""
        return count_width(self._width)

    @property
    def latency(self):
        """Cycles from an accepted input word to its count on ``o_stream`` (no stalls)."""
        return pipeline_latency(self._width)

    def elaborate(self, platform):
        m = Module()

        enable = Signal()
        m.d.comb += [
            enable.eq(~self.o_stream.valid | self.o_stream.ready),
            self.i_stream.ready.eq(enable),
        ]

        # (value, largest possible value) of each operand of the next level.
        operands = [(self.i_stream.payload[i], 1) for i in range(self._width)]
        valid = self.i_stream.valid
        for level in range(self.latency):
            next_operands = []
            for j in range(0, len(operands), FAN_IN):
                group = operands[j:j + FAN_IN]
                largest = sum(top for _, top in group)
                partial = Signal(range(largest + 1), name=f"l{level + 1}_sum{j // FAN_IN}",
                                 reset_less=True)
                with m.If(enable):
                    m.d.sync += partial.eq(sum(value for value, _ in group))
                next_operands.append((partial, largest))
            stage_valid = Signal(name=f"l{level + 1}_valid")
            with m.If(enable):
                m.d.sync += stage_valid.eq(valid)
            operands, valid = next_operands, stage_valid
        assert len(operands) == 1, "pipeline_latency disagrees with the adder tree"

        m.d.comb += [
            self.o_stream.payload.eq(operands[0][0]),
            self.o_stream.valid.eq(valid),
        ]
        return m
