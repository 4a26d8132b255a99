"""Settings (supervisor only): credentials masked, offline limits, printer, camera, kiosk, theme.

Saved with ``pos.config.save_settings`` (config.toml, mode 0600). A password
field left empty keeps the stored password; passwords are never shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from pos.config import Settings, describe_validation_error, save_settings
from pos.errors import PosError
from screens.dialogs import Step
from screens.widgets import Plain, PosInput

if TYPE_CHECKING:
    from screens.app import SentePOSApp

# (section, field, label, kind) ; kind: text | secret | int | float | bool | select:<a,b>
FIELDS: list[tuple[str, str, str, str]] = [
    ("patasente", "base_url", "Patasente URL", "text"),
    ("patasente", "username", "Patasente user", "text"),
    ("patasente", "password", "Patasente password", "secret"),
    ("pawacard", "base_url", "PawaCard URL", "text"),
    ("pawacard", "username", "PawaCard user", "text"),
    ("pawacard", "password", "PawaCard password", "secret"),
    ("offline", "enabled", "Sell offline", "bool"),
    ("offline", "max_amount", "Offline max per sale", "int"),
    ("offline", "max_total", "Offline max outstanding", "int"),
    ("offline", "max_count", "Offline max count", "int"),
    ("offline", "max_age_hours", "Offline max age (h)", "float"),
    ("printer", "kind", "Printer", "select:none,usb,serial,network,file"),
    ("printer", "columns", "Printer columns", "int"),
    ("camera", "device", "Camera device", "text"),
    ("kiosk", "idle_lock_seconds", "Idle lock (s)", "int"),
    ("kiosk", "theme", "Theme (next start)", "select:default,console"),
]


def field_id(section: str, name: str) -> str:
    return f"set-{section}-{name}"


def apply_changes(settings: Settings, values: dict[tuple[str, str], Any]) -> Settings:
    """A new validated Settings with ``values`` applied; an empty secret keeps the old one."""
    data = settings.model_dump()
    for (section, name), value in values.items():
        if isinstance(value, str) and name == "password":
            if not value:
                continue
            value = SecretStr(value)
        data[section][name] = value
    for section in ("patasente", "pawacard"):
        pw = data[section]["password"]
        if not isinstance(pw, SecretStr):
            data[section]["password"] = SecretStr(str(pw))
    return Settings.model_validate(data)


class SettingsScreen(Step[Settings]):
    """The form scrolls; its Save / Operators bar stays under it, always on the screen."""

    DEFAULT_CSS = """
    #settings-form { height: 1fr; }
    #settings-actions { height: auto; width: 100%; }
    #settings-actions Button { margin: 0 1 0 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("f2", "save", "Save"),
                Binding("f3", "operators", "Operators")]

    def __init__(self, settings: Settings, kiosk: bool) -> None:
        super().__init__("Settings (supervisor)")
        self.settings = settings
        self.kiosk = kiosk
        self.leave_kiosk = False
        self.open_operators = False

    def body(self) -> ComposeResult:
        yield Plain("", id="settings-error", classes="error-text")
        with VerticalScroll(id="settings-form"):
            for section, name, label, kind in FIELDS:
                value = getattr(getattr(self.settings, section), name)
                fid = field_id(section, name)
                if kind == "bool":
                    yield Checkbox(label, bool(value), id=fid)
                    continue
                yield Label(label)
                if kind == "secret":
                    has = bool(value.get_secret_value())
                    yield PosInput(password=True, id=fid,
                                   placeholder="******** (unchanged)" if has else "not set")
                elif kind.startswith("select:"):
                    options = kind.split(":", 1)[1].split(",")
                    yield Select([(o, o) for o in options], value=str(value), id=fid,
                                 allow_blank=False)
                else:
                    yield PosInput(str(value), id=fid)
        # Below the form, not at its end: Save stays in view however far the form scrolls
        # (a 480x320 console shows four fields).
        with Horizontal(id="settings-actions"):
            yield Button("Save (F2)", id="settings-save", variant="primary")
            yield Button("Operators (F3)", id="settings-operators")
            if self.kiosk:
                yield Button("Leave kiosk mode", id="settings-leave-kiosk")

    def values(self) -> dict[tuple[str, str], Any]:
        out: dict[tuple[str, str], Any] = {}
        for section, name, _label, kind in FIELDS:
            fid = field_id(section, name)
            if kind == "bool":
                out[(section, name)] = self.query_one(f"#{fid}", Checkbox).value
            elif kind.startswith("select:"):
                out[(section, name)] = self.query_one(f"#{fid}", Select).value
            else:
                out[(section, name)] = self.query_one(f"#{fid}", Input).value.strip()
        return out

    @on(Button.Pressed, "#settings-save")
    def action_save(self) -> None:
        try:
            new = apply_changes(self.settings, self.values())
        except ValidationError as exc:
            self.query_one("#settings-error", Static).update(describe_validation_error(exc))
            return
        try:
            save_settings(new)
        except PosError as exc:  # a read-only or full SD card: the old file is kept
            self.query_one("#settings-error", Static).update(exc.message)
            return
        self.dismiss(new)

    @on(Button.Pressed, "#settings-operators")
    def action_operators(self) -> None:
        """Operators (screens/operators.py), then Settings again (edits not saved with
        F2 first are dropped)."""
        self.open_operators = True
        self.dismiss(None)

    @on(Button.Pressed, "#settings-leave-kiosk")
    def _leave_kiosk(self) -> None:
        self.leave_kiosk = True
        self.dismiss(None)


async def settings_flow(app: SentePOSApp) -> None:
    supervisor = await app.ask_supervisor("change settings")
    if supervisor is None:
        return
    while True:
        screen = SettingsScreen(app.settings, app.kiosk)
        new = await app.push_screen_wait(screen)
        if not screen.open_operators:
            break
        from screens.operators import operators_flow

        await operators_flow(app, supervisor)
        if app.terminal.operator is None:  # signed out (disabled): not back to settings
            return
    if screen.leave_kiosk:
        app.kiosk = False
        app.notify("Kiosk mode is off until the next start")
        return
    if new is not None:
        app.settings = new
        app.notify("Settings saved. Connections and theme change at the next start.")
