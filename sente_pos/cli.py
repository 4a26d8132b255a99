"""The ``sente-pos`` command. Headless commands take ``--json`` and print one JSON document.

Exit codes (DESIGN.md): 0 done; 2 declined or rejected input; 3 accepted
offline or pending (queued for sync); 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pos.config import Settings, ensure_home, load_settings
from pos.errors import PosError
from pos.gcpause import resume_gc
from pos.text import MAX_NAME, MAX_REASON, printable, printable_lines, validate_free_text
from sente_pos.logsetup import setup_logging

EXIT_OK, EXIT_OTHER, EXIT_DECLINED, EXIT_QUEUED = 0, 1, 2, 3
log = logging.getLogger("sente_pos")


# ----------------------------------------------------------------- output
def _json_text(data: Any) -> str:
    """One JSON document; json escapes C0 controls, and DEL / C1 (which a terminal may
    read as a CSI) are escaped here, so provider text cannot drive the terminal."""
    text = json.dumps(data, default=str, ensure_ascii=False)
    return "".join(f"\\u{ord(ch):04x}" if 0x7f <= ord(ch) <= 0x9f else ch for ch in text)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` (with ``--json``) or ``text``: provider text made printable first."""
    if getattr(args, "json", False):
        print(_json_text(data))
    else:
        print(printable_lines(text))


def fail(args: argparse.Namespace, exc: PosError) -> int:
    if getattr(args, "json", False):
        print(_json_text({"error": exc.message, "type": type(exc).__name__}))
    else:
        print(f"error: {printable(exc.message)}", file=sys.stderr)
    return exc.exit_code


def read_pin_from_stdin(prompt: str = "Card PIN: ") -> str | None:
    """A PIN comes on stdin, one per line (never argv, never echoed)."""
    if sys.stdin is None:
        return None
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt).strip() or None
    line = sys.stdin.readline().strip()
    return line or None


# ------------------------------------------------------- terminal commands
async def _with_terminal(settings: Settings,
                         body: Callable[[Any], Awaitable[int]]) -> int:
    from pos.terminal import Terminal

    term = await Terminal.open(settings, operator=os.environ.get("SENTE_POS_OPERATOR", "cli"))
    try:
        return await body(term)
    finally:
        await term.aclose()


def _sale_text(res: Any) -> str:
    lines = [f"{res.status.upper()}: {res.message}", f"ref {res.ref}"]
    if res.token:
        from pos.meter import format_token

        lines.append(f"TOKEN  {format_token(res.token)}")
    if res.units:
        lines.append(f"units  {res.units}")
    return "\n".join(lines)


def cmd_card_show(args: argparse.Namespace, settings: Settings) -> int:
    from pos.cardqr import parse_card_qr

    card = parse_card_qr(args.payload)
    if args.offline:
        data = {"card": card.to_json(), "problems": card.problems()}
        emit(args, data, _card_text(data))
        return EXIT_OK

    async def body(term: Any) -> int:
        lookup = await term.lookup_card(args.payload)
        data = lookup.to_json()
        emit(args, data, _card_text(data))
        return EXIT_OK

    return asyncio.run(_with_terminal(settings, body))


def _card_text(data: dict[str, Any]) -> str:
    c = data["card"]
    lines = [f"{c['card_type']} {c['number']}  id {c['card_id']}  expires {c['expiry']}  "
             f"{c['currency']}"]
    if "status" in data:
        lines.append(f"status {data['status']}  PIN {'required' if data['has_pin'] else 'no'}"
                     f"{'  (offline: cached)' if data.get('offline') else ''}")
    if "balance" in data:
        lines.append(f"balance {data['balance']['display']}  available credit "
                     f"{data['available_credit']['display']}")
    if data.get("wallets"):
        lines.append("wallets: " + ", ".join(data["wallets"]))
    for p in data.get("problems", []):
        lines.append(f"! {p}")
    return "\n".join(lines)


def cmd_card_debit(args: argparse.Namespace, settings: Settings) -> int:
    from pos.money import parse_user_amount

    reason = validate_free_text(args.reason, "payment reason", MAX_REASON)
    wallet = validate_free_text(args.wallet or settings.patasente.default_wallet, "wallet",
                                MAX_NAME)
    pin = read_pin_from_stdin()

    async def body(term: Any) -> int:
        lookup = await term.lookup_card(args.payload)
        amount = parse_user_amount(args.amount, lookup.card.currency)
        res = await term.pay_by_card(lookup, amount, wallet, pin, reason)
        emit(args, res.to_json(), _sale_text(res))
        return int(res.exit_code)

    return asyncio.run(_with_terminal(settings, body))


