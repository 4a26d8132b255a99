"""The terminal's side of the back office (hub): enrolment and journal upload.

Upload. At the end of every pass of the sync engine (``SyncEngine._pass``) the
uploader sends what the hub has not acknowledged yet, oldest first, in batches:

* journal events after a durable cursor (``hub.event_cursor`` in the journal's
  ``meta`` table), each with the current row of its transaction; the hub keys
  events on (terminal, event id), so a batch sent twice is stored once;
* rows changed without an event (a receipt number drawn for a reprint) found by
  a sweep of ``updated_at`` since the last sweep, less a safety margin (rows created
  in the last month; an older row's change waits for its next event);
* Z reports after ``hub.z_cursor``;
* the counter's tables, which have no event trail: basket sales (with their lines and
  tender parts), shifts and cash moves named in the journal's ``hub_changes`` outbox
  after ``hub.counter_cursor`` (triggers add a row in the same transaction as each
  change), each sent as it is now, with the card debits its card parts name; the
  hub keys them on (terminal, id) and acknowledged outbox rows are deleted;
* and the terminal's status (link, unsynced count and amount, flagged count, floats,
  receipt counter).

The cursors move only after the hub answers 200, so a lost answer means the same
batch is sent again (harmless). Each attempt carries a fresh sequence number
(``hub.seq``, written before sending): the hub never lets an older attempt
overwrite a row a newer one wrote. While the hub cannot be reached the uploader
backs off (up to 5 minutes) and the journal is the queue: nothing is lost, and a
sale never waits for the hub (the upload runs in the background sync, with a deadline).

Restore (a replaced terminal rebuilding its journal) is :mod:`pos.hubrestore`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import sqlite3
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pos.config import write_secret_file
from pos.errors import InputError, PosError, ProviderError

if TYPE_CHECKING:
    import httpx

    from pos.journal import Journal
    from pos.usecases.context import Context

log = logging.getLogger(__name__)

PROVIDER = "Hub"
CREDENTIAL_FILE = "hub.json"
META_EVENTS, META_Z, META_SEQ, META_SWEEP = ("hub.event_cursor", "hub.z_cursor", "hub.seq",
                                             "hub.txn_sweep")
META_COUNTER = "hub.counter_cursor"
META_NAME, META_REG = "merchant.verified_name", "merchant.registration_no"
BATCH = 500
#: Rows changed this long before the last sweep are looked at again (clock steps, races).
SWEEP_MARGIN = dt.timedelta(minutes=10)
SWEEP_DAYS = 31
HEARTBEAT_SECONDS = 60.0
PASS_DEADLINE = 20.0
BACKOFF_BASE, BACKOFF_MAX = 5.0, 300.0
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


# ------------------------------------------------------------------ credential
@dataclasses.dataclass(frozen=True, slots=True)
class HubCredential:
    url: str
    credential: str
    terminal_id: str
    enrolled_at: str

    def __repr__(self) -> str:  # never the secret
        return f"HubCredential({self.url!r}, terminal={self.terminal_id!r})"


def credential_path(home: Path) -> Path:
    return Path(home) / CREDENTIAL_FILE


def load_credential(home: Path) -> HubCredential | None:
    path = credential_path(home)
    try:
        data = json.loads(path.read_text())
        return HubCredential(str(data["url"]), str(data["credential"]),
                             str(data["terminal_id"]), str(data.get("enrolled_at", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("%s is unreadable: enrol this terminal again", path)
        return None


def check_hub_url(url: str) -> str:
    """``https://...``; plain ``http`` only to this machine (the demo's local hub)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InputError(f"A hub URL is https://host[:port]/, not {url!r}")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise InputError("The hub is reached over TLS (https://); plain http only to "
                         "127.0.0.1 for a local demo hub")
    return url if url.endswith("/") else url + "/"


@dataclasses.dataclass
class _Endpoint:
    """What :class:`pos.providers.http.ClientBase` reads from its settings."""

    base_url: str
    username: str
    connect_timeout: float = 5.0
    read_timeout: float = 15.0


