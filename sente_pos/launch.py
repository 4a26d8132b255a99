"""Start the TUI: ``sente-pos demo`` (sandbox + simulated camera) and ``sente-pos run`` (kiosk)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pos.config import CameraSettings, Settings, ensure_home
from pos.errors import PosError
from sente_pos.quiet import library_output_to_log

#: The demo's link probe cycle (sync.probe_interval): a quiet link is checked this often
#: and a down one again after 5 s, doubling up to four times this, so a link taken down
#: or brought back shows within seconds (a counter's default is 15 s).
DEMO_PROBE_SECONDS = 5.0

#: The supervisor's PIN passes the product's own rule for supervisors
#: (``pos.operators.validate_supervisor_pin``: no repeated digit, run or common PIN).
DEMO_SUPERVISOR = ("boss", "2719")
DEMO_CASHIER = ("amina", "1111")
#: Their PINs hashed once, here, instead of on every demo start (the PINs are public:
#: the sign-in screen shows them). A test checks each hash against its PIN.
DEMO_PIN_HASHES = {
    "boss": "scrypt$16384$8$1$TqhoqqU9cdEaL270cVPHZA==$"
            "jkCIrTOxobwF50yZbKx75gTVZj75i25jTXRF+e8Wqr8=",
    "amina": "scrypt$16384$8$1$eHSxXbshH4OcBtmfodvndQ==$"
             "Zskb5y2SZL0dncqScsDeggKuiKXgmyXx0FZcQryRYNs=",
}


def _close(term: Any) -> None:
    with contextlib.suppress(Exception):
        asyncio.run(term.aclose())


def make_camera(cam: CameraSettings, factory: str, kwargs: dict[str, Any]) -> Any:
    """The camera as ``camera.decoder`` says: ``factory`` ("module:class", a ScanLoop) in
    a child process (nothing of it is imported here until the scan screen opens), or
    made here to run in threads of this process."""
    kwargs = {**kwargs, "preview_fps": cam.preview_fps, "beep": cam.beep}
    if cam.decoder == "process":
        from hardware.camproc import CameraProcess

        return CameraProcess(factory, {k: v for k, v in kwargs.items() if k != "beep"},
                             preview_fps=cam.preview_fps, beep=cam.beep)
    import importlib

    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def close_camera(scanner: Any) -> None:
    """Stop the camera; a camera process is ended and reaped."""
    with contextlib.suppress(Exception):
        scanner.stop()
    close = getattr(scanner, "close", None)
    if close is not None:
        close()


def demo_settings(sb: Any) -> Settings:
    from pydantic import SecretStr

    from pos.config import PatasenteSettings, PawaCardSettings, PrinterSettings, SyncSettings
    from pos.sandbox import data

    return Settings(
        terminal_id="DEMO-01",
        merchant_name=data.MERCHANT_NAME,
        patasente=PatasenteSettings(
            base_url=sb.patasente_url, username=data.MERCHANT_CODE,
            password=SecretStr(data.MERCHANT_PASSWORD), connect_timeout=1.0, read_timeout=10.0),
        pawacard=PawaCardSettings(
            base_url=sb.pawacard_url, username=data.VENDOR_USERNAME,
            password=SecretStr(data.VENDOR_PASSWORD), connect_timeout=1.0, read_timeout=10.0,
            poll_interval=1.0, max_polls=15),
        printer=PrinterSettings(kind="none"),
        sync=SyncSettings(probe_interval=DEMO_PROBE_SECONDS),
    )


@contextlib.contextmanager
def demo_app(home: Path | None = None, *, console: bool = False) -> Iterator[Any]:
    """The demo's app: a terminal on the built-in sandbox and a simulated camera.

    The sandbox's port is bound at once (its URLs go into the settings, and requests
    queue in the backlog), but its web server starts after the first paint."""
    from hardware.wedge import WedgeDetector
    from pos.sandbox.server import SandboxServer
    from pos.terminal import Terminal
    from screens.app import make_app
    from sente_pos.demo import SandboxDemo

    home = home or Path(tempfile.mkdtemp(prefix="sente-pos-demo-"))
    os.environ["SENTE_POS_HOME"] = str(home)
    ensure_home(home)
    sb = SandboxServer(port=0).reserve()
    from pos.hub.demo import DemoHub  # the back office beside the sandbox (issue 12)

    hub = DemoHub(home, sb, "DEMO-01").reserve()
    term = None
    scanner = None
    try:
        settings = demo_settings(sb)
        term = Terminal.open_sync(settings)
        if not term.has_operators():
            term.add_hashed_operator(DEMO_SUPERVISOR[0], "supervisor", DEMO_PIN_HASHES["boss"])
            term.add_hashed_operator(DEMO_CASHIER[0], "cashier", DEMO_PIN_HASHES["amina"])
        # Nothing in view until a card is picked (F3 on the scan screen); a card held up
        # again a second later is a new presentation.
        cam = settings.camera
        scanner = make_camera(cam, "hardware.simcam:SimulatedCamera", {"dedupe_seconds": 1.0})
        demo = SandboxDemo(sb, scanner, probe_every=settings.sync.probe_interval)
        yield make_app(settings, term, scanner, None, kiosk=False, wedge=WedgeDetector(),
                       theme="console" if console else "default",
                       after_first_paint=[sb.start, hub.start], demo=demo,
                       sign_in_hint=(f"Demo: cashier {DEMO_CASHIER[0]} PIN {DEMO_CASHIER[1]}, "
                                     f"supervisor {DEMO_SUPERVISOR[0]} PIN "
                                     f"{DEMO_SUPERVISOR[1]}. F3 on the scan screen picks the "
                                     f"card held up to the camera; F12 takes a provider's "
                                     f"link down and back. {hub.hint()}"))
    finally:
        if term is not None:
            _close(term)
        if scanner is not None:
            close_camera(scanner)
        hub.stop()
        sb.close()


def run_demo(home: Path | None = None, *, console: bool = False) -> int:
    """The whole product on a laptop: no hardware, no network."""
    home = home or Path(tempfile.mkdtemp(prefix="sente-pos-demo-"))
    with demo_app(home, console=console) as app:
        with library_output_to_log():
            app.run()
        code = app.return_code or 0
    print(f"Demo data kept in {home} (the back office's in hub.db). Operators: "
          f"{DEMO_CASHIER[0]} PIN {DEMO_CASHIER[1]}, supervisor {DEMO_SUPERVISOR[0]} PIN "
          f"{DEMO_SUPERVISOR[1]}.", file=sys.stderr)
    return code  # non-zero after a crash


def _notifier(app: Any, stop: threading.Event, interval: float | None) -> None:
    """Tell systemd READY once the app's event loop answers (the first screen is up),
    then ping the watchdog only while the loop keeps answering."""
    from pos import sdnotify

    def answers() -> bool:
        try:
            app.call_from_thread(lambda: None)
        except Exception:  # not running yet, or gone
            return False
        return True

    while not stop.wait(0.1):
        if answers():
            sdnotify.ready("Sente POS ready")
            break
    if not interval:
        return
    while not stop.wait(interval):
        if not answers():
            return  # stuck or gone: stop pinging, systemd restarts us
        sdnotify.watchdog()


def run_blocked(message: str) -> int:
    """The 'selling is stopped' screen instead of the counter; exit code 1."""
    from screens.blocked import BlockedApp

    with library_output_to_log():
        result = BlockedApp(message).run()
    print(f"error: {message}", file=sys.stderr)
    return int(result if result is not None else 1)


def run_kiosk(settings: Settings, *, console: bool = False) -> int:
    """The configured terminal: real camera, printer, kiosk options from settings."""
    from hardware.printer import make_printer
    from hardware.wedge import WedgeDetector
    from pos import sdnotify
    from pos.terminal import Terminal
    from screens.app import make_app

    printer = make_printer(settings.printer)
    try:
        term = Terminal.open_sync(settings, printer=printer)
    except PosError as exc:  # a damaged journal, an unwritable SD card: never the counter
        return run_blocked(exc.message)
    cam = settings.camera
    source: int | str = int(cam.device) if cam.device.isdigit() else cam.device
    scanner = make_camera(cam, "hardware.camera:CameraScanner",
                          {"source": source, "width": cam.width, "height": cam.height,
                           "fps": cam.fps})
    theme = "console" if console else settings.kiosk.theme
    app = make_app(settings, term, scanner, printer, kiosk=settings.kiosk.enabled, theme=theme,
                   wedge=WedgeDetector())
    stop = threading.Event()
    threading.Thread(target=_notifier, args=(app, stop, sdnotify.watchdog_interval()),
                     daemon=True, name="sd-notify").start()
    try:
        with library_output_to_log():  # OpenCV's warnings with no camera, zbar's...
            app.run()
    finally:
        stop.set()
        sdnotify.stopping()
        close_camera(scanner)
        _close(term)
    # Textual catches an unhandled exception, draws it and returns 1: passed on, so
    # systemd (Restart=on-failure) starts the counter again.
    return app.return_code or 0
