"""`devup logs`: merged per-service log files, -n, --since, -f across rotation; the log size cap."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, DevupProcess, Project, py

from orchestrator.base.errors import UsageError
from orchestrator.output import logs
from orchestrator.output.logfiles import LogFile, start_fresh
from orchestrator.output.printer import Printer

SERVER = f"{sys.executable} {REPO / 'tests' / 'fixtures' / 'server.py'}"
# Prints a line each time a file named `go-N` appears in its folder, so the test decides when.
ECHO = py("""
    import os, time
    print('echo waiting', flush=True)
    seen = set()
    while True:
        for name in sorted(os.listdir('.')):
            if name.startswith('go-') and name not in seen:
                seen.add(name)
                print('echo saw', name, flush=True)
        time.sleep(0.02)
""")


def test_logs_n_prints_a_services_last_lines_while_running_and_after(
    project: Project, running: list[DevupProcess]
) -> None:
    lines = py("for i in range(20): print('api line', i)")
    project.write(f"""
        [services.api]
        cmd = '''{lines} && {SERVER}'''
        [services.web]
        cmd = "{SERVER}"
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"2 services up")

    result = project.devup("logs", "-n", "5", "api")
    assert result.returncode == 0, result.stderr
    got = result.stdout.splitlines()
    assert [line[9:] for line in got[:4]] == [f"api   | api line {i}" for i in range(16, 20)]
    assert got[4][9:].startswith("api   | serving on 127.0.0.1:")
    assert all(line[2] == line[5] == ":" for line in got)

    every = project.devup("logs").stdout.splitlines()
    assert any(" web   | serving on" in line for line in every)
    assert any(" devup | api started (pid" in line for line in every)
    # Each service's own lines keep their order in the merge.
    api_lines = [line for line in every if "api line" in line]
    assert [int(line.rsplit(" ", 1)[1]) for line in api_lines] == list(range(20))

    assert run.stop() == 130
    after = project.devup("logs", "-n", "5", "api")  # no devup running: the last run's logs
    assert after.stdout.splitlines() == got


def test_logs_f_shows_a_line_printed_after_it_started_until_ctrl_c(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"""
        [services.echo]
        cmd = '''{ECHO}'''
        port = false
    """)
    run = project.start("--no-watch")
    running.append(run)
    run.expect_line(r"echo\s+\| echo waiting")

    follow = project.start("logs", "-f")
    running.append(follow)
    follow.expect_line(r"^\d\d:\d\d:\d\d echo  \| echo waiting$", timeout=15)
    (project.root / "go-1").write_text("")
    # The bench measures how fast; here it must simply arrive.
    follow.expect_line(r"^\d\d:\d\d:\d\d echo  \| echo saw go-1$", timeout=15)
    assert follow.stop() == 130
    assert not any("Traceback" in line for line in follow.lines)
    assert run.stop() == 130


def write_log(path: Path, lines: list[str], mtime: float) -> None:
    path.write_text("".join(line + "\n" for line in lines))
    os.utime(path, (mtime, mtime))


