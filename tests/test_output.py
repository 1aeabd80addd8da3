"""The fast output path: lines as bytes blocks, the printer's block formatting, the reader's
coalescing, and a flood through a real devup keeping every line whole and in order."""

from __future__ import annotations

import fcntl
import os
import queue
import random
import re
import threading
from pathlib import Path

from conftest import Project, py

from orchestrator.output.lines import CUT_MARKER, LineSplitter
from orchestrator.output.logfiles import LogFile
from orchestrator.output.printer import Printer
from orchestrator.run.events import Event, OutputClosed, OutputRead
from orchestrator.run.host import READ_CHUNK_BYTES, READ_COALESCE_S, read_output

# Every kind of line the splitter treats specially, in one stream.
TRICKY = (
    b"plain ascii\n"
    b"\n"
    b"crlf line\r\n"
    b"caf\xc3\xa9 \xe2\x82\xac\n"  # valid UTF-8, not ASCII
    b"bad \xff\xfe bytes\n"
    + b"y" * 300
    + b"\n"  # over the 64-byte cap used below
    + b"\xe2\x82\xac" * 30
    + b"\n"  # over the cap, cut inside a character
    + b"ascii again\n" * 20
    + b"last line without newline"
)


def lines_by_feed(chunks: list[bytes], cap: int) -> list[str]:
    splitter = LineSplitter(cap)
    out: list[str] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    return out + splitter.flush()


def lines_by_block(chunks: list[bytes], cap: int) -> list[str]:
    splitter = LineSplitter(cap)
    out: list[str] = []
    for chunk in chunks:
        block = splitter.feed_block(chunk)
        if block is not None:
            out.extend(block.decode("utf-8").split("\n"))  # strict: a block is valid UTF-8
    return out + splitter.flush()


def test_blocks_give_the_same_lines_as_feed_however_the_stream_is_chunked() -> None:
    rng = random.Random(2)
    expected = lines_by_feed([TRICKY], 64)
    assert expected[3] == "café €"
    assert expected[4] == "bad \ufffd\ufffd bytes"
    assert expected[5] == "y" * 64 + CUT_MARKER
    assert expected[6] == "€" * 21 + CUT_MARKER  # 64 bytes hold 21 whole euro signs
    assert expected[-1] == "last line without newline"
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(TRICKY)), rng.randint(0, 12)))
        chunks = [TRICKY[a:b] for a, b in zip([0, *cuts], [*cuts, len(TRICKY)], strict=True)]
        assert lines_by_block(chunks, 64) == expected, chunks
        assert lines_by_feed(chunks, 64) == expected, chunks


def test_an_ascii_block_passes_through_as_the_same_bytes() -> None:
    data = b"one\ntwo\nthree\npart"
    splitter = LineSplitter()
    assert splitter.feed_block(data) == b"one\ntwo\nthree"
    assert splitter.feed_block(b"ial\n") == b"partial"
    assert splitter.feed_block(b"no newline yet") is None
    assert splitter.feed_block(b"\n\n") == b"no newline yet\n"  # that line, then an empty one


def test_the_printer_formats_a_block_like_the_same_lines(tmp_path: Path) -> None:
    def run(color: bool, use_block: bool) -> tuple[bytes, bytes]:
        out: list[bytes] = []
        printer = Printer(["api", "web"], out.append, color=color, clock=lambda: 0.0)
        path = tmp_path / f"{color}-{use_block}-{len(list(tmp_path.iterdir()))}.log"
        printer.add_log("web", LogFile(path))
        if use_block:
            printer.block("web", "a\n\nb €".encode())
        else:
            printer.lines("web", ["a", "", "b €"])
        printer.close_logs()
        return b"".join(out), path.read_bytes()

    for color in (False, True):
        assert run(color, use_block=True) == run(color, use_block=False)
    plain, log = run(color=False, use_block=True)
    stamp = plain[:8].decode()
    assert plain.decode() == f"{stamp} web   | a\n{stamp} web   | \n{stamp} web   | b €\n"
    assert log == plain
    pretty, log = run(color=True, use_block=True)
    assert pretty.count(b"\x1b[33m") == 3 and log == plain  # the log file is never coloured


