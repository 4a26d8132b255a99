"""Helpers for the Textual tests: settings, a real Terminal, the app, screen text."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.cells import cell_len

from pos.config import Settings

FROZEN = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
DEAD_URL = "http://127.0.0.1:9/"  # discard port: nothing listens, connect is refused
#: Requests that move no money are retried as in production (3 attempts), without the
#: production waits (0.3 s, 0.6 s) between them: a link that is down is down at once.
FAST_RETRY_WAIT = 0.01
#: The same for a ``sente-pos`` process started by a test.
FAST_RETRY_ENV = {"SENTE_POS_PATASENTE__RETRY_WAIT": str(FAST_RETRY_WAIT),
                  "SENTE_POS_PAWACARD__RETRY_WAIT": str(FAST_RETRY_WAIT)}


def make_settings(home: Path, sb: Any = None, **overrides: Any) -> Settings:
    """Settings for a terminal whose data lives in ``home`` (SENTE_POS_HOME must point there)."""
    assert home.exists()
    if sb is not None:
        return sandbox_settings(sb, **overrides)
    data: dict[str, Any] = {
        "patasente": {"base_url": DEAD_URL + "patasente/phantom-api/", "connect_timeout": 0.5,
                      "retry_wait": FAST_RETRY_WAIT},
        "pawacard": {"base_url": DEAD_URL + "pawacard/v3/", "connect_timeout": 0.5,
                     "retry_wait": FAST_RETRY_WAIT}}
    return Settings(**_merged(data, overrides))


def sandbox_settings(sb: Any, **overrides: Any) -> Settings:
    """Settings pointing at the sandbox ``sb`` with its credentials; ``overrides`` are
    merged one level deep (``pawacard={"poll_interval": 0.01}`` keeps the rest)."""
    env = sb.env()
    data: dict[str, Any] = {
        "patasente": {"base_url": sb.patasente_url,
                      "username": env.get("SENTE_POS_PATASENTE__USERNAME", ""),
                      "password": env.get("SENTE_POS_PATASENTE__PASSWORD", ""),
                      "connect_timeout": 1.0, "read_timeout": 5.0,
                      "retry_wait": FAST_RETRY_WAIT},
        "pawacard": {"base_url": sb.pawacard_url,
                     "username": env.get("SENTE_POS_PAWACARD__USERNAME", ""),
                     "password": env.get("SENTE_POS_PAWACARD__PASSWORD", ""),
                     "poll_interval": 0.05, "max_polls": 10,
                     "connect_timeout": 1.0, "read_timeout": 5.0,
                     "retry_wait": FAST_RETRY_WAIT},
        # Lost answers settle in test time: a short window and counter confirmation.
        "reconcile": {"settle_seconds": 0.5, "confirm_seconds": 0.5, "confirm_interval": 0.05},
    }
    return Settings(**_merged(data, overrides))


def _merged(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def app_for(settings: Settings, terminal: Any, scanner: Any = None, **kw: Any) -> Any:
    from screens.app import make_app

    kw.setdefault("clock", lambda: FROZEN)
    kw.setdefault("cursor_blink", False)
    return make_app(settings, terminal, scanner, **kw)


_SVG_TEXT = re.compile(
    r'<text [^>]*?x="([0-9.]+)"[^>]*?textLength="([0-9.]+)"[^>]*?'
    r'clip-path="url\(#[^)]*-line-(\d+)\)"[^>]*>([^<]*)</text>')


def screen_text(app: Any) -> str:
    """What the terminal shows now, as plain text: read from Textual's public SVG
    screenshot (``App.export_screenshot``), where each run of text sits at its cell."""
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    for x, length, line, escaped in _SVG_TEXT.findall(app.export_screenshot()):
        text = html.unescape(escaped).replace("\xa0", " ")  # spaces are written &#160;
        row = int(line)
        if row >= height or not text:
            continue
        cell = float(length) / len(text)  # one character's width in the picture
        col = round(float(x) / cell)
        for ch in text:
            cells = cell_len(ch)
            if cells and col + cells <= width:  # (each line ends in a "\n" at column 80)
                rows[row][col:col + cells] = [ch] + [""] * (cells - 1)  # wide: 2 cells
            col += cells
    return "\n".join("".join(r) for r in rows)


async def wait_for(pilot: Any, predicate: Callable[[], Any], timeout: float = 10.0,
                   what: str = "condition", *, poll: float | None = None) -> Any:
    """Pause the pilot until ``predicate()`` is truthy (workers and HTTP take real time).

    Polls at 20 ms, then less often (up to 100 ms) while nothing happens: a predicate on
    :func:`screen_text` renders the whole screen each time. ``poll``: every that many
    seconds instead (a benchmark timing the wait, which the back-off would round up)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    interval = poll or 0.02
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}; screen:\n"
                                 f"{screen_text(pilot.app)}")
        await pilot.pause(interval)
        if poll is None:
            interval = min(0.1, interval * 1.5)


async def holds_within(pilot: Any, predicate: Callable[[], Any], seconds: float) -> bool:
    """True as soon as ``predicate()`` holds, False if it did not within ``seconds``
    (for a step a cashier repeats until it works, like F5)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not predicate():
        if loop.time() > end:
            return False
        await pilot.pause(0.02)
    return True


async def wait_screen(pilot: Any, cls: type, timeout: float = 10.0, *,
                      poll: float | None = None) -> Any:
    """Wait until the top screen is a ``cls`` and has painted (``poll``: see wait_for)."""
    screen = await wait_for(pilot, lambda: isinstance(pilot.app.screen, cls) and pilot.app.screen,
                            timeout, cls.__name__, poll=poll)
    await wait_for(pilot, lambda: screen.is_mounted and all(
        w.is_mounted for w in screen.walk_children()), timeout, "mount", poll=poll)
    await pilot.pause()
    await pilot.pause()
    await wait_for(pilot, lambda: screen_text(pilot.app).strip(), timeout, "a paint", poll=poll)
    return screen


async def type_text(pilot: Any, text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])


async def counter_terminal(home: Path, monkeypatch: Any, sb: Any, *,
                           supervisor: bool = False) -> Any:
    """A terminal on ``sb`` with cashier ann (PIN 1111) signed in, and supervisor boss
    (PIN 8642) when asked for."""
    from pos.clock import DeviceClock
    from pos.terminal import Terminal

    monkeypatch.setenv("SENTE_POS_HOME", str(home))
    # A synchronised wall clock (this machine's may not be): what the screens show is
    # then the same on every machine.
    t = await Terminal.open(make_settings(home, sb), device=DeviceClock(synced=lambda: True))
    boss = t.add_operator("boss", "supervisor", "8642") if supervisor else None
    t.add_operator("ann", "cashier", "1111", approved_by=boss)
    t.sign_in("ann", "1111")
    return t
