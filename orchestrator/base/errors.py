"""Expected failures: each carries the one line (and optional hint) the CLI prints and an exit
code."""

from __future__ import annotations

from pathlib import Path


class DevupError(Exception):
    """An expected failure: printed as `devup: error: MESSAGE` (+ `hint: ...`), no traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def report(self) -> str:
        """What the user sees on stderr: the error line and, if any, its hint line."""
        return f"devup: error: {self.message}" + (f"\nhint: {self.hint}" if self.hint else "")


class UsageError(DevupError):
    exit_code = 2


class ManifestError(DevupError):
    """A problem in devports.toml, located by file and line (and column when known)."""

    exit_code = 2

    def __init__(
        self,
        path: Path | str,
        message: str,
        line: int | None = None,
        col: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = Path(path).name
        if line is not None:
            where += f":{line}"
            if col is not None:
                where += f":{col}"
        super().__init__(f"{where}: {message}", hint)
        self.path = Path(path)
        self.line = line
        self.col = col
