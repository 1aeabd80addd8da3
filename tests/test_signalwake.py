"""A signal whose C handler runs on another thread wakes the supervisor's loop (signalwake.py)."""

from __future__ import annotations

import queue
import signal
import threading

from orchestrator.run.events import Event, SignalArrived
from orchestrator.run.signalwake import SignalWakeup


def test_a_signal_taken_by_another_thread_wakes_a_loop_asleep_on_its_queue() -> None:
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    handled: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, _frame: handled.append(signum))
    wakeup = SignalWakeup(events.put)
    wakeup.install()
    try:
        # The kernel hands a process's signal to any thread not blocking it (one that is running
        # rather than the main thread asleep, or another once the main thread has one pending):
        # here a thread that is not the main one takes it, so only its C handler runs, there.
        sender = threading.Thread(
            target=lambda: signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        )
        sender.start()
        # The supervisor's wait. Without the wakeup nothing posts, and it ends only by timeout.
        event = events.get(timeout=10)
        sender.join()
    finally:
        wakeup.close()
        signal.signal(signal.SIGUSR1, previous)
    assert event == SignalArrived(signal.SIGUSR1)
    assert handled == [signal.SIGUSR1]  # and the loop's thread ran the Python handler


def test_closing_restores_the_wakeup_fd_it_replaced() -> None:
    original = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(original)
    first = SignalWakeup(lambda _event: None)
    first.install()
    try:
        mine = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(mine)
        second = SignalWakeup(lambda _event: None)
        second.install()
        second.close()
        assert signal.set_wakeup_fd(mine) == mine  # the first one's fd is back
    finally:
        first.close()
    assert signal.set_wakeup_fd(original) == original
