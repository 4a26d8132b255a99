"""TUI figures: cold start to the home screen (as a ratio to a bare Textual app measured
in the same run), key-press-to-paint latency through Pilot, and peak RSS of the app.

    python bench/bench_tui.py [--runs 7] [--keys 60]

Each cold start is a fresh subprocess (interpreter start included) that exits as
soon as the first screen has painted; the figure is the median of ``--runs``.
Peak RSS is the child's ``ru_maxrss`` from ``os.wait4``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------- children
def child_bare() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Label

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Label("hello")

    async def pilot(p: Any) -> None:
        await p.pause()
        p.app.exit()

    Bare().run(headless=True, size=(80, 24), auto_pilot=pilot)


def _sente_app(home: Path) -> Any:
    os.environ["SENTE_POS_HOME"] = str(home)
    from pos.config import Settings
    from pos.terminal import Terminal
    from screens.app import make_app

    dead = "http://127.0.0.1:9/"
    settings = Settings.model_validate({"patasente": {"base_url": dead + "patasente/phantom-api/"},
                                        "pawacard": {"base_url": dead + "pawacard/v3/"}})
    term = Terminal.open_sync(settings)
    if not term.has_operators():
        term.add_operator("bench", "cashier", "1111")
    term.sign_in("bench", "1111")
    return make_app(settings, term, None, background=False, cursor_blink=False)


def child_sente(home: Path) -> None:
    from screens.home import HomeScreen

    app = _sente_app(home)

    async def pilot(p: Any) -> None:
        while not isinstance(p.app.screen, HomeScreen):
            await p.pause(0.001)
        await p.pause()
        p.app.exit()

    app.run(headless=True, size=(80, 24), auto_pilot=pilot)


# --------------------------------------------------------------- parent
def spawn(kind: str, home: Path) -> tuple[float, int]:
    """Wall seconds from spawn to exit, and the child's peak RSS in KiB."""
    cmd = [sys.executable, __file__, "--child", kind, "--home", str(home)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed ({proc.returncode}):\n{err}")
    return elapsed, usage.ru_maxrss


async def key_latency(home: Path, presses: int) -> list[float]:
    """Seconds from a key press on the amount keypad to the repaint that shows it."""
    from screens.entry import AmountScreen

    app = _sente_app(home)
    out: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = AmountScreen("Amount", "UGX")
        await app.push_screen(screen)
        await pilot.pause()
        display = screen.query_one("#amount-display")
        for i in range(presses):
            key = "backspace" if i % 4 == 3 else str(i % 10)
            t0 = time.perf_counter()
            await pilot.press(key)
            # pilot.press returns once the key is processed; wait for the refresh too.
            await pilot.pause()
            out.append(time.perf_counter() - t0)
            assert display.is_mounted
    return out


async def bare_key_latency(presses: int) -> list[float]:
    """The same measure on a bare app whose one Label shows the last key (the floor)."""
    from textual import events
    from textual.app import App, ComposeResult
    from textual.widgets import Label

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Label("", id="last")

        def on_key(self, event: events.Key) -> None:
            self.query_one("#last", Label).update(event.key)

    out: list[float] = []
    async with Bare().run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for i in range(presses):
            t0 = time.perf_counter()
            await pilot.press(str(i % 10))
            await pilot.pause()
            out.append(time.perf_counter() - t0)
    return out


def _summary(lat: list[float]) -> str:
    ms = sorted(x * 1000 for x in lat)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms (n={len(ms)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--child", choices=["bare", "sente"])
    parser.add_argument("--home")
    args = parser.parse_args(argv)
    if args.child == "bare":
        child_bare()
        return 0
    if args.child == "sente":
        child_sente(Path(args.home))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        spawn("sente", home)  # first run creates the journal and the operator
        bare_t, bare_rss, sente_t, sente_rss = [], [], [], []
        for _ in range(args.runs):  # interleaved so drift hits both alike
            t, rss = spawn("bare", home)
            bare_t.append(t)
            bare_rss.append(rss)
            t, rss = spawn("sente", home)
            sente_t.append(t)
            sente_rss.append(rss)
        lat = asyncio.run(key_latency(home, args.keys))
        bare_lat = asyncio.run(bare_key_latency(args.keys))

    med_bare, med_sente = statistics.median(bare_t), statistics.median(sente_t)
    print(f"cold start, bare Textual app : median {med_bare * 1000:.0f} ms "
          f"(min {min(bare_t) * 1000:.0f}, max {max(bare_t) * 1000:.0f}, n={args.runs})")
    print(f"cold start, Sente POS home   : median {med_sente * 1000:.0f} ms "
          f"(min {min(sente_t) * 1000:.0f}, max {max(sente_t) * 1000:.0f}, n={args.runs})")
    print(f"cold start ratio             : {med_sente / med_bare:.2f}x the bare app")
    print(f"key to paint, amount keypad  : {_summary(lat)}")
    print(f"key to paint, bare app label : {_summary(bare_lat)}  (Pilot's own floor)")
    print(f"peak RSS, bare Textual app   : {statistics.median(bare_rss) / 1024:.1f} MiB")
    print(f"peak RSS, Sente POS home     : {statistics.median(sente_rss) / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