def _dumps(payload: Any) -> bytes:
    def default(value: object) -> object:
        return str(value)  # Decimals in transaction details

    return json.dumps(payload, default=default, separators=(",", ":")).encode()


class HubClient:
    """HTTP to the hub through the providers' plumbing (timeouts, TLS on, error mapping)."""

    def __init__(self, url: str, credential: str | None, terminal_id: str, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        from pos.providers.http import ClientBase

        headers = {"Content-Type": "application/json"}
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        self._base = ClientBase(_Endpoint(check_hub_url(url), terminal_id), transport=transport,
                                retry=None, headers=headers)

    async def call(self, method: str, path: str, payload: Any = None,
                   params: dict[str, str] | None = None) -> tuple[int, Any]:
        from pos.providers import http

        resp = await self._base._http_send(method, path, params=params,
                                           content=_dumps(payload) if payload is not None
                                           else None)
        if resp.status_code >= 500:
            raise http.server_error(PROVIDER, resp)
        try:
            data = json.loads(resp.content)
        except (ValueError, RecursionError):
            raise http.unexpected(PROVIDER, resp.status_code, "not JSON") from None
        return resp.status_code, data

    async def aclose(self) -> None:
        await self._base.aclose()


def refusal(status: int, data: Any) -> PosError:
    message = data.get("error") if isinstance(data, dict) else None
    message = str(message or f"the hub refused (HTTP {status})")
    if status in (400, 403, 404, 409, 429):
        return InputError(message)
    return ProviderError(message, provider=PROVIDER, http_status=status)


# ------------------------------------------------------------------ enrolment
async def enrol(home: Path, url: str, code: str, *,
                transport: httpx.AsyncBaseTransport | None = None) -> dict[str, Any]:
    """Trade a one-time code for this terminal's credential, stored 0600 in ``home``."""
    client = HubClient(url, None, "enrolling", transport=transport)
    try:
        status, data = await client.call("POST", "api/v1/enrol", {"code": code.strip()})
    finally:
        await client.aclose()
    if status != 201 or not isinstance(data, dict) or "credential" not in data:
        raise refusal(status, data)
    cred = HubCredential(check_hub_url(url), str(data["credential"]), str(data["terminal_id"]),
                         dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    write_secret_file(credential_path(home), json.dumps(dataclasses.asdict(cred)).encode())
    from pos.journal import Journal

    journal = Journal.open(Path(home) / "journal.db")
    try:
        store_merchant_header(journal, data.get("merchant"))
    finally:
        journal.close()
    return {k: v for k, v in data.items() if k != "credential"}


def store_merchant_header(journal: Journal, merchant: Any) -> None:
    """Keep the hub's verified business name and registration number for receipts."""
    if not isinstance(merchant, dict) or not merchant.get("verified"):
        return
    for key, value in ((META_NAME, merchant.get("name")), (META_REG,
                                                           merchant.get("registration_no"))):
        text = str(value or "").strip()[:200]
        if text and journal.meta_get(key) != text:
            journal.meta_set(key, text)


# ------------------------------------------------------------------ upload
@dataclasses.dataclass
class UploadReport:
    batches: int = 0
    events: int = 0
    txns: int = 0
    z_reports: int = 0
    sales: int = 0
    shifts: int = 0
    cash_moves: int = 0
    remaining: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Uploader:
    """Pushes one journal to the hub (see the module docstring)."""

    def __init__(self, journal: Journal, cred: HubCredential, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 batch: int = BATCH) -> None:
        self.journal = journal
        self.cred = cred
        self.batch = batch
        self._client = HubClient(cred.url, cred.credential, cred.terminal_id,
                                 transport=transport)
        self._monotonic = monotonic
        self._reader: sqlite3.Connection | None = None
        self._sent: dict[str, str] = {}  # ref -> updated_at the hub has (this process)
        self._next_try = 0.0
        self._failures = 0
        self._last_ok = -HEARTBEAT_SECONDS
        self.floats: dict[str, Any] = {}
        self._counter_rows: dict[str, list[dict[str, Any]]] = {}
        self.last_error: str | None = None

    # -- reading the journal (its own read-only connection: no lock shared with sales)
    def _db(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = sqlite3.connect(f"file:{self.journal.path}?mode=ro", uri=True,
                                           check_same_thread=False, timeout=10)
            self._reader.row_factory = sqlite3.Row
        return self._reader

    def _meta_int(self, key: str) -> int:
        return int(self.journal.meta_get(key, "0") or 0)

    def pending(self) -> bool:
        """Anything unsent, or a heartbeat due (cheap: two indexed lookups)."""
        if self._monotonic() - self._last_ok >= HEARTBEAT_SECONDS:
            return True
        db = self._db()
        top = db.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0
        ztop = db.execute("SELECT MAX(number) FROM z_reports").fetchone()[0] or 0
        ctop = db.execute("SELECT MAX(id) FROM hub_changes").fetchone()[0] or 0
        return (top > self._meta_int(META_EVENTS) or ztop > self._meta_int(META_Z)
                or ctop > self._meta_int(META_COUNTER))

    def due(self) -> bool:
        return self._monotonic() >= self._next_try

    def _counter(self) -> tuple[int, bool, dict[str, list[dict[str, Any]]]]:
        """The counter's rows named in the outbox after its cursor (one batch): the last
        outbox id read, whether more follow, and the rows as they are now, each once.
        A fifth of a batch, so that an upload stays under the hub's row limit
        (``upload_max_items``) with a full batch of events and transactions beside it."""
        db = self._db()
        limit = max(1, self.batch // 5)
        changes = db.execute("SELECT id, tbl, key FROM hub_changes WHERE id > ? ORDER BY id"
                             " LIMIT ?", (self._meta_int(META_COUNTER), limit)).fetchall()
        if not changes:
            return 0, False, {}
        keys: dict[str, list[str]] = {"sale": [], "shift": [], "cash_move": []}
        for c in changes:
            if c["key"] not in keys[c["tbl"]]:
                keys[c["tbl"]].append(c["key"])
        return int(changes[-1]["id"]), len(changes) >= limit, {
            "sales": _sales(db, keys["sale"]),
            "shifts": [_shift(r) for r in _rows(db, "shifts", "id",
                                                 [int(k) for k in keys["shift"]])],
            "cash_moves": [dict(r) for r in _rows(db, "cash_moves", "id",
                                                  [int(k) for k in keys["cash_move"]])],
        }

    def _batch(self, sweep_from: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                               list[dict[str, Any]]]:
        db = self._db()
        cursor = self._meta_int(META_EVENTS)
        events = [dict(r) for r in db.execute(
            "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (cursor, self.batch))]
        refs = dict.fromkeys(e["ref"] for e in events)
        room = max(0, self.batch - len(refs))
        # The sweep looks at rows created in the last SWEEP_DAYS (an indexed range): a
        # change without an event to an older row waits for that row's next event.
        recent = (dt.datetime.now(dt.UTC) - dt.timedelta(days=SWEEP_DAYS)).isoformat()
        for r in db.execute("SELECT ref, updated_at FROM txns WHERE created_at >= ? AND"
                            " updated_at >= ? ORDER BY updated_at LIMIT ?",
                            (recent, sweep_from, self.batch * 4)):
            if len(refs) >= self.batch + room:
                break
            if self._sent.get(r["ref"]) != r["updated_at"]:
                refs.setdefault(r["ref"])
        # The card debits that pay the counter's card parts go with them, room allowing
        # (a restore needs both; a debit left out goes with its own events anyway).
        for sale in self._counter_rows.get("sales", []):
            for part in sale["tenders"]:
                if part["txn_ref"] and self._sent.get(part["txn_ref"]) is None and \
                        len(refs) < 2 * self.batch:
                    refs.setdefault(part["txn_ref"])
        txns = []
        for ref in refs:
            txn = self.journal.get(ref)
            if txn is not None:
                txns.append(txn.to_json())
        zcursor = self._meta_int(META_Z)
        zs = [{"number": z.number, "created_at": z.created_at.isoformat(), "payload": z.payload}
              for z in self.journal.z_reports() if z.number > zcursor][:50]
        wire_events = [{"id": e["id"], "ref": e["ref"], "at": e["at"], "from": e["from_state"],
                        "to": e["to_state"], "note": e["note"], "error": e["error"],
                        "operator": e["operator"]} for e in events]
        return txns, wire_events, zs

    def _status(self, link: Any) -> dict[str, Any]:
        unsynced = self.journal.unsynced()
        return {
            "online": bool(getattr(link, "online", True)),
            "link": link.describe() if link is not None else None,
            "unsynced_count": unsynced.count,
            "unsynced_totals": dict(unsynced.totals),
            "flagged_count": self.journal.flagged_count(),
            "floats": {k: v.to_json() for k, v in self.floats.items() if v is not None},
            "receipt_no": self._meta_int("receipt_no"),
        }

    async def run(self, link: Any = None, *, max_batches: int = 20) -> UploadReport:
        """Send until caught up (or ``max_batches``); raises on a transport failure."""
        report = UploadReport()
        for _ in range(max_batches):
            started = dt.datetime.now(dt.UTC)
            last_sweep = self.journal.meta_get(META_SWEEP)
            base = min(dt.datetime.fromisoformat(last_sweep), started) if last_sweep else None
            sweep_from = (base - SWEEP_MARGIN).isoformat(timespec="microseconds") if base \
                else ""
            # Reading a batch is a few hundred small queries: off the event loop, so a
            # key press at the counter never waits for it.
            counter_top, counter_more, self._counter_rows = await asyncio.to_thread(
                self._counter)
            txns, events, zs = await asyncio.to_thread(self._batch, sweep_from)
            counter = self._counter_rows
            state = await asyncio.to_thread(self._status, link)
            seq = self._meta_int(META_SEQ) + 1
            self.journal.meta_set(META_SEQ, str(seq))  # before sending: never reused
            status, data = await self._client.call("POST", "api/v1/upload", {
                "seq": seq, "txns": txns, "events": events, "z_reports": zs,
                **counter, "status": state})
            if status == 401:
                raise InputError("The hub no longer knows this terminal (replaced or revoked):"
                                 " enrol it again")
            if status != 200 or not isinstance(data, dict):
                raise refusal(status, data)
            if events:
                self.journal.meta_set(META_EVENTS, str(max(e["id"] for e in events)))
            if zs:
                self.journal.meta_set(META_Z, str(max(z["number"] for z in zs)))
            if counter_top:
                self._acknowledge_counter(counter_top)
            for t in txns:
                self._sent[t["ref"]] = t["updated_at"]
            full = len(events) >= self.batch or len(txns) >= self.batch or counter_more
            if not full:
                self.journal.meta_set(META_SWEEP, started.isoformat(timespec="microseconds"))
            store_merchant_header(self.journal, data.get("merchant"))
            report.batches += 1
            report.events += len(events)
            report.txns += len(txns)
            report.z_reports += len(zs)
            report.sales += len(counter.get("sales", []))
            report.shifts += len(counter.get("shifts", []))
            report.cash_moves += len(counter.get("cash_moves", []))
            self._last_ok = self._monotonic()
            if not full and len(zs) < 50:
                report.remaining = False
                return report
            report.remaining = True
        return report

    def _acknowledge_counter(self, top: int) -> None:
        """The hub holds everything up to outbox id ``top``: move the cursor, then drop
        those outbox rows (a crash between the two sends them again, harmlessly)."""
        self.journal.meta_set(META_COUNTER, str(top))
        with self.journal.transaction() as conn:
            conn.execute("DELETE FROM hub_changes WHERE id <= ?", (top,))

    def record_failure(self, error: str) -> None:
        self._failures += 1
        self.last_error = error
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(self._failures - 1, 10))
        self._next_try = self._monotonic() + delay

    def record_success(self) -> None:
        self._failures = 0
        self.last_error = None
        self._next_try = 0.0

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._reader is not None:
            self._reader.close()
            self._reader = None


# ------------------------------------------------- the counter's rows, as sent
def _rows(db: sqlite3.Connection, table: str, key: str, ids: list[Any]) -> list[sqlite3.Row]:
    out: list[sqlite3.Row] = []
    for i in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        part = ids[i:i + 500]
        out += db.execute(f"SELECT * FROM {table} WHERE {key} IN ({','.join('?' * len(part))})"
                          f" ORDER BY {key}", part).fetchall()
    return out


def _sales(db: sqlite3.Connection, ids: list[str]) -> list[dict[str, Any]]:
    """Each sale with its lines and tender parts (the journal's columns)."""
    lines: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    tenders: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in _rows(db, "sale_lines", "sale_id", ids):
        line = dict(r)
        lines[line.pop("sale_id")].append(line)
    for r in _rows(db, "sale_tenders", "sale_id", ids):
        part = dict(r)
        tenders[part.pop("sale_id")].append(part)
    out = []
    for r in _rows(db, "sales", "id", ids):
        out.append({**dict(r), "lines": sorted(lines[r["id"]], key=lambda x: x["line_no"]),
                    "tenders": sorted(tenders[r["id"]], key=lambda x: x["id"])})
    return out


def _shift(r: sqlite3.Row) -> dict[str, Any]:
    row = dict(r)
    text = row.pop("report_json")
    row["report"] = json.loads(text) if text else None
    return row


# ------------------------------------------------------- the sync engine's hook
_uploaders: weakref.WeakKeyDictionary[Journal, Uploader] = weakref.WeakKeyDictionary()
_floats: weakref.WeakKeyDictionary[Journal, dict[str, Any]] = weakref.WeakKeyDictionary()


def uploader_for(journal: Journal, home: Path, **kw: Any) -> Uploader | None:
    """The journal's uploader, when this terminal is enrolled (None otherwise)."""
    up = _uploaders.get(journal)
    if up is None:
        cred = load_credential(home)
        if cred is None:
            return None
        up = _uploaders[journal] = Uploader(journal, cred, **kw)
    return up


async def close_uploader(journal: Journal) -> None:
    """Close the journal's uploader (its HTTP client and reader), if it has one."""
    up = _uploaders.pop(journal, None)
    if up is not None:
        await up.aclose()


def note_floats(journal: Journal, floats: dict[str, Any]) -> None:
    """The terminal's last known provider floats, sent with the next upload."""
    _floats[journal] = dict(floats)


def pending(journal: Journal, home: Path) -> bool:
    up = uploader_for(journal, home)
    try:
        return up is not None and up.due() and up.pending()
    except sqlite3.Error:
        return False


async def after_sync_pass(ctx: Context) -> UploadReport | None:
    """Upload to the hub, if this terminal is enrolled. Never raises: a hub that is down,
    slow or refusing changes nothing for the provider sync or the sale."""
    try:
        up = uploader_for(ctx.journal, ctx.settings.home)
        if up is None or not up.due():
            return None
        up.floats = _floats.get(ctx.journal, up.floats)
        try:
            report = await asyncio.wait_for(up.run(ctx.link), PASS_DEADLINE)
        except (PosError, TimeoutError) as exc:
            message = getattr(exc, "message", None) or "the hub did not answer in time"
            up.record_failure(message)
            log.info("hub upload: %s", message)
            return UploadReport(error=message)
        up.record_success()
        return report
    except Exception:  # the last guard: log it, never break the sync pass
        log.exception("hub upload failed")
        return None


def receipt_header(journal: Journal) -> tuple[str | None, str | None]:
    """The verified business name and registration number, when the hub sent them."""
    return journal.meta_get(META_NAME), journal.meta_get(META_REG)


__all__ = ["HubCredential", "Uploader", "after_sync_pass", "enrol", "load_credential",
           "note_floats", "pending", "receipt_header"]