def _power_sale(args: argparse.Namespace, settings: Settings, *, postpaid: bool) -> int:
    """A token or a bill, in cash or by card. By card, as at the counter: the card is
    refused before any PIN when it cannot pay, and the PIN is read only once the card's
    amount (the quote) is shown (``sente_pos.cli_quote``)."""
    from pos.errors import LinkDown
    from pos.money import parse_user_amount

    given_name = validate_free_text(args.name, "customer name", MAX_NAME, optional=True)
    if args.wallet:
        validate_free_text(args.wallet, "wallet", MAX_NAME)

    async def body(term: Any) -> int:
        amount = parse_user_amount(args.amount, settings.pawacard.currency)
        card = await term.lookup_card(args.card) if args.card else None
        tender = "card" if card else "cash"
        wallet = (args.wallet or settings.patasente.default_wallet) if card else None
        name = given_name
        if not name and term.link.pawacard.should_try():
            try:
                info = await (term.verify_account(args.target) if postpaid
                              else term.verify_meter(args.target))
                name = info.customer_name
            except LinkDown:
                pass  # offline for this sale, whatever form the link failure took:
                # a cash sale queues (TOKEN PENDING), a card sale is refused early
        sell = term.pay_bill if postpaid else term.sell_token
        if card is None:
            res = await sell(args.target, amount, name, tender=tender)
            doc = res.to_json()
        else:
            from functools import partial

            from sente_pos import cli_quote

            cli_quote.refuse_early(term, card, None if postpaid else args.target)
            res, quote = await cli_quote.sell_with_quote(
                term, partial(sell, args.target, amount, name, tender=tender, card=card,
                              wallet=wallet), card, amount,
                str(wallet), read_pin_from_stdin)
            doc = cli_quote.result_json(res, quote)
        if res.status == "pending" and args.wait:
            res = await term.wait_settled(res.ref)
            doc = {**doc, **res.to_json()}
        emit(args, doc, _sale_text(res))
        return int(res.exit_code)

    return asyncio.run(_with_terminal(settings, body))


def cmd_vend(args: argparse.Namespace, settings: Settings) -> int:
    args.target = args.meter
    return _power_sale(args, settings, postpaid=False)


def cmd_postpaid(args: argparse.Namespace, settings: Settings) -> int:
    args.target = args.account
    return _power_sale(args, settings, postpaid=True)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    async def body(term: Any) -> int:
        rep = await term.sync_now()
        data = rep.to_json()
        data["outcomes"] = [term.journal.require(r).to_json() for r in
                            dict.fromkeys(rep.settled + rep.declined + rep.failed + rep.expired)]
        text = (f"settled {len(rep.settled)}, declined {len(rep.declined)}, failed "
                f"{len(rep.failed)}, expired {len(rep.expired)}, pending {len(rep.pending)}, "
                f"deferred {len(rep.deferred)}, refunds {len(rep.refunds)}; "
                f"{rep.remaining} outstanding" + (" (another sync is running)" if rep.busy
                                                  else "") + (" [offline]" if rep.offline else ""))
        for o in data["outcomes"]:
            extra = f" token {o['token_groups']}" if o.get("token_groups") else ""
            err = f" ({o['last_error']})" if o.get("last_error") and o["state"] != "done" else ""
            text += f"\n  {o['ref']} {o['kind']} {o['amount']['display']}: {o['state']}{extra}{err}"
        emit(args, data, text)
        term.backup_if_due()  # the scheduled journal backup rides on sync (pos/backup.py)
        if rep.busy:
            return EXIT_QUEUED
        return EXIT_OK if rep.remaining == 0 else EXIT_QUEUED

    return asyncio.run(_with_terminal(settings, body))


