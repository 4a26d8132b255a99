"""X (running) and Z (numbered, immutable, day close) reports from the journal."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pos.errors import InputError
from pos.journal import SYNC_STATES, Journal, State, Tender, Txn
from pos.money import Money

#: States that count as a completed sale in the totals.
_DONE = {State.done}
#: Accepted sales not yet settled with the provider.
_OUTSTANDING = SYNC_STATES
#: Cash taken at the counter that is still in the drawer (accepted, not refused).
_CASH_KEPT = _DONE | _OUTSTANDING | {State.declined_offline, State.failed, State.expired}

KIND_LABELS = {
    "card_debit": "Card payments",
    "card_credit": "Card top-ups",
    "card_refund": "Card refunds",
    "gift_activation": "Gift activations",
    "sente_activation": "Sente activations",
    "card_lock": "Card locks",
    "card_unlock": "Card unlocks",
    "vend": "Electricity tokens",
    "postpaid": "Electricity bills",
}


@dataclass
class Report:
    kind: str  # "X" or "Z"
    number: int | None
    terminal_id: str
    since: dt.datetime | None
    until: dt.datetime
    lines: list[tuple[str, str]] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "number": self.number, **self.payload}


def _sum(txns: list[Txn]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for t in txns:
        out[t.amount.currency] += t.amount.minor
    return dict(out)


def _fmt(totals: dict[str, int]) -> str:
    if not totals:
        return "0"
    return ", ".join(Money(v, c).format() for c, v in sorted(totals.items()))


def build(journal: Journal, *, terminal_id: str, kind: str, since: dt.datetime | None,
          until: dt.datetime, number: int | None = None) -> Report:
    txns = journal.list(since=since, until=until, limit=1_000_000, newest_first=False)
    done = [t for t in txns if t.state in _DONE]
    by_kind: dict[str, list[Txn]] = defaultdict(list)
    by_tender: dict[str, list[Txn]] = defaultdict(list)
    by_operator: dict[str, list[Txn]] = defaultdict(list)
    for t in done:
        by_kind[str(t.kind)].append(t)
        by_tender[str(t.tender)].append(t)
        by_operator[t.operator].append(t)
    cash = [t for t in txns if t.tender == Tender.cash and t.state in _CASH_KEPT]
    cash_owed = [t for t in txns if t.tender == Tender.cash
                 and t.state in (State.declined_offline, State.failed, State.expired)]
    unsynced = journal.list(states=list(_OUTSTANDING), limit=100_000, newest_first=False)
    flagged = journal.flagged()

    lines: list[tuple[str, str]] = [("Terminal", terminal_id)]
    if since:
        lines.append(("From", since.strftime("%Y-%m-%d %H:%M")))
    lines.append(("To", until.strftime("%Y-%m-%d %H:%M")))
    lines.append(("", ""))
    lines.append(("BY KIND", ""))
    for k, items in sorted(by_kind.items()):
        lines.append((f"{KIND_LABELS.get(k, k)} x{len(items)}", _fmt(_sum(items))))
    lines.append(("BY TENDER", ""))
    for k, items in sorted(by_tender.items()):
        lines.append((f"{k.upper()} x{len(items)}", _fmt(_sum(items))))
    lines.append(("BY OPERATOR", ""))
    for k, items in sorted(by_operator.items()):
        lines.append((f"{k} x{len(items)}", _fmt(_sum(items))))
    lines.append(("Cash expected", _fmt(_sum(cash))))
    if cash_owed:
        lines.append(("Cash owed back", _fmt(_sum(cash_owed))))
    lines.append(("NOT YET SYNCED", f"{len(unsynced)}"))
    for t in unsynced:
        lines.append((f"{t.ref} {t.kind}", t.amount.format()))
    lines.append(("FLAGGED", f"{len(flagged)}"))
    for t in flagged:
        lines.append((f"{t.ref} {t.state}", t.amount.format()))
    security = _security(journal, since, until)
    lines.append(("SECURITY", ""))
    lines.append(("Wrong PINs", str(security["wrong_pins"])))
    lines.append(("Lock-outs", str(security["lockouts"])))
    for e in security["notable"]:
        lines.append((f"{e['at'][11:16]} {e['kind']}", e["subject"]))

    payload = {
        "terminal_id": terminal_id,
        "since": since.isoformat() if since else None,
        "until": until.isoformat(),
        "by_kind": {k: {"count": len(v), "totals": _sum(v)} for k, v in by_kind.items()},
        "by_tender": {k: {"count": len(v), "totals": _sum(v)} for k, v in by_tender.items()},
        "by_operator": {k: {"count": len(v), "totals": _sum(v)} for k, v in by_operator.items()},
        "cash_expected": _sum(cash),
        "cash_owed_back": _sum(cash_owed),
        "unsynced": [t.ref for t in unsynced],
        "unsynced_totals": _sum(unsynced),
        "flagged": [t.ref for t in flagged],
        "transactions": len(txns),
        "security": security,
    }
    return Report(kind, number, terminal_id, since, until, lines, payload)


def _security(journal: Journal, since: dt.datetime | None, until: dt.datetime) -> dict[str, Any]:
    """What the supervisor must see from the security trail (pos/pinguard.py): wrong
    PINs and lock-outs counted, lock-outs, unlocks, operator changes and restores listed."""
    from pos.pinguard import security_events

    events = [e for e in security_events(journal, since=since, limit=100_000) if e.at < until]
    notable = [e.to_json() for e in events if e.kind not in ("pin_wrong", "pin_ok_after_wrong")]
    return {"wrong_pins": sum(e.kind in ("pin_wrong", "pin_locked") for e in events),
            "lockouts": sum(e.kind == "pin_locked" for e in events), "notable": notable}


def last_close(journal: Journal) -> dt.datetime | None:
    zs = journal.z_reports()
    if not zs:
        return None
    last = max(zs, key=lambda z: z.number)
    return dt.datetime.fromisoformat(last.payload["until"])


def x_report(journal: Journal, *, terminal_id: str, now: dt.datetime) -> Report:
    return build(journal, terminal_id=terminal_id, kind="X", since=last_close(journal), until=now)


def close_day(journal: Journal, *, terminal_id: str, now: dt.datetime, operator: str,
              override_by: str | None = None, keep_backups: int | None = None) -> Report:
    """Write the next numbered Z report. Unsynced items need a supervisor override."""
    zs = journal.z_reports()
    number = (max(z.number for z in zs) + 1) if zs else 1
    rep = build(journal, terminal_id=terminal_id, kind="Z", since=last_close(journal), until=now,
                number=number)
    if rep.payload["unsynced"] and not override_by:
        raise InputError(
            f"{len(rep.payload['unsynced'])} transactions are not synced yet: sync first, or a "
            "supervisor must override the day close"
        )
    rep.payload["closed_by"] = operator
    rep.payload["override_by"] = override_by
    journal.z_report_put(number, rep.payload)
    rep.payload["backup"] = _day_close_backup(journal, number, keep_backups)
    rep.lines.insert(0, ("Z report", f"#{number}"))
    if override_by:
        rep.lines.append(("Override by", override_by))
    return rep


def _day_close_backup(journal: Journal, number: int, keep: int | None) -> str | None:
    """A backup of the journal with this Z report in it (pos/backup.py). The Z report is
    stored already: a failed backup is logged and the scheduled one tries again."""
    import logging
    import sqlite3

    from pos.backup import DEFAULT_KEEP, make_backup
    from pos.errors import PosError

    try:
        return make_backup(journal, keep=keep or DEFAULT_KEEP, reason=f"z{number}").name
    except (OSError, sqlite3.Error, PosError) as exc:
        logging.getLogger(__name__).warning("backup at day close failed: %s", exc)
        return None


def stored_z(journal: Journal, number: int) -> dict[str, Any] | None:
    for z in journal.z_reports():
        if z.number == number:
            return z.payload
    return None


def render_report(report: Report, columns: int = 32) -> str:
    title = f"{report.kind} REPORT" + (f" #{report.number}" if report.number else "")
    out = [title.center(columns), "-" * columns]
    for label, value in report.lines:
        if not label and not value:
            out.append("")
            continue
        if not value:
            out.append(label[:columns])
            continue
        gap = columns - len(label) - len(value)
        if gap >= 1:
            out.append(label + " " * gap + value)
        else:
            out.append(label[:columns])
            out.append(value.rjust(columns)[-columns:])
    out.append("-" * columns)
    return "\n".join(out)
