"""Pure-NumPy golden models: the specifications the hardware is checked against.

Nothing in this package imports hardware code (Amaranth, cocotb, YoWASP).
"""
