"""TUI figures: cold start of ``sente-pos demo`` (as a ratio to a bare Textual app measured
in the same run), key-press-to-paint latency through Pilot, and peak RSS of the app.

    python bench/bench_tui.py [--runs 15] [--keys 60]

Each cold start is a fresh subprocess (interpreter start included) that runs the demo
as shipped (sandbox, simulated camera, background work) headless, and exits once its
first screen has painted: the sign-in screen, or the home screen with the cashier
signed in beforehand (which adds the ~50 ms scrypt PIN check). The time runs from the
parent's spawn to the paint; the figure is the median of ``--runs``.
Peak RSS is the child's ``ru_maxrss`` from ``os.wait4``. Prints figures; asserts nothing.

Our packages are byte-compiled first, as ``pip install`` does for an installed product
and for the libraries the bare app imports. Without that, an editable checkout run
with ``PYTHONDONTWRITEBYTECODE`` set compiles ~50 modules from source on every start
(~60 ms) that no installed kiosk pays.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
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
def _painted(app: Any, screen_type: type | None = None) -> None:
    """Run ``app`` headless until a ``screen_type`` screen (any, if None) is first drawn,
    then print the monotonic time of that frame (the clock is system-wide, so the parent
    can subtract its spawn time) and the CPU seconds spent until then, and exit.

    The frame is caught where Textual renders a screen's update (the compositor refresh
    that would be written to the terminal), so work started after it, like the demo's
    sandbox, is not counted, and work that delays it is."""
    from textual.screen import Screen

    target: type = screen_type or Screen
    painted: list[float] = []
    compositor_refresh = Screen._compositor_refresh

    def refresh(screen: Any) -> None:
        compositor_refresh(screen)
        if not painted and isinstance(screen, target) and screen is screen.app.screen:
            painted.extend([time.monotonic(), time.process_time()])
            screen.app.exit()

    Screen._compositor_refresh = refresh  # type: ignore[method-assign]
    app.run(headless=True, size=(80, 24))
    print(*painted)


def child_bare() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Label

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Label("hello")

    _painted(Bare())


def _sente_app(home: Path) -> Any:
    """A signed-in terminal's app on a dead provider URL (for the key latency figure)."""
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


def child_demo(home: Path, *, signed_in: bool = False) -> None:
    """``sente-pos demo`` as shipped (sandbox, simulated camera, background work on),
    headless, to its first screen: sign-in, or home with the cashier signed in."""
    from pos.gcpause import pause_gc

    pause_gc()  # what the ``sente-pos`` entry point does first; the app resumes it
    from screens.home import HomeScreen
    from screens.signin import SignInScreen
    from sente_pos.launch import DEMO_CASHIER, demo_app

    with demo_app(home) as app:
        if signed_in:  # the scrypt PIN check (~50 ms) is counted in this figure
            app.terminal.sign_in(*DEMO_CASHIER)
        _painted(app, HomeScreen if signed_in else SignInScreen)


def child_demo_home(home: Path) -> None:
    child_demo(home, signed_in=True)


# --------------------------------------------------------------- parent
def spawn(kind: str, home: Path) -> tuple[float, float, float, int]:
    """Seconds from spawn to the first paint, CPU seconds to it, seconds to exit, and the
    child's peak RSS (KiB)."""
    cmd = [sys.executable, __file__, "--child", kind, "--home", str(home)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""  # EOF when the child exits
    _, status, usage = os.wait4(proc.pid, 0)
    exited = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed ({proc.returncode}); run it alone: "
                         f"{' '.join(cmd)}")
    paint_at, cpu = (float(x) for x in out.decode().split()[-2:])
    return paint_at - t0, cpu, exited, usage.ru_maxrss


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


CHILDREN = {"bare": child_bare, "demo": child_demo, "demo-home": child_demo_home}
LABELS = {"bare": "bare Textual app", "demo": "demo, sign-in", "demo-home": "demo, home"}


def _ms(xs: list[float]) -> str:
    return (f"median {statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, "
            f"max {max(xs) * 1000:.0f}, n={len(xs)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--home")
    args = parser.parse_args(argv)
    if args.child == "bare":
        child_bare()
        return 0
    if args.child:
        CHILDREN[args.child](Path(args.home))  # type: ignore[call-arg]
        return 0

    for package in ("pos", "screens", "hardware"):
        compileall.compile_dir(ROOT / package, quiet=1)
    paint: dict[str, list[float]] = {k: [] for k in CHILDREN}
    cpu: dict[str, list[float]] = {k: [] for k in CHILDREN}
    exit_: dict[str, list[float]] = {k: [] for k in CHILDREN}
    rss: dict[str, list[int]] = {k: [] for k in CHILDREN}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        spawn("demo", home)  # the first run creates the journal and the operators
        for _ in range(args.runs):  # interleaved so drift hits all alike
            for kind in CHILDREN:
                p, c, e, r = spawn(kind, home)
                paint[kind].append(p)
                cpu[kind].append(c)
                exit_[kind].append(e)
                rss[kind].append(r)
        lat = asyncio.run(key_latency(home / "keys", args.keys))
        bare_lat = asyncio.run(bare_key_latency(args.keys))

    bare = statistics.median(paint["bare"])
    for kind in CHILDREN:
        print(f"cold start to first paint, {LABELS[kind]:<18}: {_ms(paint[kind])}")
    for kind in ("demo", "demo-home"):
        print(f"cold start ratio, {LABELS[kind]:<18}         : "
              f"{statistics.median(paint[kind]) / bare:.2f}x the bare app "
              f"(best runs: {min(paint[kind]) / min(paint['bare']):.2f}x, "
              "which a busy machine disturbs least)")
    for kind in CHILDREN:
        print(f"CPU to first paint, {LABELS[kind]:<18}       : {_ms(cpu[kind])}")
    bare_cpu = statistics.median(cpu["bare"])
    for kind in ("demo", "demo-home"):
        print(f"CPU ratio, {LABELS[kind]:<18}                : "
              f"{statistics.median(cpu[kind]) / bare_cpu:.2f}x the bare app")
    for kind in CHILDREN:
        print(f"spawn to exit, {LABELS[kind]:<18}            : {_ms(exit_[kind])}")
    print(f"key to paint, amount keypad  : {_summary(lat)}")
    print(f"key to paint, bare app label : {_summary(bare_lat)}  (Pilot's own floor)")
    for kind in CHILDREN:
        print(f"peak RSS, {LABELS[kind]:<18}: {statistics.median(rss[kind]) / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
