"""The Textual application: wiring only. Each screen module owns its behaviour.

``make_app`` is the one factory used by ``sente-pos run``, ``sente-pos demo``,
the tests and the benchmark.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, Unpack

from textual import events, on, work
from textual.app import App
from textual.binding import Binding
from textual.theme import Theme
from textual.worker import Worker, WorkerState

from pos.config import Settings
from pos.errors import PosError
from pos.gcpause import resume_gc
from screens.home import HomeScreen
from screens.theme import THEMES, css_paths, glyphs

if TYPE_CHECKING:
    from pos.operators import Operator
    from pos.reports import Report
    from pos.terminal import Terminal, TerminalStatus
    from screens.demo import DemoControls
    from screens.port import ReportPrinter, Scanner, Wedge

log = logging.getLogger("sente_pos.screens")
T = TypeVar("T")

#: The tasks a cashier starts from the home screen (or F5, or a wedge scan); each is one
#: flow coroutine, see :meth:`SentePOSApp.flow`.
Task = Literal["card", "token", "bill", "services", "journal", "reports", "sync", "settings",
               "sale", "shift"]


class AppOptions(TypedDict, total=False):
    """The optional keywords of :func:`make_app` (see :class:`SentePOSApp`)."""

    clock: Callable[[], datetime] | None
    wedge: Wedge | None
    cursor_blink: bool
    pin_timeout: float
    id_photo_max_bytes: int
    background: bool
    sign_in_hint: str
    demo: DemoControls | None
    after_first_paint: Sequence[Callable[[], object]]


GENERIC_ERROR = "Something went wrong. Nothing more was done; check the journal."


class SentePOSApp(App[None]):
    """The counter application."""

    TITLE = "Sente POS"
    FLOAT_REFRESH_SECONDS = 60.0
    #: How often the app asks whether a scheduled journal backup is due.
    BACKUP_CHECK_SECONDS = 600.0
    ENABLE_COMMAND_PALETTE = False
    #: Screens get ``-short`` below 24 rows (a 480x320 display's console) for a compact layout.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (24, "-tall")]
    #: And ``-narrow`` below 80 columns (the same console is about 60 wide).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-wide")]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+c", "quit", show=False, priority=True),
        Binding("ctrl+z", "suspend_process", show=False, priority=True),
        Binding("f5", "sync", "Sync", show=False, priority=True),
        # Only with demo controls (sente-pos demo): see check_action.
        Binding("f12", "demo_menu", "Demo", priority=True),
    ]

    def __init__(self, settings: Settings, terminal: Terminal, scanner: Scanner | None,
                 printer: ReportPrinter | None = None, *,
                 kiosk: bool = False, theme: str = "default",
                 clock: Callable[[], datetime] | None = None, wedge: Wedge | None = None,
                 cursor_blink: bool = True, pin_timeout: float = 60.0,
                 id_photo_max_bytes: int = 200_000, background: bool = True,
                 sign_in_hint: str = "", demo: DemoControls | None = None,
                 after_first_paint: Sequence[Callable[[], object]] = ()) -> None:
        chosen = THEMES.get(theme, THEMES["default"])
        # An ANSI theme (the console's) draws in the terminal's own 16 colours.
        super().__init__(css_path=css_paths(theme), ansi_color=True if chosen.ansi else None)
        self._start_with_theme(chosen)
        self.settings = settings
        self.terminal = terminal
        self.scanner = scanner
        self.printer = printer
        self.kiosk = kiosk
        self.theme_name = theme
        self.glyphs = glyphs(theme)
        self._clock = clock
        self.wedge = wedge
        #: A key held back on a screen that takes scans: it may open a scanner's burst.
        self._held_key: events.Key | None = None
        self.cursor_blink = cursor_blink
        self.pin_timeout = pin_timeout
        self.id_photo_max_bytes = id_photo_max_bytes
        self.background = background
        self.sign_in_hint = sign_in_hint  # e.g. the demo's operators and PINs
        self.last_activity = time.monotonic()
        self.errors_shown: list[str] = []
        #: The demo's controls (camera cards, provider links), injected by the wiring of
        #: ``sente-pos demo`` only; None at a real counter.
        self.demo = demo
        self._status: TerminalStatus | None = None
        self._after_first_paint = tuple(after_first_paint)

    # ------------------------------------------------------------ wiring
    def _start_with_theme(self, chosen: Theme) -> None:
        """Register our themes and start in ``chosen`` without the theme watcher.

        Setting ``self.theme`` once running re-parses every stylesheet and restyles the
        whole DOM (~30 ms of a ~500 ms cold start); before the first parse, the theme's
        variables are simply used. The watcher's classes are set here instead."""
        for each in THEMES.values():
            self.register_theme(each)
        self.set_reactive(App.theme, chosen.name)
        self.stylesheet.set_variables(self.get_css_variables())  # nothing is parsed yet
        self.set_class(chosen.dark, "-dark-mode", update=False)
        self.set_class(not chosen.dark, "-light-mode", update=False)
        self.set_class(True, f"-theme-{chosen.name}", update=False)

    def get_default_screen(self) -> HomeScreen:
        return HomeScreen()

    def now(self) -> datetime:
        return self._clock() if self._clock else datetime.now().astimezone()

    def current_status(self) -> TerminalStatus:
        """The terminal's status as of the last tick (read at most once a second)."""
        if self._status is None:
            self._status = self.terminal.status()
        return self._status

    def refresh_status(self) -> None:
        """Read the terminal's status now and repaint the visible status bar."""
        from screens.widgets import StatusBar

        try:
            self._status = self.terminal.status()
        except Exception:
            log.exception("status failed")
        if not self.screen_stack:  # the app is closing (a tick can still fire)
            return
        for bar in self.screen.query(StatusBar):
            bar.refresh()

    def _tick(self) -> None:
        """Once a second: fresh status for the visible status bar, the idle lock, and the
        journal's integrity verdict (a large journal is checked after start-up). A tick
        that fires while the app closes, its screens gone, does nothing: it crashed the
        app at exit (ScreenStackError) on a loaded machine."""
        if not self.screen_stack or not self.is_running:
            return
        self.refresh_status()
        self._check_idle()
        self._check_journal()

    def _check_journal(self) -> None:
        from screens.blocked import BlockedScreen

        damage = self.terminal.journal.damage
        if damage is not None and not isinstance(self.screen, BlockedScreen):
            self.terminal.sign_out()
            self.push_screen(BlockedScreen(damage.message))

    def scheduled_backup(self) -> None:
        """The scheduled journal backup, in a thread (a copy of the journal: not for the
        event loop)."""
        self.run_worker(self.terminal.backup_if_due, thread=True, group="backup",
                        exclusive=True, exit_on_error=False)

    def finish_day_close(self, report: Report) -> None:
        """A committed Z's backup and archive run, in a thread (pos.terminal)."""
        self.run_worker(functools.partial(self.terminal.finish_day_close, report),
                        thread=True, group="day-close", exit_on_error=False)

    def recheck_journal(self) -> None:
        """The journal's daily whole-file check, in its own thread (pos/journal/health.py):
        started when the last one is a day old; damage found blocks the counter."""
        self.terminal.journal.recheck_if_stale()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        if self.background:  # off in snapshots
            self.set_interval(self.FLOAT_REFRESH_SECONDS, self.refresh_floats)
            self.set_interval(max(5.0, self.settings.sync.probe_interval), self.kick_sync)
            self.terminal.probe_in_background()
            self.set_interval(1.0, self.probe_links)
            self.set_interval(self.BACKUP_CHECK_SECONDS, self.scheduled_backup)
            self.set_interval(self.BACKUP_CHECK_SECONDS, self.recheck_journal)
        self.ensure_operator()

    def on_ready(self) -> None:
        """The first frame is on the screen: start what it did not need. The float
        refresh loads the HTTP stack (~100 ms) and the demo's sandbox a web server; done
        before the first paint, the cashier would wait for both."""
        resume_gc()  # paused by the entry point for start-up (sente_pos.startup)
        for hook in self._after_first_paint:
            self.run_worker(hook, thread=True, group="startup",
                            name=getattr(hook, "__qualname__", "start-up"), exit_on_error=False)
        if self.background:
            self.refresh_floats()

    @work(group="floats", exclusive=True, exit_on_error=False)
    async def refresh_floats(self) -> None:
        """Floats for the status bar; a provider being down is shown there, not as an error."""
        try:
            await self.terminal.refresh_floats()
        except PosError as exc:
            log.info("float refresh failed: %s", exc.message)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown) and not event.is_forwarded:
            self.last_activity = time.monotonic()
            if isinstance(event, events.Key) and event is not self._held_key:
                verdict = self._feed_wedge(event)
                if verdict == "scan":
                    self._held_key = None  # it opened the burst: part of the scan
                    return  # part of a scanner burst: not a key for the screen
                await self._release_held_key()  # a held key that opened no burst goes first
                if verdict == "hold":
                    self._hold(event)
                    return
        await super().on_event(event)

    def _feed_wedge(self, event: events.Key) -> str:
        """Route keystrokes to the keyboard-wedge detector; a burst is a card scan.

        "scan" when the key belongs to a scan and must not reach the screen: the Enter
        that ends a scan, and burst keys on a screen that asks for it (the home screen,
        so a payload's digits do not pick choices). "hold" for a key that may open such
        a burst: the screen gets it once no scanner key follows within the scanner's key
        interval (30 ms, unnoticed by a person). Otherwise "pass": elsewhere burst keys
        reach the screen (a person never types that fast, but a multiplexer or a paste
        may), and the scan screen reads a burst's Enter itself."""
        if self.wedge is None:
            return "pass"
        t = event.time
        if event.key == "enter":
            payload = self.wedge.feed_enter(t)
            handler = getattr(self.screen, "on_wedge_scan", None)
            if payload and handler is not None:
                handler(payload)
                return "scan"
            return "pass"  # not a scan, or a screen that takes no scans: a plain Enter
        if event.character and event.is_printable:
            self.wedge.feed(event.character, t)
            if not getattr(self.screen, "SWALLOW_WEDGE_BURSTS", False):
                return "pass"
            return "scan" if self.wedge.in_burst(t) else "hold"
        self.wedge.reset()
        return "pass"

    def _hold(self, event: events.Key) -> None:
        assert self.wedge is not None
        self._held_key = event
        self.set_timer(self.wedge.max_interval * 1.5, lambda: self._release_held_key(event))

    async def _release_held_key(self, only: events.Key | None = None) -> None:
        """Hand the held key to the screen (``only``: if it is still that one)."""
        held = self._held_key
        if held is None or (only is not None and held is not only):
            return
        try:
            await super().on_event(held)
        finally:
            self._held_key = None

    # ------------------------------------------------------------ operators
    def ensure_operator(self, locked: bool = False) -> None:
        """Until an operator is signed in: create the first supervisor, then sign in.

        The screen is pushed at once, not from a worker, so that on a cold start the
        sign-in screen is the first frame (not the home screen, then sign-in)."""
        from screens.signin import CreateSupervisorScreen, SignInScreen

        if isinstance(self.screen, SignInScreen | CreateSupervisorScreen):
            return  # already asking

        def again(_result: object) -> None:
            self.ensure_operator(locked)

        if not self.terminal.has_operators():
            self.push_screen(CreateSupervisorScreen(self.terminal), again)
        elif self.terminal.operator is None:
            self.push_screen(SignInScreen(self.terminal, locked=locked), again)
        else:
            self.last_activity = time.monotonic()

    def lock(self, locked: bool = False) -> None:
        self.terminal.sign_out()
        self.ensure_operator(locked=locked)

    def _check_idle(self) -> None:
        from screens.signin import CreateSupervisorScreen, SignInScreen

        limit = self.settings.kiosk.idle_lock_seconds
        if limit <= 0 or self.terminal.operator is None:
            return
        from screens.dialogs import BusyScreen

        if isinstance(self.screen, BusyScreen | SignInScreen | CreateSupervisorScreen):
            return
        if time.monotonic() - self.last_activity >= limit:
            self.lock(locked=True)

    async def ask_supervisor(self, reason: str) -> Operator | None:
        """The approving supervisor, or None when cancelled. Call from a worker."""
        from screens.signin import SupervisorPinScreen

        return await self.push_screen_wait(SupervisorPinScreen(self.terminal, reason))

    # ------------------------------------------------------------ flows
    def start_task(self, key: Task, *, payload: str | None = None) -> None:
        """Run a home-screen task as the one flow worker (a new one replaces nothing).
        ``payload``: a card already scanned (the wedge on the home screen), for "card"."""
        if self.terminal.operator is None:
            return
        if any(w.group == "flow" and w.is_running for w in self.workers):
            return
        flow = self.flow(key, payload)

        async def run() -> None:
            try:
                await flow
            finally:
                self.kick_sync()

        self.run_worker(run(), group="flow", name=key, exit_on_error=False)

    def flow(self, key: Task, payload: str | None = None) -> Coroutine[Any, Any, None]:
        """The task's flow coroutine. Each flow's module is imported here, when first
        started, not at start-up (the cold start stays fast)."""
        if key == "card":
            from screens.card_payment import card_payment
            return card_payment(self, payload)
        if key == "token":
            from screens.electricity import electricity
            return electricity(self)
        if key == "bill":
            from screens.postpaid import postpaid
            return postpaid(self)
        if key == "services":
            from screens.card_services import card_services
            return card_services(self)
        if key == "journal":
            from screens.journal import journal
            return journal(self)
        if key == "reports":
            from screens.reports import reports
            return reports(self)
        if key == "sync":
            from screens.reports import sync_now
            return sync_now(self)
        if key == "settings":
            from screens.settings import settings_flow
            return settings_flow(self)
        if key == "sale":
            from screens.basket import basket_sale
            return basket_sale(self)
        if key == "shift":
            from screens.shift import shift_flow
            return shift_flow(self)
        raise ValueError(f"no such task: {key!r}")

    def kick_sync(self) -> None:
        """Send what is queued (offline sales, refunds owed) in the background."""
        if any(w.group == "bgsync" and w.is_running for w in self.workers):
            return
        try:
            if not self.terminal.status().unsynced_count and not self.terminal.hub_pending():
                return
        except Exception:  # the status is best effort here
            return
        self.background_sync()

    def probe_links(self) -> None:
        """The link monitor's probe cycle (pos.link): a quiet link is asked for its float
        every heartbeat and a down one after its back-off, so the status bar shows a
        provider going down between sales, and coming back, without a sale to find out."""
        if any(w.group in ("links", "floats") and w.is_running for w in self.workers):
            return
        try:
            if not self.terminal.probe_due():
                return
        except Exception:  # best effort, like the status
            return
        self._probe()

    @work(group="links", exit_on_error=False)
    async def _probe(self) -> None:
        try:
            back = await self.terminal.probe_links()
        except PosError as exc:
            log.info("link probe: %s", exc.message)
            return
        self.refresh_status()
        if back:  # what was queued while the link was down goes now
            self.kick_sync()

    @work(group="bgsync", exit_on_error=False)
    async def background_sync(self) -> None:
        try:
            await self.terminal.sync_now()
        except PosError as exc:
            log.info("background sync: %s", exc.message)

    async def busy(self, text: str, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` behind a 'please wait' box; its error is re-raised here."""
        from screens.dialogs import BusyScreen

        outcome = await self.push_screen_wait(BusyScreen(text, awaitable))
        return outcome.unwrap()

    async def show_message(self, title: str, message: str, severity: str = "information") -> None:
        from screens.dialogs import MessageDialog

        await self.push_screen_wait(MessageDialog(title, message, severity))

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The ONE place a failed worker lands: a plain message, the detail in the log."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, PosError):
            message = error.message
            log.warning("%s failed: %s", event.worker.name, error.__class__.__name__)
        else:
            message = GENERIC_ERROR
            log.error("%s failed", event.worker.name, exc_info=error)
        self.errors_shown.append(message)
        from screens.dialogs import MessageDialog

        self.push_screen(MessageDialog("Not completed", message, "error"))

    # ------------------------------------------------------------ actions
    def action_sync(self) -> None:
        self.start_task("sync")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "demo_menu":
            return self.demo is not None  # no such key at a real counter
        return True

    def action_demo_menu(self) -> None:
        from screens.demo import DemoMenu

        if self.demo is None or any(isinstance(s, DemoMenu) for s in self.screen_stack):
            return
        self.push_screen(DemoMenu(self.demo))

    async def action_quit(self) -> None:
        if self.kiosk:
            self._quit_with_pin()
        else:
            self._quit_if_confirmed()

    @work(group="kiosk", exclusive=True, exit_on_error=False)
    async def _quit_if_confirmed(self) -> None:
        """Outside kiosk mode ``q`` still asks: one stray key must not end a sale."""
        from screens.dialogs import ConfirmDialog

        if any(isinstance(s, ConfirmDialog) for s in self.screen_stack):
            return
        if await self.push_screen_wait(ConfirmDialog(
                "Leave Sente POS?", "Queued sales stay in the journal and are sent by the "
                "next start.", yes="Leave", no="Stay")):
            self.exit()

    @work(group="kiosk", exclusive=True, exit_on_error=False)
    async def _quit_with_pin(self) -> None:
        if await self.ask_supervisor("leave the terminal program"):
            self.exit()

    def action_suspend_process(self) -> None:
        if self.kiosk:
            self.notify("Suspending is not allowed in kiosk mode", severity="warning")
            return
        super().action_suspend_process()


def make_app(settings: Settings, terminal: Terminal, scanner: Scanner | None,
             printer: ReportPrinter | None = None, *,
             kiosk: bool = False, theme: str = "default",
             **options: Unpack[AppOptions]) -> SentePOSApp:
    """Build the app. ``options``: ``clock``, ``wedge``, ``cursor_blink``, ``pin_timeout``,
    ``id_photo_max_bytes``, ``background`` (float refresh, link probes and background
    sync), ``demo`` (the demo's controls, screens.demo). The wiring passes the
    keyboard-wedge detector (hardware) in ``wedge``."""
    return SentePOSApp(settings, terminal, scanner, printer, kiosk=kiosk, theme=theme, **options)
