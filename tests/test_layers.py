"""The layout rule of orchestrator/: a folder imports only folders before it in LAYERS, and no two
modules import each other in a circle. Every import counts: those inside functions and under
`if TYPE_CHECKING:` too (a circle hidden there is still a circle of the design).

`bench/modules` prints the same import graph, with line counts, for a person to read.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "orchestrator"
# Lowest first: a folder may import the folders before it, never one after it.
LAYERS = ("base", "config", "system", "ports", "output", "run", "watch", "control", "cli")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module names, both inside PACKAGE
    imported: str
    line: int
    in_function: bool  # run only when the function is called, not when the module loads

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.importer} imports {self.imported} (line {self.line}, {where})"


def module_names(sources: Iterable[str]) -> set[str]:
    """`orchestrator/run/supervisor.py` -> `orchestrator.run.supervisor` (a package's
    `__init__.py` is the package)."""
    names = set()
    for path in sources:
        parts = list(Path(path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


def folder(module: str) -> str | None:
    """The layer folder of a module; None for the package's own top (`orchestrator.__main__`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def imports_of(module: str, is_package: bool, source: str, known: set[str]) -> Iterator[Import]:
    """Every import of a module of PACKAGE in `source`, resolved to the module it loads."""

    def resolve(name: str) -> str | None:
        while name and name not in known:  # `from a.b import name`: name is not a module
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module if is_package else module.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{alias.name}" for alias in child.names]
            for target in targets:
                resolved = resolve(target)
                if resolved and resolved.split(".")[0] == PACKAGE and resolved != module:
                    yield Import(module, resolved, child.lineno, inside)
            yield from visit(child, inside)

    yield from visit(ast.parse(source), False)


def package_imports(root: Path) -> list[Import]:
    """All imports between the modules of the package at `root` / PACKAGE."""
    paths = sorted((root / PACKAGE).rglob("*.py"))
    relative = [str(p.relative_to(root)) for p in paths]
    known = module_names(relative)
    found = []
    for path, rel in zip(paths, relative, strict=True):
        (name,) = module_names([rel])
        found += imports_of(name, path.name == "__init__.py", path.read_text(), known)
    return found


def upward(imports: Iterable[Import]) -> list[Import]:
    """Imports of a folder after the importer's own in LAYERS (or of a folder not in LAYERS).
    The package itself (`orchestrator/__init__.py`, loaded before any of its modules) is below
    every folder and imports none; `python -m orchestrator` (`__main__`) is above them all."""
    bad = []
    for imp in imports:
        low, high = folder(imp.importer), folder(imp.imported)
        if imp.importer == PACKAGE:
            bad.append(imp)
        elif low is None or imp.imported == PACKAGE:
            continue
        elif high is None or LAYERS.index(high) > LAYERS.index(low):
            bad.append(imp)
    return bad


def circles(imports: Iterable[Import]) -> list[list[Import]]:
    """Each group of modules that import each other (a strongly connected component of the import
    graph, found with Tarjan's algorithm), as the imports between its members."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        edges.setdefault(imp.importer, {}).setdefault(imp.imported, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in edges.get(module, {}):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return [
        sorted((i for m in g for t, i in edges.get(m, {}).items() if t in g), key=str)
        for g in sorted(groups, key=sorted)
    ]


ROOT = Path(__file__).resolve().parent.parent
IMPORTS = package_imports(ROOT)
# Circles known and being removed, each with who removes it: the test fails once one is gone, so
# that its entry goes too. (Empty: issue 16's state-change stream removed run/audit ->
# run/supervisor, the last one.)
KNOWN_CIRCLES: set[frozenset[str]] = set()


def test_the_rule_sees_the_imports_it_judges() -> None:
    # The supervisor imports its state table; the CLI's `up` imports the supervisor.
    pairs = {(i.importer, i.imported) for i in IMPORTS}
    assert ("orchestrator.run.supervisor", "orchestrator.run.states") in pairs
    assert ("orchestrator.cli.up", "orchestrator.run.supervisor") in pairs
    assert {folder(i.importer) for i in IMPORTS} >= set(LAYERS)


def test_no_folder_imports_a_folder_after_it() -> None:
    bad = upward(IMPORTS)
    assert not bad, (
        "imports against the order "
        + " < ".join(LAYERS)
        + ":\n"
        + "\n".join(f"  {imp} [{folder(imp.importer)} -> {folder(imp.imported)}]" for imp in bad)
    )


def test_no_modules_import_each_other_in_a_circle() -> None:
    found = circles(IMPORTS)
    new = [c for c in found if frozenset(s.importer for s in c) not in KNOWN_CIRCLES]
    assert not new, "modules importing each other in a circle:\n" + "\n".join(
        "  " + "; ".join(map(str, c)) for c in new
    )
    gone = KNOWN_CIRCLES - {frozenset(s.importer for s in c) for c in found}
    assert not gone, (
        f"no longer a circle, remove it from KNOWN_CIRCLES: {sorted(map(sorted, gone))}"
    )


def test_the_checks_catch_what_they_look_for() -> None:
    # A lower folder importing a higher one, inside a function, under a relative import;
    # and a circle closed by a TYPE_CHECKING import.
    known = {
        "orchestrator.base.paths",
        "orchestrator.base.safefs",
        "orchestrator.cli.main",
        "orchestrator.run",
    }
    source = "def f():\n    from ..cli import main\n"
    found = list(imports_of("orchestrator.base.paths", False, source, known))
    assert [(i.imported, i.in_function) for i in upward(found)] == [("orchestrator.cli.main", True)]
    paths = "if TYPE_CHECKING:\n    from orchestrator.base.safefs import private_dir\n"
    safefs = "from orchestrator.base import paths\n"
    pair = [
        *imports_of("orchestrator.base.paths", False, paths, known),
        *imports_of("orchestrator.base.safefs", False, safefs, known),
    ]
    assert [len(c) for c in circles(pair)] == [2]
    assert upward(imports_of("orchestrator.cli.main", False, "from .. import run\n", known)) == []
    package = list(imports_of("orchestrator.run", True, "from ..cli import main\n", known))
    assert [i.imported for i in upward(package)] == ["orchestrator.cli.main"]
