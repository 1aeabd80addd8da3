"""`devup env` masking: a value built only from references to what devup injects is shown
resolved; literal values, and anything built from env-file, `env` or inherited values, are masked."""

from __future__ import annotations

import json

from conftest import Project


def test_references_to_injected_variables_are_shown_and_the_rest_masked(project: Project) -> None:
    project.write(
        """
        [services.api]
        cmd = "true"

        [services.web]
        cmd = "true"
        env_file = ".env"
        env = { VITE_API_URL = "${API_URL}", BASE = "http://${HOST}:${API_PORT}/", PATHED = "${API_URL}/v1", KEY = "sk-live-${DEVUP_SERVICE}-abcdef", AFTER = "${HOST}:s3cr3t", LEVEL = "debug", TOKEN_COPY = "${TOKEN}", MIXED = "${API_URL}?t=${TOKEN}", DSN = "postgres://app:hunter2@${HOST}:${API_PORT}/db", QUERY = "${API_URL}?key=hunter2", HOME_COPY = "${HOME}", OWN = "${OVERRIDDEN}" }
        """,
        **{
            ".env": "TOKEN=s3cret\nFILE_API=${API_URL}\nFILE_COPY=${TOKEN}\nOVERRIDDEN=x\nFILE_DSN=redis://:hunter2@${HOST}/0\n"
        },
    )
    (project.root / ".env").chmod(0o600)
    result = project.devup("env", "web", "--json")
    assert result.returncode == 0, result.stderr
    values = {v["name"]: v["value"] for v in json.loads(result.stdout)["variables"]}
    api_url, api_port = values["API_URL"], values["API_PORT"]
    assert values["VITE_API_URL"] == api_url
    assert values["BASE"] == f"http://127.0.0.1:{api_port}/"
    assert values["FILE_API"] == api_url
    masked_ones = ("LEVEL", "TOKEN_COPY", "MIXED", "HOME_COPY", "OWN", "TOKEN", "FILE_COPY")
    # Words of the user's own around references: a key, a password, a path, a query.
    for masked in (*masked_ones, "DSN", "QUERY", "FILE_DSN", "PATHED", "KEY", "AFTER"):
        assert values[masked] == "***", masked
    assert "s3cret" not in result.stdout and "hunter2" not in result.stdout
    text = project.devup("env", "web").stdout
    assert f"VITE_API_URL={api_url}" in text and "s3cret" not in text


def test_an_env_file_that_replaces_an_injected_variable_makes_references_to_it_masked(
    project: Project,
) -> None:
    project.write(
        """
        [services.web]
        cmd = "true"
        env_file = ".env"
        env = { WHERE = "${HOST}" }
        """,
        **{".env": "HOST=10.1.2.3\n"},
    )
    (project.root / ".env").chmod(0o600)
    values = {
        v["name"]: v["value"]
        for v in json.loads(project.devup("env", "web", "--json").stdout)["variables"]
    }
    assert values["WHERE"] == "***" and values["HOST"] == "***"
