"""`devup init`: finds the projects of a repository (Procfiles, package.json dev scripts, Django,
Flask, FastAPI and Rails apps) and writes a commented starter devports.toml, one service each,
passing $PORT the way each framework takes it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from orchestrator.base.errors import DevupError, UsageError
from orchestrator.base.locate import MANIFEST_NAME
from orchestrator.config.manifest import MAX_PORT, MIN_PORT, env_key, parse_port_range
from orchestrator.config.manifest import procfile_line_needs_port as needs_port

# Never a project of its own: dependencies, VCS data, build output, caches, devup's own state.
SKIP_DIRS = frozenset(
    {
        "node_modules", ".git", ".hg", ".svn", ".venv", "venv", "env", ".env", ".devup", "dist",
        "build", "__pycache__", ".next", ".nuxt", ".svelte-kit", ".tox", ".nox", ".mypy_cache",
        ".pytest_cache", ".ruff_cache", "coverage", "target", "vendor", "tmp", "log",
    }
)  # fmt: skip
MAX_DEPTH = 6
MAX_PY_BYTES = 256 * 1024
_FLASK = re.compile(r"^(\w+)\s*=\s*Flask\(", re.MULTILINE)
_FASTAPI = re.compile(r"^(\w+)\s*=\s*FastAPI\(", re.MULTILINE)
_WORKSPACE_RUNNERS = re.compile(r"\b(turbo|nx|lerna|concurrently|npm-run-all|run-p)\b")


@dataclass(frozen=True)
class Found:
    """One project: where, what it is, and the service to write for it."""

    folder: Path  # relative to the root; Path(".") is the root itself
    kind: str  # "Procfile", "Vite", "Next.js", "Django", ...
    cmd: str | None = None  # None for a Procfile
    env: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # comments written above the service


def init(manifest_file: Path | None, *, force: bool, gitignore: bool | None, ports: str) -> int:
    """`devup init [-f FILE] [--force] [--gitignore/--no-gitignore] [--ports RANGE]`: scan, write,
    say what was written, and offer to keep .devup/ out of git (asks only on a terminal)."""
    path = (manifest_file or Path(MANIFEST_NAME)).absolute()
    root = path.parent
    check_port_pool(ports)
    if not force:
        refuse_nested(root)
    found = scan(root)
    if not found:
        raise UsageError(
            f"found no project in {root}: no Procfile, package.json dev script, Django, Flask, "
            "FastAPI or Rails app",
            hint='write devports.toml by hand: [services.web] with cmd = "..."',
        )
    write_manifest(path, render(found, root, ports), force=force)
    click.echo(f"wrote {path} with {len(found)} services:")
    for name, project in zip(service_names(found, root), found, strict=True):
        click.echo(f"  {name:<16} {project.kind:<17} {project.folder.as_posix()}")
    click.echo("next: check each cmd, then `devup check` and `devup`")
    if not gitignore_has_devup(root):
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        if gitignore is None and interactive:
            question = "add .devup/ (devup's run state and logs) to .gitignore?"
            gitignore = click.confirm(question, default=True)
        if gitignore:
            add_to_gitignore(root)
            click.echo(f"added {GITIGNORE_ENTRY} to {root / '.gitignore'}")
        elif gitignore is None:
            click.echo(
                "hint: add .devup/ (devup's run state and logs) to .gitignore, "
                "or run `devup init --gitignore`"
            )
    return 0


def scan(root: Path) -> list[Found]:
    """Every project under `root`, top down in name order; a project's subfolders belong to it."""
    found: list[Found] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        project = detect(root, folder, {e.name for e in entries})
        if project is not None:
            found.append(project)
            continue
        if len(folder.relative_to(root).parts) >= MAX_DEPTH:
            continue
        subdirs = [
            Path(e.path)
            for e in entries
            if e.is_dir(follow_symlinks=False)
            and e.name not in SKIP_DIRS
            and not e.name.startswith(".")
            and not (Path(e.path) / "pyvenv.cfg").exists()  # a virtualenv of any name
        ]
        stack.extend(reversed(subdirs))
    return found


def detect(root: Path, folder: Path, names: set[str]) -> Found | None:
    rel = folder.relative_to(root) if folder != root else Path(".")
    if "Procfile" in names:
        return Found(rel, "Procfile")
    if "bin" in names and (folder / "bin" / "rails").exists() and "config" in names:
        return Found(rel, "Rails", "bin/rails server -b 127.0.0.1 -p $PORT")
    if "manage.py" in names:
        # --noreload: devup restarts it on a change (Django's reloader would restart it twice).
        python = project_python(root, folder)
        return Found(rel, "Django", f"{python} manage.py runserver 127.0.0.1:$PORT --noreload")
    if "package.json" in names:
        node = _node(rel, folder)
        if node is not None:
            return node
    return _python_app(rel, folder, names, project_python(root, folder))


