"""The key locator: the line (and column) of each key in the TOML shapes a manifest uses."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from orchestrator.base.errors import ManifestError
from orchestrator.config.manifest import load_manifest
from orchestrator.config.tomlpos import KeyPath, key_positions

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


def real_manifests() -> list[tuple[str, str]]:
    """The manifests users meet: the example monorepo's and every TOML block of the docs that
    is a devports.toml (docs/agents.md also shows an agent client's own TOML config)."""
    found = [
        (str(path.relative_to(REPO)), path.read_text())
        for path in sorted((REPO / "examples").rglob("devports.toml"))
    ]
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for n, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S), 1):
            if re.search(r"^\[(services|ports)\b", block, re.M):
                found.append((f"{doc.relative_to(REPO)} block {n}", block))
    return found


REAL_MANIFESTS = real_manifests()
MANIFEST_IDS = [name for name, _ in REAL_MANIFESTS]


def test_the_docs_hold_the_real_manifests_this_file_checks() -> None:
    names = " ".join(MANIFEST_IDS)
    assert "examples/monorepo/devports.toml" in names and "README.md block 3" in names


def key_paths(value: Any, path: KeyPath = ()) -> Iterator[KeyPath]:
    """Every key path tomllib sees, tables of [[arrays]] included (their keys under the array)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from key_paths(item, (*path, key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for item in value:
            yield from key_paths(item, path)


# A table header or a key/value line from its start: `[a."b.c"]`, `a.'b' =`, `A =`.
_KEY_AT = re.compile(
    r"""(?:\[\[?[ \t]*)?((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
    r"""(?:[ \t]*\.[ \t]*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)"""
)


def key_written_at(source: str, line: int, column: int) -> KeyPath:
    """The (dotted) key written at a line and column, decoded by tomllib, not by the scanner."""
    match = _KEY_AT.match(source.splitlines()[line - 1], column - 1) if column >= 1 else None
    assert match is not None, f"no key at {line}:{column}"
    decoded: Any = tomllib.loads(f"{match.group(1)} = 0")
    parts: list[str] = []
    while isinstance(decoded, dict):
        (key, decoded), *_ = decoded.items()
        parts.append(key)
    return tuple(parts)


@pytest.mark.parametrize(
    ("name", "source"), [*REAL_MANIFESTS, ("DOCUMENT", DOCUMENT)], ids=[*MANIFEST_IDS, "DOCUMENT"]
)
def test_every_key_is_located_where_it_is_written(name: str, source: str) -> None:
    positions = key_positions(source).positions
    for path in set(key_paths(tomllib.loads(source))):
        assert path in positions, f"{name}: {path} not located"
        written = key_written_at(source, *positions[path])
        # The key written there ends in `path` or continues it (`other.cmd` locates `other`).
        assert any(path[len(path) - k :] == written[:k] for k in range(1, len(written) + 1)), (
            f"{name}: {path} located at {positions[path]}, where {written} is written"
        )


def lay_out(root: Path, source: str) -> None:
    """The folders and Procfiles a manifest names, so only the value a test breaks is wrong."""
    for spec in tomllib.loads(source).get("services", {}).values():
        cwd = root / spec.get("cwd", ".")
        cwd.mkdir(parents=True, exist_ok=True)
        if "procfile" in spec:
            (cwd / spec["procfile"]).write_text("web: x\n")


@pytest.mark.parametrize(("name", "source"), REAL_MANIFESTS, ids=MANIFEST_IDS)
def test_a_wrong_value_in_a_real_manifest_is_reported_on_its_line(
    name: str, source: str, tmp_path: Path
) -> None:
    lay_out(tmp_path, source)
    manifest = tmp_path / "devports.toml"
    lines = source.splitlines()
    broken = 0
    for number, text in enumerate(lines, 1):
        key = re.match(r"(\w+) *=", text)
        if key is None:
            continue
        # An array of arrays is a wrong value for every key of a manifest.
        manifest.write_text("\n".join([*lines[: number - 1], f"{key[1]} = [[]]", *lines[number:]]))
        with pytest.raises(ManifestError) as error:
            load_manifest(manifest)
        assert (error.value.line, f'"{key[1]}"' in str(error.value)) == (number, True), (
            f"{name}: line {number} ({text}) broken, reported: {error.value}"
        )
        broken += 1
    assert broken >= 4


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