def cmd_journal(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from pos.journal import SYNC_STATES, Journal, State, export_csv

    home = ensure_home()
    if args.action == "restore":
        return _restore(args, settings)
    journal = Journal.open(home / "journal.db")
    try:
        if args.action in ("archive", "unarchive"):
            return _archive(args, settings, journal)
        if args.action == "backup":
            return _backup(args, settings, journal)
        if args.action == "security":
            return _security_log(args, journal)
        if args.action == "export":
            if not args.csv:
                raise_input("journal export needs --csv FILE")
            n = export_csv(journal, Path(args.csv))
            emit(args, {"exported": n, "file": args.csv}, f"exported {n} rows to {args.csv}")
            return EXIT_OK
        since: dt.datetime | None = None
        if args.since:
            try:
                parsed = dt.datetime.fromisoformat(args.since)
            except ValueError:
                raise_input(f"--since takes an ISO date/time, not {args.since!r}")
                raise  # unreachable: raise_input raises
            since = parsed if parsed.tzinfo else parsed.astimezone()
        if args.ref:
            return _journal_ref(args, journal)
        states = None
        if args.status == "flagged":
            rows = journal.flagged(limit=args.limit)
        else:
            if args.status == "unsynced":
                states = list(SYNC_STATES)
            elif args.status:
                try:
                    states = [State(args.status)]
                except ValueError:
                    raise_input(f"unknown status {args.status!r}; one of: "
                                + ", ".join(s.value for s in State) + ", unsynced, flagged")
            rows = journal.list(states=states, since=since, search=args.search,
                                limit=args.limit)
        data = [t.to_json() for t in rows]
        text = "\n".join(
            f"{t['created_at'][:19]} {t['ref']} {t['kind']:<16} {t['amount']['display']:>14} "
            f"{t['state']:<16}{' ' + t['token_groups'] if t.get('token_groups') else ''}"
            for t in data) or "(no transactions)"
        emit(args, data, text)
        return EXIT_OK
    finally:
        journal.close()


def _archive(args: argparse.Namespace, settings: Settings, journal: Any) -> int:
    """``journal archive [--dry-run] [--compact]``: settled rows older than
    ``journal.archive_after_days`` to ``archive/``; ``journal unarchive FILE``: put a
    file's rows back (README "Housekeeping")."""
    import datetime as dt

    from pos import housekeeping
    from pos.journal import archive

    now = dt.datetime.now(dt.UTC)
    if args.action == "unarchive":
        if not args.backup:
            raise_input("journal unarchive needs the archive file's name "
                        "(e.g. journal-2025-03.jsonl.gz)")
        n = archive.restore(journal, args.backup, now=now)
        emit(args, {"restored": n, "file": args.backup},
             f"put {n} rows of {args.backup} back into the journal")
        return EXIT_OK
    rep = housekeeping.archive_due(journal, settings, now=now, dry_run=args.dry_run)
    data = rep.to_json()
    verb = "would archive" if rep.dry_run else "archived"
    text = (f"{verb} {rep.rows} rows settled before {rep.cutoff[:10]}"
            + "".join(f"\n  {name}: {n} rows" for name, n in rep.files.items())
            + (f"\n  {rep.held_by_family} kept with a relative that must stay"
               if rep.held_by_family else "")
            + "".join(f"\n  recovered: {line}" for line in rep.recovered)
            + (f"\n  {rep.freed_pages} free pages given back" if rep.freed_pages else ""))
    if args.compact and not args.dry_run:
        data["compact"] = housekeeping.compact(journal)
        text += "\n  compact: " + ("done" if data["compact"]["compacted"]
                                   else data["compact"]["reason"])
    emit(args, data, text)
    return EXIT_OK


def _journal_ref(args: argparse.Namespace, journal: Any) -> int:
    """``journal --ref REF``: the row (looked up by ref, however old), its void or refund
    and its event trail; JSON: a list of one row with ``events`` (and ``void``)."""
    from pos.usecases import voids

    txn = journal.get(args.ref)
    if txn is None:
        from pos.journal import archive

        kept = archive.committed(journal)
        raise_input(f"No transaction with ref {args.ref}" + (
            f" in the journal; {sum(int(v.get('rows', 0)) for v in kept.values())} archived"
            f" rows are in {archive.archive_dir(journal.path)} (zgrep {args.ref} "
            f"{archive.archive_dir(journal.path)}/*.gz)" if kept else ""))
    events = journal.events(txn.ref)
    mark = voids.mark(journal, txn)
    row = dict(txn.to_json(), events=[e.to_json() for e in events],
               void=None if mark is None else {"label": mark.label,
                                               "refund_ref": mark.refund_ref,
                                               "by": mark.by or None, "why": mark.why or None})
    state = str(txn.state) + (f" ({mark.label.upper()})" if mark is not None else "")
    fields = [("ref", txn.ref), ("kind", str(txn.kind)), ("state", state),
              ("amount", txn.amount.format()), ("tender", str(txn.tender)),
              ("operator", txn.operator), ("created", txn.created_at.astimezone()
                                           .strftime("%Y-%m-%d %H:%M:%S")),
              ("card", txn.card_no or ""), ("wallet", txn.wallet or ""),
              ("meter", txn.meter or ""), ("account", txn.account or ""),
              ("customer", txn.customer_name or ""), ("token", txn.token_groups),
              ("reason", txn.reason or ""), ("parent", txn.parent_ref or ""),
              ("voided" if mark and mark.label != "refunded" else "refunded",
               " ".join(x for x in (mark.by and f"by {mark.by}", mark.why and f"({mark.why})")
                        if x) or "yes" if mark else ""),
              ("refund", (mark.refund_ref or "") if mark else ""),
              ("last error", txn.last_error or "")]
    lines = [f"{k:<11}{v}" for k, v in fields if v]
    lines += ["", "event trail:"]
    for ev in events:
        extra = "  ".join(x for x in (ev.remark, ev.error and f"error: {ev.error}",
                                      ev.operator and f"by {ev.operator}") if x)
        lines.append(f"  {ev.at.astimezone().strftime('%Y-%m-%d %H:%M:%S')}  {ev.step:<22}"
                     f"{extra}".rstrip())
    emit(args, [row], "\n".join(lines))
    return EXIT_OK


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    """``journal restore``: the backups and the journal's state; with a backup named,
    put it back (supervisor PIN on stdin) keeping the damaged journal aside."""
    from pos.backup import backups, journal_state, restore

    live = settings.home / "journal.db"
    if not args.backup:
        found = backups(settings.home)
        state = journal_state(live)
        head = f"journal: {'DAMAGED - ' + state if state else 'sound'}"
        emit(args, {"journal": state or "sound", "backups": [b.to_json() for b in found]},
             "\n".join([head, *(b.line() for b in reversed(found))] if found
                       else [head, "(no backups)"]))
        return EXIT_OK
    pin = read_pin_from_stdin("Supervisor PIN: ") or ""
    if not pin:
        raise_input("A supervisor approves a restore: their PIN is the first line on stdin")
    done = restore(settings, args.backup, pin)
    kept = ", ".join(str(p) for p in done.damaged_kept) or "nothing (it was missing)"
    emit(args, done.to_json(),
         f"restored {done.backup.name} (approved by {done.supervisor}); damaged journal "
         f"kept: {kept}. Sales made after this backup are not in the journal: check the "
         "providers' statements. Receipt numbers continue after "
         f"{done.receipt_no}.")
    return EXIT_OK


def _security_log(args: argparse.Namespace, journal: Any) -> int:
    import datetime as dt

    from pos.pinguard import security_events

    since = None
    if args.since:
        try:
            since = dt.datetime.fromisoformat(args.since)
        except ValueError:
            raise_input(f"--since takes an ISO date/time, not {args.since!r}")
        assert since is not None
        since = since if since.tzinfo else since.astimezone()
    events = security_events(journal, since=since, limit=args.limit)
    emit(args, [e.to_json() for e in events],
         "\n".join(e.line() for e in events) or "(no security events)")
    return EXIT_OK


def raise_input(message: str) -> None:
    from pos.errors import InputError

    raise InputError(message)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from pos.reports import render_report

    async def body(term: Any) -> int:
        if args.which == "x":
            rep = term.x_report()
        else:
            override = None
            if args.override:
                pin = read_pin_from_stdin() or ""
                override = term.check_supervisor(pin)
            rep = term.close_day(override_by=override, allow_empty=args.allow_empty,
                                 finish=False)
            if not args.json:  # the Z is committed: show it before its backup
                print(printable_lines(render_report(rep, 40)), flush=True)
            if not args.wait:  # its backup and archive run detached
                rep.payload["backup"] = None
                rep.payload["backup_process"] = _detach_day_close(rep.number)
                if not args.json:
                    print("Backup: being made in the background (`sente-pos journal "
                          "restore` lists the backups)" if rep.payload["backup_process"]
                          else "Backup: not started (see the log; the scheduled backup "
                          "makes one)")
                    return EXIT_OK
                emit(args, rep.to_json(), "")
                return EXIT_OK
            if not args.json:
                print("Backing up the journal...", file=sys.stderr, flush=True)
            term.finish_day_close(rep)
            if not args.json:
                backup = rep.payload.get("backup")
                print(f"Backup: {backup}" if backup else
                      "Backup: FAILED (see the log; the scheduled backup retries)")
                archived = rep.payload.get("archive")
                if archived:
                    print(f"Archived: {archived.get('rows', archived.get('error'))}")
                return EXIT_OK
        emit(args, rep.to_json(), render_report(rep, 40))
        return EXIT_OK

    return asyncio.run(_with_terminal(settings, body))


def _detach_day_close(number: int | None) -> int | None:
    """Start ``journal backup --after-z N`` in its own session, not waited for: a copy of
    the whole journal (seconds at 1 GiB, minutes on a Pi's SD card) must not hold up the
    day close. Returns its pid; None if it could not start (logged: the Z is committed
    already, and the scheduled backup makes one). A power cut meanwhile leaves no half
    backup (it is named only when whole) and the scheduled backup makes one later."""
    import subprocess

    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sente_pos.cli", "journal", "backup", "--after-z",
             str(number)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError as exc:
        logging.getLogger(__name__).warning("day-close backup not started: %s", exc)
        return None
    return proc.pid


def _backup(args: argparse.Namespace, settings: Settings, journal: Any) -> int:
    """``journal backup [--after-z N]``: a backup now (one at a time: a second waits);
    after Z report N, named for it and followed by the archive run that a Z starts."""
    import datetime as dt

    from pos import reports
    from pos.backup import DEFAULT_KEEP, make_backup

    if args.after_z is None:
        made = make_backup(journal, keep=settings.backup.keep or DEFAULT_KEEP,
                           reason="manual")
        emit(args, made.to_json(), f"Backup: {made.name}")
        return EXIT_OK
    from pos.housekeeping import after_z

    name = reports.day_close_backup(journal, args.after_z, settings.backup.keep)
    archived = after_z(journal, settings, dt.datetime.now(dt.UTC))
    emit(args, {"backup": name, "archive": archived},
         f"Backup: {name}" if name else "Backup: FAILED (see the log)")
    return EXIT_OK if name else EXIT_OTHER


def cmd_config_show(args: argparse.Namespace, settings: Settings) -> int:
    data = settings.masked()
    text = "\n".join(
        f"{k} = {v}" if not isinstance(v, dict) else
        f"[{k}]\n" + "\n".join(f"  {kk} = {vv}" for kk, vv in v.items())
        for k, v in data.items()
    )
    emit(args, data, text)
    return EXIT_OK


def _supervisor_from_stdin(term: Any, name: str | None) -> Any:
    """The approving supervisor: their PIN is the first line of stdin (``--supervisor``
    names them; otherwise any supervisor's PIN is taken). Attempts are limited."""
    pin = read_pin_from_stdin("Supervisor PIN: ") or ""
    if not pin:
        raise_input("A supervisor must approve this: their PIN is the first line on stdin")
    return term.check_supervisor(pin, name)


def cmd_operator_add(args: argparse.Namespace, settings: Settings) -> int:
    """The first operator of a fresh terminal is its supervisor and needs no approval
    (stdin: the new PIN). After that a supervisor approves every add or change (stdin:
    the supervisor's PIN, then the new operator's), so no one can overwrite a
    supervisor's PIN, then use it for ``report z --override``."""
    from pos.terminal import Terminal

    term = Terminal.open_sync(settings)
    try:
        approver = None
        if term.has_operators():
            approver = _supervisor_from_stdin(term, args.supervisor)
        elif args.role != "supervisor":
            raise_input("The first operator of a terminal is its supervisor: add it with "
                        "--role supervisor")
        pin = read_pin_from_stdin(f"New PIN for {args.name}: ") or ""
        op = term.add_operator(args.name, args.role, pin, approved_by=approver)
    finally:
        asyncio.run(term.aclose())
    by = f" (approved by {approver.name})" if approver else ""
    emit(args, {"name": op.name, "role": op.role, "approved_by": approver and approver.name},
         f"added {op.role} {op.name}{by}")
    return EXIT_OK


def cmd_void(args: argparse.Namespace, settings: Settings) -> int:
    """A supervisor voids a sale: a queued one is cancelled, a settled card payment is
    credited back to the card (stdin: the supervisor's PIN)."""
    from pos.text import MAX_REASON, validate_free_text

    reason = validate_free_text(args.reason or "", "reason", MAX_REASON, optional=True)

    async def body(term: Any) -> int:
        # Whether it can be voided is said before the supervisor's PIN is read.
        can = term.void_check(args.ref)
        if not can.ok:
            raise_input(can.why_not)
        if can.how == "sale" and can.sale_id != args.ref:
            raise_input(f"{args.ref} is a card part of basket sale {can.sale_id}: void the "
                        f"whole sale (sente-pos void {can.sale_id})")
        supervisor = _supervisor_from_stdin(term, args.supervisor)
        if can.how == "sale":
            sale = await term.void_sale(args.ref, supervisor, reason)
            emit(args, sale.to_json(), f"VOIDED: sale {sale.id} ({sale.paid.format()} paid: "
                 "card parts credited back, cash to hand back)")
            return EXIT_OK
        res = await term.void(args.ref, supervisor, reason)
        emit(args, res.to_json(), _sale_text(res))
        return int(res.exit_code)

    return asyncio.run(_with_terminal(settings, body))


def cmd_operator_unlock(args: argparse.Namespace, settings: Settings) -> int:
    """A supervisor clears a PIN lock-out (NAME, or the supervisor check without one)."""
    from pos.terminal import Terminal

    term = Terminal.open_sync(settings)
    try:
        approver = _supervisor_from_stdin(term, args.supervisor)
        cleared = term.unlock_pin(args.name, approver)
    finally:
        asyncio.run(term.aclose())
    who = args.name or "the supervisor check"
    emit(args, {"subject": who, "cleared": cleared},
         f"{who}: " + ("lock-out cleared" if cleared else "was not locked"))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from hardware.checks import camera_check, printer_check
    from pos.doctor import run_checks

    checks = run_checks(
        settings,
        camera=None if args.no_camera else (lambda: camera_check(settings.camera)),
        printer=lambda: printer_check(settings.printer),
    )
    ok = all(c.ok for c in checks)
    emit(args, {"ok": ok, "checks": [c.to_json() for c in checks]},
         "\n".join(c.line() for c in checks))
    return EXIT_OK if ok else EXIT_OTHER


def cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    from hardware.scan import run_scan_camera, run_scan_images

    if args.camera is not None:
        return run_scan_camera(args.camera, args.json, sys.stdout, timeout=args.timeout)
    if not args.image:
        raise_input("scan needs --image FILE... or --camera N")
    return run_scan_images(args.image, args.json, sys.stdout)


def cmd_cards_make(args: argparse.Namespace, settings: Settings) -> int:
    from hardware.cardimages import make_cards
    from pos.sandbox.data import DEMO_CARDS

    paths = make_cards(Path(args.dir), [c.payload for c in DEMO_CARDS], qr_only=args.qr_only)
    emit(args, {"files": [str(p) for p in paths]}, "\n".join(str(p) for p in paths))
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from pos.errors import InputError
    from pos.sandbox.faults import FaultError
    from pos.sandbox.server import serve_forever

    faults = [parse_fault(spec) for spec in args.fault or []]
    try:
        serve_forever(args.host, args.port, throttle_seconds=args.throttle_seconds,
                      daily_limit=args.daily_limit or None, latency=args.latency, faults=faults)
    except FaultError as exc:
        raise InputError(f"--fault: {exc}") from exc
    return EXIT_OK


def parse_fault(spec: str) -> dict[str, Any]:
    """``provider:endpoint:mode[@before|@after][:count[:seconds]]``, e.g.
    ``pawacard:vend:drop@after:1`` (the vend is done, then the answer is lost)."""
    parts = spec.split(":")
    if len(parts) < 3:
        raise_input(f"--fault takes provider:endpoint:mode[@when][:count[:seconds]], "
                    f"not {spec!r}")
    mode, _, when = parts[2].partition("@")
    fault: dict[str, Any] = {"provider": parts[0], "endpoint": parts[1], "mode": mode}
    if when:
        fault["when"] = when
    try:
        if len(parts) > 3 and parts[3]:
            fault["count"] = None if parts[3] in ("*", "forever") else int(parts[3])
        if len(parts) > 4 and parts[4]:
            fault["seconds"] = float(parts[4])
    except ValueError:
        raise_input(f"--fault count and seconds are numbers: {spec!r}")
    return fault
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: Settings | None) -> int:
    import tempfile

    from sente_pos.launch import run_demo

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="sente-pos-demo-"))
    os.environ["SENTE_POS_HOME"] = str(home)
    setup_logging(None)  # now that the demo's data directory is known
    return run_demo(home=home, console=args.console)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from sente_pos.launch import run_kiosk

    return run_kiosk(settings, console=args.console)