def stamp(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def collect(folder: Path, names: list[str], **kwargs: object) -> list[str]:
    out: list[bytes] = []
    logs.show(folder, names, out.append, **kwargs)  # type: ignore[arg-type]
    return b"".join(out).decode().splitlines()


def test_merge_is_in_time_order_stable_per_service_and_across_midnight(tmp_path: Path) -> None:
    now = time.time()
    t0 = now - 30
    write_log(
        tmp_path / "api.log",
        [f"{stamp(t0)} api | a1", f"{stamp(t0 + 2)} api | a2", f"{stamp(t0 + 2)} api | a3"],
        now,
    )
    write_log(tmp_path / "web.log", [f"{stamp(t0 + 1)} web | w1", f"{stamp(t0 + 2)} web | w2"], now)
    write_log(tmp_path / "devup.log", [f"{stamp(t0)} devup | d1"], now)
    got = [line.split("| ")[1] for line in collect(tmp_path, [])]
    assert got == ["d1", "a1", "w1", "a2", "a3", "w2"]  # equal times: devup first, then by file
    # -n takes the last lines of the merge; on equal times the services keep the order named.
    last3 = [line.split("| ")[1] for line in collect(tmp_path, ["web", "api"], count=3)]
    assert last3 == ["w2", "a2", "a3"]

    # A run that crossed midnight: 23:59:59 comes before 00:00:01 of the file's day.
    midnight = time.mktime(
        time.strptime(time.strftime("%Y-%m-%d", time.localtime(now)), "%Y-%m-%d")
    )
    write_log(tmp_path / "a.log", ["23:59:58 a | before", "00:00:02 a | after"], midnight + 5)
    write_log(
        tmp_path / "b.log", ["23:59:59 b | just before", "00:00:01 b | just after"], midnight + 5
    )
    got = [line.split("| ")[1] for line in collect(tmp_path, ["a", "b"])]
    assert got == ["before", "just before", "just after", "after"]


def test_n_counts_the_named_services_lines_and_since_filters_by_time(tmp_path: Path) -> None:
    now = time.time()
    write_log(
        tmp_path / "api.log", [f"{stamp(now - 1200)} api | old"] + [
            f"{stamp(now - 60)} api | new {i}" for i in range(300)
        ], now,
    )  # fmt: skip
    write_log(tmp_path / "devup.log", [f"{stamp(now - 30)} devup | api restarted"], now)
    assert [line.split("| ")[1] for line in collect(tmp_path, ["api"], count=2)] == [
        "new 298",
        "new 299",
    ]
    assert collect(tmp_path, ["api"], count=0) == []
    recent = collect(tmp_path, ["api"], since_s=600)
    assert len(recent) == 300 and "old" not in recent[0]
    assert len(collect(tmp_path, ["api"], since_s=3600)) == 301
    assert logs.parse_duration("10m") == 600 and logs.parse_duration("2h") == 7200
    with pytest.raises(UsageError, match="is not a duration"):
        logs.parse_duration("ten minutes")


def test_follow_reads_across_rotation_and_a_new_run(tmp_path: Path) -> None:
    """-f with a scripted sleep: each poll the script changes the files like a running devup."""
    path = tmp_path / "api.log"
    write_log(path, [f"{stamp(time.time())} api | first"], time.time())

    def append(text: str, stamped: bool = True) -> None:
        with open(path, "a") as file:
            file.write(f"{stamp(time.time())} api | {text}" if stamped else text)

    steps = [
        lambda: append("second\n"),
        lambda: append("half a "),  # an unfinished line waits for its end
        lambda: append("line\n", stamped=False),
        lambda: append("last before rotation\n") or os.replace(path, f"{path}.1"),
        lambda: write_log(path, [f"{stamp(time.time())} api | after rotation"], time.time()),
    ]

    def sleep(_s: float) -> None:
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()

    out: list[bytes] = []
    with pytest.raises(KeyboardInterrupt):
        logs.show(tmp_path, ["api"], out.append, follow=True, sleep=sleep)
    got = [line.split("| ")[1] for line in b"".join(out).decode().splitlines()]
    assert got == ["first", "second", "half a line", "last before rotation", "after rotation"]


def test_a_log_past_the_cap_is_rotated_keeping_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = Printer(["api"], lambda data: None, color=False)
    p.add_log("api", LogFile(start_fresh(tmp_path, "api"), cap_bytes=1000))
    for i in range(100):
        p.lines("api", [f"line {i:03d} " + "x" * 40])
    p.close_logs()
    newest = (tmp_path / "api.log").read_text().splitlines()
    older = (tmp_path / "api.log.1").read_text().splitlines()
    assert newest[-1].endswith("line 099 " + "x" * 40)
    assert (tmp_path / "api.log").stat().st_size <= 1000
    assert 1000 < (tmp_path / "api.log.1").stat().st_size <= 1100
    assert int(older[-1].split()[4]) + 1 == int(newest[0].split()[4])  # nothing lost between
    assert oct((tmp_path / "api.log").stat().st_mode & 0o777) == "0o600"


def test_logs_n_fast_path_matches_the_full_cli(project: Project) -> None:
    """`logs -n N NAME` is answered without click when NAME has a log; the same bytes as the CLI
    (reached here through an option the fast path leaves to it), and unknown names still get the
    CLI's did-you-mean error."""
    project.write(
        """
        [services.api]
        cmd = "python3 -c 'print(1); print(2); print(3)'"
        port = false
        restart = "no"
        """
    )
    assert project.devup("--no-watch").returncode == 0
    fast = project.devup("logs", "-n", "2", "api")
    full = project.devup("logs", "--no-color", "-n", "2", "api")
    assert fast.returncode == full.returncode == 0
    assert fast.stdout == full.stdout
    assert [line.split(" | ")[1] for line in fast.stdout.splitlines()] == ["2", "3"]
    wrong = project.devup("logs", "-n", "2", "apj")
    assert wrong.returncode == 2 and 'did you mean "api"?' in wrong.stderr


def test_a_new_run_keeps_the_last_runs_log_as_prev_and_drops_its_rotated_part(
    tmp_path: Path,
) -> None:
    """NAME.log.1 is always this run's older part, so `logs` may read it: a new run moves the
    last run's NAME.log to NAME.log.prev and removes the last run's NAME.log.1."""
    (tmp_path / "api.log").write_text("12:00:01 api | last run, newest\n")
    (tmp_path / "api.log.1").write_text("12:00:00 api | last run, rotated\n")
    p = Printer(["api"], lambda data: None, color=False)
    p.add_log("api", LogFile(start_fresh(tmp_path, "api")))
    p.lines("api", ["this run"])
    p.close_logs()
    assert (tmp_path / "api.log.prev").read_text() == "12:00:01 api | last run, newest\n"
    assert not (tmp_path / "api.log.1").exists()
    out: list[bytes] = []
    logs.show(tmp_path, ["api"], out.append)
    assert [line.split(b" | ")[1] for line in b"".join(out).splitlines()] == [b"this run"]
