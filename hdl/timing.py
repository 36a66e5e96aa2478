"""The register cuts and options of the TTFS hardware, as one named, frozen object.

Each field is one structural choice of :class:`~spikegate.hdl.ttfs_layer.TTFSLayer`,
:class:`~spikegate.hdl.classifier.TTFSClassifier` or
:class:`~spikegate.hdl.protocol.ProtocolEngine`; every block reads the fields it needs from
the same :class:`Timing` object, and no block reads a child's setting to choose its own
structure. None of them changes a result: only cycles (a few per pass or step) and the
clock the design reaches.

:func:`Timing.preset` gives the levels 0 to 5 the project has measured (each adds cuts to
the one before); a board's choice is a :class:`Timing` in :mod:`spikegate.boards.timing`.
"""

import dataclasses

from spikegate.golden.ttfs_discrete import QUIET_FACTORS, DiscreteConfig, quiet_horizons

__all__ = ["Timing", "PRESET_LEVELS"]

#: The levels :meth:`Timing.preset` knows.
PRESET_LEVELS = (0, 1, 2, 3, 4, 5)

#: The fields of :class:`Timing` that are not ``bool``.
_NOT_BOOL = ("weight_bank_depth", "weight_bank_width", "quiet_factors")

#: Fields that :meth:`Timing.key` writes as a letter (field, letter, the value it marks).
_SUFFIXED_KEYS = (("cut_before_write", "w", True), ("lazy_clear", "L", True),
                  ("head_issue", "H", True), ("cut_wake", "K", True))
_SUFFIXED = tuple(name for name, _, _ in _SUFFIXED_KEYS)