def use_caches(settings: Settings) -> None:
    """Point the libraries that cache at the cache directory (nothing created yet)."""
    from hardware.escposcache import use_cache_dir
    from pos.dirs import cache_dir

    use_cache_dir(cache_dir(settings) / "escpos")


# ------------------------------------------------------------------ parser
HELP_EPILOG = """\
exit codes:
  0  done
  2  declined, or input rejected (nothing was changed)
  3  accepted offline or pending: queued for sync
  1  anything else (see the log)

environment:
  SENTE_POS_HOME         data directory: journal.db, config.toml, device.key; when set,
                         also sente-pos.log and cache/ (default: the platform's user
                         data dir; the log in its state dir, e.g. ~/.local/state/sente-pos/log,
                         the cache in ~/.cache/sente-pos). `config show` prints both.
  SENTE_POS_OPERATOR     operator name for headless commands
  SENTE_POS_<SECTION>__<KEY>
                         any setting, e.g. SENTE_POS_PAWACARD__BASE_URL,
                         SENTE_POS_OFFLINE__MAX_COUNT (see `sente-pos config show`)

config file: $SENTE_POS_HOME/config.toml (written 0600; secrets masked by `config show`)
completion: eval "$(sente-pos completion bash)" (or zsh, fish)
PINs are read from stdin, never from the command line."""


