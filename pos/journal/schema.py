"""Versioned journal schema. Migrations run at open, tracked by ``PRAGMA user_version``.

Append a new script to :data:`MIGRATIONS` to change the schema; never edit a
released one. Each script runs inside one ``BEGIN IMMEDIATE`` transaction
together with the ``user_version`` bump, so a crash mid-migration leaves the
previous version intact and a second process opening the file waits instead
of migrating twice.
"""

from __future__ import annotations

import sqlite3

from pos.errors import PosError

_V1 = """
CREATE TABLE txns (
    ref             TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    tender          TEXT NOT NULL,
    operator        TEXT NOT NULL,
    terminal_id     TEXT NOT NULL,
    card_id         INTEGER,
    card_no         TEXT,
    wallet          TEXT,
    meter           TEXT,
    account         TEXT,
    customer_name   TEXT,
    reason          TEXT,
    parent_ref      TEXT,
    offline         INTEGER NOT NULL DEFAULT 0,
    provider_txn_id TEXT,
    token           TEXT,
    receipt_no      TEXT,
    receipt_number  INTEGER,
    units           TEXT,
    charges_json    TEXT,
    total_json      TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    settled_at      TEXT,
    details_json    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX txns_state_due ON txns(state, next_attempt_at);
CREATE INDEX txns_created ON txns(created_at);
CREATE INDEX txns_parent ON txns(parent_ref) WHERE parent_ref IS NOT NULL;
CREATE INDEX txns_card ON txns(card_id, kind, offline) WHERE card_id IS NOT NULL;
CREATE TRIGGER txns_no_delete BEFORE DELETE ON txns
BEGIN SELECT RAISE(ABORT, 'journal rows are never deleted'); END;

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ref        TEXT NOT NULL REFERENCES txns(ref),
    at         TEXT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    note       TEXT,
    error      TEXT,
    operator   TEXT
);
CREATE INDEX events_ref ON events(ref, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE pins (
    ref        TEXT PRIMARY KEY REFERENCES txns(ref),
    blob       BLOB NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE card_cache (
    card_id          INTEGER PRIMARY KEY,
    card_no          TEXT,
    status           TEXT NOT NULL,
    has_pin          INTEGER NOT NULL,
    wallets_json     TEXT NOT NULL,
    balance_minor    INTEGER,
    balance_currency TEXT,
    seen_online_at   TEXT NOT NULL
);

CREATE TABLE operators (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('cashier', 'supervisor')),
    pin_hash   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE z_reports (
    number       INTEGER PRIMARY KEY,
    payload_json TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE TRIGGER z_no_update BEFORE UPDATE ON z_reports
BEGIN SELECT RAISE(ABORT, 'Z reports are immutable'); END;
CREATE TRIGGER z_no_delete BEFORE DELETE ON z_reports
BEGIN SELECT RAISE(ABORT, 'Z reports are immutable'); END;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# V2: PIN attempts (issue 10). ``pin_tries`` is the current state per subject (an
# operator's sign-in, the supervisor check, a card), read and written in the same
# transaction as each attempt, so several processes share one count; its stamp is wall
# time plus boot id and a boot-relative clock, so a clock step neither unlocks early nor
# locks forever (see pos/pinguard.py). ``security_events`` is the append-only trail a
# supervisor reads (wrong PINs, lock-outs, operators added, journal restored). Tables
# rather than the meta table: the trail is queried by time and kind, and append-only
# is enforced by triggers as for ``events``.
_V2 = """
CREATE TABLE pin_tries (
    subject      TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    wait_seconds REAL NOT NULL,
    stamp_wall   TEXT NOT NULL,
    stamp_boot   TEXT NOT NULL,
    stamp_mono   REAL NOT NULL
);

