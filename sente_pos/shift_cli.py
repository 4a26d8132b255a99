"""``sente-pos shift open | cash-in | cash-out | close | show`` (the drawer, headless).

The operator is ``$SENTE_POS_OPERATOR`` (as for every headless command). ``close`` is
the blind cash-up: the counted amount is given first, the expected amount and the
variance are printed only after the shift is closed. Exit codes as DESIGN.md: 0 done,
2 refused input (no shift open, one already open, a bad amount), 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pos.config import Settings


def _render(lines: list[tuple[str, str]]) -> str:
    return "\n".join(f"{k:<18}{v:>22}" if v else k for k, v in lines)


def cmd_shift(args: argparse.Namespace, settings: Settings) -> int:
    from pos.money import parse_user_amount
    from pos.text import MAX_REASON, validate_free_text
    from sente_pos.cli import EXIT_OK, _with_terminal, emit

    cur = settings.card_currency

    async def body(term: Any) -> int:
        if args.action == "open":
            from pos.money import parse_amount

            amount = parse_amount(args.float, cur, rounding=False)
            shift = await term.open_shift(amount)
            emit(args, shift.to_json(),
                 f"shift #{shift.id} open for {shift.operator}, float {shift.float.format()}")
        elif args.action in ("cash-in", "cash-out"):
            reason = validate_free_text(args.reason, "reason", MAX_REASON)
            amount = parse_user_amount(args.amount, cur)
            kind = "in" if args.action == "cash-in" else "out"
            move = await term.cash_move(kind, amount, reason)
            shift = term.current_shift()
            emit(args, {"move": move, "kind": kind, "amount": amount.to_json(), "reason": reason,
                        "shift": shift.id if shift else None},
                 f"cash {kind} {amount.format()} ({reason})")
        elif args.action == "close":
            from pos.money import parse_amount

            counted = [parse_amount(args.counted, cur, rounding=False)]
            for spec in args.counted_other or []:
                code, _, amount = spec.partition("=")
                counted.append(parse_amount(amount, code.strip().upper(), rounding=False))
            rep = term.close_shift(counted)
            emit(args, rep.to_json(), _render(rep.lines()))
        else:  # show: the open shift without what is expected (the count is blind)
            shift = term.current_shift()
            if shift is None:
                emit(args, {"shift": None}, "no shift is open")
            else:
                emit(args, {"shift": shift.to_json()},
                     f"shift #{shift.id} of {shift.operator}, open since "
                     f"{shift.opened_at:%Y-%m-%d %H:%M}, float {shift.float.format()}")
        return EXIT_OK

    return asyncio.run(_with_terminal(settings, body))


def add_shift_commands(sub: Any) -> None:
    sh = sub.add_parser("shift", help="the drawer: open with a float, cash in / out, "
                        "blind cash-up").add_subparsers(dest="action", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sh.add_parser(name, help=help_)
        sp.set_defaults(fn=cmd_shift)
        sp.add_argument("--json", action="store_true", help="print one JSON document")
        return sp

    add("open", "open a shift with the opening float").add_argument("--float", required=True)
    for name, what in (("cash-in", "put cash in the drawer"), ("cash-out", "take cash out")):
        sp = add(name, what)
        sp.add_argument("amount")
        sp.add_argument("--reason", required=True)
    cl = add("close", "blind cash-up: the counted cash, then expected and variance")
    cl.add_argument("--counted", required=True, help="cash counted in the shift's currency")
    cl.add_argument("--counted-other", action="append", metavar="CUR=AMOUNT",
                    help="cash counted in another currency, e.g. KES=1500 (repeatable)")
    add("show", "the open shift (not what is expected: the count is blind)")
