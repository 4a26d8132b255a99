"""What every use case needs, passed in (no globals): settings, journal, clients, links."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pos.config import Settings
from pos.link import LinkMonitor

if TYPE_CHECKING:
    from pos.journal import Journal
    from pos.providers.patasente import PatasenteClient
    from pos.providers.pawacard import PawaCardClient


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Context:
    settings: Settings
    journal: Journal
    patasente: PatasenteClient
    pawacard: PawaCardClient
    link: LinkMonitor = field(default_factory=LinkMonitor)
    operator: str = "system"
    clock: Callable[[], dt.datetime] = utcnow

    @property
    def terminal_id(self) -> str:
        return self.settings.terminal_id

    @property
    def card_currency(self) -> str:
        return self.settings.card_currency

    @property
    def power_currency(self) -> str:
        return self.settings.pawacard.currency.upper()
