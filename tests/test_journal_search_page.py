"""The journal's full-text search walks the index newest first and stops at the page
(a keystroke of the live search at 100k rows, bench/bench_journal_search.py): the
page still honours every filter and reads newest first by creation time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pos.journal import Journal, Kind, State, Tender
from pos.money import Money


def test_search_pages_honour_filters_and_order(tmp_path: Path) -> None:
    now = [datetime(2026, 3, 14, 9, 0, tzinfo=UTC)]
    j = Journal.open(tmp_path / "journal.db", clock=lambda: now[0])
    refs = []
    for i in range(40):
        now[0] += timedelta(minutes=1)
        t = j.create(Kind.vend, Money(1000 + i, "KES"), tender=Tender.cash, operator="ann",
                     terminal_id="T", meter="01451170042", customer_name=f"Customer {i}",
                     state=State.queued, offline=True)
        if i < 5:  # the oldest five expire: the rare state a filter asks for
            j.transition(t.ref, State.expired)
        refs.append(t.ref)
    now[0] -= timedelta(hours=2)  # a clock stepped back: the newest row looks oldest
    late = j.create(Kind.vend, Money(1, "KES"), tender=Tender.cash, operator="ann",
                    terminal_id="T", customer_name="Customer late")
    page = j.list(search="Customer", limit=10)
    assert late.ref in [t.ref for t in page]  # written last: in the newest page
    assert [t.created_at for t in page] == sorted((t.created_at for t in page), reverse=True)
    assert [t.ref for t in page[:9]] == refs[-1:-10:-1]
    expired = j.list(search="Customer", states=[State.expired], limit=3)
    assert [t.ref for t in expired] == refs[4:1:-1]
    assert [t.ref for t in j.list(search="Customer 3", kinds=[Kind.vend], limit=50)] == [
        refs[39], refs[38], refs[37], refs[36], refs[35], refs[34], refs[33], refs[32],
        refs[31], refs[30], refs[3]]
    oldest = j.list(search="Customer", limit=2, newest_first=False)
    assert [t.ref for t in oldest] == refs[:2]
    j.close()
