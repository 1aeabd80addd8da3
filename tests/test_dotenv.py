""".env files read as python-dotenv reads them: `devup env --reveal --json` equals `dotenv_values`
for common forms; a line python-dotenv cannot parse is one error naming file:line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Project
from dotenv import dotenv_values

FORMS = {
    "plain": "A=1\nB=two\n",
    "export": "export A=1\nexport B='x y'\n",
    "empty": "A=\nB=1\n",
    "empty-quoted": "A=''\nB=\"\"\n",
    "single-quotes": "A='x y'\n",
    "double-quotes": 'A="x y"\n',
    "hash-in-value": "A=x#y\n",
    "inline-comment": "A=x # a comment\nB='y' # another\n",
    "comments-and-blanks": "# a comment\n\n   \nA=1\n# B=2\n",
    "escapes-double": 'A="a\\nb\\tc\\\\d"\n',
    "escapes-single": "A='a\\nb'\n",
    "backslash-unquoted": "A=a\\b\n",
    "escaped-quote": 'A="say \\"hi\\""\n',
    "multiline-double": 'A="line 1\nline 2"\nB=3\n',
    "multiline-single": "A='line 1\nline 2'\n",
    "interpolation": 'A=1\nB=${A}2\nC="${A}-${B}"\n',
    "default": "A=${DEVUP_TEST_UNSET_X:-fallback}\nB=${A:-other}\n",
    "unset-reference": "A=x${DEVUP_TEST_UNSET_Y}y\n",
    "single-quoted-reference": "A=1\nB='${A}'\n",
    "crlf": "A=1\r\nB='x y'\r\nC=\"q\"\r\n",
    "spaces-around-equals": "A = 1\n  B=2\n",
    "no-final-newline": "A=1\nB=2",
    "bare-name": "A\nB=1\n",
    "unicode": "A=héllo wörld\nB='日本'\n",
}


def test_the_forms_are_24() -> None:
    assert len(FORMS) == 24


@pytest.mark.parametrize("text", list(FORMS.values()), ids=list(FORMS))
def test_env_reveal_equals_dotenv_values(project: Project, text: str) -> None:
    project.write('[services.api]\ncmd = "true"\nenv_file = ".env"\n')
    env_file = project.root / ".env"
    env_file.write_bytes(text.encode())
    env_file.chmod(0o600)
    result = project.devup("env", "api", "--reveal", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    from_file = {v["name"]: v["value"] for v in listing["variables"] if v["source"] != "injected"}
    # A bare NAME (value None) is skipped by load_dotenv too: no environment value to set.
    expected = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    assert from_file == expected


def test_a_line_dotenv_cannot_parse_is_one_error_naming_file_and_line(project: Project) -> None:
    project.write('[services.api]\ncmd = "true"\nenv_file = ".env"\n')
    (project.root / ".env").write_text("A=1\nB C=2\nD=3\n")
    result = project.devup("env", "api")
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert (
        lines[0]
        == f"devup: error: env file {project.root / '.env'}:2: cannot parse the line of 'B C' (value not shown)"
    )
    assert "Traceback" not in result.stderr


def test_env_file_references_see_what_devup_injects(project: Project) -> None:
    project.write(
        '[services.api]\ncmd = "true"\nenv_file = ".env"\n',
    )
    (project.root / ".env").write_text("SELF=${API_URL}/v1\nHOME_TOO=${HOME}\n")
    listing = json.loads(project.devup("env", "api", "--reveal", "--json").stdout)
    values = {v["name"]: v["value"] for v in listing["variables"]}
    assert values["SELF"] == values["API_URL"] + "/v1"
    assert values["HOME_TOO"] == os.environ["HOME"]


def test_a_fifo_as_env_file_is_still_refused(project: Project, tmp_path: Path) -> None:
    project.write('[services.api]\ncmd = "true"\nenv_file = ".env"\n')
    os.mkfifo(project.root / ".env")
    result = project.devup("env", "api", timeout=10)
    assert result.returncode != 0
    assert "not a regular file" in result.stderr.splitlines()[0]
