"""Generations on the scripted host: each test lets a fake child be replaced by a new one, then
has the old one's late events arrive (output, end of output, a ready_log line, its timers) and
checks that the new child's state, output and exit are never changed by them."""

from __future__ import annotations

from pathlib import Path

from orchestrator.run.events import OutputClosed, OutputRead

from .fakehost import FakeChild, Run

API = """
    [services.api]
    cmd = "python api.py"
    port = 3001
    ready_timeout = 2
"""


def replaced(run: Run) -> tuple[FakeChild, FakeChild]:
    """The first child crashes at once; its successor is spawned 0.5 s later."""
    old = run.host.last("api")
    old.exit(1)
    run.until(lambda: len(run.host.spawned("api")) == 2, 5, "api again")
    return old, run.host.last("api")


def late(old: FakeChild, data: bytes | None) -> None:
    assert old.post is not None
    old.post(OutputRead(old.name, old.generation, data) if data else OutputClosed("api", 1))


def test_late_output_of_an_old_child_is_not_shown_as_the_new_ones(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    old, new = replaced(run)
    late(old, b"old line\n")
    new.print("new line")
    run.step()
    assert run.lines("api") == ["new line"]


def test_a_late_ready_log_line_of_an_old_child_does_not_make_the_new_one_ready(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, API + 'ready_log = "listening"\n').start()
    old, new = replaced(run)
    late(old, b"listening\n")
    run.step()
    assert run.state("api") == "starting"
    new.print("listening")
    run.step()
    assert run.state("api") == "ready"


def test_the_old_childs_end_of_output_does_not_hide_the_new_ones_last_lines(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, API).start()
    old, new = replaced(run)
    new.exit(1, close_output=False)
    late(old, None)  # the old generation's OutputClosed, late
    run.step()
    assert run.state("api") == "starting"  # still waiting for the new one's output to end
    new.print("last words")
    new.close_output()
    run.step()
    assert run.state("api") == "restarting"
    assert run.lines("api") == ["last words"]


def test_the_old_childs_ready_timeout_does_not_time_the_new_one_out(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    replaced(run)  # at 0.5 s; the old one's ready_timeout falls due at 2 s
    run.advance(2.0 - 0.5 - 0.01 + 0.1)  # past it
    assert run.state("api") == "starting"
    run.until(lambda: run.state("api") == "running", 5, "timed out")
    assert run.clock.now - 1000.0 >= 2.5 - 1e-6  # the new one's own 2 s


def test_each_spawn_gets_a_new_generation_and_pid(tmp_path: Path) -> None:
    run = Run(tmp_path, API).start()
    old, new = replaced(run)
    assert (old.generation, new.generation) == (1, 2)
    assert run.status("api")["pid"] == new.pid != old.pid
    assert run.status("api")["restarts"] == 1


def test_a_late_chunk_gives_its_slot_back_to_its_own_reader(tmp_path: Path) -> None:
    """Each reader may have CHUNKS_IN_FLIGHT chunks queued; a handled chunk frees one slot of
    the reader that read it, or an old reader stalls for ever (and the new one's bound grows)."""
    import threading

    run = Run(tmp_path, API).start()
    old, _new = replaced(run)
    old_reader_slots = threading.Semaphore(0)  # all of them taken: the old reader waits
    assert old.post is not None
    old.post(OutputRead(old.name, old.generation, b"late\n", old_reader_slots))
    run.step()
    assert old_reader_slots.acquire(blocking=False), "the old reader's slot was not given back"


def test_a_service_removed_and_added_back_counts_its_generations_on(tmp_path: Path) -> None:
    """A late event of the removed service's last process must not pass for one of the new."""
    import textwrap

    from orchestrator.config.manifest import load_manifest, start_order
    from orchestrator.config.manifest_diff import PlanDiff

    two = textwrap.dedent("""
        [services.db]
        cmd = "db"
        port = 3001
        [services.api]
        cmd = "api"
        port = 3002
    """)
    run = Run(tmp_path, two).start()
    run.host.last("db").listen(3001)
    run.host.last("api").listen(3002)
    run.advance(0.1)
    before = run.sup.services["api"].generation

    def apply(text: str, diff: PlanDiff) -> None:
        (tmp_path / "devports.toml").write_text(text)
        manifest = load_manifest(tmp_path / "devports.toml")
        ports = {n: s.preferred_port for n, s in manifest.services.items()}
        envs: dict[str, dict[str, str]] = {n: {} for n in manifest.services}
        run.sup.apply_plan(manifest, start_order(manifest), ports, envs, diff)

    apply(two.split("[services.api]")[0], PlanDiff((), ("api",), (), ()))
    run.until(lambda: "api" not in run.sup.services, 10, "api forgotten")
    apply(two, PlanDiff(("api",), (), (), ()))
    run.advance(0.05)
    assert run.sup.services["api"].generation == before + 1
