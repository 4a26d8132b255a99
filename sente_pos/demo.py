"""The demo's controls (screens.demo.DemoControls) over the built-in sandbox and the
simulated camera: which demo card is held up to the camera, and each provider's link
taken down and back with the sandbox's fault switches (pos.sandbox.faults).

Wiring only, like the rest of ``sente_pos``: ``sente-pos run`` never builds one, so
a real counter has no demo keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pos.sandbox import data
from screens.demo import CameraCard, LinkView

#: How a link taken down fails: the forms a mobile link fails in that mean "offline"
#: (DESIGN.md invariant 9), each a sandbox fault mode that strikes before the provider
#: does anything. A refused connection cannot be told apart per provider here (both
#: simulators share one port), so the reset stands for it.
FAILURE_FORMS: dict[str, str] = {
    "connection dropped": "drop",
    "connection reset": "reset",
    "503 Service Unavailable": "http503",
    "no answer (time-out)": "hang",
}
#: The providers' links: key (the sandbox's provider name), name, what it carries.
LINKS: tuple[tuple[str, str, str], ...] = (
    ("patasente", "Patasente", "cards"),
    ("pawacard", "PawaCard", "electricity"),
)
#: Below this a card cannot pay a small sale (UGX).
LOW_BALANCE = 1_000


def card_state(card: data.DemoCard, today: dt.date) -> str:
    """A short word for what the card will do at the counter."""
    month, year = (int(part) for part in card.expiry.split("/"))
    if (2000 + year, month) < (today.year, today.month):
        return "expired"
    if card.status == "locked":
        return "locked"
    if card.status != "active":
        return "Sente, new (KYC)" if card.sente else "gift, inactive"
    if data.CURRENT not in card.wallets:
        return "credit only"
    if not card.has_pin:
        return "active, no PIN"
    if card.balance < LOW_BALANCE:
        return "low balance"
    return "active"


def camera_card(card: data.DemoCard, today: dt.date) -> CameraCard:
    held = (f"UGX {card.balance:,}" if data.CURRENT in card.wallets
            else f"UGX {card.available_credit:,} credit")
    pin = f"PIN {card.pin}" if card.pin else "no PIN"
    return CameraCard(label=f"{card.card_type.removesuffix(' Card')} ..{card.card_no[-4:]}",
                      state=card_state(card, today), detail=f"{pin}, {held}", note=card.role)


class SandboxDemo:
    """The demo's cards and links. Called on the UI thread; the fault registry and the
    camera's queue are thread-safe."""

    def __init__(self, sandbox: Any, camera: Any, *, probe_every: float,
                 today: dt.date | None = None) -> None:
        self.sandbox = sandbox
        self.camera = camera
        self.failure_form = next(iter(FAILURE_FORMS))
        self.probe_every = f"{probe_every:g} s"
        day = today or dt.date.today()
        self._cards = [camera_card(c, day) for c in data.DEMO_CARDS]
        self._payloads = [c.payload for c in data.DEMO_CARDS]
        self._chosen = 0
        self._down: dict[str, tuple[str, int]] = {}  # key -> (form, the fault's id)

    @property
    def failure_forms(self) -> Sequence[str]:
        return tuple(FAILURE_FORMS)

    @property
    def chosen(self) -> int:
        return self._chosen

    def cards(self) -> Sequence[CameraCard]:
        return self._cards

    def show_card(self, index: int) -> CameraCard:
        if not 0 <= index < len(self._cards):
            raise IndexError(f"no demo card {index}")
        self._chosen = index
        self.camera.show(self._payloads[index], replace=True)
        return self._cards[index]

    def links(self) -> Sequence[LinkView]:
        return [LinkView(key, name, serves, self._form_if_down(key))
                for key, name, serves in LINKS]

    def _form_if_down(self, key: str) -> str | None:
        down = self._down.get(key)
        if down is None:
            return None
        form, fault_id = down
        if not any(f.id == fault_id for f in self.sandbox.faults.active()):
            del self._down[key]  # cleared elsewhere (the control endpoint, a reset)
            return None
        return form

    def set_link(self, key: str, up: bool) -> None:
        if key not in {k for k, _, _ in LINKS}:
            raise ValueError(f"no provider link {key!r}")
        if self.failure_form not in FAILURE_FORMS:
            raise ValueError(f"no failure form {self.failure_form!r}")
        down = self._down.pop(key, None)
        if down is not None:
            self.sandbox.faults.remove(down[1])
        if not up:
            fault = self.sandbox.faults.add(key, "*", FAILURE_FORMS[self.failure_form],
                                            count=None)
            self._down[key] = (self.failure_form, fault.id)
