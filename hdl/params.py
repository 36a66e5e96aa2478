"""Parameter checking shared by the Components."""

import contextlib

__all__ = ["checking"]


@contextlib.contextmanager
def checking(component):
    """Run a Component's parameter checks: a ``TypeError`` or ``ValueError`` raised inside
    propagates, and the half-built Component is not reported as an unused design."""
    try:
        yield
    except (TypeError, ValueError):
        component._MustUse__silence = True
        raise
