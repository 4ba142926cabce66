"""`make test` (scripts/run-tests.sh) leaves no server of its own running, even when tests fail."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

INSTANCE_LINE = re.compile(r"test PostgreSQL \S+: port (\d+), data in (\S+) ")


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.slow
def test_a_failing_run_stops_and_deletes_its_own_postgresql() -> None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        reason = "PostgreSQL is not installed (scripts/install-system-deps.sh)"
        if os.environ.get("PROMPTUS_REQUIRE_SHARED") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k != "PROMPTUS_TEST_PG_DSN"}
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    # The inner pytest selects nothing: exit 5, which the script turns into a failure.
    result = subprocess.run(
        ["bash", "scripts/run-tests.sh", "tests/server/test_telemetry.py", "-k", "no_such_test"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0, result.stdout[-2000:]
    match = INSTANCE_LINE.search(result.stderr)
    assert match is not None, result.stderr[-2000:]
    port, data = int(match.group(1)), match.group(2)
    assert not Path(data).exists(), f"{data} was left behind"
    assert processes_mentioning(data) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
