"""The demo's own screens: the card held up to the simulated camera, the providers' links.

Only ``sente-pos demo`` has them: its wiring (``sente_pos.demo``) passes an object
with the :class:`DemoControls` interface into the app, which drives the built-in
sandbox and the simulated camera. The screens never import the sandbox; a real
counter gets no controls, so no demo key does anything there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from screens.dialogs import Step
from screens.widgets import Plain, plain_label

if TYPE_CHECKING:
    from screens.app import SentePOSApp


@dataclass(frozen=True)
class CameraCard:
    """One demo card, as the picker lists it."""

    label: str  # "Debit Card 1613*****65219, Ivan Yiga"
    state: str  # "active", "locked", "expired", "gift, inactive", ...
    detail: str  # "PIN 1234, UGX 150,000"
    note: str  # what the card is for in the demo (the sandbox's description)


@dataclass(frozen=True)
class LinkView:
    """One provider's link as the demo set it (not as the terminal sees it)."""

    key: str  # "patasente" | "pawacard"
    name: str  # "Patasente"
    serves: str  # what goes through it: "cards", "electricity"
    down: str | None  # None: up; else how it fails ("connection dropped", ...)


class DemoControls(Protocol):
    """What the demo's screens drive; ``sente_pos.demo.SandboxDemo`` implements it."""

    #: The failure form the next "down" uses, one of :attr:`failure_forms`.
    failure_form: str
    #: How often the terminal probes a quiet link, for the menu's note ("5 s").
    probe_every: str

    @property
    def failure_forms(self) -> Sequence[str]: ...

    @property
    def chosen(self) -> int:
        """The index of the card last held up to the camera."""
        ...

    def cards(self) -> Sequence[CameraCard]: ...

    def show_card(self, index: int) -> CameraCard:
        """Hold card ``index`` up to the simulated camera (read at once on the scan
        screen, else when the scan screen next opens)."""
        ...

    def links(self) -> Sequence[LinkView]: ...

    def set_link(self, key: str, up: bool) -> None:
        """Take provider ``key``'s link down (in :attr:`failure_form`) or bring it back."""
        ...


async def pick_camera_card(app: SentePOSApp, controls: DemoControls) -> CameraCard | None:
    """The picker, then the chosen card held up to the camera. Call from a worker."""
    index = await app.push_screen_wait(CameraCardPicker(controls))
    if index is None:
        return None
    return controls.show_card(index)


#: Narrower than this (columns), the picker's lines are packed tighter.
NARROW_BELOW = 80


class CameraCardPicker(Step[int]):
    """The sandbox's demo cards by state; a digit or Enter holds one up to the camera."""

    TITLE_TEXT = "Demo: the card to hold up to the camera"
    DEFAULT_CSS = """
    CameraCardPicker.-short #demo-cards { border: none; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"),
                Binding("enter", "pick", "Hold up", show=True)]

    def __init__(self, controls: DemoControls) -> None:
        super().__init__()
        self.controls = controls
        self.choices = list(controls.cards())
        self._narrow = False

    def body(self) -> ComposeResult:
        self._narrow = self._is_narrow()
        yield OptionList(*(Option(line, id=f"card-{i}")
                           for i, line in enumerate(self._lines(), start=1)),
                         id="demo-cards")
        yield Plain("", id="demo-card-note", classes="step-note")

    def _is_narrow(self) -> bool:
        return self.app.size.width < NARROW_BELOW

    def _lines(self) -> list[Content]:
        """One line a card, in columns; on a narrow screen (a 480x320 console, 60
        columns) one space between them and the card's number without its kind."""
        gap = " " if self._narrow else "  "
        labels = [c.label.rsplit(" ", 1)[-1] if self._narrow else c.label
                  for c in self.choices]
        width = max((len(c.state) for c in self.choices), default=0)
        label = max((len(text) for text in labels), default=0)
        return [plain_label(f"{i}{gap}{c.state:<{width}}{gap}{text:<{label}}{gap}{c.detail}")
                for i, (c, text) in enumerate(zip(self.choices, labels, strict=True),
                                               start=1)]

    def on_resize(self) -> None:
        if self._is_narrow() != self._narrow:
            self._narrow = not self._narrow
            cards = self.query_one("#demo-cards", OptionList)
            for i, line in enumerate(self._lines()):
                cards.replace_option_prompt_at_index(i, line)

    def on_mount(self) -> None:
        cards = self.query_one("#demo-cards", OptionList)
        cards.highlighted = min(max(self.controls.chosen, 0), max(len(self.choices) - 1, 0))
        cards.focus()
        self._note(cards.highlighted)

    def _note(self, index: int | None) -> None:
        text = self.choices[index].note if index is not None and self.choices else ""
        self.query_one("#demo-card-note", Static).update(text)

    @on(OptionList.OptionHighlighted, "#demo-cards")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._note(event.option_index)

    @on(OptionList.OptionSelected, "#demo-cards")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option_index)

    def action_pick(self) -> None:
        index = self.query_one("#demo-cards", OptionList).highlighted
        if index is not None:
            self.dismiss(index)

    def on_key(self, event: events.Key) -> None:
        if event.character and event.character.isdigit():
            n = int(event.character)
            if 1 <= n <= len(self.choices):
                event.stop()
                self.dismiss(n - 1)


