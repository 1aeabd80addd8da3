"""`devup logs --json` and `--grep`: one JSON object a line with the date, offset, service and the
text without escapes; the filter on the text before -n counts; both with -f on a real run."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from conftest import DevupProcess, Project, py

from orchestrator.output import logs, logselect

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
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


def write_log(path: Path, lines: list[bytes], mtime: float) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    os.utime(path, (mtime, mtime))


def stamp(at: float) -> bytes:
    return time.strftime("%H:%M:%S", time.localtime(at)).encode()


def collect(folder: Path, names: list[str], **kwargs: object) -> list[str]:
    out: list[bytes] = []
    logs.show(folder, names, out.append, **kwargs)  # type: ignore[arg-type]
    return b"".join(out).decode().splitlines()


def test_json_lines_carry_the_date_offset_service_and_plain_text(tmp_path: Path) -> None:
    # Yesterday's file: the date comes from the file, not from today.
    at = (time.time() // 1) - 86400
    write_log(
        tmp_path / "api.log",
        [
            stamp(at) + b" api   | \x1b[31mred\x1b[0m and | bars",
            stamp(at + 1) + b" api   | bad \xff byte",
            b"a line devup did not stamp",
        ],
        at + 1,
    )
    write_log(tmp_path / "devup.log", [stamp(at) + b" devup | api started (pid 7)"], at)
    got = [json.loads(line) for line in collect(tmp_path, [], render=logselect.to_json)]
    assert [list(doc) for doc in got] == [["time", "service", "stream", "text"]] * 4
    assert [(d["service"], d["text"]) for d in got] == [
        ("devup", "api started (pid 7)"),
        ("api", "red and | bars"),
        ("api", "bad \ufffd byte"),
        ("api", "a line devup did not stamp"),
    ]
    assert all(d["stream"] is None for d in got)
    local = time.localtime(at)
    offset = local.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f"{sign}{abs(offset) // 60:02d}:"
    expected += f"{abs(offset) % 60:02d}"
    assert got[0]["time"] == got[1]["time"] == expected
    assert all(ISO.fullmatch(d["time"]) for d in got)
    assert got[3]["time"] == got[2]["time"]  # an unstamped line: the time of the line before


def test_grep_matches_the_text_only_and_n_counts_the_matches(tmp_path: Path) -> None:
    now = time.time()
    write_log(
        tmp_path / "api.log",
        [
            stamp(now - 9 + i) + f" api | {'error' if i % 3 == 0 else 'fine'} {i}".encode()
            for i in range(9)
        ],
        now,
    )
    write_log(tmp_path / "web.log", [stamp(now - 4) + b" web | \x1b[1merr\x1b[0mor in web"], now)
    keep = logselect.grep_filter(logselect.compile_grep(r"^error"))
    texts = [line.split(" | ", 1)[1] for line in collect(tmp_path, [], keep=keep)]
    # The escapes inside "error" do not hide it; the file keeps them, as the plain output does.
    assert texts == ["error 0", "error 3", "\x1b[1merr\x1b[0mor in web", "error 6"]
    # -n: the last N matching lines, not the matches among the last N lines.
    texts = [line.split(" | ", 1)[1] for line in collect(tmp_path, ["api"], keep=keep, count=2)]
    assert texts == ["error 3", "error 6"]
    # The service's name and the stamp are not the text.
    assert collect(tmp_path, [], keep=logselect.grep_filter(re.compile("api|web \\|"))) == []


def test_logs_json_and_grep_follow_a_real_run(
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

    whole = project.devup("logs", "--json", "echo")
    assert whole.returncode == 0, whole.stderr
    docs = [json.loads(line) for line in whole.stdout.splitlines()]
    assert docs[-1]["text"] == "echo waiting" and docs[-1]["service"] == "echo"
    assert ISO.fullmatch(docs[-1]["time"])

    follow = project.start("logs", "-f", "--json", "--grep", "go-2")
    running.append(follow)
    (project.root / "go-1").write_text("")
    run.expect_line(r"echo saw go-1")
    (project.root / "go-2").write_text("")
    line = follow.expect_line(r"^\{.*\}$", timeout=15).group(0)
    assert json.loads(line)["text"] == "echo saw go-2"
    assert follow.lines == [line]  # go-1's line, written first, was filtered out
    assert follow.stop() == 130
    assert run.stop() == 130

    grep = project.devup("logs", "--grep", r"saw go-\d", "-n", "1")
    assert [text.split(" | ", 1)[1] for text in grep.stdout.splitlines()] == ["echo saw go-2"]


def test_an_invalid_grep_is_a_usage_error_of_one_line(project: Project) -> None:
    project.write("""
        [services.api]
        cmd = "true"
        port = false
    """)
    result = project.devup("logs", "--grep", "(unclosed")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'devup: error: --grep "(unclosed": invalid regular expression: '
        "missing ), unterminated subpattern at position 0"
    ]
    assert result.stdout == ""
