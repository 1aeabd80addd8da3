"""Dev servers that reload themselves: which tool a service's `cmd` runs (directly, or through
`npm|pnpm|yarn|bun run SCRIPT` read from package.json), and the files that tool does not reload,
which are all devup watches for it by default (restarting Vite on every edit drops its HMR).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

# What every self-reloading server reads only at start: the project's own manifest and lockfile.
PROJECT_FILES = ("package.json", "pyproject.toml", "Gemfile", "go.mod", "Cargo.toml")
LOCKFILES = (
    "package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml", "yarn.lock", "bun.lockb",
    "bun.lock", "poetry.lock", "uv.lock", "Pipfile.lock", "Gemfile.lock", "go.sum",
)  # fmt: skip
# The dotenv files Vite, Next.js, Nuxt, CRA and python-dotenv read: .env, .env.local,
# .env.MODE and .env.MODE.local. Named one by one: a watch list holds paths, not globs.
_MODES = ("development", "test", "production")
ENV_FILES = (".env", ".env.local", *(f".env.{m}{x}" for m in _MODES for x in ("", ".local")))
_JS_EXTS = ("js", "mjs", "cjs", "ts", "mts", "cts")
MAX_SCRIPT_DEPTH = 4  # `npm run dev` -> `npm run serve` -> ...: enough for real projects
MAX_PACKAGE_JSON_BYTES = 1024 * 1024


class Reloader(NamedTuple):
    """A recognised tool: its name as users know it, and its config files (relative to cwd)."""

    tool: str
    configs: tuple[str, ...] = ()
    config_label: str = ""  # how `devup check` names the configs: "vite.config.*"
    folder: Path | None = None  # where it runs, once detected: cwd moved by `cd web && ...`


def _js_configs(stem: str) -> tuple[str, ...]:
    return tuple(f"{stem}.{ext}" for ext in _JS_EXTS)


_VITE = Reloader("vite", (*_js_configs("vite.config"), "svelte.config.js"), "vite.config.*")
_TOOLS: dict[str, Reloader] = {
    r.tool: r
    for r in (
        _VITE,
        Reloader("next dev", _js_configs("next.config"), "next.config.*"),
        Reloader("nuxt dev", _js_configs("nuxt.config"), "nuxt.config.*"),
        Reloader("astro dev", _js_configs("astro.config"), "astro.config.*"),
        Reloader("remix dev", _js_configs("remix.config"), "remix.config.*"),
        Reloader("webpack serve", _js_configs("webpack.config"), "webpack.config.*"),
        Reloader("react-scripts start"),
        Reloader("ng serve", ("angular.json",), "angular.json"),
        Reloader("nodemon", ("nodemon.json",), "nodemon.json"),
        Reloader("node --watch"),
        Reloader("tsx watch"),
        Reloader("flask --debug"),
        Reloader("uvicorn --reload"),
        Reloader("hypercorn --reload"),
        Reloader("fastapi dev"),
        Reloader("django runserver"),
        Reloader("rails server", ("config/application.rb",), "config/application.rb"),
        Reloader("air", (".air.toml",), ".air.toml"),
        Reloader("cargo watch"),
    )
}


def _first_arg(args: Sequence[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


def _has(args: Sequence[str], *flags: str) -> bool:
    return any(a in flags or a.split("=", 1)[0] in flags for a in args)


def _vite(args: Sequence[str]) -> str | None:
    # `vite`, `vite dev`, `vite serve`, `vite ./root`; never `vite build` / `vite preview`.
    return None if _first_arg(args) in ("build", "preview", "optimize") else "vite"


def _sub(name: str, *subcommands: str) -> Callable[[Sequence[str]], str | None]:
    return lambda args: name if _first_arg(args) in subcommands else None


def _flag(name: str, *flags: str) -> Callable[[Sequence[str]], str | None]:
    return lambda args: name if _has(args, *flags) else None


def _node(args: Sequence[str]) -> str | None:
    # Node's own options come before the script: `node --watch server.js`.
    options = args[: next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))]
    return "node --watch" if _has(options, "--watch", "--watch-path") else None


def _flask(args: Sequence[str]) -> str | None:
    if "run" not in args or _has(args, "--no-reload"):
        return None
    return "flask --debug" if _has(args, "--debug", "--reload") else None


def _django(args: Sequence[str]) -> str | None:
    command = _first_arg(args)
    if command not in ("runserver", "runserver_plus") or _has(args, "--noreload"):
        return None
    return "django runserver"


def _remix(args: Sequence[str]) -> str | None:
    return "remix dev" if _first_arg(args) in ("dev", "vite:dev") else None


# Program (basename) -> how its arguments say it reloads itself.
_PROGRAMS: dict[str, Callable[[Sequence[str]], str | None]] = {
    "vite": _vite,
    "next": _sub("next dev", "dev"),
    "nuxt": _sub("nuxt dev", "dev"),
    "nuxi": _sub("nuxt dev", "dev"),
    "astro": lambda args: "astro dev" if _first_arg(args) in (None, "dev") else None,
    "remix": _remix,
    "webpack": _sub("webpack serve", "serve", "server", "s"),
    "webpack-cli": _sub("webpack serve", "serve", "server", "s"),
    "webpack-dev-server": lambda args: "webpack serve",
    "react-scripts": _sub("react-scripts start", "start"),
    "ng": _sub("ng serve", "serve", "s", "dev"),
    "nodemon": lambda args: "nodemon",
    "node": _node,
    "tsx": _sub("tsx watch", "watch"),
    "flask": _flask,
    "uvicorn": _flag("uvicorn --reload", "--reload"),
    "hypercorn": _flag("hypercorn --reload", "--reload"),
    "fastapi": _sub("fastapi dev", "dev"),
    "manage.py": _django,
    "django-admin": _django,
    "rails": _sub("rails server", "server", "s"),
    "air": lambda args: "air",
    "cargo": _sub("cargo watch", "watch"),
}
# Prefixes that run the next word as the program: `npx vite`, `uv run flask ...`.
_WRAPPERS: dict[str, tuple[str, ...]] = {
    "exec": (), "env": (), "npx": (), "bunx": (), "pnpx": (), "nohup": (), "time": (),
    "cross-env": (), "dotenv": (), "pnpm": ("exec", "dlx"), "yarn": ("exec", "dlx"),
    "npm": ("exec",), "bun": ("x",), "uv": ("run",), "poetry": ("run",), "pipenv": ("run",),
    "pdm": ("run",), "rye": ("run",), "hatch": ("run",), "bundle": ("exec",),
}  # fmt: skip
_PACKAGE_MANAGERS = ("npm", "pnpm", "yarn", "bun")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = re.compile(r"&&|\|\||[;|&\n]")
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")


def detect(cmd: str, cwd: Path) -> Reloader | None:
    """The self-reloading dev server `cmd` runs in `cwd`, or None."""
    return _detect(cmd, cwd, MAX_SCRIPT_DEPTH)


def _detect(cmd: str, cwd: Path, depth: int) -> Reloader | None:
    # Each part of `cd apps/web && npm install && vite` on its own; a `cd` moves the next ones.
    for part in _SEPARATORS.split(cmd):
        try:
            words = shlex.split(part)
        except ValueError:  # an unbalanced quote: /bin/sh will say so, not devup
            continue
        if len(words) >= 2 and words[0] == "cd" and not words[1].startswith("$"):
            cwd = cwd / words[1]
            continue
        found = _detect_words(words, cwd, depth)
        if found is not None:  # an npm script's own `cd` (inner _detect) has set it already
            return found if found.folder is not None else found._replace(folder=cwd)
    return None


def _detect_words(words: list[str], cwd: Path, depth: int) -> Reloader | None:
    flask_debug = False
    while words:
        word = words[0]
        if _ASSIGNMENT.match(word):  # FLASK_DEBUG=1 flask run
            flask_debug |= word.split("=", 1)[0] == "FLASK_DEBUG" and word[-1:] not in ("0", "=")
            words = words[1:]
        elif word.startswith("-"):  # a wrapper's own options (npx --yes), or `--`
            words = words[1:]
        else:
            break
    if not words:
        return None
    program, args = os.path.basename(words[0]), words[1:]
    if program in _PACKAGE_MANAGERS and depth > 0:
        script = _script(program, args, cwd)
        if script is not None:
            return _detect(script, cwd, depth - 1)
    if program in _WRAPPERS:
        subcommands = _WRAPPERS[program]
        if not subcommands:
            return _detect_words(args, cwd, depth)
        if args and args[0] in subcommands:
            return _detect_words(args[1:], cwd, depth)
        return None
    if _PYTHON.fullmatch(program):  # python -m flask run, python manage.py runserver
        if len(args) >= 2 and args[0] == "-m":
            program, args = args[1], args[2:]
        elif args and not args[0].startswith("-"):
            program, args = os.path.basename(args[0]), args[1:]
    judge = _PROGRAMS.get(program)
    tool = judge(args) if judge is not None else None
    if tool is None and program == "flask" and flask_debug and "run" in args:
        tool = "flask --debug"
    return _TOOLS[tool] if tool is not None else None


def _script(manager: str, args: list[str], cwd: Path) -> str | None:
    """The package.json script `npm run dev -- --port 3000` runs, with its extra arguments."""
    if not args:
        return None
    if args[0] in ("run", "run-script"):
        args = args[1:]
    elif args[0] == "start":
        pass  # `npm start` runs the start script
    elif manager == "npm":
        return None  # npm runs other scripts only through `run`
    if not args or args[0].startswith("-"):
        return None
    name, extra = args[0], [a for a in args[1:] if a != "--"]
    scripts = _scripts(cwd)
    text = scripts.get(name)
    if text is None:
        return None
    return " ".join([text, *map(shlex.quote, extra)])


def _scripts(cwd: Path) -> dict[str, str]:
    """The scripts of the package.json npm would use: the nearest one at or above cwd."""
    for folder in (cwd, *cwd.parents):
        path = folder / "package.json"
        try:
            with path.open("rb") as f:
                package = json.loads(f.read(MAX_PACKAGE_JSON_BYTES))
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return {}
        scripts = package.get("scripts") if isinstance(package, dict) else None
        if not isinstance(scripts, dict):
            return {}
        return {k: v for k, v in scripts.items() if isinstance(v, str)}
    return {}


def watch_paths(reloader: Reloader, cwd: Path) -> tuple[Path, ...]:
    """What devup watches by default for a self-reloading server: the files it reads only once."""
    names = (*PROJECT_FILES, *LOCKFILES, *reloader.configs, *ENV_FILES)
    # A file is watched through its folder, so one may appear later (.env); a file in a folder
    # that does not exist (Rails' config/) could not be watched at all.
    paths = [cwd / name for name in dict.fromkeys(names)]
    return tuple(p for p in paths if p.parent == cwd or p.parent.is_dir())


def describe(tool: str, cwd: Path) -> str:
    """`vite reloads itself; devup restarts it only on package.json, lockfile, vite.config.*, .env
    changes`: the files named are the kinds of its default watch that exist (and .env)."""
    reloader = _TOOLS[tool]
    kinds = [name for name in PROJECT_FILES if (cwd / name).exists()]
    if any((cwd / name).exists() for name in LOCKFILES):
        kinds.append("lockfile")
    if reloader.config_label:
        kinds.append(reloader.config_label)
    kinds.append(".env")
    return f"{reloader.tool} reloads itself; devup restarts it only on {', '.join(kinds)} changes"
