"""LineSplitter: whole lines out of arbitrary chunks, bounded, never raising on bad bytes."""

from orchestrator.output.lines import CUT_MARKER, LineSplitter


def feed_all(chunks: list[bytes], max_line_bytes: int = 64 * 1024) -> list[str]:
    splitter = LineSplitter(max_line_bytes)
    out: list[str] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    return out + splitter.flush()


def test_lines_split_across_chunks_come_out_whole_and_in_order() -> None:
    assert feed_all([b"al", b"pha\nbe", b"ta\n", b"gamma\ndelta"]) == [
        "alpha",
        "beta",
        "gamma",
        "delta",
    ]


def test_a_multibyte_character_split_across_writes_is_reassembled() -> None:
    euro = "€".encode()
    assert feed_all([b"price " + euro[:1], euro[1:2], euro[2:] + b"\n"]) == ["price €"]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert feed_all([b"ok \xff\xfe end\n"]) == ["ok \ufffd\ufffd end"]


def test_final_line_without_newline_is_kept_and_crlf_is_trimmed() -> None:
    assert feed_all([b"one\r\ntwo"]) == ["one", "two"]


def test_a_line_over_the_cap_is_cut_with_a_marker_and_the_rest_dropped() -> None:
    lines = feed_all([b"x" * 100, b"y" * 100, b"\nnext\n"], max_line_bytes=64)
    assert lines == ["x" * 64 + CUT_MARKER, "next"]


def test_a_long_line_inside_one_chunk_is_cut_too() -> None:
    lines = feed_all([b"short\n" + b"z" * 200 + b"\nafter\n"], max_line_bytes=64)
    assert lines == ["short", "z" * 64 + CUT_MARKER, "after"]


def test_memory_stays_bounded_for_endless_output_without_newlines() -> None:
    splitter = LineSplitter(1024)
    for _ in range(1000):
        assert splitter.feed(b"a" * 4096) == []
    assert len(splitter._partial) == 1024
    assert splitter.flush() == ["a" * 1024 + CUT_MARKER]


def test_empty_lines_are_kept() -> None:
    assert feed_all([b"\n\nx\n"]) == ["", "", "x"]
