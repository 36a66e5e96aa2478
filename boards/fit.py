"""What each FPGA has, and a quick check that a network's weights and multipliers can fit.

The check runs before anything is built: it counts only the two resources a classifier
surely needs (block RAM for the weights, multipliers for the lanes), so it is a lower
bound. What it passes may still fail in nextpnr (logic cells, the neuron state memories,
the protocol's FIFOs); :mod:`spikegate.boards.synth` then reports the resource by name from
nextpnr's utilisation table.
"""

from dataclasses import dataclass

from spikegate.golden.ttfs_discrete import WEIGHT_BITS

__all__ = ["Device", "DEVICES", "ResourceError", "block_count", "weight_block_rams", "check_fit"]


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
    byte write mask; ``dsp`` the multiplier cell (each covers one multiplier of a lane).
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
        dsp="MULT18X18D")
        for k, luts, ebr, mult in ((12, 24288, 56, 28), (25, 24288, 56, 28),
                                   (45, 43848, 108, 72), (85, 83640, 208, 156))},
}


def block_count(depth, width, shapes):
    """Fewest blocks of one of ``shapes`` holding a ``depth`` x ``width`` memory."""
    return min(-(-depth // d) * -(-width // w) for d, w in shapes)


def weight_block_rams(sizes, lanes, device):
    """Block RAMs the weight memories need: one memory per weight layer, ``lanes * 8`` bits
    wide and ``n_src * ceil(n_dst / lanes)`` deep (:class:`~spikegate.hdl.lookup.WeightLookup`).
    """
    dev = DEVICES[device] if isinstance(device, str) else device
    lanes = [lanes] * (len(sizes) - 1) if isinstance(lanes, int) else list(lanes)
    total = 0
    for l, n in enumerate(lanes):
        depth = sizes[l] * -(-sizes[l + 1] // n)
        total += block_count(depth, n * WEIGHT_BITS, dev.bram_shapes)
    return total


def check_fit(sizes, lanes, device):
    """Raise :class:`ResourceError` when the weights alone overflow the block RAM or the lanes'
    multipliers (two per lane) overflow the multiplier cells of ``device``."""
    dev = DEVICES[device] if isinstance(device, str) else device
    lanes_t = [lanes] * (len(sizes) - 1) if isinstance(lanes, int) else list(lanes)
    if len(lanes_t) != len(sizes) - 1 or not all(isinstance(n, int) and 1 <= n <= 16
                                                  for n in lanes_t):
        raise ValueError(f"lanes must be an integer from 1 to 16, or {len(sizes) - 1} of them "
                         f"(one per weight layer), not {lanes!r}")
    n_bram = weight_block_rams(sizes, lanes_t, dev)
    have = dev.resources[dev.bram]
    if n_bram > have:
        bits = sum(sizes[l] * sizes[l + 1] for l in range(len(sizes) - 1)) * WEIGHT_BITS
        raise ResourceError(dev.bram, n_bram, have, dev.name,
                            f"block RAM for the {bits // 8} weight bytes of "
                            f"{'-'.join(map(str, sizes))} alone")
    n_mul = 2 * sum(lanes_t)
    have = dev.resources[dev.dsp]
    if n_mul > have:
        raise ResourceError(dev.dsp, n_mul, have, dev.name,
                            f"two multipliers per lane, lanes {tuple(lanes_t)}")
