"""The supervisor's loop survives an OSError in any step: said once per kind, the rest goes on."""

from __future__ import annotations

import errno
import queue

from conftest import Project

from orchestrator.config.manifest import load_manifest
from orchestrator.output.printer import Printer
from orchestrator.run.events import FilesChanged, OutputClosed, OutputRead
from orchestrator.run.states import State
from orchestrator.run.supervisor import RETRY_AFTER_ERROR_S, Supervisor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_supervisor(
    project: Project, said: list[bytes], clock: FakeClock | None = None
) -> Supervisor:
    project.write('[services.api]\ncmd = "true"\nport = false\n')
    manifest = load_manifest(project.root / "devports.toml")
    printer = Printer(["api"], said.append, color=False)
    return Supervisor(
        manifest, ["api"], {"api": None}, {"api": {}}, printer, clock=clock or FakeClock()
    )


def out_of_descriptors() -> None:
    raise OSError(errno.EMFILE, "Too many open files")


def test_an_oserror_in_a_timer_is_said_once_the_loop_goes_on_and_it_is_tried_again(
    project: Project,
) -> None:
    said: list[bytes] = []
    clock = FakeClock()
    sup = make_supervisor(project, said, clock)
    ran: list[str] = []
    failures = [2]  # the poll fails twice (out of descriptors), then works

    def poll() -> None:
        if failures[0]:
            failures[0] -= 1
            out_of_descriptors()
        ran.append("poll")

    sup.timers.call_later(0, poll)
    sup.timers.call_later(0, lambda: ran.append("the timer after it"))
    sup._step(0)
    assert ran == ["the timer after it"]
    for _ in range(2):  # a poll re-arms itself only when it finishes: it must not be lost
        clock.now += RETRY_AFTER_ERROR_S
        sup._step(0)
    assert ran == ["the timer after it", "poll"]
    text = b"".join(said).decode()
    assert text.count("handling a timer failed: Too many open files; the services keep") == 1
    assert sup.exit_code is None


def test_late_output_of_a_service_no_longer_run_is_ignored(project: Project) -> None:
    sup = make_supervisor(project, [])
    sup.events.put(OutputRead("gone", 1, b"late line\n"))  # removed from devports.toml
    sup.events.put(OutputClosed("gone", 1))
    sup._step(0)
    assert sup.exit_code is None


def test_a_late_file_change_does_not_bring_back_a_removed_service(project: Project) -> None:
    sup = make_supervisor(project, [])
    svc = sup.services["api"]
    svc.state = State.STOPPING  # being stopped after devports.toml dropped it
    sup.retiring.add("api")
    sup.events.put(FilesChanged("api", "f14.txt"))  # queued before the reload was applied
    sup._step(0)
    assert svc.restart_due is None and svc.restarts == 0


def test_an_oserror_handling_an_event_is_said_and_the_next_event_is_handled(
    project: Project,
) -> None:
    said: list[bytes] = []
    sup = make_supervisor(project, said)
    handled: list[str] = []

    def on_files_changed(event: FilesChanged) -> None:
        if event.path == "bad":
            out_of_descriptors()
        handled.append(event.path)

    sup._on_files_changed = on_files_changed  # type: ignore[method-assign]
    events: queue.SimpleQueue[object] = sup.events  # type: ignore[assignment]
    events.put(FilesChanged("api", "bad"))
    events.put(FilesChanged("api", "good"))
    sup._step(0)
    text = b"".join(said).decode()
    assert "handling a file change failed: Too many open files" in text
    assert handled == ["good"]
