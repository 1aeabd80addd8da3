"""Shell completion: service names from the manifest, through click's completion protocol."""

from __future__ import annotations

import os
import subprocess

from conftest import DEVUP, Project

SERVICES = """
    [services.api]
    cmd = "true"
    [services.admin]
    cmd = "true"
    [services.web]
    cmd = "true"
    [services.shop]
    procfile = "Procfile"
"""


def complete(project: Project, words: str, cwd: str | None = None) -> list[str]:
    """What bash would offer for the last word of `words` (click's bash_complete protocol)."""
    parts = words.split(" ")
    env = {
        **os.environ,
        "_DEVUP_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    result = subprocess.run(
        DEVUP, env=env, cwd=cwd or project.root, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_service_names_complete_for_up_run_and_ports(project: Project) -> None:
    project.write(SERVICES, Procfile="storefront: true\nworker: true\n")
    everything = ["api", "admin", "web", "shop.storefront", "shop.worker", "shop"]
    assert complete(project, "devup up ") == everything
    assert complete(project, "devup up a") == ["api", "admin"]
    assert complete(project, "devup run sh") == ["shop.storefront", "shop.worker", "shop"]
    assert complete(project, "devup ports w") == ["web"]


def test_completion_reads_the_manifest_given_with_f(project: Project) -> None:
    manifest = project.write(SERVICES, Procfile="storefront: true\n")
    elsewhere = project.root.parent
    words = f"devup -f {manifest} up w"
    assert complete(project, words, cwd=str(elsewhere)) == ["web"]
    assert complete(project, f"devup up -f {manifest} ad", cwd=str(elsewhere)) == ["admin"]
    # No manifest to read: no suggestions, and no error on the user's terminal.
    assert complete(project, "devup up a", cwd=str(elsewhere)) == []


def test_completion_prints_a_script_per_shell(project: Project) -> None:
    for shell, marker in (("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete")):
        result = project.devup("completion", shell)
        assert result.returncode == 0 and "_DEVUP_COMPLETE" in result.stdout
        assert marker in result.stdout
    assert project.devup("completion", "tcsh").returncode == 2