# Lockfile -> the command that runs the project's own Python (and installs it first if needed).
_PYTHON_RUNNERS = {
    "uv.lock": "uv run python",
    "poetry.lock": "poetry run python",
    "Pipfile.lock": "pipenv run python",
}


def project_python(root: Path, folder: Path) -> str:
    """The Python a project's commands must run with, as a path relative to its folder: its own
    virtualenv (`.venv` or `venv`, in it or a folder above up to the root), else its lockfile's
    runner, else `python3` (`python` is missing on many systems). devup's own Python is never it.
    """
    for parent in [folder, *[p for p in folder.parents if p == root or root in p.parents]]:
        for venv in (".venv", "venv"):
            if (parent / venv / "bin" / "python").exists():
                return os.path.relpath(parent / venv / "bin" / "python", folder)
        for lockfile, runner in _PYTHON_RUNNERS.items():
            if (parent / lockfile).exists():
                return runner
    return "python3"


def _node(rel: Path, folder: Path) -> Found | None:
    try:
        package = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(package, dict):
        return None
    raw_scripts = package.get("scripts")
    scripts: dict[str, object] = raw_scripts if isinstance(raw_scripts, dict) else {}
    script = "dev" if isinstance(scripts.get("dev"), str) else None
    script = script or ("start" if isinstance(scripts.get("start"), str) else None)
    if script is None:
        return None
    text = str(scripts[script])
    if package.get("workspaces") or _WORKSPACE_RUNNERS.search(text):
        return None  # a workspace root: its packages are found one by one
    deps: dict[str, object] = {}
    for key in ("dependencies", "devDependencies"):
        if isinstance(package.get(key), dict):
            deps.update(package[key])
    run = _runner(folder, script)
    # How each framework takes a port and an address (Vite and Next ignore $PORT and HOST).
    if "vite" in deps or re.search(r"\bvite\b", text):
        args = "--port $PORT --strictPort --host 127.0.0.1"
        return Found(rel, "Vite", f"{run}{args}")
    if "next" in deps or re.search(r"\bnext\b", text):
        return Found(rel, "Next.js", f"{run}-p $PORT -H 127.0.0.1")
    # Astro (4321) and the Angular CLI (4200) ignore PORT too.
    if "astro" in deps or re.search(r"\bastro\b", text):
        return Found(rel, "Astro", f"{run}--port $PORT --host 127.0.0.1")
    if "@angular/cli" in deps or re.search(r"\bng serve\b", text):
        return Found(rel, "Angular", f"{run}--port $PORT --host 127.0.0.1")
    if "react-scripts" in deps or "react-scripts" in text:
        # Create React App reads PORT and HOST; BROWSER=none stops it opening a tab per restart.
        return Found(rel, "Create React App", run.rstrip(" -"), env={"BROWSER": "none"})
    notes = ("the app must listen on process.env.PORT (and HOST)",)
    kind = "Express" if "express" in deps else "Node"
    return Found(rel, kind, run.rstrip(" -"), notes=notes)


def _runner(folder: Path, script: str) -> str:
    """`npm run dev -- ` (or pnpm/yarn by the lockfile of the package or a parent): extra
    arguments go after it."""
    for parent in (folder, *folder.parents):
        if (parent / "pnpm-lock.yaml").exists():
            return f"pnpm run {script} "
        if (parent / "yarn.lock").exists():
            return f"yarn {script} "
        if (parent / "bun.lockb").exists() or (parent / "bun.lock").exists():
            return f"bun run {script} "
        if (parent / "package-lock.json").exists() or (parent / ".git").exists():
            break
    return f"npm run {script} -- "


