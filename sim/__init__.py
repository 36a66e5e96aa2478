"""Amaranth -> Verilog -> cocotb: the simulation runner, stream drivers and monitors, the host bridge."""
