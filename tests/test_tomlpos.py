"""The key locator: the line (and column) of each key in the TOML shapes a manifest uses."""

from __future__ import annotations

import sys

import pytest

from orchestrator.config.tomlpos import key_positions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DOCUMENT = '''\
# a comment with key = "value"
[devup]
ports = "3000-3999"  # trailing = comment

[services."a.b"]
cmd = """
port = 1 is text inside a string
"""
port = 3001
env = { A = "1", 'B.c' = [1, { z = 2 }], D = { E = "}" } }
watch = [
  "src",   # port = not a key
  "tests",
]

[services]
web = { cmd = 'x', port = 80 }
other.cmd = "y"

[[jobs]]
name = "\\"quoted\\""
'''


def test_document_is_valid_toml() -> None:
    tomllib.loads(DOCUMENT)


@pytest.mark.parametrize(
    ("path", "position"),
    [
        (("devup",), (2, 1)),
        (("devup", "ports"), (3, 1)),
        (("services", "a.b"), (5, 1)),
        (("services", "a.b", "cmd"), (6, 1)),
        (("services", "a.b", "port"), (9, 1)),
        (("services", "a.b", "env", "A"), (10, 9)),
        (("services", "a.b", "env", "B.c"), (10, 18)),
        (("services", "a.b", "env", "B.c", "z"), (10, 32)),
        (("services", "a.b", "env", "D", "E"), (10, 48)),
        (("services", "a.b", "watch"), (11, 1)),
        (("services", "web"), (17, 1)),
        (("services", "web", "port"), (17, 20)),
        (("services", "other"), (18, 1)),
        (("services", "other", "cmd"), (18, 1)),
        (("jobs", "name"), (21, 1)),
    ],
)
def test_positions(path: tuple[str, ...], position: tuple[int, int]) -> None:
    assert key_positions(DOCUMENT).positions[path] == position


def test_keys_inside_strings_and_comments_are_not_keys() -> None:
    paths = key_positions(DOCUMENT).positions
    assert ("services", "a.b", "port") in paths
    assert paths[("services", "a.b", "port")][0] == 9  # not line 7, inside the string
    assert not any(path[-1] == "key" for path in paths)


def test_line_falls_back_to_the_nearest_table() -> None:
    positions = key_positions(DOCUMENT)
    assert positions.line(("services", "a.b", "restart")) == 5
    assert positions.line(("services", "web", "env", "X")) == 17
    assert positions.line(("nothing",)) is None
    assert positions.line(()) is None


def test_first_dotted_key_locates_its_table() -> None:
    positions = key_positions('x = 1\nservices.api.cmd = "a"\nservices.api.port = 1\n')
    assert positions.line(("services", "api")) == 2
    assert positions.line(("services", "api", "port")) == 3


def test_text_it_cannot_scan_keeps_what_it_found() -> None:
    positions = key_positions('a = 1\nb = "unterminated\n')
    assert positions.positions == {("a",): (1, 1), ("b",): (2, 1)}
