"""The hub's storage and terminal API over real HTTP on 127.0.0.1, on SQLite and on
PostgreSQL: migrations, enrolment, idempotent upload, restore, several hubs at once."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from pos import hubrestore, hubsync
from pos.errors import InputError
from pos.hub import schema as t
from pos.hub.server import HubServer
from pos.journal import Journal
from pos.money import Money
from tests.hub_support import seeded_hub

pytestmark = pytest.mark.timeout(120)


def code_for(hub: Any, terminal: str = "POS-001", shop: int | None = None) -> str:
    shop = shop or hub.accounts.shop_id(hub.merchant_id, None)
    return hub.accounts.create_code(hub.merchant_id, shop, terminal, "test")


def enrolled(tmp_path: Path, hub: Any, server: Any, terminal: str = "POS-001",
             name: str = "term") -> Path:
    home = tmp_path / name
    home.mkdir()
    asyncio.run(hubsync.enrol(home, server.url, code_for(hub, terminal)))
    return home


def sell(journal: Journal, n: int, *, terminal: str = "POS-001", start: int = 0) -> list[str]:
    refs = []
    for i in range(n):
        tx = journal.create("vend", Money(1000 * (i + 1 + start), "KES"), operator="ann",
                            terminal_id=terminal, meter="01451174955", tender="cash")
        journal.transition(tx.ref, "sending")
        journal.transition(tx.ref, "done", token="1234" * 5, receipt_number=i + 1 + start)
        refs.append(tx.ref)
    return refs


def upload(home: Path, journal: Journal, **kw: Any) -> hubsync.UploadReport:
    cred = hubsync.load_credential(home)
    assert cred is not None

    async def go() -> hubsync.UploadReport:
        up = hubsync.Uploader(journal, cred, **kw)
        try:
            return await up.run(None, max_batches=100)
        finally:
            await up.aclose()

    return asyncio.run(go())


def counts(hub: Any) -> dict[str, int]:
    with hub.db.read() as conn:
        return {name: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                for name, tbl in (("txns", t.txns), ("events", t.events),
                                  ("z_reports", t.z_reports))}


def test_migrated_schema_is_the_declared_one(hub: Any) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with hub.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    assert diff == []
    assert hub.db.revision() == "0002"
    assert hub.db.migrate() == "0002"  # a second start migrates nothing


def test_enrol_stores_a_0600_credential_and_the_code_works_once(tmp_path: Path, hub: Any,
                                                                hub_server: Any) -> None:
    code = code_for(hub)
    home = tmp_path / "a"
    home.mkdir()
    out = asyncio.run(hubsync.enrol(home, hub_server.url, code.lower().replace("-", "")))
    assert out["terminal_id"] == "POS-001" and "credential" not in out
    assert out["merchant"] == {"name": "Sodapop Inc", "registration_no": "PVT-FYUVQBQR",
                               "verified": True}
    path = hubsync.credential_path(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cred = hubsync.load_credential(home)
    assert cred is not None and cred.credential.split(".")[1] not in repr(cred)
    other = tmp_path / "b"
    other.mkdir()
    with pytest.raises(InputError, match="already used"):
        asyncio.run(hubsync.enrol(other, hub_server.url, code))
    with pytest.raises(InputError, match="Unknown enrolment code"):
        asyncio.run(hubsync.enrol(other, hub_server.url, "AAAA-BBBB-CCCC"))
    assert not hubsync.credential_path(other).exists()
    with hub.db.read() as conn:  # the hub keeps only a hash of the secret
        stored = conn.execute(select(t.terminals.c.secret_hash)).scalar_one()
    assert cred.credential.split(".")[1] not in stored


def test_enrolment_waits_for_the_merchant_verification(tmp_path: Path, hub_url: str) -> None:
    from sqlalchemy import update

    from pos.hub.config import PatascoreSettings

    hub = seeded_hub(hub_url, patascore=PatascoreSettings(enabled=True))
    try:
        with hub.db.write() as conn:
            conn.execute(update(t.merchants).values(kyb_status="pending"))
        code = code_for(hub)
        with HubServer(hub, background=False) as server:
            with pytest.raises(InputError, match="verification is pending"):
                asyncio.run(hubsync.enrol(tmp_path, server.url, code))
            with hub.db.write() as conn:
                conn.execute(update(t.merchants).values(kyb_status="verified"))
            out = asyncio.run(hubsync.enrol(tmp_path, server.url, code))  # still usable
        assert out["terminal_id"] == "POS-001"
    finally:
        asyncio.run(hub.aclose())


def test_tls_is_required_except_to_this_machine() -> None:
    with pytest.raises(InputError, match="TLS"):
        hubsync.check_hub_url("http://hub.example.com/")
    assert hubsync.check_hub_url("https://hub.example.com") == "https://hub.example.com/"
    assert hubsync.check_hub_url("http://127.0.0.1:8780").startswith("http://127.0.0.1")


def test_upload_is_idempotent_and_resumes_from_its_cursor(tmp_path: Path, hub: Any,
                                                          hub_server: Any) -> None:
    home = enrolled(tmp_path, hub, hub_server)
    journal = Journal.open(home / "journal.db")
    refs = sell(journal, 7)
    journal.z_report_put(1, {"until": "2026-01-01T00:00:00+00:00", "by_kind": {}})
    rep = upload(home, journal, batch=5)
    assert (rep.events, rep.z_reports, rep.batches) == (21, 1, 5)
    assert counts(hub) == {"txns": 7, "events": 21, "z_reports": 1}
    assert journal.meta_get(hubsync.META_EVENTS) == "21"
    # Nothing new: no event again (a fresh process re-sends rows changed within the
    # sweep margin, which the hub takes as the same rows).
    rep = upload(home, journal)
    assert rep.events == 0 and rep.txns <= 7
    assert counts(hub) == {"txns": 7, "events": 21, "z_reports": 1}
    # A lost answer: the cursors never moved, the same rows go again, stored once.
    journal.meta_set(hubsync.META_EVENTS, "0")
    journal.meta_set(hubsync.META_Z, "0")
    rep = upload(home, journal)
    assert rep.events == 21 and rep.z_reports == 1
    assert counts(hub) == {"txns": 7, "events": 21, "z_reports": 1}
    # A receipt number drawn later (no event) reaches the hub through the sweep.
    journal.update(refs[0], receipt_number=99)
    journal.meta_set("receipt_no", "99")
    upload(home, journal)
    with hub.db.read() as conn:
        row = conn.execute(select(t.txns.c.receipt_number).where(t.txns.c.ref == refs[0])
                           ).scalar_one()
        receipt_no = conn.execute(select(t.terminals.c.receipt_no)).scalar_one()
    assert row == 99 and receipt_no == 99
    journal.close()


def test_an_older_upload_never_overwrites_a_newer_row(tmp_path: Path, hub: Any) -> None:
    from pos.hub.wire import UploadIn

    term = hub.store.authenticate(hub.store.enrol(code_for(hub), "test")["credential"])
    row = {"ref": "100000000001", "kind": "vend", "state": "sending",
           "amount": {"minor": 500, "currency": "KES"}, "tender": "cash", "operator": "ann",
           "created_at": "2026-01-01T10:00:00+00:00", "updated_at": "2026-01-01T10:00:00+00:00"}
    done = {**row, "state": "done", "updated_at": "2026-01-01T10:00:05+00:00"}
    hub.store.ingest(term, UploadIn.model_validate({"seq": 2, "txns": [done]}), max_items=10)
    hub.store.ingest(term, UploadIn.model_validate({"seq": 1, "txns": [row]}), max_items=10)
    with hub.db.read() as conn:
        assert conn.execute(select(t.txns.c.state)).scalar_one() == "done"


def test_bad_uploads_are_refused_and_change_nothing(tmp_path: Path, hub: Any,
                                                    hub_server: Any) -> None:
    import httpx

    home = enrolled(tmp_path, hub, hub_server)
    cred = hubsync.load_credential(home)
    assert cred is not None
    headers = {"Authorization": f"Bearer {cred.credential}"}
    bad = {"seq": 1, "txns": [{"ref": "1", "kind": "vend", "state": "done",
                               "amount": {"minor": -5, "currency": "KES"}, "tender": "cash",
                               "operator": "a", "created_at": "2026-01-01T00:00:00+00:00",
                               "updated_at": "2026-01-01T00:00:00+00:00"}]}
    with httpx.Client(base_url=hub_server.url) as client:
        r = client.post("api/v1/upload", json=bad, headers=headers)
        assert r.status_code == 400 and "amount.minor" in r.json()["error"]
        r = client.post("api/v1/upload", content=b"{not json", headers=headers)
        assert r.status_code == 400
        r = client.post("api/v1/upload", json={"seq": 1},
                        headers={"Authorization": "Bearer forged.secret"})
        assert r.status_code == 401
    assert counts(hub)["txns"] == 0


def test_full_card_numbers_never_reach_the_hub(hub: Any) -> None:
    from pos.hub.wire import UploadIn

    term = hub.store.authenticate(hub.store.enrol(code_for(hub), "test")["credential"])
    row = {"ref": "100000000002", "kind": "card_debit", "state": "done",
           "amount": {"minor": 500, "currency": "UGX"}, "tender": "card", "operator": "ann",
           "card_no": "4000123412341234", "created_at": "2026-01-01T10:00:00+00:00",
           "updated_at": "2026-01-01T10:00:00+00:00"}
    hub.store.ingest(term, UploadIn.model_validate({"seq": 1, "txns": [row]}), max_items=10)
    with hub.db.read() as conn:
        card, data = conn.execute(select(t.txns.c.card_no, t.txns.c.data_json)).one()
    assert card == "4000********1234" and "4000123412341234" not in data


def test_hub_down_queues_and_catches_up(tmp_path: Path, hub: Any) -> None:
    server = HubServer(hub, background=False).start()
    home = enrolled(tmp_path, hub, server)
    server.stop()
    journal = Journal.open(home / "journal.db")
    sell(journal, 3)

    class Ctx:  # what after_sync_pass reads from the sync engine's context
        def __init__(self) -> None:
            self.journal = journal
            self.link = None
            self.settings = type("S", (), {"home": home})()

    ctx: Any = Ctx()

    async def go() -> None:
        report = await hubsync.after_sync_pass(ctx)
        assert report is not None and report.error and "cannot be reached" in report.error
        assert journal.meta_get(hubsync.META_EVENTS) is None  # nothing acknowledged
        up = hubsync._uploaders[journal]
        assert not up.due()  # backing off
        assert await hubsync.after_sync_pass(ctx) is None  # not even tried meanwhile
        with HubServer(hub, background=False, port=server.port):
            up.record_success()  # the back-off is over
            report = await hubsync.after_sync_pass(ctx)
            assert report is not None and report.events == 9 and report.error is None
        await up.aclose()

    asyncio.run(go())
    assert counts(hub) == {"txns": 3, "events": 9, "z_reports": 0}
    journal.close()


def test_restore_rebuilds_a_replaced_terminal(tmp_path: Path, hub: Any,
                                              hub_server: Any) -> None:
    old = enrolled(tmp_path, hub, hub_server, name="old")
    journal = Journal.open(old / "journal.db")
    sell(journal, 4)
    queued = journal.create("vend", Money(5000, "KES"), operator="ann", terminal_id="POS-001",
                            meter="01451174955", tender="cash", offline=True, state="queued")
    journal.meta_set("receipt_no", "4")
    journal.z_report_put(1, {"until": "2026-01-01T00:00:00+00:00", "by_kind": {}})
    upload(old, journal)
    before = [tx.to_json() for tx in journal.list(limit=100)]
    max_event = max(e.id for tx in journal.list(limit=100) for e in journal.events(tx.ref))
    journal.close()

    new = enrolled(tmp_path, hub, hub_server, name="new")  # same terminal id: replaces it
    with pytest.raises(InputError, match="no longer knows"):
        upload(old, Journal.open(old / "journal.db"))  # the old credential is revoked
    out = asyncio.run(hubrestore.restore(new))
    assert out == {"terminal_id": "POS-001", "txns": 5, "events": 13, "z_reports": 1,
                   "shifts": 0, "sales": 0, "cash_moves": 0, "open_shift": None,
                   "receipt_no": 4, "unsynced": 1}
    restored = Journal.open(new / "journal.db")
    assert [tx.to_json() for tx in restored.list(limit=100)] == before
    assert restored.require(queued.ref).state == "queued"
    assert restored.next_receipt_no() == 5
    assert [z.number for z in restored.z_reports()] == [1]
    # New events continue after the restored ones: the hub's keys never collide.
    restored.transition(queued.ref, "sending")
    assert restored.events(queued.ref)[-1].id == max_event + 1
    assert upload(new, restored).events == 1
    assert counts(hub)["events"] == 14
    with pytest.raises(InputError, match="not empty"):
        asyncio.run(hubrestore.restore(new))
    restored.close()


def test_two_hubs_on_one_database_store_each_upload_once(tmp_path: Path, hub_url: str,
                                                        hub: Any) -> None:
    from pos.hub.service import Hub
    from pos.hub.wire import UploadIn
    from tests.hub_support import hub_settings

    second = Hub(hub_settings(hub_url))  # a second process's hub: its own engine and pool
    code = code_for(hub)
    # The same one-time code given to both hubs at once: exactly one enrols.
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def try_enrol(h: Any) -> None:
        barrier.wait()
        try:
            results.append(h.store.enrol(code, "test"))
        except InputError as exc:
            results.append(exc)

    threads = [threading.Thread(target=try_enrol, args=(h,)) for h in (hub, second)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(isinstance(r, dict) for r in results) == 1
    cred = next(r for r in results if isinstance(r, dict))["credential"]
    term = second.store.authenticate(cred)
    rows = [{"ref": f"2000000000{i:02d}", "kind": "vend", "state": "done",
             "amount": {"minor": 100 * i, "currency": "KES"}, "tender": "cash",
             "operator": "ann", "created_at": "2026-01-01T10:00:00+00:00",
             "updated_at": "2026-01-01T10:00:00+00:00"} for i in range(1, 30)]
    events = [{"id": i, "ref": r["ref"], "at": r["created_at"], "from": None, "to": "done"}
              for i, r in enumerate(rows, 1)]
    body = UploadIn.model_validate({"seq": 1, "txns": rows, "events": events,
                                    "z_reports": [{"number": 1, "created_at": rows[0][
                                        "created_at"], "payload": {"a": 1}}]})
    errors: list[BaseException] = []
    barrier2 = threading.Barrier(4)

    def push(h: Any) -> None:
        barrier2.wait()
        try:
            h.store.ingest(term, body, max_items=1000)
        except BaseException as exc:  # a lost race must retry, never double
            errors.append(exc)
            h.store.ingest(term, body, max_items=1000)

    threads = [threading.Thread(target=push, args=(h,)) for h in (hub, second, hub, second)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert counts(hub) == {"txns": 29, "events": 29, "z_reports": 1}
    asyncio.run(second.aclose())


def test_sync_engine_pass_uploads_to_the_hub(tmp_path: Path, hub: Any, hub_server: Any,
                                             monkeypatch: pytest.MonkeyPatch,
                                             sandbox: Any) -> None:
    from tests.screens_support import counter_terminal

    async def go() -> None:
        term = await counter_terminal(tmp_path, monkeypatch, sandbox)
        try:
            home = term.settings.home
            await hubsync.enrol(home, hub_server.url, code_for(hub, term.settings.terminal_id))
            res = await term.sell_token("01451174955", Money(10000, "KES"), "Jane")
            assert res.status == "approved"
            await term.sync_now()
            assert not term.hub_pending()
            receipt = term.receipt(res.ref)
            assert receipt.merchant_name == "Sodapop Inc"
            assert receipt.merchant_registration == "PVT-FYUVQBQR"
        finally:
            await term.aclose()

    asyncio.run(go())
    with hub.db.read() as conn:
        kinds = conn.execute(select(t.txns.c.kind, t.txns.c.state)).all()
    assert [tuple(k) for k in kinds] == [("vend", "done")]
    assert json.loads(json.dumps(counts(hub)))["events"] >= 3


def test_hubs_starting_together_migrate_once(hub_url: str) -> None:
    from pos.hub.db import Database

    dbs = [Database(hub_url) for _ in range(3)]
    barrier = threading.Barrier(len(dbs))
    revisions: list[str] = []

    def start(db: Database) -> None:
        barrier.wait()
        revisions.append(db.migrate())

    threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert revisions == ["0002"] * 3
    for db in dbs:
        db.dispose()


def test_a_clock_stepped_back_still_sweeps_changed_rows(tmp_path: Path, hub: Any,
                                                        hub_server: Any) -> None:
    """The last sweep is "in the future" after the terminal's clock stepped back: rows
    changed since (stamped with the earlier clock) are still found."""
    home = enrolled(tmp_path, hub, hub_server)
    journal = Journal.open(home / "journal.db")
    [ref] = sell(journal, 1)
    upload(home, journal)
    journal.meta_set(hubsync.META_SWEEP, "2099-01-01T00:00:00.000000+00:00")
    journal.update(ref, receipt_number=42)  # no event: only the sweep can see it
    upload(home, journal)
    with hub.db.read() as conn:
        assert conn.execute(select(t.txns.c.receipt_number)).scalar_one() == 42
    journal.close()
