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
def _catch_first_paint(screen_type: str | None = None) -> list[float]:
    """Make the next app run headless (80x24) and exit at the first frame of a screen
    whose class is named ``screen_type`` (any screen, if None); returns the list that
    then holds the monotonic time of that frame (the clock is system-wide, so the parent
    can subtract its spawn time) and the CPU seconds spent until then.

    The frame is caught where Textual renders a screen's update (the compositor refresh
    that would be written to the terminal), so work started after it, like the demo's
    sandbox, is not counted, and work that delays it is. Textual is imported here, once
    the clock is running, and the screen is matched by name, so the hook itself loads
    nothing of ours ahead of the code measured."""
    from textual.app import App
    from textual.screen import Screen

    painted: list[float] = []
    compositor_refresh = Screen._compositor_refresh
    app_run = App.run

    def refresh(screen: Any) -> None:
        compositor_refresh(screen)
        if (not painted and screen is screen.app.screen
                and screen_type in (None, type(screen).__name__)):
            painted.extend([time.monotonic(), time.process_time()])
            screen.app.exit()

    def run_headless(app: Any, *args: Any, **kwargs: Any) -> Any:
        return app_run(app, *args, **{**kwargs, "headless": True, "size": (80, 24)})

    Screen._compositor_refresh = refresh  # type: ignore[method-assign]
    App.run = run_headless  # type: ignore[method-assign]
    return painted


def _painted(app: Any, screen_type: str | None = None) -> None:
    """Run ``app`` to its first ``screen_type`` frame (see above), print the times, exit."""
    painted = _catch_first_paint(screen_type)
    app.run()
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
    from sente_pos.launch import DEMO_CASHIER, demo_app

    with demo_app(home) as app:
        if signed_in:  # the scrypt PIN check (~50 ms) is counted in this figure
            app.terminal.sign_in(*DEMO_CASHIER)
        _painted(app, "HomeScreen" if signed_in else "SignInScreen")


def child_demo_home(home: Path) -> None:
    child_demo(home, signed_in=True)


def _entry_point(argv: list[str], screen_type: str) -> None:
    """The ``sente-pos`` console script itself (argument parsing, settings, logging and
    all), run to the first frame of ``screen_type``."""
    painted = _catch_first_paint(screen_type)
    sys.argv = ["sente-pos", *argv]
    from sente_pos.startup import main

    main()
    print(*painted)


def child_demo_cli(home: Path) -> None:
    """``sente-pos demo --home HOME`` to its sign-in screen."""
    _entry_point(["demo", "--home", str(home / "demo")], "SignInScreen")


#: ``sente-pos run``'s configuration: providers on a port nothing listens on, a camera
#: device that does not exist (the scanner reports it after start-up), no printer.
RUN_CONFIG = """\
terminal_id = "BENCH-01"
[patasente]
base_url = "http://127.0.0.1:9/patasente/phantom-api/"
[pawacard]
base_url = "http://127.0.0.1:9/pawacard/v3/"
[camera]
device = "/dev/bench-no-camera"
[printer]
kind = "none"
"""


def child_run(home: Path) -> None:
    """``sente-pos run`` (the kiosk's command) to its sign-in screen, with the data
    directory (config.toml, journal, operators) made by the parent beforehand."""
    os.environ["SENTE_POS_HOME"] = str(home / "run")
    _entry_point(["run"], "SignInScreen")


def prepare_run_home(home: Path) -> None:
    """The data directory ``sente-pos run`` starts from: a config and a supervisor."""
    run_home = home / "run"
    run_home.mkdir(mode=0o700, exist_ok=True)
    (run_home / "config.toml").write_text(RUN_CONFIG, encoding="utf-8")
    (run_home / "config.toml").chmod(0o600)
    code = ("from pos.config import load_settings\n"
            "from pos.terminal import Terminal\n"
            "t = Terminal.open_sync(load_settings())\n"
            "t.has_operators() or t.add_operator('boss', 'supervisor', '8642')\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT), "SENTE_POS_HOME": str(run_home)})


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


CHILDREN = {"bare": child_bare, "demo": child_demo, "demo-home": child_demo_home,
            "demo-cli": child_demo_cli, "run": child_run}
LABELS = {"bare": "bare Textual app", "demo": "demo, sign-in", "demo-home": "demo, home",
          "demo-cli": "sente-pos demo", "run": "sente-pos run"}
RATIOS = ("demo", "demo-home", "demo-cli", "run")


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
        spawn("demo", home)  # the first runs create the journals and the operators
        spawn("demo-cli", home)
        prepare_run_home(home)
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
    for kind in RATIOS:
        print(f"cold start ratio, {LABELS[kind]:<18}         : "
              f"{statistics.median(paint[kind]) / bare:.2f}x the bare app "
              f"(best runs: {min(paint[kind]) / min(paint['bare']):.2f}x, "
              "which a busy machine disturbs least)")
    for kind in CHILDREN:
        print(f"CPU to first paint, {LABELS[kind]:<18}       : {_ms(cpu[kind])}")
    bare_cpu = statistics.median(cpu["bare"])
    for kind in RATIOS:
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
