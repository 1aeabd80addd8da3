"""The supervisor's loop survives an OSError in any step: said once per kind, the rest goes on."""

from __future__ import annotations

import errno
import queue

from conftest import Project

from orchestrator.events import FilesChanged
from orchestrator.manifest import load_manifest
from orchestrator.printer import Printer
from orchestrator.supervisor import Supervisor


def make_supervisor(project: Project, said: list[bytes]) -> Supervisor:
    project.write('[services.api]\ncmd = "true"\nport = false\n')
    manifest = load_manifest(project.root / "devports.toml")
    printer = Printer(["api"], said.append, color=False)
    return Supervisor(manifest, ["api"], {"api": None}, {"api": {}}, printer)


def out_of_descriptors() -> None:
    raise OSError(errno.EMFILE, "Too many open files")


def test_an_oserror_in_a_timer_is_said_once_and_the_loop_goes_on(project: Project) -> None:
    said: list[bytes] = []
    sup = make_supervisor(project, said)
    ran: list[str] = []
    sup.timers.call_later(0, out_of_descriptors)
    sup.timers.call_later(0, out_of_descriptors)
    sup.timers.call_later(0, lambda: ran.append("the timer after them"))
    sup._step(0)
    text = b"".join(said).decode()
    assert text.count("handling a timer failed: Too many open files; the services keep") == 1
    assert ran == ["the timer after them"]
    assert sup.exit_code is None


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
