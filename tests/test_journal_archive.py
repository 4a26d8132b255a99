"""Archiving a long-lived journal (issue 15): what leaves, what stays, totals, the hub,
restore, recovery, and a real process killed mid-archive."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pos.clock import DeviceClock
from pos.errors import InputError
from pos.journal import Journal, Kind, State, Tender, archive
from pos.journal.models import iso
from pos.journal.search import TABLE_FTS
from pos.money import Money

ROOT = Path(__file__).resolve().parents[1]
OLD = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)  # 448 days later
CUTOFF = NOW - timedelta(days=400)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _open(path: Path, clock: Clock) -> Journal:
    return Journal.open(path, clock=clock, device=DeviceClock(wall=clock, synced=lambda: True))


def _cash(j: Journal, clock: Clock, final: State = State.done) -> str:
    clock.now += timedelta(minutes=1)
    t = j.create(Kind.vend, Money(5000, "UGX"), tender=Tender.cash, meter="01451174955",
                 customer_name="Jane Akello", operator="ann", terminal_id="T1")
    j.transition(t.ref, State.sending)
    j.transition(t.ref, final, token="12345678901234567890" if final is State.done else None)
    return t.ref


def _card_vend(j: Journal, clock: Clock, *, fail: bool) -> tuple[str, str, str | None]:
    clock.now += timedelta(minutes=1)
    d = j.create(Kind.card_debit, Money(3000, "UGX"), tender=Tender.card, card_id=7,
                 card_no="1613********5219", wallet="Current Account", reason="power",
                 operator="ann", terminal_id="T1")
    j.transition(d.ref, State.sending)
    j.transition(d.ref, State.done)
    v = j.create(Kind.vend, d.amount, tender=Tender.card, meter="01451174955",
                 parent_ref=d.ref, operator="ann", terminal_id="T1")
    j.transition(v.ref, State.sending)
    if not fail:
        j.transition(v.ref, State.done, token="99990000111122223333")
        return d.ref, v.ref, None
    j.transition(v.ref, State.failed, error="vend failed")  # flagged until resolved
    r = j.create(Kind.card_refund, d.amount, tender=Tender.card, card_id=7, parent_ref=d.ref,
                 state=State.queued, details={"vend_ref": v.ref}, operator="ann",
                 terminal_id="T1")
    j.transition(r.ref, State.sending)
    j.transition(r.ref, State.done)
    j.refund_checked(v.ref, None)
    return d.ref, v.ref, r.ref


def _z(j: Journal, clock: Clock) -> None:
    number = j.open_period()
    j.z_close(number, lambda: {"until": iso(clock.now), "number": number})


def _all_totals(j: Journal) -> list[dict[str, Any]]:
    return [dict(r) for r in j.query("SELECT * FROM totals WHERE count != 0 ORDER BY"
                                     " z_period, state, kind, tender, currency, operator")]


def _archived_refs(home: Path, j: Journal | None = None) -> list[str]:
    out: list[str] = []
    manifest = archive.committed(j) if j is not None else None
    for f in sorted((home / "archive").glob("journal-*.jsonl.gz")):
        length = manifest.get(f.name, {}).get("bytes") if manifest is not None else None
        out += [rec["txn"]["ref"] for rec in archive.read(f, length)]
    return out


@pytest.fixture
def trade(tmp_path: Path) -> dict[str, Any]:
    """A year-old closed day (with a flagged family and a queued sale) and an open day."""
    clock = Clock(OLD)
    j = _open(tmp_path / "journal.db", clock)
    old = {"cash": [_cash(j, clock) for _ in range(5)],
           "cancelled": _cash(j, clock, State.cancelled),
           "card": _card_vend(j, clock, fail=False),
           "failed": _card_vend(j, clock, fail=True)}
    clock.now += timedelta(minutes=1)
    q = j.create(Kind.vend, Money(2000, "UGX"), tender=Tender.cash, meter="01451174955",
                 state=State.queued, offline=True, operator="ann", terminal_id="T1")
    old["queued"] = q.ref
    _z(j, clock)
    clock.now = NOW - timedelta(hours=2)
    new = [_cash(j, clock) for _ in range(3)]  # the open period
    clock.now = NOW
    yield {"j": j, "clock": clock, "old": old, "new": new, "home": tmp_path}
    j.close()


def test_settled_rows_of_closed_periods_leave_and_the_rest_stays(trade: dict[str, Any]) -> None:
    j: Journal = trade["j"]
    old, home = trade["old"], trade["home"]
    totals, zs = _all_totals(j), j.z_reports()
    open_before = j.totals(j.open_period())
    dry = archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None, dry_run=True)
    assert dry.rows == 8 and dry.files == {"journal-2024-03.jsonl.gz": 8}
    assert not (home / "archive").exists() or not list((home / "archive").glob("*.gz"))

    rep = archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None)
    gone = [*old["cash"], old["cancelled"], *old["card"][:2]]
    assert rep.rows == 8 and sorted(_archived_refs(home, j)) == sorted(gone)
    for ref in gone:
        assert j.get(ref) is None and j.events(ref) == []
    # Kept: the flagged family (failed vend, its payment and refund), the queued sale,
    # and everything of the open period.
    for ref in [*old["failed"], old["queued"], *trade["new"]]:
        assert j.get(ref) is not None
    assert rep.held_by_family == 2  # the payment and refund of the failed vend
    # The totals still count the archived rows; the Z history is untouched; the open
    # period's totals equal a recomputation.
    assert _all_totals(j) == totals and j.z_reports() == zs
    assert j.totals(j.open_period()) == open_before == j.recomputed_totals(j.open_period())
    assert j.list(search="Akello") and all(t.ref not in gone for t in j.list(search="Akello"))
    # Readable by a support person: gzip of one JSON object per line, the row and its trail.
    path = home / "archive" / "journal-2024-03.jsonl.gz"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    first = json.loads(lines[0])
    assert first["v"] == 1 and first["txn"]["ref"] == gone[0]
    assert [e["to_state"] for e in first["events"]] == ["created", "sending", "done"]
    # Nothing more is due: a second run archives nothing and leaves the file as it is.
    size = path.stat().st_size
    assert archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None).rows == 0
    assert path.stat().st_size == size


def test_with_a_hub_only_acknowledged_rows_leave(trade: dict[str, Any]) -> None:
    j: Journal = trade["j"]
    first_cash = trade["old"]["cash"][0]
    top = max(e.id for e in j.events(first_cash))
    rep = archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=top)
    assert rep.rows == 1 and j.get(first_cash) is None  # only the one the hub holds
    assert archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=0).rows == 0
    # A change after the row's last event (a receipt number drawn) waits for the hub too.
    second = trade["old"]["cash"][1]
    trade["clock"].now = OLD + timedelta(days=1)  # long ago, but after its last event
    j.update(second, receipt_number=41)
    trade["clock"].now = NOW
    assert archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None, dry_run=True).rows == 7
    rep = archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=10**9)
    assert j.get(second) is not None and rep.rows == 6


def test_restore_puts_the_rows_back_without_counting_them_twice(
        trade: dict[str, Any]) -> None:
    j: Journal = trade["j"]
    totals = _all_totals(j)
    archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None)
    ref = trade["old"]["cash"][2]
    events = [e.to_state for e in j.events(trade["new"][0])]
    assert archive.restore(j, "journal-2024-03.jsonl.gz", now=NOW) == 8
    assert j.get(ref) is not None and [e.to_state for e in j.events(ref)] == [
        State.created, State.sending, State.done]
    assert _all_totals(j) == totals
    assert ref in [t.ref for t in j.list(search="Akello")]
    assert [e.to_state for e in j.events(trade["new"][0])] == events
    home = trade["home"]
    assert not (home / "archive" / "journal-2024-03.jsonl.gz").exists()
    assert list((home / "archive").glob("journal-2024-03.jsonl.gz.restored-*"))
    assert archive.committed(j) == {}


def test_a_family_split_over_two_months_comes_back_whole(tmp_path: Path) -> None:
    """A payment made on the 31st and its vend on the 1st go to two files; restoring the
    later file brings the payment back too (a row's parent must be in the journal,
    schema V_CONSTRAINTS), parents first, and renames both files."""
    clock = Clock(datetime(2024, 3, 31, 23, 58, tzinfo=UTC))
    j = _open(tmp_path / "journal.db", clock)
    try:
        d = j.create(Kind.card_debit, Money(3000, "UGX"), tender=Tender.card, card_id=7,
                     operator="ann", terminal_id="T1")
        j.transition(d.ref, State.sending)
        j.transition(d.ref, State.done)
        clock.now = datetime(2024, 4, 1, 0, 2, tzinfo=UTC)
        v = j.create(Kind.vend, d.amount, tender=Tender.card, meter="01451174955",
                     parent_ref=d.ref, operator="ann", terminal_id="T1")
        j.transition(v.ref, State.sending)
        j.transition(v.ref, State.done, token="99990000111122223333")
        _z(j, clock)
        clock.now = NOW
        totals = _all_totals(j)
        assert archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None).rows == 2
        assert j.get(d.ref) is None and j.get(v.ref) is None
        assert sorted(archive.committed(j)) == ["journal-2024-03.jsonl.gz",
                                                "journal-2024-04.jsonl.gz"]
        assert archive.restore(j, "journal-2024-04.jsonl.gz", now=NOW) == 2
        assert j.require(v.ref).parent_ref == d.ref and j.get(d.ref) is not None
        assert _all_totals(j) == totals
        assert archive.committed(j) == {}
        assert len(list((tmp_path / "archive").glob("*.restored-*"))) == 2
    finally:
        j.close()


def test_restore_refuses_rows_whose_parent_is_nowhere(trade: dict[str, Any]) -> None:
    """A file whose rows name a parent neither in the journal nor in any archive file
    (its file was deleted by hand) is refused with a clear message; nothing changes."""
    j: Journal = trade["j"]
    archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None)
    home = trade["home"]
    path = home / "archive" / "journal-2024-03.jsonl.gz"
    records = list(archive.read(path))
    child = next(r for r in records if r["txn"]["parent_ref"])
    child["txn"]["parent_ref"] = "000000000404"
    alone = home / "archive" / "journal-2024-05.jsonl.gz"
    alone.write_bytes(gzip.compress((json.dumps(child) + "\n").encode()))
    j.meta_set(archive.META_FILE + alone.name,
               json.dumps({"bytes": alone.stat().st_size, "rows": 1}))
    before = _all_totals(j)
    with pytest.raises(InputError, match="neither in the journal nor in an archive file"):
        archive.restore(j, alone.name, now=NOW)
    assert j.get(child["txn"]["ref"]) is None and _all_totals(j) == before
    assert alone.exists()


def test_recovery_undoes_an_unfinished_step(trade: dict[str, Any]) -> None:
    """A step killed between the file's fsync and the journal's commit: the rows are
    still in the journal and the tail is cut off (nothing twice, nothing lost)."""
    j: Journal = trade["j"]
    home = trade["home"]
    archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None, step_rows=3, max_rows=3)
    path = home / "archive" / "journal-2024-03.jsonl.gz"
    committed = path.stat().st_size
    live = trade["old"]["cash"][4]
    row = j.query("SELECT * FROM txns WHERE ref = ?", (live,))[0]
    whole = gzip.compress(archive._record(row, []))
    with open(path, "ab") as f:
        f.write(whole + whole[:10])  # a whole member, then a member cut short
    assert archive.recover(j)
    assert path.stat().st_size == committed
    assert not (home / "archive" / "unmatched").exists()  # every row it read is live
    # A tail naming a row the journal does not have is kept aside, never dropped.
    alien = json.dumps({"v": 1, "txn": {"ref": "T0-NOT-HERE"}, "events": []}) + "\n"
    with open(path, "ab") as f:
        f.write(gzip.compress(alien.encode()))
    archive.recover(j)
    assert path.stat().st_size == committed
    kept = list((home / "archive" / "unmatched").iterdir())
    assert len(kept) == 1 and b"T0-NOT-HERE" in gzip.decompress(kept[0].read_bytes())


_CHILD = """
import sys
sys.path.insert(0, {root!r})
from datetime import datetime
from pathlib import Path
from pos.clock import DeviceClock
from pos.errors import InputError
from pos.journal import Journal, archive
now = datetime.fromisoformat({now!r})
j = Journal.open(Path({path!r}), clock=lambda: now,
                 device=DeviceClock(wall=lambda: now, synced=lambda: True))