CREATE TABLE security_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    operator TEXT,
    detail   TEXT
);
CREATE INDEX security_events_at ON security_events(at);
CREATE TRIGGER security_events_no_update BEFORE UPDATE ON security_events
BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;
CREATE TRIGGER security_events_no_delete BEFORE DELETE ON security_events
BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;
"""

# V3: what the money paths need to survive a Pi and a mobile link (issues 9, 10).
# - lease_owner: the process (boot:pid:start) holding a created / sending row; a row
#   whose holder is gone is reclaimed at once instead of after its lease.
# - created_boot / created_mono / clock_synced: the creation moment on the boot-relative
#   clock, and whether the wall clock was synchronised (ages survive clock steps).
# - sent_json: the moment the money request last left (a Stamp); sends: how many times.
# - recon_json: what reconciliation asked and each signal answered.
# - accepted: the cashier was told the sale is accepted (offline / pending): only then
#   may a request whose first send was interrupted be sent again.
_V3 = """
ALTER TABLE txns ADD COLUMN lease_owner TEXT;
ALTER TABLE txns ADD COLUMN created_boot TEXT;
ALTER TABLE txns ADD COLUMN created_mono REAL;
ALTER TABLE txns ADD COLUMN clock_synced INTEGER;
ALTER TABLE txns ADD COLUMN sent_json TEXT;
ALTER TABLE txns ADD COLUMN sends INTEGER NOT NULL DEFAULT 0;
ALTER TABLE txns ADD COLUMN recon_json TEXT;
ALTER TABLE txns ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;
UPDATE txns SET accepted = 1 WHERE offline = 1 OR state IN ('queued', 'unknown', 'pending');
CREATE INDEX txns_leased ON txns(state) WHERE lease_owner IS NOT NULL;
"""

#: Rebuild the kept totals from the rows: each row's Z period from the stored Z reports'
#: ``until`` (period N holds the rows made before Z #N and after Z #N-1), then the
#: aggregates. Used by the migration below and by a restore (pos/hubrestore.py), which
#: inserts rows and Z reports directly.
REBUILD_TOTALS = """
CREATE TEMP TABLE _zb AS SELECT number,
    julianday(json_extract(payload_json, '$.until')) AS until_jd FROM z_reports;
CREATE INDEX temp._zb_until ON _zb(until_jd, number);
UPDATE txns SET z_period = COALESCE(
    (SELECT MIN(number) FROM _zb WHERE until_jd > julianday(txns.created_at)),
    (SELECT COALESCE(MAX(number), 0) + 1 FROM z_reports));
DROP TABLE temp._zb;
DELETE FROM totals;
INSERT INTO totals(z_period, state, kind, tender, currency, operator, count, amount_minor)
    SELECT z_period, state, kind, tender, currency, operator, COUNT(*), SUM(amount_minor)
    FROM txns GROUP BY z_period, state, kind, tender, currency, operator;
"""

# V_GROWTH (issue 15): a journal that carries a year of trade.
# - z_period: the Z period a row belongs to (the open one when it was made: Z #N closes
#   period N), set by Journal.create; ``totals`` keeps count and sum per (period, state,
#   kind, tender, currency, operator), updated by triggers in the same transaction as
#   each insert and state change, so X / Z reports read a few dozen rows, never history.
#   Archived rows leave the journal but stay counted (the totals are the history).
# - refund checks: failed / declined card-paid vends and bills whose refund is to be
#   checked carry a next_attempt_at (pos/usecases/refunds.py), found through the
#   existing index txns_state_due(state, next_attempt_at): the sync pass reads only
#   those that are due, not every failed sale ever made.
# - archived_at: a settled row copied to the archive (pos/journal/archive.py) may then
#   be deleted, with its events; nothing else may delete a row or an event.
_V_GROWTH = """
ALTER TABLE txns ADD COLUMN z_period INTEGER;
ALTER TABLE txns ADD COLUMN archived_at TEXT;
CREATE TABLE totals (
    z_period     INTEGER NOT NULL,
    state        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    tender       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    operator     TEXT NOT NULL,
    count        INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    PRIMARY KEY (z_period, state, kind, tender, currency, operator)
) WITHOUT ROWID;
""" + REBUILD_TOTALS + """
CREATE TRIGGER txns_totals_insert AFTER INSERT ON txns
BEGIN
    INSERT INTO totals(z_period, state, kind, tender, currency, operator, count, amount_minor)
    VALUES (COALESCE(NEW.z_period, 0), NEW.state, NEW.kind, NEW.tender, NEW.currency,
            NEW.operator, 1, NEW.amount_minor)
    ON CONFLICT DO UPDATE SET count = count + 1,
                              amount_minor = amount_minor + excluded.amount_minor;
