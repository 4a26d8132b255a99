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

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pos.errors import PosError

APP_NAME = "sente-pos"


def data_home() -> Path:
    """``$SENTE_POS_HOME`` or the platform's user data directory."""
    env = os.environ.get("SENTE_POS_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs  # only without $SENTE_POS_HOME (the kiosk sets it): ~5 ms

    return Path(platformdirs.user_data_dir(APP_NAME))


class DataDirError(PosError):
    """The data directory cannot be created or written (read-only or full SD card)."""


def data_dir_error(home: Path, exc: OSError) -> DataDirError:
    """A message the cashier and the technician can act on, for an OSError in ``home``."""
    import errno

    why = exc.strerror or str(exc)
    hint = {
        errno.EROFS: "the file system is read-only (an SD card error remounts it so): "
                     "check the card, then restart",
        errno.ENOSPC: "the disk is full: free space, then restart",
        errno.EDQUOT: "the disk quota is used up: free space, then restart",
        errno.EACCES: "this user may not write there: check the owner and mode (0700)",
        errno.EPERM: "this user may not write there: check the owner and mode (0700)",
    }.get(exc.errno or 0, "check the data directory")
    return DataDirError(f"The data directory {home} cannot be used ({why}): {hint}. "
                        "Nothing was sold.")


def ensure_home(home: Path | None = None) -> Path:
    """Create the data directory with mode 0700 (and tighten it if it exists).

    Raises :class:`DataDirError` (a clear message) when it cannot."""
    home = home or data_home()
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_IMODE(home.stat().st_mode) & 0o077:
            home.chmod(0o700)
    except OSError as exc:
        raise data_dir_error(home, exc) from exc
    return home


def write_secret_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 from the first byte.

    A failure (disk full, read-only file system) leaves the old file as it was and no
    temporary file behind; the OSError goes to the caller."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    path.chmod(0o600)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a power cut must not undo it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------ value checks
# Kept as field validators listed under each model (not as constraints on every field
# line) so that what each check means is written once, here.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _positive(v: float) -> float:
    """Timeouts, intervals, leases: a zero or negative one would spin or never wait."""
    if v <= 0:
        raise ValueError("must be greater than 0")
    return v


def _not_negative(v: float) -> float:
    """Limits and counts where 0 means 'none' / 'off'."""
    if v < 0:
        raise ValueError("must be 0 or more (0 means none / off)")
    return v


def _at_least_one(v: int) -> int:
    if v < 1:
        raise ValueError("must be at least 1")
    return v


def _positive_or_unset(v: float | None) -> float | None:
    return None if v is None else _positive(v)


def _answer_cap(v: int) -> int:
    if v < 1024:
        raise ValueError("must be at least 1024 bytes")
    return v


def _http_url(v: str) -> str:
    from urllib.parse import urlsplit

    v = v.strip()
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return v


def _currency(v: str) -> str:
    v = v.strip().upper()
    if len(v) != 3 or not v.isascii() or not v.isalpha():
        raise ValueError("must be a 3-letter currency code such as UGX or KES")
    return v


def _port(v: int) -> int:
    if not 1 <= v <= 65535:
        raise ValueError("must be a TCP port (1 to 65535)")
    return v


def _usb_id(v: int) -> int:
    if not 0 <= v <= 0xFFFF:
        raise ValueError("must be a 16-bit USB id (0 to 0xFFFF)")
    return v


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
    quote_seconds: float = 120.0
    """How long a currency conversion shown to the customer holds; an older one is asked
    again and shown again before the PIN."""
    retry_attempts: int = 3
    """Attempts in all for a request that moves no money (1 = no retry)."""
    retry_wait: float = 0.3
    """First wait in seconds between those attempts; doubles each time, at most 2 s."""

    _url = field_validator("base_url")(_http_url)
    _timeouts = field_validator("connect_timeout", "read_timeout", "quote_seconds")(_positive)
    _deadline = field_validator("deadline")(_positive_or_unset)
    _cap = field_validator("max_answer_bytes")(_answer_cap)
    _retries = field_validator("retry_attempts")(_at_least_one)
    _retry_wait = field_validator("retry_wait")(_not_negative)


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
    retry_attempts: int = 3
    """Attempts in all for a request that moves no money (1 = no retry)."""
    retry_wait: float = 0.3
    """First wait in seconds between those attempts; doubles each time, at most 2 s."""
    poll_interval: float = 3.0
    """Seconds between status polls of a pending vend or bill."""
    max_polls: int = 20
    """Polls in the foreground before a pending sale is left to the sync worker."""

    _url = field_validator("base_url")(_http_url)
    _currency = field_validator("currency")(_currency)
    _timeouts = field_validator("connect_timeout", "read_timeout", "poll_interval")(_positive)
    _polls = field_validator("max_polls")(_not_negative)
    _deadline = field_validator("deadline")(_positive_or_unset)
    _cap = field_validator("max_answer_bytes")(_answer_cap)
    _retries = field_validator("retry_attempts")(_at_least_one)
    _retry_wait = field_validator("retry_wait")(_not_negative)


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

    _limits = field_validator("max_amount", "max_total", "max_count", "per_card_max_total",
                              "per_card_max_consecutive", "vend_max_amount",
                              "vend_max_count")(_not_negative)
    _age = field_validator("max_age_hours")(_positive)


class SaleLimits(BaseModel):
    """Ceilings on what one sale may be, online or not: a typo or an odd input is refused
    before anything is journaled or sent."""

    card_max: int = 10_000_000
    """Largest card payment, top-up or refund (minor units of the card currency)."""
    power_max: int = 10_000_000
    """Largest electricity sale or bill (minor units of the PawaCard currency)."""

    _limits = field_validator("card_max", "power_max")(_positive)


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
    max_sends: int = 5
    """A money request leaves at most this many times; then a person decides."""

    _waits = field_validator("settle_seconds", "confirm_seconds")(_not_negative)
    _interval = field_validator("confirm_interval")(_positive)
    _sends = field_validator("max_sends")(_at_least_one)


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
    """The link probe cycle (pos.link): a provider nothing talked to for this long is asked
    for its float (money-free); a down one is asked again after 5 s, the delay doubling up
    to four times this. Also how often queued sales are offered to the sync engine."""
    sending_lease_seconds: float = 300.0
    """A row marked sending is left alone by other syncs this long (its sender may be alive)."""
    abandon_created_after: float = 60.0
    """A row journaled but never sent (a crash in between) is cancelled after this many
    seconds (at once when the process that made it is gone)."""
    max_attempts: int = 30
    """Attempts on one item before it stops retrying and is flagged for a supervisor."""
    max_age_hours: float = 72.0
    """An item still unsettled after this long is flagged for a supervisor."""

    _concurrency = field_validator("concurrency", "max_attempts")(_at_least_one)
    _times = field_validator("probe_interval", "sending_lease_seconds",
                             "max_age_hours")(_positive)
    _waits = field_validator("backoff_base", "backoff_max",  # 0: at once
                             "meter_throttle_seconds", "abandon_created_after")(_not_negative)


class StorageSettings(BaseModel):
    min_free_mb: float = 20.0
    """A sale is not started with less free space than this where the journal lives."""
    reserve_mb: float = 4.0
    """Space kept in a reserve file beside the journal and released when the disk is
    full, so the answer to a request already sent can always be recorded."""
    busy_timeout_ms: int = 10_000
    """How long a write waits for another process holding the journal (the TUI and
    ``sente-pos sync`` share it); past it, an answer goes to the fallback file."""

    _sizes = field_validator("min_free_mb", "reserve_mb")(_not_negative)
    _busy = field_validator("busy_timeout_ms")(_at_least_one)


class JournalSettings(BaseModel):
    archive_after_days: int = 400
    """Settled rows older than this go to ``archive/journal-YYYY-MM.jsonl.gz`` (after
    each Z, and with ``sente-pos journal archive``); 0: never. With a hub, only rows the
    hub has acknowledged (README "Housekeeping")."""
    archive_rows_per_run: int = 5_000
    """At most this many rows per scheduled run (after a Z), so a day close never waits
    long; ``sente-pos journal archive`` takes all that are due."""
    free_warning_mb: float = 500.0
    """``doctor`` warns when the journal's file system has less free space than this
    (or than twice the journal, which a backup and a compaction need)."""

    _days = field_validator("archive_after_days")(_not_negative)
    _rows = field_validator("archive_rows_per_run")(_at_least_one)
    _free = field_validator("free_warning_mb")(_not_negative)


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

    _usb = field_validator("usb_vendor", "usb_product")(_usb_id)
    _port = field_validator("port")(_port)
    _baud = field_validator("serial_baudrate")(_positive)

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: int) -> int:
        if not 16 <= v <= 80:
            raise ValueError("must be 16 to 80 characters (32 on 58 mm paper, 48 on 80 mm)")
        return v


