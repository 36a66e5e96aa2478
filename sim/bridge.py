"""The host client in a cocotb simulation: a UART model on the board top's pins and a
transport that lets the synchronous client (:class:`spikegate.boards.client.Client`) run
unchanged against the simulated :class:`~spikegate.boards.top.BoardTop`.

The client runs in a thread started by cocotb's :func:`cocotb.task.bridge`; each transport
call hands a coroutine to the simulator with :func:`cocotb.task.resume` and blocks until it
is done, so the simulation and the client never run at the same time and the run is
deterministic::

    uart = UARTModel(dut, bit_ns=80)
    client = Client(SimTransport(uart, timeout_ns=200_000))
    info = await run_client(client.identify)

Timeouts are in simulated time.
"""

import collections

from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, First, Timer

__all__ = ["UARTModel", "SimTransport", "run_client"]


class UARTModel:
    """8N1 UART on ``dut.<rx>`` (driven) and ``dut.<tx>`` (monitored).

    Parameters
    ----------
    dut : cocotb handle
    bit_ns : int
        Bit period in ns (the board's divisor times the clock period).
    rx, tx : str
        The pins' names (the device's receive and transmit pins).

    Members
    -------
    received : deque of int
        Bytes received from ``tx`` and not yet read.
    framing_errors : int
        Bytes from ``tx`` whose stop bit was low.
    """

    def __init__(self, dut, bit_ns, *, rx="rx", tx="tx"):
        if not isinstance(bit_ns, int) or bit_ns < 2 or bit_ns % 2:
            raise ValueError(f"bit_ns must be an even integer >= 2, not {bit_ns!r}")
        self.bit_ns = bit_ns
        self._rx = getattr(dut, rx)
        self._tx = getattr(dut, tx)
        self._rx.value = 1
        self.received = collections.deque()
        self.framing_errors = 0
        self._event = Event()
        import cocotb
        self._task = cocotb.start_soon(self._monitor())

    async def send(self, data):
        """Drive ``data`` (bytes) onto the device's ``rx`` pin, back to back."""
        for byte in bytes(data):
            bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1]
            for b in bits:
                self._rx.value = b
                await Timer(self.bit_ns, unit="ns")

    async def idle(self, ns):
        """Keep ``rx`` high for ``ns``."""
        self._rx.value = 1
        await Timer(ns, unit="ns")

    async def _monitor(self):
        half = self.bit_ns // 2
        while True:
            await FallingEdge(self._tx)
            await Timer(half, unit="ns")
            if self._tx.value != 0:
                continue            # a glitch, not a start bit
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(self._tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            if self._tx.value != 1:
                self.framing_errors += 1
                continue
            self.received.append(byte)
            self._event.set()

    async def recv(self, n, timeout_ns):
        """Up to ``n`` received bytes; returns early with fewer when no byte arrives for
        ``timeout_ns``."""
        while len(self.received) < n:
            self._event.clear()
            timer = Timer(timeout_ns, unit="ns")
            if await First(self._event.wait(), timer) is timer:
                break
        k = min(n, len(self.received))
        return bytes(self.received.popleft() for _ in range(k))

    def kill(self):
        self._task.cancel()


class SimTransport:
    """The client's transport over a :class:`UARTModel` (call it only from a thread started
    by :func:`run_client` / :func:`cocotb.task.bridge`).

    Parameters
    ----------
    uart : UARTModel
    timeout_ns : int
        How long a read waits for the next byte (simulated time); longer than the device's
        frame timeout plus the longest request's processing.
    """

    def __init__(self, uart, timeout_ns):
        self.uart = uart
        self.timeout_ns = int(timeout_ns)
        self.bytes_written = 0

    def write(self, data):
        self.bytes_written += len(data)
        resume(self.uart.send)(bytes(data))

    def read(self, n):
        return resume(self.uart.recv)(n, self.timeout_ns)

    def reset_input(self):
        self.uart.received.clear()


async def run_client(func, *args, **kwargs):
    """Run the blocking ``func(*args, **kwargs)`` (client code) in a bridge thread and
    return its result."""
    return await bridge(func)(*args, **kwargs)
