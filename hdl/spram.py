"""Weight memory in the iCE40 UltraPlus single-port RAMs (SPRAM, ``SB_SPRAM256KA``).

The UP5K has 4 SPRAMs of 16384 x 16 bits (128 kB) besides its 30 block RAMs of 4 kbit
(15 kB). Yosys does not infer SPRAM from an ordinary memory with separate read and write
ports, so :class:`SPRAMMemory` instantiates the cells: on an iCE40 UltraPlus platform each
:class:`SPRAMCell` is an ``SB_SPRAM256KA`` instance; everywhere else (Amaranth's simulator,
Verilog for Verilator, other FPGAs) it is an Amaranth model with the same port behaviour,
so a design simulates exactly as it will run.

What SPRAM cannot do, and what that means for the users of :class:`SPRAMMemory`:

* **One port.** A read and a write in the same cycle share one address; the write wins and
  the read is not performed. :class:`~spikegate.hdl.lookup.WeightLookup` never reads and
  writes at once except in the read-modify-write of on-chip learning (``ww_*``), so designs
  with the learning unit keep their weights in block RAM.
* **No initial contents.** The bitstream cannot initialise SPRAM: the weights must be loaded
  at run time (the board protocol's ``LOAD_WEIGHTS``, which ``spikegate board load`` sends).
  The model starts at zero; the hardware's contents at power-up are undefined.
* **Read data after a write is undefined** (``SB_SPRAM256KA`` drives X on a write cycle).
  The model outputs the inverted data written, so that a user relying on it fails in
  simulation.
"""

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Shape, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SPRAMCell", "SPRAMMemory", "spram_geometry", "spram_count", "has_spram",
           "prefers_spram", "SPRAM_DEPTH", "SPRAM_WIDTH", "SPRAM_MIN_BITS"]

#: Words of one ``SB_SPRAM256KA``.
SPRAM_DEPTH = 16384
#: Bits per word of one ``SB_SPRAM256KA``.
SPRAM_WIDTH = 16
#: A memory of more bits than this goes to SPRAM when ``weight_memory="auto"``: half of the
#: UP5K's block RAM (15 of its 30 blocks of 4096 bits), the other half being left to the
#: neuron state memories, the FIFOs and the protocol engine (13 blocks on the digits build).
SPRAM_MIN_BITS = 15 * 4096


def has_spram(platform):
    """Whether ``platform`` is an iCE40 UltraPlus (``iCE40UP3K`` / ``iCE40UP5K``), whose
    ``SB_SPRAM256KA`` cells :class:`SPRAMCell` instantiates."""
    return str(getattr(platform, "device", "")).startswith("iCE40UP")


def prefers_spram(depth, width):
    """The rule of ``weight_memory="auto"``: SPRAM for a ``depth`` x ``width`` memory of more
    than :data:`SPRAM_MIN_BITS` bits."""
    return depth * width > SPRAM_MIN_BITS


