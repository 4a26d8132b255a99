"""The headless CLI as a user runs it: a sandbox process, the ``sente-pos`` console script."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pos.sandbox import data
from tests.screens_support import FAST_RETRY_ENV

ROOT = Path(__file__).resolve().parent.parent


def _exe() -> list[str]:
    script = shutil.which("sente-pos", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "sente_pos.cli"]


@pytest.fixture(scope="module")
def sandbox_proc() -> Iterator[int]:
    """``sente-pos sandbox --port 0`` in its own process, as the README tells a user; the
    port the kernel gave it is read from what it prints (no port is guessed free)."""
    proc = subprocess.Popen([*_exe(), "sandbox", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:  # the first lines are printed once the port is bound
        printed.append(line)
        found = re.search(r"Patasente : http://127\.0\.0\.1:(\d+)/", line)
        if found:
            port = int(found.group(1))
            break
    else:
        proc.kill()
        pytest.fail("sandbox did not start:\n" + "".join(printed))
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    out = "".join(printed) + proc.stdout.read()  # the rest, buffered or not
    # It printed what a user needs: URLs, credentials, card payloads.
    assert "PawaCard" in out and data.CARD_ACTIVE.payload in out and "demo1234" in out


@pytest.fixture
def env(sandbox_proc: int, tmp_path: Path) -> dict[str, str]:
    base = f"http://127.0.0.1:{sandbox_proc}"
    e = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    e.update({
        "SENTE_POS_HOME": str(tmp_path / "home"),
        "SENTE_POS_PATASENTE__BASE_URL": base + "/patasente/phantom-api/",
        "SENTE_POS_PATASENTE__USERNAME": data.MERCHANT_CODE,
        "SENTE_POS_PATASENTE__PASSWORD": data.MERCHANT_PASSWORD,
        "SENTE_POS_PAWACARD__BASE_URL": base + "/pawacard/v3/",
        "SENTE_POS_PAWACARD__USERNAME": data.VENDOR_USERNAME,
        "SENTE_POS_PAWACARD__PASSWORD": data.VENDOR_PASSWORD,
        "SENTE_POS_PAWACARD__POLL_INTERVAL": "0.05",
        **FAST_RETRY_ENV,
    })
    return e


def run(env: dict[str, str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    p = subprocess.run([*_exe(), *args], env=env, input=stdin, capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


def meter(i: int) -> str:
    from pos.meter import luhn_check_digit

    body = f"0888{i:06d}"
    return body + luhn_check_digit(body)


def test_vend_prints_a_twenty_digit_token(env: dict[str, str]) -> None:
    rc, out, err = run(env, "vend", meter(1), "--amount", "100", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["status"] == "approved"
    assert len(doc["token"]) == 20 and doc["token"].isdigit()
    assert doc["ref"].isdigit()
    assert doc["token_display"].count(" ") == 4


def test_pending_vend_then_complete(env: dict[str, str]) -> None:
    rc, out, _ = run(env, "vend", data.METER_PENDING, "--amount", "50", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["status"] == "approved" and doc["token"]


@pytest.mark.slow
def test_exit_codes(env: dict[str, str], tmp_path: Path) -> None:
    rc, out, _ = run(env, "vend", data.METER_BAD_LUHN, "--amount", "100", "--json")
    assert rc == 2 and "check digit" in json.loads(out)["error"]
    rc, out, _ = run(env, "vend", data.METER_FAIL, "--amount", "100", "--json")
    assert rc == 2 and json.loads(out)["status"] == "declined"
    rc, out, _ = run(env, "vend", meter(2), "--amount", "abc", "--json")
    assert rc == 2
    # Provider down: accepted offline -> 3.
    down = dict(env, SENTE_POS_PAWACARD__BASE_URL="http://127.0.0.1:9/pawacard/v3/",
                SENTE_POS_PAWACARD__CONNECT_TIMEOUT="0.5")
    rc, out, _ = run(down, "vend", meter(3), "--amount", "100", "--json")
    doc = json.loads(out)
    assert rc == 3 and doc["status"] == "offline" and doc["token"] is None
    # ... and sync later shows how it ended, with the token.
    rc, out, _ = run(env, "sync", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert any(o["token"] for o in doc["outcomes"])
    rc, out, _ = run(env, "journal", "--status", "done", "--json")
    assert any(r["meter"] == meter(3) and r["token"] for r in json.loads(out))


def test_card_debit_pin_from_stdin(env: dict[str, str]) -> None:
    card = data.CARD_ACTIVE
    rc, out, err = run(env, "card", "debit", card.payload, "--amount", "1500", "--wallet",
                       data.CURRENT, "--reason", "bananas", "--json", stdin="9999\n")
    assert rc == 2 and json.loads(out)["status"] == "declined"
    rc, out, err = run(env, "card", "debit", card.payload, "--amount", "1500", "--wallet",
                       data.CURRENT, "--reason", "bananas", "--json", stdin=f"{card.pin}\n")
    assert rc == 0, err
    assert json.loads(out)["status"] == "approved"
    log = Path(env["SENTE_POS_HOME"], "sente-pos.log")
    text = log.read_text() if log.exists() else ""
    assert card.pin not in text and "9999" not in text and data.MERCHANT_PASSWORD not in text


def test_card_show_and_bad_qr(env: dict[str, str]) -> None:
    rc, out, _ = run(env, "card", "show", data.CARD_ACTIVE.payload, "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["card"]["card_id"] == data.CARD_ACTIVE.id and doc["status"] == "active"
    rc, out, _ = run(env, "card", "show", "not a card", "--json")
    assert rc == 2 and "card QR" in json.loads(out)["error"]


def test_config_show_masks_secrets(env: dict[str, str]) -> None:
    rc, out, _ = run(env, "config", "show", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["pawacard"]["password"] == "********"
    assert data.VENDOR_PASSWORD not in out


@pytest.mark.slow
def test_journal_export_and_reports(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "vend", meter(4), "--amount", "100", "--json")
    dest = tmp_path / "j.csv"
    rc, out, _ = run(env, "journal", "export", "--csv", str(dest))
    assert rc == 0
    rows = list(csv.DictReader(dest.open()))
    assert rows and rows[0]["meter"] == meter(4)
    rc, out, _ = run(env, "report", "x", "--json")
    assert rc == 0 and json.loads(out)["by_kind"]["vend"]["count"] == 1
    rc, out, _ = run(env, "report", "z", "--json")
    assert rc == 0 and json.loads(out)["number"] == 1
    rc, out, err = run(env, "report", "z", "--json")  # nothing since Z #1 (issue 13)
    assert rc == 2 and "empty" in (out + err)
    rc, out, _ = run(env, "report", "z", "--allow-empty", "--json")
    assert rc == 0 and json.loads(out)["number"] == 2


def test_no_traceback_on_broken_config(env: dict[str, str]) -> None:
    home = Path(env["SENTE_POS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[pawacard\n")
    rc, _out, err = run(env, "vend", meter(5), "--amount", "100")
    assert rc == 2 and "config.toml" in err and "Traceback" not in err


def test_version_exits_0_and_help_tells_exit_codes_environment_and_config() -> None:
    """`--version` exited 2 ("a command is required"); `--help` said nothing of the
    exit codes, the environment variables or where the settings live."""
    v = subprocess.run([*_exe(), "--version"], capture_output=True, text=True, cwd=ROOT)
    assert v.returncode == 0 and v.stdout.startswith("sente-pos ")
    h = subprocess.run([*_exe(), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert h.returncode == 0
    for needed in ("exit codes:", "3  accepted offline", "SENTE_POS_HOME", "config.toml",
                   "SENTE_POS_<SECTION>__<KEY>"):
        assert needed in h.stdout, needed
