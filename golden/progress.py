"""A dependency-free progress bar for long loops (training epochs, evaluation, simulation).

It writes to standard error, redraws in place on a terminal and prints one line per
``every`` steps otherwise (so CI logs stay short). ``enabled=False`` silences it.
"""

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Progress over ``total`` steps.

    Usage::

        with Progress(total=n, desc="epoch 1") as bar:
            for i in range(n):
                ...
                bar.update(1, loss=0.12, acc=0.93)
    """

    def __init__(self, total, desc="", *, enabled=True, stream=None, width=28):
        if total < 0:
            raise ValueError(f"total must be >= 0, not {total!r}")
        self.total = int(total)
        self.desc = desc
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.n = 0
        self.info = {}
        self._start = time.perf_counter()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1, **info):
        self.n += n
        self.info.update(info)
        now = time.perf_counter()
        if self._tty and now - self._last < 0.1 and self.n < self.total:
            return
        if not self._tty and now - self._last < 5.0 and self.n < self.total:
            return
        self._last = now
        self._draw(final=False)

    def _line(self):
        frac = self.n / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in self.info.items())
        return (f"{self.desc} [{bar}] {self.n}/{self.total} "
                f"{elapsed:6.1f}s {rate:8.1f}/s {extra}").rstrip()

    def _draw(self, final):
        if not self.enabled:
            return
        if self._tty:
            end = "\n" if final else ""
            self.stream.write("\r" + self._line() + end)
        else:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def close(self):
        if self.enabled and (self._tty or self.n != self._last_drawn_n()):
            self._draw(final=True)

    def _last_drawn_n(self):
        return -1
