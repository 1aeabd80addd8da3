"""Why exec said "Argument list too long" (E2BIG): the kernel caps each argument and each
NAME=value of the environment, and all of them together; this names which one went over."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

# Linux's MAX_ARG_STRLEN: 32 pages, for one argument or one NAME=value, its NUL included.
MAX_ARG_STRLEN = 32 * 4096


def too_long(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """What made exec fail with E2BIG, in words: the longest variable or argument over the limit
    of one, else the size of the whole."""
    sizes = {
        f"environment variable {name}": _size(f"{name}={value}") for name, value in env.items()
    }
    sizes.update({_argument(i): _size(arg) for i, arg in enumerate(argv)})
    what, size = max(sizes.items(), key=lambda item: item[1])
    if size > MAX_ARG_STRLEN:
        return f"{what} is {size:,} bytes, over the {MAX_ARG_STRLEN // 1024} KiB one may hold"
    total = sum(sizes.values()) + (len(sizes) + 1) * 8  # each string's pointer counts as well
    return (
        f"the environment and arguments take {total:,} bytes together, over the "
        f"{_arg_max():,} bytes a program may be started with"
    )


def _argument(index: int) -> str:
    return "the command" if index == 0 else f"argument {index}"


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape")) + 1


def _arg_max() -> int:
    try:
        return os.sysconf("SC_ARG_MAX")
    except (OSError, ValueError):
        return 2 * 1024 * 1024
