"""Settings: ``config.toml`` in the data directory, overridden by ``SENTE_POS_*`` env vars.

Precedence (highest first): constructor arguments, environment variables
(``SENTE_POS_PAWACARD__BASE_URL`` ...), ``$SENTE_POS_HOME/config.toml``, defaults.
Amounts in limits are integer minor units of the currency named beside them
(UGX has no minor unit, so they read as shillings).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

APP_NAME = "sente-pos"


def data_home() -> Path:
    """``$SENTE_POS_HOME`` or the platform's user data directory."""
    env = os.environ.get("SENTE_POS_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs  # only without $SENTE_POS_HOME (the kiosk sets it): ~5 ms

    return Path(platformdirs.user_data_dir(APP_NAME))


def ensure_home(home: Path | None = None) -> Path:
    """Create the data directory with mode 0700 (and tighten it if it exists)."""
    home = home or data_home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(home.stat().st_mode) & 0o077:
        home.chmod(0o700)
    return home


def write_secret_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 from the first byte."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    path.chmod(0o600)


class PatasenteSettings(BaseModel):
    base_url: str = "https://demo.patasente.com/phantom-api/"
    """Patasente API root (``.../phantom-api/``)."""
    username: str = ""
    """Merchant code, e-mail or phone (2567...) used to log in."""
    password: SecretStr = SecretStr("")
    """Merchant password. Never logged or printed."""
    default_wallet: str = "Current Account"
    """Wallet debited when the card has several and the cashier does not choose."""
    connect_timeout: float = 5.0
    """Seconds to establish a connection; a failure here means nothing was sent."""
    read_timeout: float = 20.0
    """Seconds to wait for an answer once the request is sent."""
    deadline: float | None = None
    """Total seconds a request may take, connection to last byte (a provider trickling
    an answer never ends one); default: connect + read timeout + 5."""
    max_answer_bytes: int = 2_000_000
    """Largest answer read; a larger one is a failed answer, never read whole."""


class PawaCardSettings(BaseModel):
    base_url: str = "https://app.pawacard.co.ke:8586/v3/"
    """PawaCard API root including the version (``.../v3/``)."""
    username: str = ""
    """Vendor user name."""
    password: SecretStr = SecretStr("")
    """Vendor password. Never logged or printed."""
    currency: str = "KES"
    """Currency of PawaCard amounts and float."""
    connect_timeout: float = 5.0
    """Seconds to establish a connection."""
    read_timeout: float = 30.0
    """Seconds to wait for a vend / bill answer."""
    deadline: float | None = None
    """Total seconds a request may take, connection to last byte; default: connect +
    read timeout + 5."""
    max_answer_bytes: int = 2_000_000
    """Largest answer read; a larger one is a failed answer, never read whole."""
    poll_interval: float = 3.0
    """Seconds between status polls of a pending vend or bill."""
    max_polls: int = 20
    """Polls in the foreground before a pending sale is left to the sync worker."""


class OfflineLimits(BaseModel):
    enabled: bool = True
    """Accept card debits and cash electricity sales while the link is down."""
    max_amount: int = 50_000
    """Largest single offline card debit (minor units of the card currency)."""
    max_total: int = 300_000
    """Total outstanding offline card debits on this terminal."""
    max_count: int = 20
    """Number of outstanding offline card debits on this terminal."""
    max_age_hours: float = 24.0
    """An offline debit older than this is no longer sent; it is flagged instead."""
    per_card_max_total: int = 100_000
    """Cumulative outstanding offline debits on one card."""
    per_card_max_consecutive: int = 3
    """Consecutive offline debits on one card before it must be seen online again."""
    allow_unknown_cards: bool = False
    """Accept offline debits on cards this terminal has never seen online."""
    vend_max_amount: int = 500_000
    """Largest queued cash electricity sale (minor units of the PawaCard currency)."""
    vend_max_count: int = 50
    """Number of queued cash electricity sales."""


class SaleLimits(BaseModel):
    """Ceilings on what one sale may be, online or not: a typo or an odd input is refused
    before anything is journaled or sent."""

    card_max: int = 10_000_000
    """Largest card payment, top-up or refund (minor units of the card currency)."""
    power_max: int = 10_000_000
    """Largest electricity sale or bill (minor units of the PawaCard currency)."""


class ReconcileSettings(BaseModel):
    """How a money request whose answer was lost is settled (DESIGN.md invariants 2, 10)."""

    settle_seconds: float = 180.0
    """A request whose answer was lost is sent again only when every signal says it
    never happened AND this long has passed since it left (a slow provider may still be
    working on it; Patasente does not de-duplicate by ref)."""
    confirm_seconds: float = 25.0
    """How long the counter keeps asking, with the customer present, before it leaves a
    lost answer to the background sync."""
    confirm_interval: float = 3.0
    """Seconds between questions while confirming at the counter."""
    max_sends: int = 2
    """A money request leaves at most this many times; then a person decides."""


class SyncSettings(BaseModel):
    concurrency: int = 4
    """Requests in flight at once while draining the outbox."""
    backoff_base: float = 2.0
    """First retry delay in seconds; doubles on each failure, with jitter."""
    backoff_max: float = 300.0
    """Longest retry delay in seconds."""
    meter_throttle_seconds: float = 300.0
    """PawaCard allows one transaction per meter in this many seconds."""
    probe_interval: float = 15.0
    """Seconds between link probes while offline (grows with backoff)."""
    sending_lease_seconds: float = 300.0
    """A row marked sending is left alone by other syncs this long (its sender may be alive)."""
    abandon_created_after: float = 60.0
    """A row journaled but never sent (a crash in between) is cancelled after this many
    seconds (at once when the process that made it is gone)."""
    max_attempts: int = 30
    """Attempts on one item before it stops retrying and is flagged for a supervisor."""
    max_age_hours: float = 72.0
    """An item still unsettled after this long is flagged for a supervisor."""


class StorageSettings(BaseModel):
    min_free_mb: float = 20.0
    """A sale is not started with less free space than this where the journal lives."""
    reserve_mb: float = 4.0
    """Space kept in a reserve file beside the journal and released when the disk is
    full, so the answer to a request already sent can always be recorded."""


class PrinterSettings(BaseModel):
    kind: Literal["none", "usb", "serial", "network", "file"] = "none"
    """Where receipts go: none (show only), USB, serial, network (port 9100) or a file."""
    usb_vendor: int = 0x0416
    """USB vendor id of the printer."""
    usb_product: int = 0x5011
    """USB product id of the printer."""
    serial_device: str = "/dev/ttyUSB0"
    """Serial device of the printer."""
    serial_baudrate: int = 9600
    """Serial speed."""
    host: str = "127.0.0.1"
    """Network printer address."""
    port: int = 9100
    """Network printer port."""
    file_path: str = "/dev/usb/lp0"
    """Device or file written by the ``file`` printer."""
    columns: int = 32
    """Characters per line: 32 on 58 mm paper, 48 on 80 mm."""


class CameraSettings(BaseModel):
    device: str = "0"
    """OpenCV capture device: an index (``0``) or a path (``/dev/video0``)."""
    width: int = 640
    """Capture width in pixels."""
    height: int = 480
    """Capture height in pixels."""
    fps: int = 15
    """Capture frame rate."""


class KioskSettings(BaseModel):
    enabled: bool = False
    """Kiosk mode: nothing quits or suspends the app without the supervisor PIN."""
    idle_lock_seconds: int = 120
    """Lock the cashier session after this many idle seconds."""
    theme: Literal["default", "console"] = "default"
    """``console`` is 16 colours, plain borders, no emoji: for the Linux text console."""


class Settings(BaseSettings):
    """Everything the terminal is configured with."""

    model_config = SettingsConfigDict(
        env_prefix="SENTE_POS_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    terminal_id: str = "POS-001"
    """Printed on receipts and journaled with every transaction."""
    terminal_number: int | None = None
    """0-9999, unique among the merchant's terminals: carried by every transaction ref
    so terminals on one provider account never collide. Default: the digits of
    ``terminal_id`` (POS-001 -> 1)."""
    merchant_name: str = "Sente Shop"
    """Receipt header."""
    card_currency: str = "UGX"
    """Currency of Sente / Patasente card amounts."""
    low_float_warning: int = 20_000
    """Warn in the status bar when a provider float falls below this (major units)."""
    log_level: str = "INFO"
    """Log level of ``sente-pos.log`` in the data directory."""
    patasente: PatasenteSettings = Field(default_factory=PatasenteSettings)
    pawacard: PawaCardSettings = Field(default_factory=PawaCardSettings)
    offline: OfflineLimits = Field(default_factory=OfflineLimits)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    limits: SaleLimits = Field(default_factory=SaleLimits)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    printer: PrinterSettings = Field(default_factory=PrinterSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    kiosk: KioskSettings = Field(default_factory=KioskSettings)

    @field_validator("card_currency")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @field_validator("terminal_number")
    @classmethod
    def _terminal_number(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v <= 9999:
            raise ValueError("terminal_number is 0 to 9999")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=data_home() / "config.toml")
        return (init_settings, env_settings, toml)

    @property
    def home(self) -> Path:
        return data_home()

    @property
    def ref_terminal_number(self) -> int:
        """The terminal number refs carry (see ``terminal_number``)."""
        if self.terminal_number is not None:
            return self.terminal_number
        digits = "".join(c for c in self.terminal_id if c.isascii() and c.isdigit())
        return int(digits[-4:]) if digits else 0

    @property
    def journal_path(self) -> Path:
        return self.home / "journal.db"

    @property
    def device_key_path(self) -> Path:
        return self.home / "device.key"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data with every secret masked."""
        data = self.model_dump(mode="json")
        for section in ("patasente", "pawacard"):
            pw = getattr(self, section).password.get_secret_value()
            data[section]["password"] = "********" if pw else ""
        data["home"] = str(self.home)
        return data


def load_settings(**overrides: Any) -> Settings:
    """Load settings; a broken config.toml becomes a clear error, not a traceback."""
    import tomllib

    from pos.errors import InputError

    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config.toml is not valid TOML: {exc}") from exc
    except ValueError as exc:  # pydantic.ValidationError
        raise InputError(f"Invalid settings: {exc}") from exc


def save_settings(settings: Settings) -> Path:
    """Write ``config.toml`` (mode 0600: it holds provider passwords)."""
    home = ensure_home()
    data = settings.model_dump(mode="python")
    for section in ("patasente", "pawacard"):
        data[section]["password"] = getattr(settings, section).password.get_secret_value()
    path = home / "config.toml"
    write_secret_file(path, _to_toml(data).encode())
    return path


def _to_toml(data: dict[str, Any]) -> str:
    """A minimal TOML writer for our flat two-level settings."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for name, table in tables.items():
        lines.append("")
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'
