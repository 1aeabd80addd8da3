"""manifest_diff: what an edit of devports.toml changes, worked out from two plans (pure)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config.environ import build_env
from orchestrator.config.manifest import load_manifest, start_order
from orchestrator.config.manifest_diff import Plan, compare, ports_to_choose, summary
from orchestrator.run.live import _pool_note, without_own_files

BASE = """
[services.api]
cmd = "serve api"
env = { GREETING = "hello" }
[services.web]
cmd = "serve web"
env = { API = "${API_URL}" }
depends_on = ["api"]
[services.jobs]
cmd = "work"
port = false
"""


def plan(tmp_path: Path, text: str, ports: dict[str, int | None]) -> Plan:
    path = tmp_path / "devports.toml"
    path.write_text(text)
    manifest = load_manifest(path)
    order = start_order(manifest)
    ports = {n: ports.get(n) for n in manifest.services}
    envs = {n: build_env(manifest, ports, n, parent={})[0] for n in order}
    return Plan(manifest, tuple(order), ports, envs)


PORTS: dict[str, int | None] = {"api": 3001, "web": 3002, "worker": 3003}


def test_an_edit_that_changes_nothing_changes_nothing(tmp_path: Path) -> None:
    old = plan(tmp_path, BASE, PORTS)
    new = plan(
        tmp_path, "# moved around\n" + BASE.replace("[services.jobs]", "\n[services.jobs]"), PORTS
    )
    diff = compare(old, new)
    assert diff.empty
    assert summary(diff, "devports.toml") == "devports.toml changed: nothing to apply"


def test_only_the_service_whose_environment_changed_restarts(tmp_path: Path) -> None:
    old = plan(tmp_path, BASE, PORTS)
    new = plan(tmp_path, BASE.replace('"hello"', '"bonjour"'), PORTS)
    diff = compare(old, new)
    assert summary(diff, "devports.toml") == "devports.toml changed: api restarted (env)"


def test_a_new_service_restarts_no_one_unless_its_url_is_used(tmp_path: Path) -> None:
    old = plan(tmp_path, BASE, PORTS)
    added = BASE + '[services.worker]\ncmd = "w"\n'
    assert ports_to_choose(old, load_manifest(tmp_path / "devports.toml")) == []
    new = plan(tmp_path, added, PORTS)
    assert summary(compare(old, new), "x") == "x changed: worker added"
    used = added.replace('"${API_URL}"', '"${API_URL} ${WORKER_URL}"')
    new = plan(tmp_path, used, PORTS)
    assert summary(compare(old, new), "x") == "x changed: web restarted (env), worker added"


def test_a_moved_port_restarts_the_services_that_see_it(tmp_path: Path) -> None:
    old = plan(tmp_path, BASE, PORTS)
    new = plan(
        tmp_path,
        BASE.replace('cmd = "serve api"', 'cmd = "serve api"\nport = 3050'),
        {**PORTS, "api": 3050},
    )
    diff = compare(old, new)
    assert [(c.name, c.reasons) for c in diff.changed] == [
        ("api", ("port",)),
        ("web", ("env", "API_PORT", "API_URL")),  # its env table uses ${API_URL}
        ("jobs", ("API_PORT", "API_URL")),
    ]
    assert ports_to_choose(old, new.manifest) == ["api"]


def test_supervision_settings_apply_without_a_restart(tmp_path: Path) -> None:
    old = plan(tmp_path, BASE, PORTS)
    text = BASE.replace('cmd = "work"', 'cmd = "work"\nrestart = "always"\nready_timeout = 5')
    diff = compare(old, plan(tmp_path, text, PORTS))
    assert summary(diff, "x") == "x changed: jobs updated (restart, ready_timeout)"
    assert not diff.changed[0].restart


def test_removed_services_and_settings(tmp_path: Path) -> None:
    old = plan(tmp_path, BASE, PORTS)
    text = "[devup]\nstop_timeout = 2\n" + BASE.split("[services.jobs]")[0]
    diff = compare(old, plan(tmp_path, text, PORTS))
    assert summary(diff, "x") == "x changed: jobs stopped, [devup] stop_timeout changed"


def test_the_services_watchers_leave_the_runs_own_files_to_the_reload(tmp_path: Path) -> None:
    (tmp_path / "devports.toml").write_text(BASE)
    manifest = load_manifest(tmp_path / "devports.toml")
    files = [manifest.path, tmp_path / "[odd]*.env", tmp_path.parent / "outside.env"]
    ignoring = without_own_files(manifest, files)
    assert ignoring.services["api"].ignore[-2:] == ("/devports.toml", "/\\[odd]\\*.env")


def test_a_new_pool_does_not_move_running_services_and_says_so(tmp_path: Path) -> None:
    old = plan(tmp_path, BASE, PORTS)
    new = plan(tmp_path, '[devup]\nports = "4000-4999"\n' + BASE, PORTS)
    diff = compare(old, new)
    assert diff.settings == ("ports",) and not diff.changed
    assert ports_to_choose(old, new.manifest) == []
    assert _pool_note(old, new) == (
        "[devup] ports is now 4000-4999: new ports come from it; "
        "api (3001), web (3002) keep their ports until the next run"
    )