class _VersionAction(argparse.Action):
    """``--version``, with the package metadata read only when asked (start-up cost)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"sente-pos {_version()}")
        parser.exit(0)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sente-pos")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sente-pos", description="Sente POS terminal",
                                epilog=HELP_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_VersionAction, nargs=0,
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[..., int], help_: str, *, json_flag: bool = True,
            under: Any = None) -> argparse.ArgumentParser:
        sp = (under or sub).add_parser(name, help=help_)
        sp.set_defaults(fn=fn)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print one JSON document")
        return sp

    def group(name: str, help_: str) -> Any:
        return sub.add_parser(name, help=help_).add_subparsers(dest="action", required=True)

    d = add("demo", cmd_demo, "the TUI against the built-in sandbox", json_flag=False)
    d.add_argument("--home", help="data directory for the demo (default: a fresh temp dir)")
    d.add_argument("--console", action="store_true", help="console-safe theme")
    r = add("run", cmd_run, "the TUI against the configured providers (kiosk)", json_flag=False)
    r.add_argument("--console", action="store_true", help="console-safe theme")

    sb = add("sandbox", cmd_sandbox, "run the provider simulators", json_flag=False)
    sb.add_argument("--port", type=int, default=8765)
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--throttle-seconds", type=float, default=300.0,
                    help="PawaCard per-meter throttle window")
    sb.add_argument("--daily-limit", type=int, default=5,
                    help="PawaCard vends per meter per day (0: no limit)")
    sb.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    sb.add_argument("--fault", action="append", metavar="P:E:MODE[@WHEN][:COUNT[:SECONDS]]",
                    help="inject a fault, e.g. pawacard:vend:drop@after:1 or "
                         "patasente:*:http503:forever (repeatable). WHEN: before (nothing done) "
                         "or after (done, answer lost). Modes: drop reset http500 http502 "
                         "http503 http504 http429 redirect html empty badjson trickle huge hang "
                         "http4xx slow pending elec100 odd_total odd_id nested latency "
                         "search_lag search_blind rewrite_reason; at run time: POST "
                         "/_control/faults (see pos/sandbox/faults.py)")

    cfg = group("config", "settings")
    add("show", cmd_config_show, "print the effective settings, secrets masked", under=cfg)

    card = group("card", "look up or debit a card")
    show = add("show", cmd_card_show, "parse a card QR payload and look the card up", under=card)
    show.add_argument("payload")
    show.add_argument("--offline", action="store_true", help="only parse, no request")
    debit = add("debit", cmd_card_debit, "debit a card (PIN read from stdin)", under=card)
    debit.add_argument("payload")
    debit.add_argument("--amount", required=True)
    debit.add_argument("--wallet", default=None)
    debit.add_argument("--reason", default="POS sale")

    v = add("vend", cmd_vend, "sell a prepaid electricity token (cash, or --card)")
    v.add_argument("meter")
    pp = add("postpaid", cmd_postpaid, "pay a postpaid electricity bill (cash, or --card)")
    pp.add_argument("account")
    for sp in (v, pp):
        sp.add_argument("--amount", required=True)
        sp.add_argument("--name", default="", help="customer name (default: from verify)")
        sp.add_argument("--card", metavar="PAYLOAD",
                        help="pay by card (its QR payload): the card's amount and rate are "
                        "shown on stderr, then the PIN is read from stdin (a new PIN, the "
                        "next line, when the rate expired meanwhile and is shown again)")
        sp.add_argument("--wallet", default=None, help="card wallet (with --card)")
        sp.add_argument("--no-wait", dest="wait", action="store_false",
                        help="do not poll a pending sale")

    add("sync", cmd_sync, "drain the outbox once and print what happened")

    j = add("journal", cmd_journal, "list or export the journal")
    j.add_argument("action", nargs="?", choices=["list", "export", "security", "restore",
                                                 "archive", "unarchive", "backup"],
                   default="list", help="security: wrong PINs, lock-outs, operators added; "
                   "backup: a checked copy of the journal now; "
                   "restore [BACKUP]: list backups, or restore one (supervisor PIN on stdin); "
                   "archive: settled rows older than journal.archive_after_days to "
                   "archive/*.jsonl.gz; unarchive FILE: put a file's rows back")
    j.add_argument("backup", nargs="?", metavar="NAME",
                   help="with restore: the backup (number or name); with unarchive: the "
                   "archive file")
    j.add_argument("--dry-run", action="store_true", help="with archive: only say what")
    j.add_argument("--after-z", type=int, metavar="N",
                   help="with backup: the day-close backup of Z report N, then the archive "
                   "run (what `report z` starts)")
    j.add_argument("--compact", action="store_true",
                   help="with archive: one full VACUUM turning on incremental auto-vacuum "
                   "(a journal made before it; needs ~2x its size free)")
    j.add_argument("--status", help="state, or 'unsynced' / 'flagged'")
    j.add_argument("--since", help="ISO date/time")
    j.add_argument("--search")
    j.add_argument("--ref", help="one transaction with its event trail")
    j.add_argument("--limit", type=int, default=1000)
    j.add_argument("--csv", help="with export: the CSV file to write")

    rep = add("report", cmd_report, "X (running) or Z (day close) report")
    rep.add_argument("which", choices=["x", "z"])
    rep.add_argument("--allow-empty", action="store_true",
                     help="close a day with nothing in it (refused otherwise)")
    rep.add_argument("--override", action="store_true",
                     help="supervisor override of unsynced items (supervisor PIN on stdin)")
    rep.add_argument("--wait", action="store_true",
                     help="with z: make the day-close backup (and archive run) before "
                     "exiting, and print its name; by default it runs in the background")

    doc = add("doctor", cmd_doctor, "check camera, printer, links, clock, disk, journal")
    doc.add_argument("--no-camera", action="store_true")

    sc = add("scan", cmd_scan, "decode card QR codes from images or the camera")
    sc.add_argument("--image", nargs="+", metavar="FILE")
    sc.add_argument("--camera", default=None, help="device index or path: scan live")
    sc.add_argument("--timeout", type=float, default=60.0)

    cards = group("cards", "printable card QR images")
    mk = add("make", cmd_cards_make, "render the sandbox cards' QR images into DIR", under=cards)
    mk.add_argument("dir")
    mk.add_argument("--qr-only", action="store_true", help="the bare QR symbol, not a card")

    vd = add("void", cmd_void, "void a sale: cancel a queued one, credit back a settled "
             "card payment, or void a basket sale by its id (supervisor PIN on stdin)")
    vd.add_argument("ref", help="a journal ref or a basket sale id (S...)")
    vd.add_argument("--reason", default="")
    vd.add_argument("--supervisor", metavar="NAME",
                    help="the approving supervisor (default: any supervisor's PIN)")

    op = group("operator", "manage operators")
    oa = add("add", cmd_operator_add, "add or change a cashier or supervisor (stdin: the "
             "approving supervisor's PIN, then the new PIN; only the new PIN for the first "
             "operator, a supervisor)", under=op)
    oa.add_argument("name")
    oa.add_argument("--role", choices=["cashier", "supervisor"], default="cashier")
    ou = add("unlock", cmd_operator_unlock, "clear a PIN lock-out (supervisor PIN on stdin)",
             under=op)
    ou.add_argument("name", nargs="?", help="operator (default: the supervisor PIN check)")
    for sp in (oa, ou):
        sp.add_argument("--supervisor", metavar="NAME",
                        help="the approving supervisor (default: any supervisor's PIN)")

    from sente_pos.shift_cli import add_shift_commands  # the drawer (issue 13)

    add_shift_commands(sub)

    from sente_pos.kiosk import add_kiosk_commands  # the Pi's kiosk install (issue 14)

    add_kiosk_commands(sub)

    from pos.hub.cli import add_hub_commands  # the back office and enrolment (issue 12)

    add_hub_commands(sub)
    from sente_pos.completion import add_completion_command

    add_completion_command(sub)
    return p


TUI_COMMANDS = ("demo", "run")
#: Commands that read no settings: the demo makes its own, the kiosk install runs as
#: root before there are any (and must not create root's own data directory), and a
#: broken config.toml must not stop a shell from getting its completion script.
NO_SETTINGS = ("demo", "kiosk", "completion")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    from sente_pos.completion import autocomplete

    autocomplete(parser)  # a shell asking for completions: answered here, then exit
    args = parser.parse_args(argv)
    settings: Settings | None = None
    if args.command not in TUI_COMMANDS:
        resume_gc()  # the TUI resumes it once its first frame is drawn
    try:
        if args.command not in NO_SETTINGS:
            settings = load_settings()
            setup_logging(settings)
            use_caches(settings)
        return int(args.fn(args, settings))
    except PosError as exc:
        return fail(args, exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``sente-pos scan ... | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OTHER
    except Exception as exc:  # the last line of defence: a message, never a traceback
        log.exception("unexpected error in %s", args.command)
        msg = f"unexpected error ({type(exc).__name__}); details in the log"
        if getattr(args, "json", False):
            print(json.dumps({"error": msg, "type": type(exc).__name__}))
        else:
            print(f"error: {msg}", file=sys.stderr)
        return EXIT_OTHER


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
