"""The one stream of what happens to a run, in order: every state change of a service (from the
supervisor's `_set_state`), every event it handles, facts shown by the run record that changed
without a state change, and the end of each turn of its loop.

The run record, the listen audit, control requests waiting for services to settle and the debug
trace subscribe here instead of being called by hand (Supervisor's `change_state` -> `notify`,
process-compose's state broadcaster). Subscribers run on the supervisor's thread; a notice
published while subscribers are being told is queued, so every subscriber hears every notice in
the order they happened.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from orchestrator.base.records import same_type_equality
from orchestrator.run.events import Event
from orchestrator.run.states import State


@same_type_equality
class ServiceStateChanged(NamedTuple):
    name: str
    old: State
    new: State
    generation: int  # the spawn it is about (0: never started)


@same_type_equality
class FactsChanged(NamedTuple):
    """Something the run record shows changed without a state change (an audit's findings, a
    service added or forgotten)."""

    name: str | None = None


@same_type_equality
class EventHandled(NamedTuple):
    """The supervisor is about to handle `event` (for the debug trace)."""

    event: Event


@same_type_equality
class TurnEnded(NamedTuple):
    """A turn of the loop is over and reconciled: what subscribers gathered can be acted on."""

    def __bool__(self) -> bool:  # a record, not an empty tuple
        return True


Notice = ServiceStateChanged | FactsChanged | EventHandled | TurnEnded
Subscriber = Callable[[Notice], None]


def settles(change: ServiceStateChanged) -> bool:
    """Whether this change answers a request waiting for the service to settle: it is up, or
    stopped, or it failed while starting (a stop or restart on the way does not)."""
    if change.new in (State.READY, State.RUNNING, State.STOPPED, State.CRASHED):
        return True
    return change.new is State.RESTARTING and change.old is State.STARTING


class Changes:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._pending: deque[Notice] = deque()
        self._telling = False

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Hear every notice from now on; returns the call that stops it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, notice: Notice) -> None:
        self._pending.append(notice)
        if self._telling:
            return  # told once the notice being told has reached every subscriber
        self._telling = True
        try:
            while self._pending:
                current = self._pending.popleft()
                for subscriber in list(self._subscribers):
                    subscriber(current)
        finally:
            self._telling = False  # a subscriber that failed: what is pending is told next time


def once_per_turn(action: Callable[[], None]) -> Subscriber:
    """A subscriber that calls `action` at the end of each turn in which a state or a fact of the
    run changed (the run record: one write per turn however many services changed)."""
    changed = False

    def hear(notice: Notice) -> None:
        nonlocal changed
        if isinstance(notice, TurnEnded):
            if changed:
                changed = False
                action()
        elif isinstance(notice, ServiceStateChanged | FactsChanged):
            changed = True

    return hear