END;
CREATE TRIGGER txns_totals_state AFTER UPDATE OF state ON txns
WHEN OLD.state IS NOT NEW.state
BEGIN
    UPDATE totals SET count = count - 1, amount_minor = amount_minor - OLD.amount_minor
    WHERE z_period = COALESCE(OLD.z_period, 0) AND state = OLD.state AND kind = OLD.kind
      AND tender = OLD.tender AND currency = OLD.currency AND operator = OLD.operator;
    INSERT INTO totals(z_period, state, kind, tender, currency, operator, count, amount_minor)
    VALUES (COALESCE(NEW.z_period, 0), NEW.state, NEW.kind, NEW.tender, NEW.currency,
            NEW.operator, 1, NEW.amount_minor)
    ON CONFLICT DO UPDATE SET count = count + 1,
                              amount_minor = amount_minor + excluded.amount_minor;
END;
UPDATE txns SET next_attempt_at = updated_at
    WHERE tender = 'card' AND kind IN ('vend', 'postpaid') AND parent_ref IS NOT NULL
      AND state IN ('failed', 'declined', 'declined_offline')
      AND NOT EXISTS (SELECT 1 FROM txns r WHERE r.parent_ref = txns.parent_ref
                      AND r.kind = 'card_refund');
CREATE INDEX txns_settled ON txns(settled_at) WHERE settled_at IS NOT NULL;
DROP TRIGGER txns_no_delete;
CREATE TRIGGER txns_no_delete BEFORE DELETE ON txns WHEN OLD.archived_at IS NULL
BEGIN SELECT RAISE(ABORT, 'journal rows are never deleted'); END;
DROP TRIGGER events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN (SELECT archived_at FROM txns WHERE ref = OLD.ref) IS NULL
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""


