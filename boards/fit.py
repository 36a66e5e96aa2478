"""What each FPGA has, and a quick check that a network's weights and multipliers can fit.

The check runs before anything is built: it counts only the resources a classifier surely
needs (block RAM or, on the iCE40 UltraPlus, SPRAM for the weights; multipliers for the
lanes), so it is a lower bound. What it passes may still fail in nextpnr (logic cells, the neuron state memories,
the protocol's FIFOs); :mod:`spikegate.boards.synth` then reports the resource by name from
nextpnr's utilisation table.
"""

from dataclasses import dataclass

from spikegate.golden.ttfs_discrete import THETA_MAX, WEIGHT_BITS, DiscreteConfig, ttfs_widths
from spikegate.hdl.lookup import MAX_LANES
from spikegate.hdl.spram import prefers_spram, spram_count

__all__ = ["Device", "DEVICES", "ResourceError", "block_count", "weight_block_rams",
           "weight_sprams", "weight_memory_plan", "multiplier_cells", "check_fit",
           "WEIGHT_MEMORIES"]

#: What a board design accepts as ``weight_memory`` (or a tuple of ``"ebr"`` / ``"spram"``,
#: one per weight layer).
WEIGHT_MEMORIES = ("auto", "ebr", "spram")


class ResourceError(ValueError):
    """A design needs more of a resource than the device has; the message names it."""

    def __init__(self, resource, used, available, device, detail=""):
        self.resource, self.used, self.available, self.device = resource, used, available, device
        super().__init__(f"the design does not fit the {device}: it needs {used} {resource} "
                         f"but the device has {available}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Device:
    """Resources of one FPGA, in nextpnr's cell names (``resources``: name -> count).

    ``bram`` is the block RAM cell and its ``(depth, width)`` configurations usable with a
    byte write mask; ``dsp`` the multiplier cell, ``dsp_width`` the operand width it
    multiplies (wider products take several, :func:`multiplier_cells`).
    """
    name: str
    family: str
    resources: dict
    logic: str
    ff: str
    bram: str
    bram_shapes: tuple
    dsp: str
    spram: str = None
    dsp_width: int = 16


DEVICES = {
    "iCE40UP5K": Device(
        "iCE40UP5K", "ice40",
        {"ICESTORM_LC": 5280, "ICESTORM_RAM": 30, "ICESTORM_SPRAM": 4, "ICESTORM_DSP": 8,
         "ICESTORM_PLL": 1, "SB_IO": 96},
        logic="ICESTORM_LC", ff="ICESTORM_LC", bram="ICESTORM_RAM",
        bram_shapes=((256, 16), (512, 8), (1024, 4), (2048, 2)), dsp="ICESTORM_DSP",
        spram="ICESTORM_SPRAM"),
    **{f"LFE5U-{k}F": Device(
        f"LFE5U-{k}F", "ecp5",
        {"TRELLIS_COMB": luts, "TRELLIS_FF": luts, "DP16KD": ebr, "MULT18X18D": mult,
         "EHXPLLL": 2 if k == 25 else 4},
        logic="TRELLIS_COMB", ff="TRELLIS_FF", bram="DP16KD",
        bram_shapes=((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)),
        dsp="MULT18X18D", dsp_width=18)
        for k, luts, ebr, mult in ((12, 24288, 56, 28), (25, 24288, 56, 28),
                                   (45, 43848, 108, 72), (85, 83640, 208, 156))},
}


def block_count(depth, width, shapes):
    """Fewest blocks of one of ``shapes`` holding a ``depth`` x ``width`` memory."""
    return min(-(-depth // d) * -(-width // w) for d, w in shapes)


def _device(device):
    return DEVICES[device] if isinstance(device, str) else device


def _memories(sizes, lanes):
    """``(depth, width)`` of each weight layer's memory."""
    lanes = [lanes] * (len(sizes) - 1) if isinstance(lanes, int) else list(lanes)
    return [(sizes[l] * -(-sizes[l + 1] // n), n * WEIGHT_BITS) for l, n in enumerate(lanes)]


def weight_block_rams(sizes, lanes, device, plan=None):
    """Block RAMs the weight memories need: one memory per weight layer, ``lanes * 8`` bits
    wide and ``n_src * ceil(n_dst / lanes)`` deep (:class:`~spikegate.hdl.lookup.WeightLookup`);
    with a ``plan`` (:func:`weight_memory_plan`), only the layers it puts in ``"ebr"``.
    """
    dev = _device(device)
    mems = _memories(sizes, lanes)
    plan = plan or ("ebr",) * len(mems)
    return sum(block_count(d, w, dev.bram_shapes) for (d, w), k in zip(mems, plan) if k == "ebr")


def weight_sprams(sizes, lanes, plan):
    """SPRAM cells of the weight layers that ``plan`` puts in ``"spram"``
    (:func:`spikegate.hdl.spram.spram_count`)."""
    return sum(spram_count(d, w) for (d, w), k in zip(_memories(sizes, lanes), plan)
               if k == "spram")


def weight_memory_plan(sizes, lanes, device, weight_memory="auto", *, learning=False):
    """Where each weight layer's memory goes: a tuple of ``"ebr"`` / ``"spram"``.

    ``weight_memory`` is ``"auto"``, ``"ebr"``, ``"spram"`` (every layer) or a tuple with one
    of ``"ebr"`` / ``"spram"`` per weight layer. ``"auto"`` is the rule of
    :meth:`spikegate.hdl.lookup.WeightLookup.memory_kind`: on a device with SPRAM (the iCE40
    UltraPlus), SPRAM for a layer whose memory has more than
    :data:`~spikegate.hdl.spram.SPRAM_MIN_BITS` bits (half the UP5K's block RAM), block RAM
    otherwise; everything in block RAM for a design with on-chip ``learning`` (its
    read-modify-write needs two ports) or on a device without SPRAM.

    Raises
    ------
    ValueError
        An unknown ``weight_memory``; SPRAM asked for on a device without it, or with
        ``learning``.
    """
    dev = _device(device)
    mems = _memories(sizes, lanes)
    n_w = len(mems)
    if isinstance(weight_memory, str):
        if weight_memory not in WEIGHT_MEMORIES:
            raise ValueError(f"weight_memory must be one of {', '.join(WEIGHT_MEMORIES)} or a "
                             f"tuple of 'ebr' / 'spram' per weight layer, not {weight_memory!r}")
        if weight_memory == "auto":
            use = dev.spram is not None and not learning
            return tuple("spram" if use and prefers_spram(d, w) else "ebr" for d, w in mems)
        plan = (weight_memory,) * n_w
    else:
        plan = tuple(weight_memory)
        if len(plan) != n_w or not all(k in ("ebr", "spram") for k in plan):
            raise ValueError(f"weight_memory must name 'ebr' or 'spram' for each of the {n_w} "
                             f"weight layers, not {weight_memory!r}")
    if "spram" in plan and dev.spram is None:
        raise ValueError(f"the {dev.name} has no SPRAM: weight_memory must be 'ebr' or 'auto', "
                         f"not {weight_memory!r}")
    if "spram" in plan and learning:
        raise ValueError("on-chip learning needs the weights in block RAM (its read-modify-write "
                         f"uses two ports, SPRAM has one), not weight_memory={weight_memory!r}")
    return plan


def multiplier_cells(sizes, lanes, device, config=None, *, binary_input=False):
    """Multiplier cells of the lanes: two products per lane of weight layer ``l``,
    ``w * z`` (8 x ``z_bits``) and ``z * (acc_w - theta)`` (``z_bits`` x ``diff_bits``, the
    widths of :func:`~spikegate.golden.ttfs_discrete.ttfs_widths` for a fan-in of
    ``sizes[l]``), each taking ``ceil(a / n) * ceil(b / n)`` cells of ``n`` x ``n`` bits;
    none in layer 0 with ``binary_input`` (the multiplier-free layer of binary inputs,
    :class:`~spikegate.hdl.ttfs_layer.TTFSLayer`'s ``binary_input``).

    An upper bound of what Yosys maps (it may leave a small partial product in logic): on the
    UP5K, 784-h-10 with lanes (2, 1) takes 8 ``SB_MAC16`` with 32 steps of 1/8 (``z_bits``
    14) and 14 with 64 steps (``z_bits`` 20), where this counts 8 and 16.
    """
    dev = _device(device)
    config = config or DiscreteConfig()
    lanes = [lanes] * (len(sizes) - 1) if isinstance(lanes, int) else list(lanes)
    n = dev.dsp_width

    def cells(a, b):
        return -(-a // n) * -(-b // n)
    total = 0
    for l, k in enumerate(lanes):
        if binary_input and l == 0:
            continue
        wd = ttfs_widths(sizes[l], THETA_MAX, config)
        total += k * (cells(WEIGHT_BITS, wd["z_bits"]) + cells(wd["z_bits"], wd["diff_bits"]))
    return total


def check_fit(sizes, lanes, device, weight_memory="auto", *, learning=False, config=None,
              binary_input=False):
    """Raise :class:`ResourceError` when the weights alone overflow the block RAM (or the
    SPRAM) or the lanes' multipliers (:func:`multiplier_cells`, for the time grid ``config``,
    default :class:`~spikegate.golden.ttfs_discrete.DiscreteConfig`; none in layer 0 with
    ``binary_input``) overflow the multiplier cells of ``device``; return the weight
    memories' plan (:func:`weight_memory_plan`)."""
    dev = _device(device)
    lanes_t = [lanes] * (len(sizes) - 1) if isinstance(lanes, int) else list(lanes)
    if len(lanes_t) != len(sizes) - 1 or not all(isinstance(n, int) and 1 <= n <= MAX_LANES
                                                  for n in lanes_t):
        raise ValueError(f"lanes must be an integer from 1 to {MAX_LANES}, or {len(sizes) - 1} of them "
                         f"(one per weight layer), not {lanes!r}")
    plan = weight_memory_plan(sizes, lanes_t, dev, weight_memory, learning=learning)
    name = "-".join(map(str, sizes))
    n_spram = weight_sprams(sizes, lanes_t, plan)
    if n_spram:
        have = dev.resources[dev.spram]
        if n_spram > have:
            layers = [l for l, k in enumerate(plan) if k == "spram"]
            raise ResourceError(dev.spram, n_spram, have, dev.name,
                                f"16k x 16-bit SPRAMs for the weights of layer(s) {layers} of "
                                f"{name}, lanes {tuple(lanes_t)}")
    n_bram = weight_block_rams(sizes, lanes_t, dev, plan)
    have = dev.resources[dev.bram]
    if n_bram > have:
        bits = sum(sizes[l] * sizes[l + 1] for l in range(len(sizes) - 1)
                   if plan[l] == "ebr") * WEIGHT_BITS
        raise ResourceError(dev.bram, n_bram, have, dev.name,
                            f"block RAM for the {bits // 8} weight bytes of {name} alone"
                            + (f" (weights of layer(s) {[l for l, k in enumerate(plan) if k == 'spram']}"
                               f" in SPRAM)" if "spram" in plan else ""))
    n_mul = multiplier_cells(sizes, lanes_t, dev, config, binary_input=binary_input)
    have = dev.resources[dev.dsp]
    if n_mul > have:
        raise ResourceError(dev.dsp, n_mul, have, dev.name,
                            f"two products per lane"
                            f"{' (none in layer 0: binary input)' if binary_input else ''}, "
                            f"lanes {tuple(lanes_t)}, "
                            f"{(config or DiscreteConfig()).timesteps} timesteps")
    return plan
