"""The supervisor's one door to the operating system (spawn, reap, list and signal a group, its
orphans, listening sockets, free ports, the clock), as honcho injects its process constructor:
`PosixHost` makes the real calls; tests drive the state machine with a scripted fake.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import IO, TYPE_CHECKING, Protocol

from orchestrator.config.manifest import ServiceSpec
from orchestrator.ports.allocation import is_port_free
from orchestrator.ports.holders import Holder, find_holders
from orchestrator.ports.listening import ListenSocket, listen_sockets
from orchestrator.run.audit import Listener, group_listeners, groups_listeners, leader_listeners
from orchestrator.run.events import Event, OutputClosed, OutputRead
from orchestrator.system import process, reaper
from orchestrator.system.process import Child, GroupId

if TYPE_CHECKING:  # psutil is imported where it is used: not on the path to the first spawn
    import psutil

READ_CHUNK_BYTES = 65536
# In a flood, after a short read the reader waits this long before the next one: the output then
# arrives in chunks of many lines instead of one event per write(), for this much added latency.
READ_COALESCE_S = 0.002
# The wait status of a leader that is not our child any more (reaped elsewhere): exit code 255.
LOST_CHILD_STATUS = 255 << 8

Spawn = Callable[[ServiceSpec, dict[str, str]], Child]


class Host(Protocol):
    """What the supervisor asks of the operating system, on its own thread only."""

    def now(self) -> float:
        """Monotonic seconds: every deadline, backoff and uptime is measured on this clock."""
        ...

    def spawn(self, spec: ServiceSpec, env: dict[str, str]) -> Child:
        """Start the service's command as the leader of a new process group (OSError if not)."""
        ...

    def read_output(
        self,
        child: Child,
        name: str,
        generation: int,
        post: Callable[[Event], None],
        slots: threading.Semaphore,
    ) -> None:
        """Post the child's output as OutputRead events, then OutputClosed, from elsewhere."""
        ...

    def wait_child(self, pid: int) -> int | None:
        """Reap the leader `pid` if it exited: its wait status, or None while it runs."""
        ...

    def reap_exited(self) -> Iterable[tuple[int, int]]:
        """(pid, wait status) of every other child that exited (adopted orphans), reaping each."""
        ...

    def group_members(self, group: GroupId) -> list[psutil.Process]:
        """The live processes of the group devup started (none once it is gone or reused)."""
        ...

    def group_alive(self, group: GroupId) -> bool: ...

    def signal_group(self, group: GroupId, sig: int, *, leader_unreaped: bool = False) -> bool:
        """Send `sig` to the group if it is still devup's; False if it is gone."""
        ...

    def orphans(self, marker: str, leaders: set[int]) -> list[psutil.Process]:
        """Adopted orphans that carry `marker` (a service's), other than the current leaders."""
        ...

    def signal_orphans(self, orphans: list[psutil.Process], sig: int) -> None: ...

    def listen_sockets(self) -> list[ListenSocket] | None:
        """Every listening TCP socket (netlink), or None where the kernel cannot be asked."""
        ...

    def group_listeners(
        self, group: GroupId, sockets: list[ListenSocket] | None = None
    ) -> list[Listener]:
        """What the group's processes listen on."""
        ...

    def groups_listeners(self, groups: Collection[GroupId]) -> dict[GroupId, list[Listener]]:
        """What each group's processes listen on, in one pass (the audit of a turn)."""
        ...

    def leader_listeners(self, group: GroupId, sockets: list[ListenSocket]) -> list[Listener]:
        """What the group's leader listens on among `sockets` (the readiness probe's fast path)."""
        ...

    def port_holders(self, port: int) -> list[Holder]:
        """Who listens on `port`, whoever they are."""
        ...

    def is_port_free(self, port: int) -> bool: ...


def spawn_service(spec: ServiceSpec, env: dict[str, str]) -> Child:
    try:
        return process.spawn(spec.cmd, spec.cwd, env)
    except OSError as exc:
        if exc.errno != errno.E2BIG:
            raise
        from orchestrator.system.argsize import (
            too_long,  # names what "Argument list too long" means
        )

        raise OSError(exc.errno, too_long([spec.cmd], env)) from None


class PosixHost:
    """The real operating system (Linux and macOS). `clock` and `spawn` may be swapped."""

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        spawn: Spawn | None = None,
    ) -> None:
        self.now: Callable[[], float] = clock or time.monotonic
        self._spawn: Spawn = spawn or spawn_service

    def spawn(self, spec: ServiceSpec, env: dict[str, str]) -> Child:
        return self._spawn(spec, env)

    def read_output(
        self,
        child: Child,
        name: str,
        generation: int,
        post: Callable[[Event], None],
        slots: threading.Semaphore,
    ) -> None:
        threading.Thread(
            target=read_output,
            args=(child.popen.stdout, name, generation, post, slots),
            name=f"devup-read-{name}",
            daemon=True,
        ).start()

    def wait_child(self, pid: int) -> int | None:
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return LOST_CHILD_STATUS
        return None if reaped == 0 else status

    def reap_exited(self) -> Iterable[tuple[int, int]]:
        return reaper.reap_exited()

    def group_members(self, group: GroupId) -> list[psutil.Process]:
        return process.group_members(group)

    def group_alive(self, group: GroupId) -> bool:
        return bool(process.group_members(group))

    def signal_group(self, group: GroupId, sig: int, *, leader_unreaped: bool = False) -> bool:
        return process.signal_group(group, sig, leader_unreaped=leader_unreaped)

    def orphans(self, marker: str, leaders: set[int]) -> list[psutil.Process]:
        return reaper.adopted_from(marker, leaders)

    def signal_orphans(self, orphans: list[psutil.Process], sig: int) -> None:
        reaper.signal_adopted(orphans, sig)

    def listen_sockets(self) -> list[ListenSocket] | None:
        return listen_sockets()

    def group_listeners(
        self, group: GroupId, sockets: list[ListenSocket] | None = None
    ) -> list[Listener]:
        return group_listeners(group, sockets)

    def groups_listeners(self, groups: Collection[GroupId]) -> dict[GroupId, list[Listener]]:
        return groups_listeners(groups)

    def leader_listeners(self, group: GroupId, sockets: list[ListenSocket]) -> list[Listener]:
        return leader_listeners(group, sockets)

    def port_holders(self, port: int) -> list[Holder]:
        return find_holders(port)

    def is_port_free(self, port: int) -> bool:
        return is_port_free(port)


def read_output(
    pipe: IO[bytes],
    name: str,
    generation: int,
    post: Callable[[Event], None],
    slots: threading.Semaphore,
    pause: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """A reader thread: chunks of the child's output onto the queue, at most N in flight.

    It owns the pipe and closes it at EOF, so no generation's pipe outlives its output.
    """
    fd = pipe.fileno()
    try:
        while True:
            slots.acquire()
            asked = clock()
            data = os.read(fd, READ_CHUNK_BYTES)
            if not data:
                break
            post(OutputRead(name, generation, data, slots))
            # Pause only in a flood (the data was already waiting): a lone line, or the newline
            # print() writes separately after it, is read at once.
            if len(data) < READ_CHUNK_BYTES and clock() - asked < READ_COALESCE_S:
                pause(READ_COALESCE_S)
    except OSError:
        pass
    finally:
        pipe.close()
    post(OutputClosed(name, generation))
