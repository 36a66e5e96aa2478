"""Every name in every ``__all__`` of every spikegate module exists (a missing comma in an
``__all__`` glues two names into one that does not)."""

import importlib
import pkgutil

import pytest

import spikegate.boards
import spikegate.golden
import spikegate.hdl
import spikegate.scripts
import spikegate.sim

# Modules that import the simulator (cocotb needs a running simulation for some of its
# modules) are still importable outside one; none is skipped.
PACKAGES = [spikegate.golden, spikegate.hdl, spikegate.sim, spikegate.boards, spikegate.scripts]


def _modules():
    for package in PACKAGES:
        yield package.__name__
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_all_names_exist(name):
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    if names is None:
        return
    assert len(set(names)) == len(names), f"{name}.__all__ repeats a name"
    for n in names:
        assert isinstance(n, str) and n.isidentifier(), f"{name}.__all__ holds {n!r}"
        assert hasattr(module, n), f"{name}.__all__ names {n!r}, which {name} does not define"