# V_COUNTER (branch counter, issue 13): the counter's own tables. The lead renumbers.
# - products: the Patasente catalogue (get-company-products) kept for offline selling.
# - shifts: one drawer session (float, blind count, expected, variance); at most one open.
# - cash_moves: cash in / out with a reason, and cash given back ("refund") or taken for
#   a flagged debit ("collected"), each in a shift.
# - sales / sale_lines / sale_tenders: a basket sale is ONE entity; its tender parts are
#   cash (tendered, change) or card (the card_debit row of txns, linked by txn_ref).
_V_COUNTER = """
CREATE TABLE products (
    product_id  INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL,
    units       TEXT,
    fetched_at  TEXT NOT NULL
);

CREATE TABLE shifts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    operator       TEXT NOT NULL,
    currency       TEXT NOT NULL,
    float_minor    INTEGER NOT NULL CHECK (float_minor >= 0),
    opened_at      TEXT NOT NULL,
    closed_at      TEXT,
    closed_by      TEXT,
    counted_minor  INTEGER CHECK (counted_minor IS NULL OR counted_minor >= 0),
    expected_minor INTEGER,
    report_json    TEXT,
    CHECK ((closed_at IS NULL) = (counted_minor IS NULL))
);
CREATE UNIQUE INDEX shifts_one_open ON shifts((1)) WHERE closed_at IS NULL;
CREATE TRIGGER shifts_no_delete BEFORE DELETE ON shifts
BEGIN SELECT RAISE(ABORT, 'shifts are never deleted'); END;
CREATE TRIGGER shifts_closed_final BEFORE UPDATE ON shifts WHEN OLD.closed_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a closed shift cannot change'); END;

CREATE TABLE cash_moves (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    shift_id     INTEGER NOT NULL REFERENCES shifts(id),
    kind         TEXT NOT NULL CHECK (kind IN ('in', 'out', 'refund', 'collected')),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    operator     TEXT NOT NULL,
    ref          TEXT,
    at           TEXT NOT NULL
);
CREATE INDEX cash_moves_shift ON cash_moves(shift_id);
CREATE INDEX cash_moves_at ON cash_moves(at);
CREATE TRIGGER cash_moves_no_update BEFORE UPDATE ON cash_moves
BEGIN SELECT RAISE(ABORT, 'cash moves are append-only'); END;
CREATE TRIGGER cash_moves_no_delete BEFORE DELETE ON cash_moves
BEGIN SELECT RAISE(ABORT, 'cash moves are append-only'); END;

CREATE TABLE sales (
    id             TEXT PRIMARY KEY,
    shift_id       INTEGER REFERENCES shifts(id),
    state          TEXT NOT NULL CHECK (state IN ('open', 'done', 'abandoned', 'voided')),
    operator       TEXT NOT NULL,
    currency       TEXT NOT NULL,
    subtotal_minor INTEGER NOT NULL CHECK (subtotal_minor >= 0),
    discount_minor INTEGER NOT NULL CHECK (discount_minor >= 0),
    total_minor    INTEGER NOT NULL CHECK (total_minor >= 0
                                           AND total_minor = subtotal_minor - discount_minor),
    discount_by    TEXT,
    reason         TEXT NOT NULL,
    receipt_number INTEGER,
    created_at     TEXT NOT NULL,
    completed_at   TEXT
);
CREATE INDEX sales_shift ON sales(shift_id);
CREATE TRIGGER sales_no_delete BEFORE DELETE ON sales
BEGIN SELECT RAISE(ABORT, 'sales are never deleted'); END;

CREATE TABLE sale_lines (
    sale_id        TEXT NOT NULL REFERENCES sales(id),
    line_no        INTEGER NOT NULL,
    product_id     INTEGER,
    name           TEXT NOT NULL,
    qty            INTEGER NOT NULL CHECK (qty > 0),
    unit_minor     INTEGER NOT NULL CHECK (unit_minor >= 0),
    discount_minor INTEGER NOT NULL CHECK (discount_minor >= 0
                                           AND discount_minor <= qty * unit_minor),
    PRIMARY KEY (sale_id, line_no)
);
CREATE TRIGGER sale_lines_no_change BEFORE UPDATE ON sale_lines
BEGIN SELECT RAISE(ABORT, 'sale lines are immutable'); END;

CREATE TABLE sale_tenders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sale_id        TEXT NOT NULL REFERENCES sales(id),
    shift_id       INTEGER REFERENCES shifts(id),
    tender         TEXT NOT NULL CHECK (tender IN ('cash', 'card')),
    state          TEXT NOT NULL CHECK (state IN ('paid', 'declined')),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),
    tendered_minor INTEGER NOT NULL CHECK (tendered_minor >= amount_minor),
    change_minor   INTEGER NOT NULL CHECK (change_minor = tendered_minor - amount_minor),
    txn_ref        TEXT REFERENCES txns(ref),
    operator       TEXT NOT NULL,
    at             TEXT NOT NULL,
    CHECK ((tender = 'card') = (txn_ref IS NOT NULL)),
    CHECK (tender = 'cash' OR change_minor = 0)
);
CREATE INDEX sale_tenders_sale ON sale_tenders(sale_id);
CREATE INDEX sale_tenders_shift ON sale_tenders(shift_id);
CREATE INDEX sale_tenders_at ON sale_tenders(at);
CREATE TRIGGER sale_tenders_no_delete BEFORE DELETE ON sale_tenders
BEGIN SELECT RAISE(ABORT, 'tender parts are never deleted'); END;
"""

# Operators are disabled, never deleted (issue 13, authority): their names stay on the
# journal's rows, and a disabled operator can be enabled again by a supervisor. Who did
# it and when is on the security trail (security_events).
_V_OPERATOR_STATE = """
ALTER TABLE operators ADD COLUMN disabled_at TEXT;
"""

