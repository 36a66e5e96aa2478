"""The timing object: presets, checks, and that the blocks read their structure from it."""

import dataclasses

import pytest

from spikegate.boards.timing import BOARD_NAMES, ICEBREAKER, ULX3S, board_timing
from spikegate.golden.ttfs_discrete import QUIET_FACTORS, QUIET_FACTORS_COARSE
from spikegate.hdl.classifier import TTFSClassifier
from spikegate.hdl.timing import PRESET_LEVELS, Timing
from spikegate.hdl.ttfs_layer import TTFSLayer

# The cuts each level adds, as the levels were measured (each includes the ones before).
LEVEL_CUTS = {
    1: {"cut_after_multiply"},
    2: {"cut_before_stats"},
    3: {"cut_before_multiply"},
    4: {"late_weight_terms", "cut_quiet", "tree_jump"},
    5: {"command_slice", "registered_head"},
}


def _on(t):
    return {f.name for f in dataclasses.fields(t)
            if isinstance(getattr(t, f.name), bool) and getattr(t, f.name)} - {"group_wake"}


@pytest.mark.parametrize("level", PRESET_LEVELS)
def test_presets_add_the_cuts_of_each_level(level):
    t = Timing.preset(level)
    want = set().union(*(LEVEL_CUTS[k] for k in range(1, level + 1)))
    assert _on(t) == want, f"level {level}: {t.describe()}"
    assert t.group_wake == (level < 4), f"level {level}"
    assert t.rb_register is False and t.quiet_factors == QUIET_FACTORS
    assert t.write_distance == int(level >= 1) + int(level >= 3)


def test_presets_are_distinct_and_keyed():
    keys = {Timing.preset(k).key() for k in PRESET_LEVELS}
    assert len(keys) == len(PRESET_LEVELS)
    assert Timing.preset(2, quiet_factors=QUIET_FACTORS_COARSE).key() != Timing.preset(2).key()
    assert Timing().describe() == "default"
    assert "cut_quiet=True" in Timing.preset(4).describe()


def test_impossible_and_bad_fields_are_refused():
    with pytest.raises(TypeError, match="weight_out_register must be a bool, not 1"):
        Timing(weight_out_register=1)
    with pytest.raises(ValueError, match="timing level"):
        Timing.preset(6)
    with pytest.raises(TypeError, match="cut_quiet must be a bool, not 1"):
        Timing(cut_quiet=1)
    with pytest.raises(TypeError, match="quiet_factors"):
        Timing(quiet_factors=3)
    with pytest.raises(ValueError):
        Timing(quiet_factors=((0, 1),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        Timing().cut_quiet = True


def test_blocks_refuse_a_timing_that_is_not_one():
    with pytest.raises(TypeError, match="timing must be a Timing, not 4"):
        TTFSClassifier((4, 3, 2), [10, 10], 1, timing=4)
    with pytest.raises(TypeError, match="timing must be a Timing"):
        TTFSLayer(4, 3, 1, 10, timing={"pipeline": 4})


def test_board_presets():
    assert board_timing("icebreaker") is ICEBREAKER and board_timing("ulx3s-85F") is ULX3S
    for t in (ICEBREAKER, ULX3S):
        assert t.rb_register and t.rb_latency == 2
        assert t.quiet_factors == QUIET_FACTORS_COARSE
    assert ICEBREAKER.registered_head and not ULX3S.registered_head
    # Group wakes on the ECP5 (logic to spare), not on the UP5K (its logic cells are full).
    assert ULX3S.group_wake and not ICEBREAKER.group_wake
    with pytest.raises(ValueError, match="board must be one of icebreaker, ulx3s"):
        board_timing("arty")
    assert set(BOARD_NAMES) == {"icebreaker", "ulx3s"}


def test_layers_follow_the_timing():
    # group wake only for 2..MAX_MASKED_GROUPS groups; the read-back latency follows rb_register.
    from amaranth.back import rtlil
    t = Timing.preset(2)
    clf = TTFSClassifier((8, 20, 3), [10, 10], (4, 4), timing=t)
    assert [layer.group_wake for layer in clf.layers] == [True, False]
    assert all(layer.timing is t for layer in clf.layers)
    assert clf.rb_latency == 1
    registered = TTFSClassifier((8, 20, 3), [10, 10], 4, timing=t.replace(rb_register=True))
    assert registered.rb_latency == 2
    for dut in (clf, registered):
        rtlil.convert(dut)      # and each elaborates
