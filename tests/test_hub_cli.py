"""``sente-pos hub ...`` as a person types it: set up, make a code, serve, enrol a
terminal, upload, restore (real processes, real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)


def cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sente_pos.cli", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_setup_serve_enrol_upload_restore(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    hub_env = {**os.environ, "SENTE_POS_HOME": str(tmp_path / "hubhome"),
               "SENTE_POS_HUB__PATASCORE__ENABLED": "false"}
    r = cli("hub", "setup", "--db", db, "--merchant", "Sodapop Inc", "--registration",
            "PVT-FYUVQBQR", "--owner", "olivia", "--json", env=hub_env,
            stdin="owner-pass-1\n")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["owner"] == "olivia"
    assert "owner-pass-1" not in r.stdout + r.stderr
    r = cli("hub", "code", "POS-007", "--db", db, "--json", env=hub_env)
    code = json.loads(r.stdout)["code"]
    server = subprocess.Popen([sys.executable, "-m", "sente_pos.cli", "hub", "--db", db, "--port",
                               "0"], env=hub_env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        assert httpx.get(url + "api/v1/ping").json()["ok"] is True
        term_env: dict[str, Any] = {**os.environ, "SENTE_POS_HOME": str(tmp_path / "pos")}
        r = cli("hub", "enrol", url, code, "--json", env=term_env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["terminal_id"] == "POS-007"
        cred = tmp_path / "pos" / "hub.json"
        assert stat.S_IMODE(cred.stat().st_mode) == 0o600
        assert json.loads(cred.read_text())["credential"] not in r.stdout
        r = cli("hub", "enrol", url, code, "--json", env=term_env)
        assert r.returncode == 2 and "already used" in r.stdout
        r = cli("hub", "upload", "--json", env=term_env)
        assert r.returncode == 0 and json.loads(r.stdout)["batches"] == 1
        r = cli("hub", "restore", "--json", env=term_env)  # nothing sold yet: empty journal
        assert r.returncode == 0 and json.loads(r.stdout)["txns"] == 0
        r = cli("hub", "enrol", "http://hub.example.com/", "ABCD-EFGH-JKLM", "--json",
                env=term_env)
        assert r.returncode == 2 and "TLS" in r.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
