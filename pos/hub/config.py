"""Settings of the back office (hub): the ``[hub]`` table of ``config.toml`` in the data
directory, overridden by ``SENTE_POS_HUB__*`` environment variables (``__`` between levels,
e.g. ``SENTE_POS_HUB__DB_URL``, ``SENTE_POS_HUB__PATASCORE__API_KEY``).

The terminal's :class:`pos.config.Settings` does not carry these: a counter only needs the
credential written by ``sente-pos hub enrol`` (see :mod:`pos.hubsync`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pos.config import data_home


class PatascoreSettings(BaseModel):
    enabled: bool = True
    """Verify each merchant's business registration before its first terminal enrols."""
    base_url: str = "https://dev.api.patascore.com/"
    """API root (document 000: dev.api.patascore.com for the testbed, api.patascore.com live)."""
    api_key: SecretStr = SecretStr("")
    """Credential sent with every request. Never logged or printed."""
    # Document 000 lists an "Authentication" page and document 001 a "Business
    # Verification" endpoint, but neither text is part of the documents we have: the
    # header, its scheme and the submit path are settings, with these defaults.
    auth_header: str = "Authorization"
    """Header carrying the credential (document 000 omits its authentication page)."""
    auth_scheme: str = "Bearer"
    """Prefix of the credential in that header; empty for the bare key."""
    submit_path: str = "api/v1/business/verification"
    """Where a verification is submitted (document 001 names only the results endpoint)."""
    submit_field: str = "registration_number"
    """JSON field of the submit body holding the registration number."""
    results_path: str = "api/v1/business/results"
    """Document 001: ``POST {{BASE_URL}}/api/v1/business/results?batch_id=``."""
    poll_interval: float = 150.0
    """Seconds between polls of a pending search: longer than document 001's 2-minute
    duplicate window, so a poll is never refused as a duplicate (429)."""
    retry_later: float = 600.0
    """Seconds before trying again after 503 (BRS down) or a transport failure."""
    connect_timeout: float = 5.0
    """Seconds to connect."""
    read_timeout: float = 30.0
    """Seconds to wait for an answer."""


class ParticeepSettings(BaseModel):
    enabled: bool = False
    """Forward each settled sale to the merchant's Particeep account, accept its webhooks."""
    base_url: str = "https://test-api.particeep.com/v1/"
    """Document 004: ``https://test-api.particeep.com/v1`` (test), ``https://api.particeep.com/v1``."""
    api_key: str = ""
    """API key (public: it travels in the Authorization header)."""
    api_secret: SecretStr = SecretStr("")
    """API secret: signs every request and verifies every webhook. Never logged."""
    # Document 004 lists no resource paths ("Endpoints" is empty): they are settings.
    transaction_path: str = "transaction"
    """Where a transaction is created (PUT) and read back (GET ``<path>/<id>``)."""
    transaction_search_path: str = "transactions/search"
    """Paged listing (``limit`` / ``offset`` / ``total_size``) to find a sale already sent."""
    webhook_path: str = "webhook"
    """Where a webhook is registered (PUT ``{"name", "url"}``, document 004 "Being Reactive")."""
    webhook_url: str = ""
    """This hub's public URL of ``/webhooks/particeep``; registered at start when set."""
    webhook_events: list[str] = ["transaction_paid"]
    """Events to be called back for (document 004: one URL per event)."""
    webhook_skew_seconds: float = 300.0
    """A webhook whose ``DateTime`` is further than this from our clock is refused."""
    connect_timeout: float = 5.0
    """Seconds to connect."""
    read_timeout: float = 20.0
    """Seconds to wait for an answer."""
    retry_max: float = 900.0
    """Longest wait between attempts to forward one sale."""


class HubSettings(BaseSettings):
    """Everything the hub service is configured with."""

    model_config = SettingsConfigDict(env_prefix="SENTE_POS_HUB__", env_nested_delimiter="__",
                                      extra="ignore")

    db_url: str = ""
    """SQLAlchemy URL; empty: SQLite ``hub.db`` in the data directory. A fleet uses
    ``postgresql+psycopg://user:password@host/db``."""
    host: str = "127.0.0.1"
    """Address the web server binds."""
    port: int = 8780
    """Port the web server binds."""
    timezone: str = "Africa/Kampala"
    """The merchant's local time zone: "today" and the hourly chart use it."""
    session_hours: float = 12.0
    """A dashboard sign-in lasts this long."""
    enrol_code_hours: float = 24.0
    """A one-time enrolment code is valid this long."""
    upload_max_items: int = 2000
    """Largest number of rows (transactions + events + Z reports) in one upload."""
    cookie_secure: bool = False
    """Mark the session cookie Secure (behind TLS); off for the loopback demo."""
    worker_interval: float = 2.0
    """Seconds between passes of the background work (KYB polls, Particeep forwarding)."""
    patascore: PatascoreSettings = Field(default_factory=PatascoreSettings)
    particeep: ParticeepSettings = Field(default_factory=ParticeepSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings,
                InitSettingsSource(settings_cls, _toml_hub_table(data_home() / "config.toml")))

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{data_home() / 'hub.db'}"


def _toml_hub_table(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        table = tomllib.load(fh).get("hub", {})
    return table if isinstance(table, dict) else {}


def load_hub_settings(**overrides: Any) -> HubSettings:
    from pos.errors import InputError

    try:
        return HubSettings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config.toml is not valid TOML: {exc}") from exc
    except ValueError as exc:
        raise InputError(f"Invalid hub settings: {exc}") from exc
