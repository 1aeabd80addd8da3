"""The environment a service gets, built from values (no processes)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config.environ import build_env, service_variables
from orchestrator.config.manifest import Manifest, ServiceSpec, Settings


def manifest(tmp_path: Path, **api: object) -> Manifest:
    services = {
        "api": ServiceSpec(name="api", cmd="x", cwd=tmp_path, **api),  # type: ignore[arg-type]
        "shop.web": ServiceSpec(name="shop.web", cmd="x", cwd=tmp_path),
        "worker": ServiceSpec(name="worker", cmd="x", cwd=tmp_path, needs_port=False),
    }
    return Manifest(tmp_path / "devports.toml", Settings(), services)


PORTS = {"api": 3001, "shop.web": 3002, "worker": None}


def test_injected_variables_name_every_service_with_a_port(tmp_path: Path) -> None:
    env, warnings = build_env(manifest(tmp_path), PORTS, "worker", parent={"PATH": "/bin"})
    assert warnings == []
    assert "PORT" not in env and "WORKER_PORT" not in env
    assert env["API_URL"] == "http://127.0.0.1:3001" and env["API_PORT"] == "3001"
    assert env["SHOP_WEB_URL"] == "http://127.0.0.1:3002"
    assert env["HOST"] == "127.0.0.1" and env["DEVUP_SERVICE"] == "worker"
    assert env["PYTHONUNBUFFERED"] == "1" and env["PATH"] == "/bin"
    assert "FORCE_COLOR" not in env
    assert (
        build_env(manifest(tmp_path), PORTS, "api", parent={}, color=True)[0]["FORCE_COLOR"] == "1"
    )


def test_env_files_then_env_table_with_references(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOKEN=s3cret\nPORT=9999\nexport QUOTED='a b'\n")
    m = manifest(
        tmp_path,
        env_file=tmp_path / ".env",
        env=(("PUBLIC", "${SHOP_WEB_URL}/x"), ("FROM_PARENT", "${HOME}"), ("NONE", "${NOPE}")),
    )
    env, warnings = build_env(m, PORTS, "api", parent={"HOME": "/home/me"})
    assert env["PORT"] == "3001"  # an env file cannot move the port
    assert warnings == ["api: .env sets PORT, ignored (devup assigns it)"]
    assert env["TOKEN"] == "s3cret"
    assert env["PUBLIC"] == "http://127.0.0.1:3002/x"
    assert env["FROM_PARENT"] == "/home/me" and env["NONE"] == ""


def test_values_from_env_files_and_env_tables_are_secret(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOKEN=s3cret\n")
    m = manifest(tmp_path, env_file=tmp_path / ".env", env=(("LEVEL", "debug"),))
    variables, _ = service_variables(m, PORTS, "api", parent={}, color=False)
    secret = {v.name for v in variables if v.secret}
    assert secret == {"TOKEN", "LEVEL"}
    assert {v.name for v in variables if not v.secret} >= {"PORT", "HOST", "API_URL"}


def test_a_missing_env_file_is_not_an_error(tmp_path: Path) -> None:
    m = manifest(tmp_path, env_file=tmp_path / "missing.env")
    env, _ = build_env(m, PORTS, "api", parent={})
    assert env["PORT"] == "3001"