# V_HUB_COUNTER (issue 12): the counter's tables reach the hub.
# hub_changes is the upload's outbox for the tables that have no event trail: a row per
# insert or change of a sale (its tender parts included), a shift or a cash move, written
# by triggers in the same transaction as the change, so nothing changes unseen. The
# uploader (pos/hubsync.py) sends what follows its cursor and deletes what the hub
# acknowledged. Rows that exist when the migration runs are queued once.
_V_HUB_COUNTER = """
CREATE TABLE hub_changes (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL CHECK (tbl IN ('sale', 'shift', 'cash_move')),
    key TEXT NOT NULL
);
CREATE TRIGGER sales_hub_insert AFTER INSERT ON sales
BEGIN INSERT INTO hub_changes(tbl, key) VALUES ('sale', NEW.id); END;
CREATE TRIGGER sales_hub_update AFTER UPDATE ON sales
BEGIN INSERT INTO hub_changes(tbl, key) VALUES ('sale', NEW.id); END;
CREATE TRIGGER sale_tenders_hub_insert AFTER INSERT ON sale_tenders
BEGIN INSERT INTO hub_changes(tbl, key) VALUES ('sale', NEW.sale_id); END;
CREATE TRIGGER shifts_hub_insert AFTER INSERT ON shifts
BEGIN INSERT INTO hub_changes(tbl, key) VALUES ('shift', CAST(NEW.id AS TEXT)); END;
CREATE TRIGGER shifts_hub_update AFTER UPDATE ON shifts
BEGIN INSERT INTO hub_changes(tbl, key) VALUES ('shift', CAST(NEW.id AS TEXT)); END;
CREATE TRIGGER cash_moves_hub_insert AFTER INSERT ON cash_moves
BEGIN INSERT INTO hub_changes(tbl, key) VALUES ('cash_move', CAST(NEW.id AS TEXT)); END;
INSERT INTO hub_changes(tbl, key) SELECT 'shift', CAST(id AS TEXT) FROM shifts ORDER BY id;
INSERT INTO hub_changes(tbl, key) SELECT 'sale', id FROM sales ORDER BY created_at, id;
INSERT INTO hub_changes(tbl, key) SELECT 'cash_move', CAST(id AS TEXT) FROM cash_moves
    ORDER BY id;
"""

#: The flagged states as SQL (sorted, literal): a partial index is used only by a query
#: whose WHERE has this very term (pos/journal/store.py uses it verbatim).
FLAGGED_SQL = "state IN ('declined_offline', 'expired', 'failed', 'review')"

# V_HOUSEKEEPING (issue 15, the 1,000,000-row run): flagged rows in creation order
# from a partial index, so a report's first lines and the journal's flagged page read
# only what they show, however many flagged rows years of trade left unresolved.
_V_HOUSEKEEPING = f"""
CREATE INDEX IF NOT EXISTS txns_flagged ON txns(created_at) WHERE {FLAGGED_SQL};
"""

# V_CONSTRAINTS (issue 14): the schema enforces what Python enforces. Each rule is ONE
# SQL condition on a row (``{c}`` stands for ``NEW`` in a trigger, for the table in the
# validation pass) that an insert, and an update changing one of the rule's columns,
# must meet. Triggers, not CHECK / REFERENCES in CREATE TABLE:
# - SQLite adds a CHECK to an existing table only by copying it (a journal may be 1 GiB
#   on an SD card); triggers are added in place, and a new journal, built by replaying
#   these same scripts, gets exactly the same enforcement as a migrated one (one
#   mechanism, one definition, no second hand-kept schema for new journals);
# - a REFERENCES clause holds only on a connection that turns ``foreign_keys`` on (the
#   sqlite3 shell and Python's sqlite3 leave it off); a trigger holds on every one.
# The enumerations are literal, as released: a test holds them equal to pos.journal.states
# (a new state or kind needs a migration that replaces these triggers).
# An update is checked only on the rules whose columns it changes, so a row that broke a
# rule before this version (reported, never dropped: table ``constraint_offenders``) can
# still be settled. A parent's ``ref`` never changes, and a parent leaves the journal
# only with its children (archiving moves whole families: pos/journal/archive.py marks
# every row of a step ``archived_at`` before it deletes them).
_KINDS_SQL = ("'card_credit', 'card_debit', 'card_lock', 'card_refund', 'card_unlock',"
              " 'gift_activation', 'postpaid', 'sente_activation', 'vend'")
_STATES_SQL = ("'cancelled', 'created', 'declined', 'declined_offline', 'done', 'expired',"
               " 'failed', 'pending', 'queued', 'resolved', 'review', 'sending', 'unknown'")