class DemoMenu(Step[None]):
    """Take each provider's link down and back; choose the card for the camera.

    The status bar above is the terminal's own view: it turns OFFLINE at the
    terminal's next link probe, not when the menu is used."""

    TITLE_TEXT = "Demo"
    DEFAULT_CSS = """
    DemoMenu.-short #demo-note { display: none; }
    DemoMenu.-short #demo-actions { border: none; }
    """
    BINDINGS = [Binding("escape", "cancel", "Close")]

    def __init__(self, controls: DemoControls) -> None:
        super().__init__()
        self.controls = controls

    def body(self) -> ComposeResult:
        yield Plain(f"A link taken down here fails as a mobile link does. The status bar "
                    f"turns OFFLINE at the terminal's next probe (a quiet link is checked "
                    f"every {self.controls.probe_every}); sales then queue, and sync by "
                    f"themselves once the link is back.", id="demo-note", classes="step-note")
        yield Plain("", id="demo-links")
        yield OptionList(*(Option(plain_label(f"{i}  {label}"), id=f"demo-{i}")
                           for i, label in enumerate(self._labels(), start=1)),
                         id="demo-actions")

    def on_mount(self) -> None:
        self._refresh()
        self.query_one("#demo-actions", OptionList).focus()
        self.set_interval(1.0, self._refresh)

    def _labels(self) -> list[str]:
        links = {lv.key: lv for lv in self.controls.links()}
        cards = self.controls.cards()
        chosen = cards[self.controls.chosen] if cards else None

        def toggle(key: str) -> str:
            lv = links[key]
            return f"{lv.name} link {'back up' if lv.down else 'down'}"

        return [toggle("patasente"), toggle("pawacard"), "Both links down", "Both links up",
                f"How a link fails: {self.controls.failure_form}",
                "Card for the camera: " + (f"{chosen.label} ({chosen.state})" if chosen
                                           else "none")]

    def _refresh(self) -> None:
        actions = self.query_one("#demo-actions", OptionList)
        for i, label in enumerate(self._labels()):
            actions.replace_option_prompt_at_index(i, plain_label(f"{i + 1}  {label}"))
        app = self.app
        try:
            status = app.current_status()
            seen = f"{status.link}, {status.unsynced_count} queued"
        except Exception:  # the status is best effort here
            seen = "unknown"
        lines = [f"{lv.name + ' (' + lv.serves + ')':<24}"
                 + (f"DOWN: {lv.down}" if lv.down else "up") for lv in self.controls.links()]
        lines.append(f"{'The terminal sees':<24}{seen}")
        self.query_one("#demo-links", Static).update("\n".join(lines))

    def _do(self, n: int) -> None:
        links = {lv.key: lv for lv in self.controls.links()}
        if n in (1, 2):
            key = "patasente" if n == 1 else "pawacard"
            self.controls.set_link(key, up=links[key].down is not None)
        elif n in (3, 4):
            for key in links:
                self.controls.set_link(key, up=n == 4)
        elif n == 5:
            forms = list(self.controls.failure_forms)
            at = forms.index(self.controls.failure_form) \
                if self.controls.failure_form in forms else -1
            self.controls.failure_form = forms[(at + 1) % len(forms)]
        elif n == 6:
            self.run_worker(self._pick(), group="demo", exit_on_error=False)
            return
        self._refresh()

    async def _pick(self) -> None:
        card = await pick_camera_card(self.app, self.controls)
        if card is not None:
            self.notify(f"Held up to the camera: {card.label}", title="Demo")
        self._refresh()

    @on(OptionList.OptionSelected, "#demo-actions")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._do(event.option_index + 1)

    def on_key(self, event: events.Key) -> None:
        if event.character and event.character in "123456":
            event.stop()
            self._do(int(event.character))
