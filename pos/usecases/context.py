"""What every use case needs, passed in (no globals): settings, journal, clients, links."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pos.clock import DeviceClock
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
    """The provider clients are built from the settings on first use (or passed in):
    the counter's first screen sends nothing, and the clients' modules cost start-up."""

    settings: Settings
    journal: Journal
    link: LinkMonitor = field(default_factory=LinkMonitor)
    operator: str = "system"
    clock: Callable[[], dt.datetime] = utcnow
    device: DeviceClock = None  # type: ignore[assignment]  # filled in __post_init__
    """The device's clocks (wall, boot-relative, synchronised?); default: the real ones
    with ``clock`` as the wall clock."""
    _patasente: PatasenteClient | None = field(default=None, repr=False)
    _pawacard: PawaCardClient | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.device is None:
            self.device = DeviceClock(wall=self.clock)
        self.journal.device = self.device

    @property
    def patasente(self) -> PatasenteClient:
        if self._patasente is None:
            from pos.providers.patasente import PatasenteClient

            self._patasente = PatasenteClient(self.settings.patasente,
                                              self.settings.card_currency)
        return self._patasente

    @patasente.setter
    def patasente(self, client: PatasenteClient) -> None:
        self._patasente = client

    @property
    def pawacard(self) -> PawaCardClient:
        if self._pawacard is None:
            from pos.providers.pawacard import PawaCardClient

            self._pawacard = PawaCardClient(self.settings.pawacard)
        return self._pawacard

    @pawacard.setter
    def pawacard(self, client: PawaCardClient) -> None:
        self._pawacard = client

    async def aclose_clients(self) -> None:
        """Close the clients that were built (building one just to close it is waste).
        Best effort: one failing to close does not keep the other open."""
        for client in (self._patasente, self._pawacard):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    def ensure_room(self) -> None:
        """Refuse to start a sale whose answer the journal could not record."""
        st = self.settings.storage
        self.journal.ensure_room(int(st.min_free_mb * 1_000_000), int(st.reserve_mb * 1_000_000))

    @property
    def terminal_id(self) -> str:
        return self.settings.terminal_id

    @property
    def card_currency(self) -> str:
        return self.settings.card_currency

    @property
    def power_currency(self) -> str:
        return self.settings.pawacard.currency.upper()