_TENDERS_SQL = "'card', 'cash', 'none'"

#: (table, rule name, columns it reads, condition a row must meet): released with V9,
#: never edit (a change is a new migration that replaces the triggers).
CONSTRAINTS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("txns", "amount_minor is a whole number >= 0", ("amount_minor",),
     "typeof({c}.amount_minor) = 'integer' AND {c}.amount_minor >= 0"),
    ("txns", "kind is a journal kind", ("kind",), f"{{c}}.kind IN ({_KINDS_SQL})"),
    ("txns", "state is a journal state", ("state",), f"{{c}}.state IN ({_STATES_SQL})"),
    ("txns", "tender is cash, card or none", ("tender",), f"{{c}}.tender IN ({_TENDERS_SQL})"),
    ("txns", "offline and accepted are 0 or 1", ("offline", "accepted"),
     "{c}.offline IN (0, 1) AND {c}.accepted IN (0, 1)"),
    ("txns", "attempts and sends are >= 0", ("attempts", "sends"),
     "{c}.attempts >= 0 AND {c}.sends >= 0"),
    ("txns", "parent_ref is the ref of another journal row", ("parent_ref",),
     "{c}.parent_ref IS NULL OR ({c}.parent_ref IS NOT {c}.ref"
     " AND EXISTS (SELECT 1 FROM txns p WHERE p.ref = {c}.parent_ref))"),
    ("events", "to_state is a journal state", ("to_state",),
     f"{{c}}.to_state IN ({_STATES_SQL})"),
    ("events", "from_state is a journal state", ("from_state",),
     f"{{c}}.from_state IS NULL OR {{c}}.from_state IN ({_STATES_SQL})"),
    ("events", "ref is a journal row", ("ref",),
     "EXISTS (SELECT 1 FROM txns t WHERE t.ref = {c}.ref)"),
)
#: How an offender is named in ``constraint_offenders.key``.
_KEY = {"txns": "{c}.ref", "events": "CAST({c}.id AS TEXT)"}


def _constraint_triggers() -> str:
    out = []
    for table in ("txns", "events"):
        rules = [r for r in CONSTRAINTS if r[0] == table]
        ins = "".join(f"    SELECT RAISE(ABORT, '{table}: {name}')"
                      f" WHERE NOT coalesce(({cond.format(c='NEW')}), 0);\n"
                      for _, name, _, cond in rules)
        upd = "".join(
            f"    SELECT RAISE(ABORT, '{table}: {name}') WHERE ("
            + " OR ".join(f"NEW.{col} IS NOT OLD.{col}" for col in cols)
            + f") AND NOT coalesce(({cond.format(c='NEW')}), 0);\n"
            for _, name, cols, cond in rules)
        out.append(f"CREATE TRIGGER {table}_check_insert BEFORE INSERT ON {table}\nBEGIN\n"
                   f"{ins}END;\n")
        if table == "txns":  # events are append-only already (events_no_update)
            out.append(f"CREATE TRIGGER {table}_check_update BEFORE UPDATE ON {table}\n"
                       f"BEGIN\n{upd}END;\n")
    return "".join(out)


def _validation(table: str) -> str:
    """ONE pass over ``table``: every row breaking a rule is recorded, with all the rules
    it breaks, in ``constraint_offenders`` (the row itself stays as it is)."""
    rules = [r for r in CONSTRAINTS if r[0] == table]
    parts = " || ".join(f"iif(coalesce(({cond.format(c='x')}), 0), '', '; {name}')"
                        for _, name, _, cond in rules)
    return (f"INSERT INTO constraint_offenders(tbl, key, rules, found_at)"
            f" SELECT '{table}', key, substr(broken, 3), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
            f" FROM (SELECT {_KEY[table].format(c='x')} AS key, ({parts}) AS broken"
            f" FROM {table} x) WHERE broken != '';\n")