print("ready", flush=True)
archive.run(j, cutoff=datetime.fromisoformat({cutoff!r}), now=now, hub_cursor=None,
            step_rows=1)
j.close()
print("done", flush=True)
"""


@pytest.mark.slow
def test_a_process_killed_at_any_moment_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    clock = Clock(OLD)
    j = _open(tmp_path / "journal.db", clock)
    with j.batch():
        refs = [_cash(j, clock) for _ in range(400)]
        refs += [r for _ in range(40) for r in _card_vend(j, clock, fail=False) if r]
    _z(j, clock)
    clock.now = NOW
    totals = _all_totals(j)
    j.close()
    script = _CHILD.format(root=str(ROOT), path=str(tmp_path / "journal.db"),
                           now=NOW.isoformat(), cutoff=CUTOFF.isoformat())
    rng = random.Random(15)
    kills = undone = 0
    # Kill at a random moment in the run, not at a sync point. The window widens while the
    # runs make no headway, so a slow machine (CI's, under xdist) still gets through.
    window, left = 0.1, len(refs) + 1
    for _ in range(200):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, window))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        j = _open(tmp_path / "journal.db", clock)
        try:
            undone += bool(archive.recover(j))
            in_files = _archived_refs(tmp_path, j)
            live = [r for r in refs if j.get(r) is not None]
            assert len(in_files) == len(set(in_files)), "a row archived twice"
            assert sorted(in_files + live) == sorted(refs), "a row lost or in both places"
            assert _all_totals(j) == totals
            if not live:
                break
            if len(live) >= left:
                window *= 1.5
            left = len(live)
        finally:
            j.close()
    assert kills >= 3 and not live
    print(f"{kills} kills, {undone} unfinished steps undone")
    assert not (tmp_path / "archive" / "unmatched").exists()


# ------------------------------------------------------------------ wiring
def _old_closed_day(path: Path, n: int = 4) -> list[str]:
    """``n`` cash sales made 600 days ago, their day closed; then one sale today."""
    clock = Clock(datetime.now(UTC) - timedelta(days=600))
    j = _open(path, clock)
    try:
        refs = [_cash(j, clock) for _ in range(n)]
        _z(j, clock)
        clock.now = datetime.now(UTC) - timedelta(minutes=5)
        _cash(j, clock)
    finally:
        j.close()
    return refs


def _cli(home: Path, *args: str) -> tuple[int, Any, str]:
    from tests.test_cli import _exe

    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTE_POS_")}
    env.update(SENTE_POS_HOME=str(home),
               SENTE_POS_PATASENTE__BASE_URL="http://127.0.0.1:9/patasente/phantom-api/",
               SENTE_POS_PAWACARD__BASE_URL="http://127.0.0.1:9/pawacard/v3/")
    p = subprocess.run([*_exe(), *args], env=env, capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    return p.returncode, json.loads(p.stdout) if "--json" in args and p.stdout else p.stdout, \
        p.stderr


def test_cli_archive_dry_run_archive_unarchive_and_doctor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pos.doctor import check_storage
    from tests.screens_support import make_settings

    os.chmod(tmp_path, 0o700)
    refs = _old_closed_day(tmp_path / "journal.db")
    rc, out, err = _cli(tmp_path, "journal", "archive", "--dry-run", "--json")
    assert rc == 0, err
    assert out["dry_run"] and out["rows"] == 4
    assert not list(tmp_path.glob("archive/*.gz"))
    rc, out, err = _cli(tmp_path, "journal", "archive")  # text
    assert rc == 0, err
    assert "archived 4 rows" in out and "journal-" in out
    (name,) = [p.name for p in tmp_path.glob("archive/*.gz")]
    rc, rows, err = _cli(tmp_path, "journal", "--ref", refs[0], "--json")
    assert rc == 2 and "4 archived rows" in rows["error"] and "zgrep" in rows["error"]
    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    line = check_storage(make_settings(tmp_path))
    assert line.ok and "(1 rows" in line.detail and "4 rows in 1 files" in line.detail
    assert "WAL" in line.detail and "free on its file system" in line.detail
    rc, out, err = _cli(tmp_path, "journal", "unarchive", name, "--json")
    assert rc == 0 and out == {"restored": 4, "file": name}, err
    rc, rows, err = _cli(tmp_path, "journal", "--ref", refs[0], "--json")
    assert rc == 0 and rows[0]["ref"] == refs[0]
    rc, out, err = _cli(tmp_path, "journal", "archive", "--json")  # off: a clear message
    assert rc == 0
    (tmp_path / "config.toml").write_text("[journal]\narchive_after_days = 0\n")
    rc, out, err = _cli(tmp_path, "journal", "archive", "--json")
    assert rc == 2 and "off" in out["error"]


def test_doctor_warns_when_free_space_is_low(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from pos.doctor import check_storage
    from tests.screens_support import make_settings

    monkeypatch.setenv("SENTE_POS_HOME", str(tmp_path))
    _old_closed_day(tmp_path / "journal.db", 1)
    line = check_storage(make_settings(tmp_path, journal={"free_warning_mb": 10**9}))
    assert line.ok and line.warning and "under" in line.detail


@pytest.mark.counter(supervisor=True)
async def test_a_day_close_archives_what_is_due(term: Any) -> None:
    """The scheduled run: after the Z (and its backup, which still holds every row)."""
    path = term.settings.journal_path
    clock = Clock(datetime.now(UTC) - timedelta(days=600))
    other = _open(path, clock)  # another process's sales, long ago, their day closed
    try:
        refs = [_cash(other, clock) for _ in range(3)]
        _z(other, clock)
        clock.now = datetime.now(UTC) - timedelta(minutes=5)
        today = _cash(other, clock)  # ages count from the newest row, at most now
    finally:
        other.close()
    boss = term.check_supervisor("8642")
    rep = term.close_day(override_by=boss, allow_empty=True)
    assert rep.payload["archive"]["rows"] == 3
    assert all(term.journal.get(r) is None for r in refs)
    assert term.journal.get(today) is not None
    assert sorted(_archived_refs(path.parent, term.journal)) == sorted(refs)
    backup = path.parent / "backups" / rep.payload["backup"]
    import sqlite3

    conn = sqlite3.connect(backup)
    try:
        assert conn.execute("SELECT COUNT(*) FROM txns WHERE ref IN (?,?,?)",
                            refs).fetchone()[0] == 3
    finally:
        conn.close()


def test_free_pages_go_back_to_the_file_system_in_steps(tmp_path: Path) -> None:
    clock = Clock(OLD)
    j = _open(tmp_path / "journal.db", clock)
    try:
        assert j.pages()["auto_vacuum"] == 2  # a new journal: incremental
        assert j.pragma("wal_autocheckpoint") == 4000
        for _ in range(300):
            _cash(j, clock)
        _z(j, clock)
        clock.now = NOW
        before = j.pages()
        rep = archive.run(j, cutoff=CUTOFF, now=NOW, hub_cursor=None)
        assert rep.rows == 300
        free = j.pages()["freelist_count"]
        assert free > 20
        assert j.release_free_pages(keep=10, step=7) == free - 10
        after = j.pages()
        assert after["freelist_count"] == 10 and after["page_count"] < before["page_count"]
    finally:
        j.close()


def test_compact_turns_on_incremental_vacuum_for_an_old_journal(tmp_path: Path) -> None:
    """A journal made before auto_vacuum (off) is converted only when asked, once."""
    import sqlite3

    from pos import housekeeping

    clock = Clock(OLD)
    j = _open(tmp_path / "journal.db", clock)
    refs = [_cash(j, clock) for _ in range(50)]
    j.close()
    conn = sqlite3.connect(tmp_path / "journal.db", isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = NONE")
    conn.execute("VACUUM")  # as a journal from before this branch
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    j = _open(tmp_path / "journal.db", clock)
    try:
        assert j.release_free_pages(keep=0) == 0  # off: SQLite reuses the pages
        assert housekeeping.compact(j)["compacted"] is True
        assert j.pages()["auto_vacuum"] == 2
        assert housekeeping.compact(j) == {"compacted": False, "reason": "already incremental"}
        assert all(j.get(r) is not None for r in refs)
        j.query(f"INSERT INTO {TABLE_FTS}({TABLE_FTS}) VALUES ('integrity-check')")
    finally:
        j.close()
