"""PIN attempts are limited: a back-off that grows with wrong PINs, then a lock-out.

Each guarded *subject* (``operator:ann`` for a sign-in, ``supervisor`` for the
supervisor PIN check, ``card:108`` for a card) has a row in the journal's
``pin_tries``: the wrong PINs in a row and how long attempts are refused after the
last one. An attempt is checked and counted in ONE write transaction *before* the PIN
is verified (EMV's PIN try counter is decremented before the PIN is compared), so
processes started in parallel cannot each get a free guess, and a process killed
mid-check has used its try. A right PIN clears the count.

Time. The refusal is measured from a stamp of three readings: wall time, the boot id
and a boot-relative clock (``CLOCK_BOOTTIME``, which no one can set). Within one boot
(any process: ``sente-pos`` runs a process per command) the boot clock alone counts,
so neither NTP correcting a Pi's stale clock nor someone setting the clock ahead
changes a lock-out. Across a reboot only wall time is left: a wall clock that went
backwards counts as no time passed (never "unlocked early"), and the wait is then
re-stamped on the new boot so it runs out after at most its own length of real time
(never "locked forever"). A clock set ahead across a reboot could shorten a lock-out;
the trail records it (wall times out of order).

Every wrong PIN, lock-out and right PIN after wrong ones is a ``security_events`` row,
shown to the supervisor (``sente-pos journal security``, the X and Z reports).
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pos.errors import InputError
from pos.journal.models import from_iso, iso

if TYPE_CHECKING:
    from pos.config import SecuritySettings
    from pos.journal import Journal

#: The longest lock-out, however many wrong PINs.
MAX_LOCKOUT_SECONDS = 24 * 3600.0
_PROCESS_BOOT = f"process-{uuid.uuid4()}"


class PinLocked(InputError):
    """Attempts for this subject are refused for ``seconds`` more (nothing was checked)."""

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


# ------------------------------------------------------------------- time
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:  # not Linux: the boot clock cannot be compared across processes
        return _PROCESS_BOOT


_BOOT_ID = _boot_id()


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _boot_clock() -> float:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is not None and _BOOT_ID != _PROCESS_BOOT:
        return time.clock_gettime(clock)
    return time.monotonic()


@dataclass(frozen=True, slots=True)
class Stamp:
    """When something happened: wall time, and where on which boot's clock."""

    wall: datetime
    boot: str
    mono: float

    @classmethod
    def now(cls, wall: datetime | None = None) -> Stamp:
        return cls(wall or _wall_clock(), _BOOT_ID, _boot_clock())

    def seconds_since(self, earlier: Stamp) -> float:
        """Real time since ``earlier``: the boot clock on the same boot; else wall time,
        a clock that went backwards counting as no time."""
        if self.boot == earlier.boot:
            return max(0.0, self.mono - earlier.mono)
        return max(0.0, (self.wall - earlier.wall).total_seconds())


Now = Callable[[], Stamp]


# ------------------------------------------------------------------ policy
@dataclass(frozen=True, slots=True)
class Policy:
    """How long attempts are refused after ``failures`` wrong PINs in a row."""

    free_tries: int = 1
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    lockout_after: int = 5
    lockout_seconds: float = 900.0
    double_lockout: bool = True

    @classmethod
    def operators(cls, s: SecuritySettings) -> Policy:
        return cls(s.pin_free_tries, s.pin_backoff_seconds, s.pin_backoff_max_seconds,
                   s.pin_lockout_after, s.pin_lockout_minutes * 60)

    @classmethod
    def cards(cls, s: SecuritySettings) -> Policy:
        """EMV's model: ``card_pin_tries`` tries, then refused for a while; one more try
        each time the refusal runs out, until a right PIN."""
        return cls(free_tries=s.card_pin_tries - 1, lockout_after=s.card_pin_tries,
                   lockout_seconds=s.card_lockout_minutes * 60, double_lockout=False)

    def wait_after(self, failures: int) -> float:
        if failures <= self.free_tries:
            return 0.0
        if failures < self.lockout_after:
            steps = failures - self.free_tries - 1
            return min(self.backoff_seconds * 2.0 ** min(steps, 60), self.backoff_max_seconds)
        extra = failures - self.lockout_after if self.double_lockout else 0
        return min(self.lockout_seconds * 2.0 ** min(extra, 60),
                   max(MAX_LOCKOUT_SECONDS, self.lockout_seconds))

    def is_lockout(self, failures: int) -> bool:
        return failures >= self.lockout_after


