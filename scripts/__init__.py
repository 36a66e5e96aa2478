"""The ``spikegate`` command and the benchmark scripts."""