def read_all(pipe_r: int, pause: object, clock: object = lambda: 0.0) -> list[Event]:
    """Run a reader on the pipe to its end; the default clock says every read found data waiting."""
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    slots = threading.Semaphore(32)
    pipe = os.fdopen(pipe_r, "rb", buffering=0)
    read_output(pipe, "svc", 1, events.put, slots, pause, clock)  # type: ignore[arg-type]
    got = []
    while not events.empty():
        got.append(events.get())
    return got


def test_after_a_short_read_the_reader_pauses_so_a_flood_arrives_in_one_chunk() -> None:
    r, w = os.pipe()
    flood = [b"line %d\n" % i for i in range(500)]
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        # The child keeps writing while the reader waits: 500 write() calls, like print().
        pauses.append(seconds)
        if len(pauses) == 1:
            for line in flood:
                os.write(w, line)
        else:
            os.close(w)

    os.write(w, b"first\n")
    events = read_all(r, pause)
    assert events == [
        OutputRead("svc", 1, b"first\n"),
        OutputRead("svc", 1, b"".join(flood)),
        OutputClosed("svc", 1),
    ]
    assert pauses == [READ_COALESCE_S, READ_COALESCE_S]


def test_after_a_full_read_the_reader_reads_again_at_once() -> None:
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4 * READ_CHUNK_BYTES)
    os.write(w, b"z" * (READ_CHUNK_BYTES + 10))
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        os.close(w)

    events = read_all(r, pause)
    sizes = [len(e.data) for e in events if isinstance(e, OutputRead)]
    assert sizes == [READ_CHUNK_BYTES, 10]
    assert pauses == [READ_COALESCE_S]  # only after the short one


FLOOD = """
import sys
name, n = sys.argv[1], int(sys.argv[2])
print("caf\\u00e9 first")
sys.stdout.flush()
sys.stdout.buffer.write(b"bad \\xff byte\\n")
for i in range(n):
    print(f"{name} {i:06d} " + "x" * 48)
sys.stdout.write("no newline at the end")
"""


def test_a_flood_from_four_services_keeps_every_line_whole_and_in_order(project: Project) -> None:
    n = 20_000
    services = "".join(
        f"""
        [services.s{k}]
        cmd = '''{py(FLOOD)} s{k} {n}'''
        port = false
        restart = "no"
        """
        for k in range(4)
    )
    project.write(services)
    result = project.devup("--no-watch", "--no-color")
    assert result.returncode == 0, result.stdout[-2000:]
    seen = {f"s{k}": [] for k in range(4)}  # type: dict[str, list[str]]
    for line in result.stdout.splitlines():
        m = re.fullmatch(r"\d\d:\d\d:\d\d (\S+) +\| (.*)", line)
        assert m, f"torn line: {line!r}"
        if m[1] != "devup":
            seen[m[1]].append(m[2])
    for name, texts in seen.items():
        expected = [f"{name} {i:06d} " + "x" * 48 for i in range(n)]
        assert texts == ["café first", "bad \ufffd byte", *expected, "no newline at the end"]
        log = (project.root / ".devup" / "logs" / f"{name}.log").read_text()
        assert log.count("\n") == n + 3 and log.endswith("| no newline at the end\n")


def test_a_read_that_waited_for_its_data_is_followed_by_no_pause() -> None:
    # A lone line on a quiet pipe goes out at once, and so does the newline print() writes after it.
    r, w = os.pipe()
    os.write(w, b"lone line")
    os.close(w)
    pauses: list[float] = []
    ticks = iter(range(1000))

    def clock() -> float:  # each read took a second to get its data: the pipe was idle
        return float(next(ticks))

    events = read_all(r, pauses.append, clock)
    assert events == [OutputRead("svc", 1, b"lone line"), OutputClosed("svc", 1)]
    assert pauses == []