def describe_wait(seconds: float) -> str:
    seconds = math.ceil(seconds)
    if seconds < 90:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# ------------------------------------------------------------------ state
@dataclass(frozen=True, slots=True)
class Tries:
    subject: str
    failures: int
    wait_seconds: float
    stamp: Stamp

    def remaining(self, now: Stamp) -> float:
        return max(0.0, self.wait_seconds - now.seconds_since(self.stamp))


def _load(conn: sqlite3.Connection, subject: str) -> Tries | None:
    row = conn.execute("SELECT * FROM pin_tries WHERE subject = ?", (subject,)).fetchone()
    if row is None:
        return None
    wall = from_iso(row["stamp_wall"])
    assert wall is not None
    return Tries(subject, int(row["failures"]), float(row["wait_seconds"]),
                 Stamp(wall, row["stamp_boot"], float(row["stamp_mono"])))


def _store(conn: sqlite3.Connection, t: Tries) -> None:
    conn.execute(
        "INSERT INTO pin_tries(subject, failures, wait_seconds, stamp_wall, stamp_boot,"
        " stamp_mono) VALUES (?,?,?,?,?,?) ON CONFLICT(subject) DO UPDATE SET"
        " failures = excluded.failures, wait_seconds = excluded.wait_seconds,"
        " stamp_wall = excluded.stamp_wall, stamp_boot = excluded.stamp_boot,"
        " stamp_mono = excluded.stamp_mono",
        (t.subject, t.failures, t.wait_seconds, iso(t.stamp.wall), t.stamp.boot, t.stamp.mono),
    )


def record_event(conn: sqlite3.Connection, at: datetime, kind: str, subject: str,
                 operator: str | None = None, detail: str | None = None) -> None:
    """Append one row to the supervisor's security trail (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO security_events(at, kind, subject, operator, detail) VALUES (?,?,?,?,?)",
        (iso(at), kind, subject, operator, detail),
    )


def _refusal(conn: sqlite3.Connection, subject: str, now: Stamp) -> Tries | None:
    """The current tries of ``subject``, re-stamped on this boot if they were stamped on
    another one (so the rest of the wait runs on this boot's clock)."""
    tries = _load(conn, subject)
    if tries is None or tries.stamp.boot == now.boot or not tries.wait_seconds:
        return tries
    moved = Tries(subject, tries.failures, tries.remaining(now), now)
    _store(conn, moved)
    return moved


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    id: int
    at: datetime
    kind: str
    subject: str
    operator: str | None
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": iso(self.at), "kind": self.kind, "subject": self.subject,
                "operator": self.operator, "detail": self.detail}

    def line(self) -> str:
        who = f" by {self.operator}" if self.operator else ""
        more = f": {self.detail}" if self.detail else ""
        return f"{iso(self.at)[:19]} {self.kind} {self.subject}{who}{more}"


