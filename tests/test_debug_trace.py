"""The debug trace (DEVUP_DEBUG=1, `devup --debug`): a real run prints each event the supervisor
handles and each state change on stderr, with the time since the run started, in order."""

from __future__ import annotations

import re
import signal

import pytest
from conftest import DevupProcess, Project, py

TRACE = re.compile(r"^devup\[debug\] \+(\d+\.\d{3})s (.*)$")
SERVER = py("""
    import os, socket, time
    s = socket.socket()
    s.bind(("127.0.0.1", int(os.environ["PORT"])))
    s.listen()
    time.sleep(60)
""")


def traced(lines: list[str]) -> list[tuple[float, str]]:
    return [(float(m.group(1)), m.group(2)) for m in map(TRACE.match, lines) if m]


@pytest.mark.parametrize("how", ["env", "option"])
def test_the_debug_trace_shows_each_event_and_state_change_with_its_time(
    project: Project, running: list[DevupProcess], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    project.write(f"""
        [services.prep]
        cmd = "true"
        port = false
        restart = "no"
        [services.api]
        cmd = '''{SERVER}'''
        depends_on = ["prep"]
    """)
    if how == "env":
        monkeypatch.setenv("DEVUP_DEBUG", "1")
        run = project.start("--no-watch")
    else:
        monkeypatch.delenv("DEVUP_DEBUG", raising=False)
        run = project.start("--debug", "--no-watch")
    running.append(run)
    run.expect_line(r"devup\s+\| 1 service up, 1 task done in")
    run.signal(signal.SIGINT)
    assert run.wait() == 130
    trace = traced(run.lines)
    said = [text for _at, text in trace]
    expected = [
        "prep waiting -> starting (gen 1)",
        "event ChildrenChanged",
        "prep starting -> stopped (gen 1)",
        "api waiting -> starting (gen 1)",
        "api starting -> ready (gen 1)",
        "event SignalReceived SIGINT",
        "api ready -> stopping (gen 1)",
        "api stopping -> stopped (gen 1)",
    ]
    found = [text for text in said if text in expected]
    assert list(dict.fromkeys(found)) == expected, "\n".join(run.lines)
    assert any(re.fullmatch(r"event OutputClosed prep gen 1", text) for text in said)
    times = [at for at, _text in trace]
    assert times == sorted(times)
    assert all(line.startswith("devup[debug] ") for line in run.lines if "[debug]" in line)


def test_without_debug_there_is_no_trace(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVUP_DEBUG", raising=False)
    project.write("""
        [services.prep]
        cmd = "true"
        port = false
        restart = "no"
    """)
    result = project.devup("--no-watch")
    assert result.returncode == 0, result.stderr
    assert "finished (exit code 0)" in result.stdout
    assert "[debug]" not in result.stdout + result.stderr


def test_debug_after_the_command_traces_and_stays_out_of_the_services_environment(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`devup up --debug` as `-f` and `--no-watch` are taken: after the command too; the flag is
    devup's, so no service (nor a devup it runs) inherits DEVUP_DEBUG."""
    monkeypatch.delenv("DEVUP_DEBUG", raising=False)
    project.write(f"""
        [services.job]
        cmd = '''{py("import os; print('DEVUP_DEBUG=' + os.environ.get('DEVUP_DEBUG', 'unset'))")}'''
        port = false
        restart = "no"
    """)
    result = project.devup("up", "--no-watch", "--debug")
    assert result.returncode == 0, result.stderr
    assert "DEVUP_DEBUG=unset" in result.stdout
    assert "job waiting -> starting (gen 1)" in result.stdout + result.stderr


def test_a_chatty_service_is_summed_up_in_the_trace_not_traced_chunk_by_chunk(
    project: Project, running: list[DevupProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 lines written one by one over about 1.5 s reach devup as a few hundred chunks: the
    trace gives each service's output at most a line a second, and every byte is counted."""
    monkeypatch.setenv("DEVUP_DEBUG", "1")
    chatty = py("""
        import time
        for i in range(300):
            print(i, flush=True)
            time.sleep(0.005)
        print("done", flush=True)
        time.sleep(60)
    """)
    project.write(f"""
        [services.chatty]
        cmd = '''{chatty}'''
        port = false
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"chatty\s+\| done$")
    # The last of it is said within a second of the output stopping (the loop wakes each second).
    run.expect_line(r"devup\[debug\] \+[\d.]+s event OutputRead chatty gen 1: .*, \d+ bytes in")
    run.signal(signal.SIGINT)
    assert run.wait() == 130
    said = [text for _at, text in traced(run.lines)]
    output = [text for text in said if text.startswith("event OutputRead chatty")]
    pattern = re.compile(r"event OutputRead chatty gen 1: (\d+) chunks?, (\d+) bytes in [\d.]+s")
    counts = [pattern.fullmatch(text) for text in output]
    assert all(counts), output
    chunks = sum(int(m.group(1)) for m in counts if m)
    assert sum(int(m.group(2)) for m in counts if m) == sum(len(f"{i}\n") for i in range(300)) + 5
    assert chunks > 3 * len(output), output  # summed up, not one line a chunk