def spram_geometry(depth, width):
    """How :class:`SPRAMMemory` lays a ``depth`` x ``width`` memory over SPRAM cells.

    Returns
    -------
    (pack, columns, banks) : tuple of int
        ``pack`` words per 16-bit SPRAM word (2 for 8-bit words, else 1); ``columns`` cells
        side by side for one word (``ceil(width / 16)``); ``banks`` rows of 16384 SPRAM words
        (address decode on the high bits). The memory uses ``columns * banks`` cells.

    Raises
    ------
    ValueError
        ``width`` is not a positive multiple of 8, or ``depth`` is not positive.
    """
    if not isinstance(width, int) or width < 8 or width % 8:
        raise ValueError(f"SPRAM memory width must be a positive multiple of 8 bits, not {width!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"SPRAM memory depth must be a positive integer, not {depth!r}")
    pack = 2 if width == 8 else 1
    columns = -(-width // SPRAM_WIDTH)
    banks = -(-(-(-depth // pack)) // SPRAM_DEPTH)
    return pack, columns, banks


def spram_count(depth, width):
    """SPRAM cells a ``depth`` x ``width`` :class:`SPRAMMemory` uses."""
    _, columns, banks = spram_geometry(depth, width)
    return columns * banks


class SPRAMCell(wiring.Component):
    """One ``SB_SPRAM256KA`` (16384 x 16 bits, single port), or its model.

    The ports are the primitive's (``STANDBY`` = ``SLEEP`` = 0, ``POWEROFF`` = 1, clocked by
    ``sync``). On a clock edge with ``chipselect``: ``wren`` = 0 reads ``address`` into
    ``dataout``; ``wren`` = 1 writes the nibbles of ``datain`` enabled by ``maskwren``
    (bit ``i`` enables bits ``4i .. 4i+3``) and leaves ``dataout`` undefined (the model: the
    inverted ``datain``). Without ``chipselect``, ``dataout`` holds.

    Latency 1 cycle (registered read).

    Members
    -------
    address : In(14)
    datain : In(16)
    maskwren : In(4)
    wren, chipselect : In(1)
    dataout : Out(16)
    """
    address: In(14)
    datain: In(16)
    maskwren: In(4)
    wren: In(1)
    chipselect: In(1)
    dataout: Out(16)

    def elaborate(self, platform):
        m = Module()
        if has_spram(platform):
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.address, i_DATAIN=self.datain, i_MASKWREN=self.maskwren,
                i_WREN=self.wren, i_CHIPSELECT=self.chipselect, i_CLOCK=ClockSignal(),
                i_STANDBY=Const(0), i_SLEEP=Const(0), i_POWEROFF=Const(1),
                o_DATAOUT=self.dataout)
            return m
        m.submodules.mem = mem = memory.Memory(shape=16, depth=SPRAM_DEPTH, init=[])
        wp = mem.write_port(granularity=4)
        rp = mem.read_port()
        write = self.chipselect & self.wren
        m.d.comb += [wp.addr.eq(self.address), wp.data.eq(self.datain),
                     wp.en.eq(Mux(write, self.maskwren, 0)),
                     rp.addr.eq(self.address), rp.en.eq(self.chipselect & ~self.wren)]
        wrote = Signal()
        junk = Signal(16)
        with m.If(write):
            m.d.sync += [wrote.eq(1), junk.eq(~self.datain)]
        with m.Elif(self.chipselect):
            m.d.sync += wrote.eq(0)
        m.d.comb += self.dataout.eq(Mux(wrote, junk, rp.data))
        return m


class SPRAMMemory(wiring.Component):
    """A ``depth`` x ``shape`` memory with byte-lane writes, in SPRAM cells.

    The ports mirror an Amaranth memory's synchronous read port and byte-granular write port
    (``r_*``, ``w_*``) so that a user can swap one for the other, with one difference: they
    share the single port of the cells, so a cycle either writes (``w_en != 0``, which wins)
    or reads. The layout is :func:`spram_geometry`: 8-bit words are packed two per SPRAM
    word (byte select by ``MASKWREN``), wider words span ``ceil(width / 16)`` cells, and
    deeper memories stack banks of 16384 SPRAM words, decoded from the high address bits;
    a read enables every bank and registers its bank and byte, so that the read address's
    high bits reach only the output multiplexer, after the cells' output registers (the
    price: a read draws the read power of every bank, four at ``784-166-10``).

    Parameters
    ----------
    shape : shape-like
        Word shape, a multiple of 8 bits wide (e.g. ``data.ArrayLayout(signed(8), lanes)``).
    depth : int
        Words.

    Members
    -------
    r_addr : In(range(depth))
    r_en : In(1)
        Read ``r_addr``: ``r_data`` holds the word one cycle later and keeps it while
        neither reads nor writes happen; after a write it is undefined until the next read.
    r_data : Out(shape)
    w_addr : In(range(depth))
    w_en : In(width // 8)
        Byte lanes of ``w_data`` written to ``w_addr`` this cycle (any set bit takes the port).
    w_data : In(shape)

    Latency 1 cycle; throughput one read or one write per cycle. The contents start
    undefined on hardware (zero in the model): SPRAM has no initial values.
    """

    def __init__(self, shape, depth):
        width = Shape.cast(shape).width
        self._geometry = spram_geometry(width=width, depth=depth)
        self._depth, self._width = depth, width
        super().__init__({
            "r_addr": In(range(depth)),
            "r_en": In(1),
            "r_data": Out(shape),
            "w_addr": In(range(depth)),
            "w_en": In(width // 8),
            "w_data": In(shape),
        })

    @property
    def depth(self):
        return self._depth

    @property
    def geometry(self):
        """``(pack, columns, banks)`` (:func:`spram_geometry`)."""
        return self._geometry

    @property
    def cells(self):
        """SPRAM cells used."""
        return self._geometry[1] * self._geometry[2]

    def elaborate(self, platform):
        m = Module()
        pack, columns, banks = self._geometry
        W, n_bytes = self._width, self._width // 8
        write = Signal()
        m.d.comb += write.eq(self.w_en != 0)
        addr = Signal(range(self._depth))
        m.d.comb += addr.eq(Mux(write, self.w_addr, self.r_addr))
        entry = addr[1:] if pack == 2 else addr
        cell_addr = entry[:14]
        bank = entry[14:] if banks > 1 else Const(0, 1)
        # Chip selects: a write selects its bank, decoded from the write address alone; a
        # read selects every bank (the registered bank picks the output), so the read
        # address's high bits, often the end of an adder, reach only the output mux and
        # not the cells' CHIPSELECT (the UP5K's critical path at 784-166-10: 26.6 MHz).
        w_entry = self.w_addr[1:] if pack == 2 else self.w_addr
        w_bank = w_entry[14:] if banks > 1 else Const(0, 1)
        reading = Signal()
        m.d.comb += reading.eq(self.r_en & ~write)
        r_bank = Signal(range(banks))
        r_sub = Signal()
        with m.If(reading):
            if banks > 1:
                m.d.sync += r_bank.eq(bank)
            if pack == 2:
                m.d.sync += r_sub.eq(addr[0])
        w_bits = self.w_data.as_value() if hasattr(self.w_data, "as_value") else self.w_data
        outs = []
        for c in range(columns):
            if pack == 2:
                datain = Cat(w_bits, w_bits)
                mask = Mux(addr[0], Cat(Const(0, 2), self.w_en[0].replicate(2)),
                           Cat(self.w_en[0].replicate(2), Const(0, 2)))
            else:
                lo = 2 * c
                hi = min(2 * c + 2, n_bytes)
                datain = w_bits[8 * lo:8 * hi]
                mask = Cat(*[self.w_en[b].replicate(2) for b in range(lo, hi)])
            col = []
            for b in range(banks):
                cell = SPRAMCell()
                m.submodules[f"spram_b{b}_c{c}"] = cell
                m.d.comb += [cell.address.eq(cell_addr), cell.datain.eq(datain),
                             cell.maskwren.eq(mask), cell.wren.eq(write),
                             cell.chipselect.eq(Mux(write, w_bank == b, self.r_en))]
                col.append(cell.dataout)
            outs.append(Array(col)[r_bank] if banks > 1 else col[0])
        if pack == 2:
            m.d.comb += self.r_data.eq(Mux(r_sub, outs[0][8:], outs[0][:8]))
        else:
            m.d.comb += self.r_data.eq(Cat(*outs)[:W])
        return m
