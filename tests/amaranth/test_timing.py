"""The timing object: presets, checks, and that the blocks read their structure from it."""

import dataclasses

import pytest

from spikegate.boards.timing import (BOARD_NAMES, ICEBREAKER, ULX3S, ULX3S_BANKED,
                                     board_timing)
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
            if isinstance(getattr(t, f.name), bool) and getattr(t, f.name)} - \
        {"group_wake", "lazy_clear", "head_issue"}


@pytest.mark.parametrize("level", PRESET_LEVELS)
def test_presets_add_the_cuts_of_each_level(level):
    t = Timing.preset(level)
    want = set().union(*(LEVEL_CUTS[k] for k in range(1, level + 1)))
    assert _on(t) == want, f"level {level}: {t.describe()}"
    assert t.group_wake == (level < 4), f"level {level}"
    assert t.lazy_clear and t.head_issue, f"level {level}: {t.describe()}"
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


@pytest.mark.parametrize("fields, exc, match", [
    ({"weight_bank_depth": 4096}, ValueError, "weight_bank_depth needs weight_out_register=True"),
    ({"weight_out_register": True, "weight_bank_depth": 1000}, ValueError,
     "weight_bank_depth must be a power of two >= 2, not 1000"),
    ({"weight_out_register": True, "weight_bank_depth": 1}, ValueError, "power of two >= 2, not 1"),
    ({"weight_out_register": True, "weight_bank_depth": 512.0}, TypeError,
     "weight_bank_depth must be an int or None, not 512.0"),
    ({"weight_out_register": True, "weight_bank_depth": True}, TypeError, "not True"),
    ({"weight_out_register": True, "weight_bank_depth": 4096, "weight_bank_width": 3}, ValueError,
     "weight_bank_width must be 1, 2, 4, 8 or None, not 3"),
    ({"weight_out_register": True, "weight_bank_depth": 4096, "weight_bank_width": "4"},
     ValueError, "weight_bank_width must be 1, 2, 4, 8 or None, not '4'"),
    ({"weight_out_register": True, "weight_bank_width": 4}, ValueError,
     "weight_bank_width needs weight_bank_depth"),
])
def test_bad_weight_banks_are_refused(fields, exc, match):
    with pytest.raises(exc, match=match):
        Timing(**fields)
    with pytest.raises(exc, match=match):      # replace checks like a new object
        Timing.preset(4).replace(**fields)


def test_weight_banks_latency_key_and_layers():
    t = Timing.preset(4, weight_out_register=True, weight_bank_depth=512, weight_bank_width=4)
    assert t.weight_rb_latency == 3 and t.rb_latency == 3
    assert t.replace(rb_register=True).rb_latency == 4
    assert Timing(weight_out_register=True).weight_rb_latency == 1
    keys = {t.key(), t.replace(weight_bank_width=None).key(), t.replace(weight_bank_depth=1024).key(),
            Timing.preset(4, weight_out_register=True).key()}
    assert len(keys) == 4, keys
    # The fields without banks keep the keys (and build directories) they had.
    assert Timing.preset(4, lazy_clear=False, head_issue=False).key() == "t11111001000q935231204080"
    assert Timing.preset(4).key() == "t11111001000q935231204080LH"
    assert "weight_bank_depth=512" in t.describe()
    clf = TTFSClassifier((8, 20, 3), [10, 10], (4, 4), timing=t)
    for layer in clf.layers:
        lk = layer.lookup
        assert (lk.bank_depth, lk.bank_width, lk.out_register, lk.rb_latency) == (512, 4, True, 3)
        assert layer.rb_latency == 3
    assert clf.rb_latency == 3
    from amaranth.back import rtlil
    rtlil.convert(clf)      # and it elaborates


@pytest.mark.parametrize("level", [0, 1, 2])
def test_cut_before_write_needs_both_multiply_cuts(level):
    t = Timing.preset(level)
    with pytest.raises(ValueError, match=(
            f"cut_before_write=True needs cut_before_multiply and cut_after_multiply.*"
            f"not cut_before_multiply={t.cut_before_multiply}, "
            f"cut_after_multiply={t.cut_after_multiply}")):
        t.replace(cut_before_write=True)
    with pytest.raises(TypeError, match="cut_before_write must be a bool, not 1"):
        Timing.preset(4, cut_before_write=1)


def test_cut_before_write_distances_and_key():
    t = Timing.preset(4)
    w = t.replace(cut_before_write=True)
    assert (t.write_distance, t.row_distance) == (2, 2)
    assert (w.write_distance, w.row_distance) == (3, 2)     # rows spaced as without it
    assert Timing.preset(1).row_distance == 1
    assert w.key() == t.key().replace("LH", "wLH") and "cut_before_write=True" in w.describe()
    assert Timing.preset(5, cut_before_write=True).key() != Timing.preset(5).key()


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
    # Group wakes on neither: they do not fit the UP5K, and they cost the ECP5 its clock.
    assert not (ULX3S.group_wake or ICEBREAKER.group_wake)
    with pytest.raises(ValueError, match="board must be one of icebreaker, ulx3s"):
        board_timing("arty")
    # The ULX3S MNIST builds (a weight memory deeper than one bank of 4096 words) get the
    # registered weight banks, without group wakes; the digits builds and the iCEBreaker not.
    # ... and the register before the state write (issue 22: the fire compare was the path).
    assert ULX3S_BANKED == ULX3S.replace(weight_out_register=True, weight_bank_depth=4096,
                                         weight_bank_width=4, cut_before_write=True,
                                         command_slice=True, lazy_clear=False,
                                         head_issue=False)
    assert ULX3S_BANKED.rb_latency == 4
    # The lazy clear and the FIFO-head issue on the ECP5's digits build only (issue 22: they
    # cost the UP5K its 30 MHz).
    assert ULX3S.lazy_clear and ULX3S.head_issue
    assert not (ICEBREAKER.lazy_clear or ICEBREAKER.head_issue)
    assert not ULX3S.cut_wake
    with pytest.raises(ValueError, match="cut_wake=True needs group_wake=True"):
        Timing(group_wake=False, cut_wake=True)
    assert board_timing("ulx3s-85F", (784, 456, 10), (8, 8)) is ULX3S_BANKED
    assert board_timing("ulx3s-25F", (784, 64, 10), [2, 2]) is ULX3S_BANKED
    assert board_timing("ulx3s-85F", (64, 64, 10), 8) is ULX3S
    assert board_timing("ulx3s", (512, 64, 10), 8) is ULX3S            # 4096 words: one bank
    assert board_timing("ulx3s", (513, 64, 10), 8) is ULX3S_BANKED
    assert board_timing("icebreaker", (784, 166, 10), (2, 1)) is ICEBREAKER
    with pytest.raises(ValueError, match="both sizes and lanes or neither"):
        board_timing("ulx3s", (784, 456, 10))
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


# lazy_clear and head_issue: on by default, each its own letter of the key (hardware with
# neither keeps its old key), named by describe() when off.
def test_lazy_clear_and_head_issue_keys():
    t = Timing.preset(5)
    assert t.lazy_clear and t.head_issue
    keys = {t.key(), t.replace(lazy_clear=False).key(), t.replace(head_issue=False).key(),
            t.replace(lazy_clear=False, head_issue=False).key()}
    assert len(keys) == 4, keys
    assert "lazy_clear=False" in t.replace(lazy_clear=False).describe()
    with pytest.raises(TypeError, match="Timing.head_issue must be a bool, not 1"):
        Timing(head_issue=1)
