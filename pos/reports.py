"""X (running) and Z (numbered, immutable, day close) reports from the journal."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pos.errors import InputError
from pos.journal import FLAGGED_STATES, SYNC_STATES, Journal, State, Tender
from pos.journal.models import RefLine, iso
from pos.money import Money

#: States that count as a completed sale in the totals.
_DONE = {State.done}
#: Accepted sales not yet settled with the provider.
_OUTSTANDING = SYNC_STATES
#: Cash taken at the counter that is still counted as taken: a flagged sale's cash
#: leaves only by the refund move recorded when it is handed back (a resolved sale
#: stays here, or the cash would come off twice); a voided queued sale (cancelled)
#: hands its cash back with the void.
_CASH_KEPT = _DONE | _OUTSTANDING | {State.declined_offline, State.failed, State.expired,
                                     State.review, State.resolved}

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
    "basket_cash": "Basket sales, cash",
    "cash_refund": "Cash refunds",
    "cash_collected": "Cash collected (flagged)",
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


Row = dict[str, Any]

#: Kinds that give money back to the customer: they count against the takings.
_MONEY_OUT = {"card_refund", "cash_refund"}
#: Card-paid electricity is funded by its card debit (its parent): the debit carries
#: the money, the vend or bill the goods, so the takings count it once.
_FUNDED = {"vend", "postpaid"}


class EmptyDay(InputError):
    """A Z report with nothing in its period: refused unless asked for explicitly."""


def _add(out: dict[str, dict[str, Any]], key: str, row: Row, sign: int = 1) -> None:
    entry = out.setdefault(key, {"count": 0, "totals": {}})
    entry["count"] += int(row["count"])
    totals = entry["totals"]
    totals[row["currency"]] = totals.get(row["currency"], 0) + sign * int(row["amount_minor"])


def _sum(rows: list[Row]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        out[r["currency"]] += int(r["amount_minor"])
    return dict(out)


def _sum_lines(lines: list[RefLine]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for t in lines:
        out[t.amount.currency] += t.amount.minor
    return dict(out)


def _fmt(totals: dict[str, int]) -> str:
    if not totals:
        return "0"
    return ", ".join(Money(v, c).format() for c, v in sorted(totals.items()))


def takings_sign(kind: str, tender: str) -> int:
    """How a completed row counts in the takings: +1, -1 (money given back), or 0 for
    card-paid electricity (its card debit carries the money). The back office's day
    figures (pos/hub/dashboard.py) follow the same rule."""
    if tender == str(Tender.card) and kind in _FUNDED:
        return 0
    return -1 if kind in _MONEY_OUT else 1


def figures(rows: list[Row]) -> dict[str, Any]:
    """The report's figures from one period's totals (or from the same aggregates
    recomputed from the rows): by kind (what was sold), takings by tender and by
    operator (money counted once, refunds taken off), cash expected and owed back."""
    by_kind: dict[str, dict[str, Any]] = {}
    by_tender: dict[str, dict[str, Any]] = {}
    by_operator: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["state"] != str(State.done):
            continue
        _add(by_kind, r["kind"], r)
        sign = takings_sign(r["kind"], r["tender"])
        if not sign:
            continue  # its card debit is the money
        _add(by_tender, r["tender"], r, sign)
        _add(by_operator, r["operator"], r, sign)
    kept = {str(s) for s in _CASH_KEPT}
    owed = {str(s) for s in (State.declined_offline, State.failed, State.expired)}
    cash_in = [r for r in rows if r["tender"] == str(Tender.cash) and r["state"] in kept
               and r["kind"] not in _MONEY_OUT]
    cash_out = [r for r in rows if r["tender"] == str(Tender.cash) and r["state"] in kept
                and r["kind"] in _MONEY_OUT]
    cash_owed = [r for r in rows if r["tender"] == str(Tender.cash) and r["state"] in owed]
    expected = _sum(cash_in)
    for cur, v in _sum(cash_out).items():
        expected[cur] = expected.get(cur, 0) - v
    return {"by_kind": by_kind, "by_tender": by_tender, "by_operator": by_operator,
            "cash_expected": expected, "cash_owed_back": _sum(cash_owed),
            "transactions": sum(int(r["count"]) for r in rows)}


#: Lines listing unsynced or flagged items on a report (the JSON has every ref).
LIST_MAX = 50


def counter_rows(journal: Journal, since: dt.datetime | None,
                 until: dt.datetime) -> list[Row]:
    """The cash the counter took or gave outside the transactions table, in the
    period, shaped like kept-totals rows for :func:`figures`: the cash parts of basket
    sales (their card parts are card debits, already counted), cash given back for a
    void, and cash collected for a flagged debit. Read by time through indexes, so the
    cost follows the period, not the journal."""
    lo = iso(since) if since else ""
    hi = iso(until)
    out: list[Row] = []
    for r in journal.query(
            "SELECT t.operator AS operator, s.currency AS currency, count(*) AS n,"
            " sum(t.amount_minor) AS amount FROM sale_tenders t JOIN sales s"
            " ON s.id = t.sale_id WHERE t.tender = 'cash' AND t.state = 'paid'"
            " AND t.at > ? AND t.at <= ? GROUP BY t.operator, s.currency", (lo, hi)):
        out.append({"state": str(State.done), "kind": "basket_cash", "tender": "cash",
                    "currency": r["currency"], "operator": r["operator"], "count": r["n"],
                    "amount_minor": r["amount"]})
    for r in journal.query(
            "SELECT kind, operator, currency, count(*) AS n, sum(amount_minor) AS amount"
            " FROM cash_moves WHERE kind IN ('refund', 'collected') AND at > ? AND at <= ?"
            " GROUP BY kind, operator, currency", (lo, hi)):
        out.append({"state": str(State.done),
                    "kind": "cash_refund" if r["kind"] == "refund" else "cash_collected",
                    "tender": "cash", "currency": r["currency"], "operator": r["operator"],
                    "count": r["n"], "amount_minor": r["amount"]})
    return out


def build(journal: Journal, *, terminal_id: str, kind: str, since: dt.datetime | None,
          until: dt.datetime, number: int | None = None, period: int | None = None,
          security: dict[str, Any] | None = None, all_refs: bool = True) -> Report:
    """The report of Z period ``period`` (default: the open one) from the kept totals:
    its cost does not grow with the journal (see pos/journal/schema.py, totals).
    ``all_refs``: the payload lists every flagged ref (the Z keeps them; ``report x
    --json`` prints them); False for a report only shown, whose payload then lists the
    flagged lines shown and the kept count (11,000 refs read took 20-30 ms at 1M rows)."""
    fig = figures(journal.totals(journal.open_period() if period is None else period)
                  + counter_rows(journal, since, until))
    # Every ref, but only the lines shown decoded: the flagged list grows with the
    # journal's history until a supervisor resolves it (issue 15's 1,000,000 rows).
    unsynced = journal.ref_lines(_OUTSTANDING)
    flagged = journal.ref_lines(FLAGGED_STATES, limit=LIST_MAX)
    flagged_refs = (journal.refs_in(FLAGGED_STATES) if all_refs else
                    [t.ref for t in flagged])
    flagged_total = len(flagged_refs) if all_refs else journal.flagged_count()
    if security is None:
        security = _security(journal, since, until)

    lines: list[tuple[str, str]] = [("Terminal", terminal_id)]
    if since:
        lines.append(("From", since.strftime("%Y-%m-%d %H:%M")))
    lines.append(("To", until.strftime("%Y-%m-%d %H:%M")))
    lines.append(("", ""))
    lines.append(("BY KIND", ""))
    for k, v in sorted(fig["by_kind"].items()):
        lines.append((f"{KIND_LABELS.get(k, k)} x{v['count']}", _fmt(v["totals"])))
    lines.append(("BY TENDER", ""))
    for k, v in sorted(fig["by_tender"].items()):
        lines.append((f"{k.upper()} x{v['count']}", _fmt(v["totals"])))
    lines.append(("BY OPERATOR", ""))
    for k, v in sorted(fig["by_operator"].items()):
        lines.append((f"{k} x{v['count']}", _fmt(v["totals"])))
    lines.append(("Cash expected", _fmt(fig["cash_expected"])))
    if fig["cash_owed_back"]:
        lines.append(("Cash owed back", _fmt(fig["cash_owed_back"])))
    lines.append(("NOT YET SYNCED", f"{len(unsynced)}"))
    for t in unsynced[:LIST_MAX]:
        lines.append((f"{t.ref} {t.kind}", t.amount.format()))
    if len(unsynced) > LIST_MAX:
        lines.append((f"... and {len(unsynced) - LIST_MAX} more", ""))
    lines.append(("FLAGGED", f"{flagged_total}"))
    for t in flagged[:LIST_MAX]:
        lines.append((f"{t.ref} {t.state}", t.amount.format()))
    if flagged_total > LIST_MAX:
        lines.append((f"... and {flagged_total - LIST_MAX} more", ""))
    lines.append(("SECURITY", ""))
    lines.append(("Wrong PINs", str(security["wrong_pins"])))
    lines.append(("Lock-outs", str(security["lockouts"])))
    for e in security["notable"]:
        lines.append((f"{e['at'][11:16]} {e['kind']}", e["subject"]))

    payload = {
        "terminal_id": terminal_id,
        "since": since.isoformat() if since else None,
        "until": until.isoformat(),
        **fig,
        "unsynced": [t.ref for t in unsynced],
        "unsynced_totals": _sum_lines(unsynced),
        "flagged": flagged_refs,
        "flagged_count": flagged_total,
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
    last = journal.last_z()
    return dt.datetime.fromisoformat(last.payload["until"]) if last else None


def x_report(journal: Journal, *, terminal_id: str, now: dt.datetime,
             all_refs: bool = True) -> Report:
    return build(journal, terminal_id=terminal_id, kind="X", since=last_close(journal),
                 until=now, all_refs=all_refs)


def close_day(journal: Journal, *, terminal_id: str, now: dt.datetime, operator: str,
              override_by: str | None = None, keep_backups: int | None = None,
              allow_empty: bool = False, backup: bool = True) -> Report:
    """Write the next numbered Z report. Unsynced items need a supervisor override; a
    period with nothing in it is refused (:class:`EmptyDay`) unless ``allow_empty``.
    ``backup``: make the day-close backup now; False when the caller shows the Z first
    and then calls :func:`day_close_backup` (``payload["backup"]`` is None until then)."""
    since = last_close(journal)
    security = _security(journal, since, now)
    holder: list[Report] = []

    def payload() -> dict[str, Any]:
        # Runs inside the journal's write transaction that stores the Z (Journal.z_close).
        number = journal.open_period()
        rep = build(journal, terminal_id=terminal_id, kind="Z", since=since, until=now,
                    number=number, period=number, security=security)
        if rep.payload["unsynced"] and not override_by:
            raise InputError(
                f"{len(rep.payload['unsynced'])} transactions are not synced yet: sync first, "
                "or a supervisor must override the day close"
            )
        if not rep.payload["transactions"] and not allow_empty:
            last = f" since Z #{number - 1}" if number > 1 else ""
            raise EmptyDay(f"Nothing was sold{last}: this Z report #{number} would be empty. "
                           "Close an empty day only if that is what you mean.")
        rep.payload["closed_by"] = operator
        rep.payload["override_by"] = override_by
        holder.append(rep)
        return rep.payload

    stored = journal.z_close(journal.open_period(), payload)
    rep = holder[-1]
    rep.payload["backup"] = (day_close_backup(journal, stored.number, keep_backups)
                             if backup else None)
    rep.lines.insert(0, ("Z report", f"#{stored.number}"))
    if override_by:
        rep.lines.append(("Override by", override_by))
    return rep


def day_close_backup(journal: Journal, number: int, keep: int | None) -> str | None:
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
