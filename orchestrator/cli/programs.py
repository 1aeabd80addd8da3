"""Whether the program a `cmd` starts exists, for `devup check`: the first word after variable
assignments and `exec`, looked up as the shell would (PATH, or a path relative to the cwd)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

from orchestrator.system.process import SHELL_WORDS

# Reserved words and builtins not in process.SHELL_WORDS: what follows them is not a program name
# this simple reading can judge.
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac"}
    | {"in", "function", "{", "}", "(", "select", "coproc", "source", "builtin", "nohup", "env"}
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def program_of(cmd: str) -> str | None:
    """The program a shell line runs first, or None when that is not plain to see (a builtin,
    a keyword, a variable, a subshell)."""
    try:
        lexer = shlex.shlex(cmd, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        return None  # unbalanced quotes: sh's own error at start says it best
    for word in words:
        if _ASSIGNMENT.match(word) or word == "exec":
            continue
        if word in SHELL_WORDS or word in _KEYWORDS or "$" in word or "`" in word:
            return None
        if not word or word[0] in "();|&<>":
            return None
        return word
    return None


def missing_program(cmd: str, cwd: Path, path: str | None = None) -> str | None:
    """The first program of `cmd` when it is neither on PATH nor (given with a slash) a file."""
    program = program_of(cmd)
    if program is None:
        return None
    if "/" in program:
        return None if (cwd / os.path.expanduser(program)).exists() else program
    search = os.environ.get("PATH", os.defpath) if path is None else path
    return None if shutil.which(program, path=search) is not None else program
