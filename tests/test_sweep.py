"""``spikegate sweep``: the grid, the Pareto front, the refusals before any work, and a 4-point
sweep on local Ray (train, Verilator against golden, place and route)."""

import json

import pytest

from spikegate.scripts.cli import main
from spikegate.scripts.sweep import Point, format_table, grid, pareto_front


def test_grid_is_the_product_in_a_fixed_order():
    pts = grid([16, 32], [1, 2], ["board"], ["icebreaker", "ulx3s"], [1])
    assert len(pts) == 8
    assert pts[0] == Point(16, 1, "board", "icebreaker", 1)
    assert pts[-1] == Point(32, 2, "board", "ulx3s", 1)
    # The simulation depends on the board only through a board timing.
    assert Point(16, 1, "4", "icebreaker", 1).sim_key == Point(16, 1, "4", "ulx3s", 2).sim_key
    assert Point(16, 1, "board", "icebreaker", 1).sim_key != Point(16, 1, "board", "ulx3s", 1).sim_key


def test_pareto_front_drops_dominated_points():
    rows = [{"luts": 100, "us_per_image": 10.0}, {"luts": 200, "us_per_image": 5.0},
            {"luts": 150, "us_per_image": 12.0},      # beaten by the first in both
            {"luts": 200, "us_per_image": 6.0},       # beaten by the second in time
            {"luts": 300, "us_per_image": 5.0},       # beaten by the second in LUTs
            {"luts": None, "us_per_image": 1.0}]      # no synthesis result: not a candidate
    front = pareto_front(rows)
    assert [(r["luts"], r["us_per_image"]) for r in front] == [(100, 10.0), (200, 5.0)]


def test_table_has_a_row_per_point_and_marks_the_front():
    row = {"hidden": 16, "lanes": 2, "timing": "board", "board": "icebreaker", "seed": 1,
           "accuracy": 0.9, "bit_exact": True, "cycles": 321.0, "fmax_mhz": 31.5,
           "us_per_image": 10.19, "luts": 2000, "ffs": 900, "ram": 10, "dsp": 2,
           "sop_ratio": 0.2, "energy_uj": 0.5, "pareto": True}
    text = format_table([row, {**row, "pareto": False, "luts": None}])
    lines = text.splitlines()
    assert len(lines) == 4
    assert "| 90.00 |" in lines[2] and lines[2].endswith("| * |")
    assert lines[3].endswith("|  |") and "| - |" in lines[3]


@pytest.mark.parametrize("argv, needle", [
    (["--timing", "board,9"], "timings"),
    (["--boards", "icebreaker,arty"], "boards"),
    (["--lanes", "0"], "lanes"),
    (["--hidden", "600", "--lanes", "8"], "does not fit"),
    (["--dataset", "mnist", "--data", "/nonexistent-dir"], "nonexistent-dir"),
])
def test_refuses_bad_options_before_any_work(tmp_path, capsys, argv, needle):
    assert main(["sweep", "--out", str(tmp_path / "s")] + argv) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "s" / "models").exists()


@pytest.mark.synth
@pytest.mark.slow
def test_four_point_sweep_on_local_ray(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--hidden", "16", "--lanes", "1", "--timing", "board,0", "--seeds", "1,2",
                 "--boards", "icebreaker", "--epochs", "1", "--images", "10",
                 "--num-cpus", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    data = json.loads((out / "sweep.json").read_text())
    rows = data["points"]
    assert [(r["timing"], r["seed"]) for r in rows] == [("board", 1), ("board", 2), ("0", 1), ("0", 2)]
    for r in rows:
        assert r["bit_exact"] is True
        assert r["fmax_mhz"] > 10 and r["luts"] > 100 and r["cycles"] > 0
        assert r["us_per_image"] == pytest.approx(r["cycles"] / r["fmax_mhz"])
        assert r["synth_error"] is None
        assert r["energy"]["low_uj"] < r["energy_uj"] < r["energy"]["high_uj"]
        assert 0 < r["sop_ratio"] < 1
    # The board's register stages cost cycles against preset 0 (no cuts); the seeds do not.
    assert rows[0]["cycles"] == rows[1]["cycles"] and rows[2]["cycles"] == rows[3]["cycles"]
    assert rows[0]["cycles"] > rows[2]["cycles"]
    assert any(r.get("pareto") for r in rows)
    assert (out / "pareto.png").stat().st_size > 1000
    assert (out / "sweep.md").read_text().count("\n") == 6