_V_CONSTRAINTS = """
CREATE TABLE constraint_offenders (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl      TEXT NOT NULL,
    key      TEXT NOT NULL,
    rules    TEXT NOT NULL,
    found_at TEXT NOT NULL
);
""" + _validation("txns") + _validation("events") + _constraint_triggers() + """
CREATE TRIGGER txns_ref_fixed BEFORE UPDATE OF ref ON txns WHEN NEW.ref IS NOT OLD.ref
BEGIN SELECT RAISE(ABORT, 'txns: a ref never changes'); END;
CREATE TRIGGER txns_parent_kept BEFORE DELETE ON txns
WHEN EXISTS (SELECT 1 FROM txns c WHERE c.parent_ref = OLD.ref AND c.archived_at IS NULL)
BEGIN SELECT RAISE(ABORT, 'txns: a row leaves the journal only with its children'); END;
"""

# V_SALES_RECENT (issue 13): the journal's Sales list reads the newest basket sales.
# IF NOT EXISTS: the tests make an older journal out of a new one by undoing the
# earlier migrations' objects only.
_V_SALES_RECENT = """
CREATE INDEX IF NOT EXISTS sales_created ON sales(created_at);
"""

# V_FLAGGED_COUNT (issue 15): the status bar asks how many items are flagged every
# second; counting the flagged index took 0.9 ms with the 11,000 unresolved rows of
# the 1,000,000-row journal (and grows with them). A kept count instead, updated in the
# same transaction as each row's state (and its delete, an archived row leaving).
_FLAGGED_NEW = FLAGGED_SQL.replace("state IN", "NEW.state IN")
_FLAGGED_OLD = FLAGGED_SQL.replace("state IN", "OLD.state IN")
_V_FLAGGED_COUNT = f"""
CREATE TABLE IF NOT EXISTS kept_counts (
    name TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR REPLACE INTO kept_counts(name, n)
    SELECT 'flagged', COUNT(*) FROM txns WHERE {FLAGGED_SQL};
CREATE TRIGGER IF NOT EXISTS txns_flagged_count_insert AFTER INSERT ON txns
WHEN {_FLAGGED_NEW}
BEGIN UPDATE kept_counts SET n = n + 1 WHERE name = 'flagged'; END;
CREATE TRIGGER IF NOT EXISTS txns_flagged_count_state AFTER UPDATE OF state ON txns
WHEN ({_FLAGGED_OLD}) IS NOT ({_FLAGGED_NEW})
BEGIN
    UPDATE kept_counts SET n = n + (CASE WHEN {_FLAGGED_NEW} THEN 1 ELSE -1 END)
    WHERE name = 'flagged';
END;
CREATE TRIGGER IF NOT EXISTS txns_flagged_count_delete AFTER DELETE ON txns
WHEN {_FLAGGED_OLD}
BEGIN UPDATE kept_counts SET n = n - 1 WHERE name = 'flagged'; END;
"""

#: Migration ``i`` brings the schema from version ``i`` to ``i + 1``.
#: V4 growth (issue 15), V5 counter (issue 13), V6 disabled operators (issue 13),
#: V7 the counter's tables to the hub (issue 12), V8 the flagged index (issue 15),
#: V9 the constraints (issue 14), V10 the recent sales index (issue 13), V11 the kept
#: flagged count (issue 15).
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V_GROWTH, _V_COUNTER, _V_OPERATOR_STATE,
                               _V_HUB_COUNTER, _V_HOUSEKEEPING, _V_CONSTRAINTS,
                               _V_SALES_RECENT, _V_FLAGGED_COUNT)
SCHEMA_VERSION = len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (triggers contain inner ``;``)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buf[:60]!r}")
    return out


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; return the version found at open.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    found = user_version(conn)
    if found > SCHEMA_VERSION:
        raise PosError(
            f"journal.db has schema version {found}, newer than this program "
            f"({SCHEMA_VERSION}); upgrade sente-pos"
        )
    if found == SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = user_version(conn)  # another process may have migrated meanwhile
        for version in range(current, SCHEMA_VERSION):
            # executescript() would COMMIT first; run statement by statement instead.
            for stmt in _statements(MIGRATIONS[version]):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def rebuild_totals(conn: sqlite3.Connection) -> None:
    """Re-derive every row's Z period and the kept totals (inside the caller's
    transaction): after rows were inserted around :meth:`Journal.create`."""
    for stmt in _statements(REBUILD_TOTALS):
        conn.execute(stmt)
