"""Amaranth gateware. May import :mod:`spikegate.golden` for shared constants and fixed-point definitions."""