def security_events(journal: Journal, *, since: datetime | None = None,
                    kinds: Iterable[str] | None = None, limit: int = 1000) -> list[SecurityEvent]:
    """The security trail, oldest first (``since``: at or after)."""
    where, params = [], []
    if since is not None:
        where.append("at >= ?")
        params.append(iso(since))
    if kinds is not None:
        kv = list(kinds)
        where.append(f"kind IN ({','.join('?' * len(kv))})" if kv else "0")
        params += kv
    sql = ("SELECT * FROM security_events" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY id LIMIT ?")
    rows = journal.query(sql, [*params, int(limit)])  # a read: no write transaction
    return [SecurityEvent(r["id"], from_iso(r["at"]), r["kind"], r["subject"],  # type: ignore[arg-type]
                          r["operator"], r["detail"]) for r in rows]


# ------------------------------------------------------------------ guard
class PinGuard:
    """Check-count-verify-record for one kind of PIN (operators' or cards')."""

    def __init__(self, journal: Journal, policy: Policy, *, now: Now = Stamp.now,
                 what: str = "PIN") -> None:
        self.journal = journal
        self.policy = policy
        self.now = now
        self.what = what

    def _locked_message(self, subject: str, tries: Tries, seconds: float) -> str:
        name = subject.split(":", 1)[-1] if ":" in subject else subject
        if self.policy.is_lockout(tries.failures):
            return (f"Too many wrong {self.what}s for {name} ({tries.failures} in a row): "
                    f"locked for {describe_wait(seconds)}. A supervisor can see this in "
                    "the security log.")
        return f"Wrong {self.what} typed too often: try again in {describe_wait(seconds)}"

    def check(self, subject: str) -> None:
        """Raise :class:`PinLocked` if attempts for ``subject`` are refused now."""
        now = self.now()
        with self.journal.transaction() as conn:
            tries = _refusal(conn, subject, now)
        if tries is not None:
            left = tries.remaining(now)
            if left > 0:
                raise PinLocked(self._locked_message(subject, tries, left), seconds=left)

    def begin(self, subject: str) -> int:
        """Refuse (:class:`PinLocked`) or count one attempt before the PIN is verified;
        returns the wrong PINs in a row before this one."""
        now = self.now()
        with self.journal.transaction() as conn:
            tries = _refusal(conn, subject, now)
            before = tries.failures if tries else 0
            if tries is not None:
                left = tries.remaining(now)
                if left > 0:
                    raise PinLocked(self._locked_message(subject, tries, left), seconds=left)
            counted = before + 1
            _store(conn, Tries(subject, counted, self.policy.wait_after(counted), now))
        return before

    def finish(self, subject: str, ok: bool, before: int, *, operator: str | None = None,
               detail: str | None = None) -> None:
        """Record the outcome of the attempt counted by :meth:`begin`."""
        now = self.now()
        with self.journal.transaction() as conn:
            if ok:
                conn.execute("DELETE FROM pin_tries WHERE subject = ?", (subject,))
                if before:
                    record_event(conn, now.wall, "pin_ok_after_wrong", subject, operator,
                                 f"right {self.what} after {before} wrong")
                return
            tries = _load(conn, subject)
            failures = tries.failures if tries else before + 1
            wait = self.policy.wait_after(failures)
            kind = "pin_locked" if self.policy.is_lockout(failures) else "pin_wrong"
            text = f"wrong {self.what} #{failures} in a row"
            if wait:
                text += f"; refused for {describe_wait(wait)}"
            if detail:
                text += f" ({detail})"
            record_event(conn, now.wall, kind, subject, operator, text)

    def record(self, subject: str, ok: bool, *, detail: str | None = None) -> None:
        """Count an outcome learnt afterwards (a card PIN the issuer refused or took),
        whatever the current wait: the refusal is checked before the PIN is sent."""
        now = self.now()
        with self.journal.transaction() as conn:
            tries = _load(conn, subject)
            before = tries.failures if tries else 0
            if not ok:
                _store(conn, Tries(subject, before + 1, self.policy.wait_after(before + 1), now))
        self.finish(subject, ok, before, detail=detail)

    def attempt(self, subject: str, verify: Callable[[], bool], *,
                operator: str | None = None) -> bool:
        """Count, verify, record: whether the PIN was right. Raises :class:`PinLocked`
        without calling ``verify`` while attempts are refused."""
        before = self.begin(subject)
        ok = False
        try:
            ok = bool(verify())
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.finish(subject, ok, before, operator=operator)
        return ok

    def reset(self, subject: str, *, by: str) -> bool:
        """A supervisor clears a lock-out; whether there was anything to clear."""
        now = self.now()
        with self.journal.transaction() as conn:
            tries = _load(conn, subject)
            if tries is None:
                return False
            conn.execute("DELETE FROM pin_tries WHERE subject = ?", (subject,))
            record_event(conn, now.wall, "pin_unlocked", subject, by,
                         f"cleared after {tries.failures} wrong")
        return True


def at_wall(wall: datetime) -> Now:
    """A clock for callers that pass their own wall time (the use cases' clock); the
    boot clock is still the system's."""
    def now() -> Stamp:
        return Stamp.now(wall.astimezone(UTC))
    return now


__all__ = [
    "MAX_LOCKOUT_SECONDS",
    "PinGuard",
    "PinLocked",
    "Policy",
    "SecurityEvent",
    "Stamp",
    "Tries",
    "at_wall",
    "describe_wait",
    "record_event",
    "security_events",
]
