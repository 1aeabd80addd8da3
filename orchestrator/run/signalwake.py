"""Wakes the supervisor's loop for every signal, whichever of devup's threads the kernel gave it.

A process-directed signal goes to any thread that does not block it: with two sent back to back
(SIGHUP then SIGINT), the second often lands on a reader, writer or control thread while the
first is still pending on the main thread. CPython's C handler then only sets a flag there; the
Python handler runs on the main thread once that thread next takes the GIL, and a main thread
asleep in the event queue's `get` is not woken by it: the signal waits for the loop's next timeout
or event. So, as asyncio does, the C handler also writes the signal's number to a pipe
(signal.set_wakeup_fd, from any thread); a thread of ours reads it and posts SignalArrived, which
wakes the loop, and the loop's thread then runs the handlers, which post SignalReceived.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from orchestrator.run.events import Event, SignalArrived

READ_BYTES = 512


class SignalWakeup:
    """signal.set_wakeup_fd on a pipe whose reader posts SignalArrived; install() on the main
    thread, close() restores the wakeup fd it replaced."""

    def __init__(self, post: Callable[[Event], None]) -> None:
        self._post = post
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd requires it: a handler never blocks
        self._previous = -1
        self._thread = threading.Thread(target=self._relay, name="devup-signals", daemon=True)

    def install(self) -> None:
        self._thread.start()
        # A full pipe (the relay not scheduled for ~64k signals) only drops wakeups, not signals.
        self._previous = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        os.close(self._write_fd)  # the relay reads end-of-file and ends
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            os.close(self._read_fd)

    def _relay(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, READ_BYTES)
            except OSError:
                return
            if not data:
                return
            self._post(SignalArrived(data[-1]))