class CameraSettings(BaseModel):
    device: str = "0"
    """OpenCV capture device: an index (``0``) or a path (``/dev/video0``)."""
    width: int = 640
    """Capture width in pixels."""
    height: int = 480
    """Capture height in pixels."""
    fps: int = 15
    """Capture frame rate."""
    preview_fps: float = 6.0
    """Live preview on the scan screen: pictures a second (0: no preview)."""
    beep: str = "bell"
    """Beep when a card is read: ``none``, ``bell`` (the terminal's), ``alsa:DEVICE`` (a
    tone through ``aplay -D DEVICE``) or a command line to run (no shell)."""
    decoder: Literal["process", "thread"] = "process"
    """Where the camera and its decoder run: ``process`` (a child process, niced and
    pinned to one core, started when a scan screen first opens: the UI keeps its
    interpreter to itself) or ``thread`` (threads of the UI process)."""

    _sizes = field_validator("width", "height", "fps")(_positive)
    _preview = field_validator("preview_fps")(_not_negative)

    @field_validator("beep")
    @classmethod
    def _beep(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError('must be "none", "bell", "alsa:DEVICE" or a command')
        if v.startswith("alsa:") and not v.removeprefix("alsa:"):
            raise ValueError('"alsa:" needs a device, e.g. "alsa:default"')
        return v


class KioskSettings(BaseModel):
    enabled: bool = False
    """Kiosk mode: nothing quits or suspends the app without the supervisor PIN."""
    idle_lock_seconds: int = 120
    """Lock the cashier session after this many idle seconds."""
    theme: Literal["default", "console"] = "default"
    """``console`` is 16 colours, plain borders, no emoji: for the Linux text console."""

    _idle = field_validator("idle_lock_seconds")(_not_negative)


class SecuritySettings(BaseModel):
    pin_free_tries: int = 1
    """Wrong operator / supervisor PINs allowed without a wait (a slip of the finger)."""
    pin_backoff_seconds: float = 1.0
    """Wait after the next wrong PIN; it doubles with each one after that."""
    pin_backoff_max_seconds: float = 60.0
    """Longest wait between PIN tries before the lock-out."""
    pin_lockout_after: int = 5
    """Wrong PINs in a row that lock the operator (or the supervisor check) out."""
    pin_lockout_minutes: float = 15.0
    """First lock-out; each further wrong PIN doubles it, up to a day."""
    card_pin_tries: int = 3
    """Wrong PINs for one card (EMV's PIN try counter) before this terminal refuses it."""
    card_lockout_minutes: float = 60.0
    """How long the terminal refuses a card after its last allowed wrong PIN."""

    _counts = field_validator("pin_free_tries")(_not_negative)
    _tries = field_validator("pin_lockout_after", "card_pin_tries")(_at_least_one)
    _times = field_validator("pin_backoff_seconds", "pin_backoff_max_seconds",
                             "pin_lockout_minutes", "card_lockout_minutes")(_positive)


class BackupSettings(BaseModel):
    every_hours: float = 4.0
    """Online backup of the journal after this many hours of trading (0: only at day close)."""
    keep: int = 14
    """Backups kept in ``backups/`` (the oldest are removed)."""

    _every = field_validator("every_hours")(_not_negative)
    _keep = field_validator("keep")(_at_least_one)


class LogSettings(BaseModel):
    dir: Path | None = None
    """Directory of ``sente-pos.log``. Default: ``$SENTE_POS_HOME`` when set (the kiosk),
    else the platform's user log directory (``~/.local/state/sente-pos/log``)."""
    max_mb: float = 5.0
    """``sente-pos.log`` is rotated (to ``.1``, ``.2`` ...) when it reaches this size."""
    backups: int = 3
    """Rotated files kept: the log never takes more than (backups + 1) x max_mb."""
    target: Literal["auto", "file"] = "auto"
    """``auto``: under systemd with stderr going to the journal (``$JOURNAL_STREAM``), log
    there and let journald keep and rotate it; otherwise, and with ``file``, the file."""

    _size = field_validator("max_mb")(_positive)
    _backups = field_validator("backups")(_at_least_one)


class QuickKey(BaseModel):
    """One button of the counter's quick-key grid (items not in the Patasente catalogue,
    or a shortcut to one that is)."""

    name: str
    """What the button and the receipt say."""
    price: int
    """Unit price in minor units of the sale currency (UGX: shillings)."""
    barcode: str = ""
    """EAN / UPC read by the keyboard-wedge scanner (optional)."""
    product_id: int | None = None
    """The Patasente product it stands for, if any."""

    _price = field_validator("price")(_not_negative)


class CounterSettings(BaseModel):
    quick_keys: list[QuickKey] = Field(default_factory=lambda: [
        QuickKey(name="Soda 300ml", price=1_000, barcode="5449000000996"),
        QuickKey(name="Water 500ml", price=800, barcode="6001240100011"),
        QuickKey(name="Bread (large)", price=6_000, product_id=20),
        QuickKey(name="Sugar 1kg", price=4_500, barcode="6161101560016", product_id=18),
    ])
    """The quick-key grid (keys 1-9 in the basket screen)."""
    cashier_max_discount_percent: int = 10
    """The largest line discount a cashier gives alone; more needs a supervisor PIN."""
    supervisor_max_discount_percent: int = 100
    """The largest line discount a supervisor may approve."""
    require_shift: bool = True
    """Cash is taken only while a shift (drawer session) is open."""

    _pct = field_validator("cashier_max_discount_percent",
                           "supervisor_max_discount_percent")(_not_negative)


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
    """Log level of ``sente-pos.log`` (or of the journal, under systemd)."""
    logs: LogSettings = Field(default_factory=LogSettings)
    cache_dir: Path | None = None
    """Files rebuilt at will (python-escpos' parsed printer database). Default:
    ``$SENTE_POS_HOME/cache`` when set, else the platform's user cache directory
    (``~/.cache/sente-pos``)."""
    patasente: PatasenteSettings = Field(default_factory=PatasenteSettings)
    pawacard: PawaCardSettings = Field(default_factory=PawaCardSettings)
    offline: OfflineLimits = Field(default_factory=OfflineLimits)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    limits: SaleLimits = Field(default_factory=SaleLimits)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    printer: PrinterSettings = Field(default_factory=PrinterSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    kiosk: KioskSettings = Field(default_factory=KioskSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    counter: CounterSettings = Field(default_factory=CounterSettings)

    _card_currency = field_validator("card_currency")(_currency)
    _low_float = field_validator("low_float_warning")(_not_negative)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        level = v.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("terminal_id")
    @classmethod
    def _terminal_id(cls, v: str) -> str:
        v = v.strip()
        if not v or len(v) > 32 or not v.isprintable():
            raise ValueError("must be 1 to 32 printable characters")
        return v

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
        from pos.dirs import cache_dir, log_file  # pos.dirs reads these settings

        data["log_file"] = str(log_file(self))
        data["cache_dir"] = str(cache_dir(self))
        return data


def config_path() -> Path:
    return data_home() / "config.toml"


def _check_config_file(path: Path) -> None:
    """Read and parse ``config.toml`` once so that any problem with it is an InputError
    naming the file (pydantic-settings skips a path that is not a file, silently)."""
    import tomllib

    from pos.errors import InputError

    if not path.exists() and not path.is_symlink():
        return
    if not path.is_file():
        raise InputError(f"{path} is not a regular file (a directory?): move it away "
                         "and write the settings again")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    try:
        tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc.reason}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from exc


def describe_validation_error(exc: ValidationError) -> str:
    """``offline.max_amount: must be 0 or more (got -5)``, one field per line."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        shown = err.get("input")
        got = "" if isinstance(shown, dict) or where.endswith("password") else f" (got {shown!r})"
        lines.append(f"{where}: {msg}{got}")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Load settings; a broken or unreadable config.toml, or a value out of range, is an
    InputError naming the file and the field, not a traceback or a silent default."""
    from pos.errors import InputError

    path = config_path()
    _check_config_file(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise InputError(f"Invalid settings (in {path} or SENTE_POS_* variables): "
                         f"{describe_validation_error(exc)}") from exc
    except OSError as exc:  # the file changed between the check and the read
        raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from exc


def save_settings(settings: Settings) -> Path:
    """Write ``config.toml`` atomically, mode 0600 (it holds provider passwords), with a
    TOML library, so that whatever was saved can be read back (a hand-written writer
    produced files tomllib rejects, e.g. for a newline or a control character)."""
    import tomli_w

    home = ensure_home()
    data = settings.model_dump(mode="python")
    for section in ("patasente", "pawacard"):
        data[section]["password"] = getattr(settings, section).password.get_secret_value()
    path = home / "config.toml"
    try:
        write_secret_file(path, tomli_w.dumps(_without_none(data)).encode())
    except OSError as exc:
        from pos.errors import PosError

        raise PosError(f"Settings not saved: {path} cannot be written "
                       f"({exc.strerror or exc}); the previous settings are kept") from exc
    return path


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: an unset optional setting is left out (its default applies),
    in tables and in arrays of tables (the quick keys) alike."""
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return _without_none(v)
        if isinstance(v, list):
            return [clean(x) for x in v if x is not None]
        return v

    return {k: clean(v) for k, v in data.items() if v is not None}