@dataclasses.dataclass(frozen=True)
class Timing:
    """Register cuts and options (each a ``bool`` unless said otherwise).

    Members
    -------
    cut_after_multiply
        A register stage after the lanes' multipliers: the neuron state is written one cycle
        after the beat, forwarded to the next row's beat.
    cut_before_stats
        A register stage before the statistics (armed count, quiet horizon, first spike).
    cut_before_multiply
        A register stage before the multipliers (the state write is two cycles after the
        beat; rows of a layer with a single lane group are spaced by one idle cycle).
    cut_before_write
        A register stage between the fire compare (``z * (acc_w - theta) >= acc_wz``) and
        the neuron-state write and the fire mask (the state is written three cycles after
        the beat, the fire mask reaches the next layer a cycle later). Needs
        ``cut_before_multiply`` and ``cut_after_multiply``: a beat two cycles after one of
        the same group takes that beat's new ``acc_w`` and ``acc_wz`` at once (registers)
        and its ``fired`` and ``step`` (the compare's) a cycle later, at the multiply stage,
        from this stage's register; three cycles after, from this register at once. Rows
        are spaced as without it (:attr:`row_distance`).
    late_weight_terms
        ``w * z`` and ``acc_w + w`` after the cut before the multipliers (the weight
        memory's read is then registered as it is).
    cut_quiet
        A register stage between the lanes' quiet tests and the quiet horizon (``armed``,
        ``quiet_until`` and ``wake`` settle one cycle later).
    command_slice
        A register slice on each layer's row-command stream: the controller's decisions and
        the walker's start are separate paths (one cycle more per pass).
    registered_head
        The classifier's tests of the input head and of the layers' wakes against the step
        are registers, which its decisions wait for after a new head, step or pass, and the
        start of a step is a cycle of its own.
    tree_jump
        The jump target (the earliest wake or input step) is a tree of minimums, without
        the clamp to the last step (else a chain of minimums).
    rb_register
        The weight read-back is registered at each layer and again in the protocol engine
        (``rb_data`` two cycles after ``rb_en`` at the classifier, one more in the engine).
    group_wake
        Per-group quiet horizons in every layer with 2 to
        :data:`~spikegate.hdl.lookup.MAX_MASKED_GROUPS` lane groups: scans visit only the
        groups whose wake is due. With ``cut_quiet`` a group's wake is written one cycle
        after its state (:func:`~spikegate.hdl.quiet.group_horizons`). Refused with
        ``command_slice`` or ``registered_head``: together they can stall a classification.
    weight_out_register
        A register stage after each weight memory's read data
        (:class:`~spikegate.hdl.lookup.WeightLookup`'s ``out_register``; the equivalent of the
        ECP5 DP16KD's output register, which Yosys does not use): the block RAM's output and
        the multiplexer over the blocks of a deep memory, whose blocks spread over the die in
        the MNIST builds, are a path of their own. The layer sees its beats one cycle later
        and nothing else changes: one cycle more per pass, none per row.
    weight_bank_depth : int or None
        With ``weight_out_register``: each weight memory in banks of this many words (a power
        of two; :class:`~spikegate.hdl.lookup.WeightLookup`'s ``bank_depth``), each bank's
        read data registered beside its block RAM and the multiplexer over the banks after
        those registers; the walk's read address from a register. The beats' timing is
        ``weight_out_register``'s; the weight read-back takes two cycles more
        (:attr:`weight_rb_latency` 3). Block RAM only (not the iCE40 SPRAM). None (default):
        no banks.
    weight_bank_width : int or None
        With ``weight_bank_depth``: each bank as memories of this many bits side by side (1,
        2, 4 or 8; 4 with banks of 4096 words is the ECP5 DP16KD's 4096 x 4 shape). None
        (default): a bank is one memory of the whole word.
    quiet_factors : tuple of (n, d)
        The scan scheduler's quiet factors ``n / 2**d``
        (:func:`~spikegate.golden.ttfs_discrete.quiet_horizons`): a comparator per lane each.
    cut_wake
        With ``group_wake``: a register after the minimum of the groups' wakes (the layer's
        ``wake``), which settles one cycle after a group's wake is written (a cycle that
        counts in the layer's ``busy``): the groups' wakes and the scheduler's jump over the
        layers' wakes are separate paths.
    lazy_clear
        An image's start clears every layer in no cycle instead of a ``CLEAR`` pass over its
        groups: a stale bit per lane group (a register per group), taken with the state read
        at the issue; a group reads as cleared until its first write of the image
        (:class:`~spikegate.hdl.ttfs_layer.TTFSLayer`). Saves ``groups + 3`` cycles or so an
        image.
    head_issue
        A fire mask at the head of a fire-mask FIFO offers its lowest spike's row to the next
        layer straight from the FIFO's output register, in the cycle it appears there,
        instead of a cycle later from the scheduler's mask register
        (:class:`~spikegate.hdl.scheduler.StepScheduler`): a cycle less per fire mask.
    """

    cut_after_multiply: bool = False
    cut_before_stats: bool = False
    cut_before_multiply: bool = False
    cut_before_write: bool = False
    late_weight_terms: bool = False
    cut_quiet: bool = False
    command_slice: bool = False
    registered_head: bool = False
    tree_jump: bool = False
    rb_register: bool = False
    group_wake: bool = True
    weight_out_register: bool = False
    weight_bank_depth: int = None
    weight_bank_width: int = None
    quiet_factors: tuple = QUIET_FACTORS
    cut_wake: bool = False
    lazy_clear: bool = True
    head_issue: bool = True

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name not in _NOT_BOOL and not isinstance(v, bool):
                raise TypeError(f"Timing.{f.name} must be a bool, not {v!r}")
        self._check_banks()
        if self.cut_before_write and not (self.cut_before_multiply and self.cut_after_multiply):
            raise ValueError(f"Timing.cut_before_write=True needs cut_before_multiply and "
                             f"cut_after_multiply (its forwarding fixes fired and step at the "
                             f"multiply stage), not cut_before_multiply="
                             f"{self.cut_before_multiply!r}, cut_after_multiply="
                             f"{self.cut_after_multiply!r}")
        try:
            factors = tuple((int(n), int(d)) for n, d in self.quiet_factors)
        except (TypeError, ValueError):
            raise TypeError(f"Timing.quiet_factors must be pairs (n, d), not "
                            f"{self.quiet_factors!r}") from None
        quiet_horizons(DiscreteConfig(timesteps=2), factors)      # checks the factors
        object.__setattr__(self, "quiet_factors", factors)
        if self.cut_wake and not self.group_wake:
            raise ValueError("Timing.cut_wake=True needs group_wake=True (it registers the "
                             "minimum of the group wakes)")
        if self.group_wake and (self.command_slice or self.registered_head):
            # Found by tests/amaranth/test_classifier.py: with the command slice or the
            # registered head (level 5) the per-group wakes can stall a classification
            # forever (lanes 1, 2 and 4 on a 20-12-5 network). Refused until fixed.
            raise ValueError("Timing: group_wake cannot be combined with command_slice or "
                             "registered_head (the classifier can stall); use level 4 or "
                             "group_wake=False")

    def _check_banks(self):
        """``weight_bank_depth`` and ``weight_bank_width``: types, values and what they need."""
        depth, width = self.weight_bank_depth, self.weight_bank_width
        if depth is not None:
            if not isinstance(depth, int) or isinstance(depth, bool):
                raise TypeError(f"Timing.weight_bank_depth must be an int or None, not {depth!r}")
            if depth < 2 or depth & (depth - 1):
                raise ValueError(f"Timing.weight_bank_depth must be a power of two >= 2, not "
                                 f"{depth!r}")
            if not self.weight_out_register:
                raise ValueError("Timing.weight_bank_depth needs weight_out_register=True (the "
                                 "banks' registers are the weight register stage)")
        if width is not None:
            if not isinstance(width, int) or isinstance(width, bool) or width not in (1, 2, 4, 8):
                raise ValueError(f"Timing.weight_bank_width must be 1, 2, 4, 8 or None, not "
                                 f"{width!r}")
            if depth is None:
                raise ValueError("Timing.weight_bank_width needs weight_bank_depth")

    @classmethod
    def preset(cls, level, **changes):
        """The measured level ``level`` (0 to 5), with ``changes`` to its fields.

        0: no cut; 1: after the multipliers; 2: also before the statistics; 3: also before
        the multipliers; 4: also the late weight terms, the quiet-test cut and the tree jump
        (no group wake); 5: also the command slice and the registered head.
        """
        if level not in PRESET_LEVELS:
            raise ValueError(f"timing level must be one of {PRESET_LEVELS}, not {level!r}")
        fields = {"cut_after_multiply": level >= 1, "cut_before_stats": level >= 2,
                  "cut_before_multiply": level >= 3, "late_weight_terms": level >= 4,
                  "cut_quiet": level >= 4, "tree_jump": level >= 4, "group_wake": level < 4,
                  "command_slice": level >= 5, "registered_head": level >= 5}
        fields.update(changes)
        return cls(**fields)

    def replace(self, **changes):
        """A copy with ``changes`` (checked like a new object)."""
        return dataclasses.replace(self, **changes)

    @property
    def write_distance(self):
        """Register stages from a beat to its neuron-state write (0 to 3)."""
        return (int(self.cut_before_multiply) + int(self.cut_after_multiply) +
                int(self.cut_before_write))

    @property
    def row_distance(self):
        """The fewest cycles between two beats of the same lane group (0 to 2): rows of a
        layer with fewer groups are spaced by idle cycles. :attr:`write_distance`, but 2 with
        ``cut_before_write`` (whose forwarding covers a beat two cycles after the one that
        writes)."""
        return self.write_distance - int(self.cut_before_write)

    @property
    def weight_rb_latency(self):
        """Cycles from a layer's weight read-back ``rb_en`` to its ``rb_data``: 1, or 3 with
        ``weight_bank_depth`` (:attr:`~spikegate.hdl.lookup.WeightLookup.rb_latency`)."""
        return 1 if self.weight_bank_depth is None else 3

    @property
    def rb_latency(self):
        """Cycles from the classifier's ``rb_en`` to its ``rb_data``: :attr:`weight_rb_latency`
        (1, or 3 with ``weight_bank_depth``), plus 1 with ``rb_register``."""
        return self.weight_rb_latency + int(self.rb_register)

    def describe(self):
        """The fields that differ from :class:`Timing`'s defaults, as ``name=value`` text
        (``"default"`` when none): for build names and reports."""
        base = Timing()
        diff = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(base, f.name)]
        return ", ".join(diff) or "default"

    def key(self):
        """A short stable text naming this object (for build directories)."""
        bits = "".join(str(int(getattr(self, f.name))) for f in dataclasses.fields(self)
                       if f.name not in _NOT_BOOL + _SUFFIXED)
        q = "".join(f"{n}{d}" for n, d in self.quiet_factors)
        banks = "" if self.weight_bank_depth is None else \
            f"b{self.weight_bank_depth}x{self.weight_bank_width or 0}"
        # Later fields as letters (set when on), so that the key of a design without them
        # stays as it was.
        tail = "".join(letter for name, letter, when in _SUFFIXED_KEYS
                       if getattr(self, name) == when)
        return f"t{bits}q{q}{banks}{tail}"