def _python_app(rel: Path, folder: Path, names: set[str], python: str) -> Found | None:
    candidates = [n for n in sorted(names) if n.endswith(".py")]
    candidates += ["app/main.py", "app/__init__.py", "src/main.py"]
    for name in candidates:
        path = folder / name
        try:
            if not path.is_file() or path.stat().st_size > MAX_PY_BYTES:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        module = name[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        fastapi = _FASTAPI.search(text)
        if fastapi:
            target = f"{module}:{fastapi.group(1)}"
            cmd = f"{python} -m uvicorn {target} --host 127.0.0.1 --port $PORT"
            return Found(rel, "FastAPI", cmd, notes=("no --reload: devup restarts on change",))
        flask = _FLASK.search(text)
        if flask:
            app = "" if module in ("app", "wsgi") else f" --app {module}"
            cmd = f"{python} -m flask{app} run --host 127.0.0.1 --port $PORT"
            return Found(rel, "Flask", cmd)
    return None


def service_names(found: list[Found], root: Path) -> list[str]:
    """A name per project: its folder's name (the repository's for the root), made unique
    including the X_PORT variable it maps to."""
    names: list[str] = []
    keys: set[str] = set()
    for project in found:
        parts = project.folder.parts or (root.name,)
        base = _clean(parts[-1]) or "app"
        name, i = base, len(parts) - 2
        while env_key(name) in keys and i >= 0:
            name = f"{_clean(parts[i])}-{name}"
            i -= 1
        n = 2
        while env_key(name) in keys:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
        keys.add(env_key(name))
    return names


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def check_port_pool(ports: str) -> None:
    """`--ports` as `devup check` will read it, so init never writes a manifest that fails it."""
    low, high = parse_port_range(ports) or (0, 0)
    if not MIN_PORT <= low <= high <= MAX_PORT:
        raise UsageError(
            f'--ports must be a range low-high within {MIN_PORT}-{MAX_PORT}, got "{ports}"',
            hint="for example --ports 3000-3999",
        )


def render(found: list[Found], root: Path, ports: str = "3000-3999") -> str:
    """The commented manifest text."""
    out = [
        "# devports.toml: written by `devup init` from the projects it found. Check each cmd, then",
        "# `devup check` validates this file and `devup` starts everything. Each service gets",
        "# PORT (its own stable port), HOST=127.0.0.1 and every service's X_PORT and X_URL.",
        "",
        "[devup]",
        f'ports = "{ports}"      # automatic ports come from here; each service keeps its own',
        '# env_file = ".env"     # loaded for every service (a missing file is fine)',
    ]
    for name, project in zip(service_names(found, root), found, strict=True):
        out += ["", f"[services.{name}]"]
        where = "the repository root" if project.folder == Path(".") else str(project.folder)
        what = "Procfile" if project.cmd is None else f"{project.kind} app"
        out.append(f"# {what} in {where}")
        out += [f"# {note}" for note in project.notes]
        if project.folder != Path("."):
            out.append(f"cwd = {_toml(project.folder.as_posix())}")
        if project.cmd is None:
            lines = _procfile_lines(root / project.folder / "Procfile")
            services = ", ".join(f"{name}.{line}" for line in lines) or "none yet"
            out.append(f'procfile = "Procfile"   # one service per line: {services}')
            portless = [f"{name}.{n}" for n, cmd in lines.items() if not needs_port(n, cmd)]
            if portless:
                note = "only a web line, or one using $PORT, gets one"
                out.append(f"# no port for {', '.join(portless)}: {note}")
        else:
            out.append(f"cmd = {_toml(project.cmd)}")
        if project.env:
            pairs = ", ".join(f"{k} = {_toml(v)}" for k, v in project.env.items())
            out.append(f"env = {{ {pairs} }}")
        out.append("# depends_on = []          # services to start (and be ready) first")
    return "\n".join(out) + "\n"


def _procfile_lines(path: Path) -> dict[str, str]:
    from honcho.environ import parse_procfile

    try:
        return dict(parse_procfile(path.read_text(encoding="utf-8")).processes)
    except (OSError, UnicodeDecodeError, AssertionError):  # honcho asserts names are unique
        return {}


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def refuse_nested(root: Path) -> None:
    """A devports.toml here would shadow the project above it: devup finds the nearest one."""
    for parent in root.resolve().parents:
        above = parent / MANIFEST_NAME
        if above.is_file():
            raise DevupError(
                f"{root} is inside the devup project of {above}; a devports.toml here would"
                " hide that one from devup run in this folder",
                hint=f"add this folder's services to {above}, or `devup init --force` to make"
                " it a project of its own",
            )


def write_manifest(path: Path, text: str, *, force: bool) -> None:
    try:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise DevupError(
            f"{path} already exists", hint="`devup init --force` replaces it"
        ) from None
    except OSError as exc:
        raise DevupError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


GITIGNORE_ENTRY = ".devup/"


def gitignore_has_devup(root: Path) -> bool:
    try:
        lines = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    return any(line.strip().strip("/") in (".devup", ".devup/*") for line in lines)


def add_to_gitignore(root: Path) -> None:
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + f"# devup's run state and logs\n{GITIGNORE_ENTRY}\n", encoding="utf-8")
