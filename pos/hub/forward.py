"""Particeep in the hub: each settled sale is forwarded once, webhooks are verified.

Outbox. Uploads queue every settled sale (``particeep_outbox``, keyed on terminal and
ref). A pass claims due rows with a lease (a conditional UPDATE: of several hubs, one
works on a row), and sends each as a Particeep transaction whose ``custom`` object
(document 004, "Customize the API") carries our terminal, ref and token. Particeep
documents no idempotency key, so an attempt whose answer may have been lost is
followed by a look-up of the sale by its ``custom`` fields (paged listing) before
anything is sent again.

Webhooks. Document 004: the ``Authorization`` header is rebuilt from the webhook's
own ``DateTime`` and compared in constant time; a ``DateTime`` outside the allowed
skew is refused; a request already seen (same event, DateTime, signature and
entity) is refused as a replay, through a cache in the database that every hub
shares. The signature covers no body, so the entity is read back from Particeep and
only what Particeep says now is recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update

from pos.errors import AuthError, PosError, ProviderError, ProviderUnavailable, RateLimited
from pos.hub import schema as t
from pos.hub.clock import iso, later
from pos.hub.config import ParticeepSettings
from pos.hub.worker import ProviderWorker

log = logging.getLogger(__name__)
LEASE_SECONDS = 120.0
REPLAY_KEEP = dt.timedelta(days=2)


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    accepted: bool
    status: int
    message: str


def sale_payload(terminal: str, row: dict[str, Any]) -> dict[str, Any]:
    """A settled sale as a Particeep transaction. Document 004 gives no transaction
    fields: ``amount`` in minor units with ``currency``, a description, and ours in
    ``custom`` (a JSON object, as the document requires)."""
    amount = row.get("amount") or {}
    custom = {"terminal": terminal, "ref": row["ref"], "kind": row.get("kind"),
              "tender": row.get("tender"), "created_at": row.get("created_at")}
    if row.get("token"):
        custom["token"] = row["token"]
    for key in ("meter", "account", "card_no", "receipt_number", "lines"):
        if row.get(key):
            custom[key] = row[key]
    return {"amount": int(amount.get("minor", 0)), "currency": amount.get("currency"),
            "description": f"Sente POS {row.get('kind')} {row['ref']} at {terminal}",
            "custom": custom}


def basket_payload(sale: dict[str, Any]) -> dict[str, Any]:
    """A basket sale shaped like a transaction for :func:`sale_payload`: its total, how
    it was paid (card, cash or split, from the parts that were paid) and its lines."""
    paid = sorted({p.get("tender") for p in sale.get("tenders") or []
                   if p.get("state") == "paid"} - {None})
    return {"ref": sale["id"], "kind": "basket",
            "tender": paid[0] if len(paid) == 1 else "split",
            "amount": {"minor": sale.get("total_minor", 0), "currency": sale.get("currency")},
            "created_at": sale.get("completed_at") or sale.get("created_at"),
            "receipt_number": sale.get("receipt_number"),
            "lines": [{"name": ln.get("name"), "qty": ln.get("qty"),
                       "unit_minor": ln.get("unit_minor"),
                       "discount_minor": ln.get("discount_minor")}
                      for ln in sale.get("lines") or []]}


class ParticeepForwarder(ProviderWorker):
    settings: ParticeepSettings

    def make_client(self) -> Any:
        from pos.providers.particeep import ParticeepClient

        return ParticeepClient(self.settings, transport=self._transport, clock=self.clock)

    async def ensure_webhooks(self) -> list[str]:
        """Register ``webhook_url`` for each of ``webhook_events`` (idempotent: a URL per
        event, the same one again). The events registered."""
        s = self.settings
        if not s.webhook_url:
            return []
        done = []
        for event in s.webhook_events:
            await self.client.register_webhook(event, s.webhook_url)
            done.append(event)
        self._webhooks_registered = True
        return done

    # ------------------------------------------------------------------ outbox
    def _claim(self, limit: int) -> list[Any]:
        now = iso(self.clock())
        o = t.particeep_outbox
        due = ((o.c.status == "pending") & (o.c.next_at <= now)
               & or_(o.c.lease_until.is_(None), o.c.lease_until < now))
        claimed = []
        with self.db.write() as conn:
            rows = conn.execute(select(o).where(due).order_by(o.c.next_at).limit(limit)).all()
            for row in rows:
                res = conn.execute(update(o).where(
                    o.c.terminal_id == row.terminal_id, o.c.ref == row.ref, due,
                ).values(lease_until=later(self.clock, LEASE_SECONDS),
                         attempts=o.c.attempts + 1))
                if res.rowcount == 1:
                    claimed.append(row)
        return claimed

    def _sale(self, terminal_id: int, ref: str) -> tuple[str, dict[str, Any]] | None:
        """The sale to forward: a transaction by its ref, else a basket sale by its id."""
        with self.db.read() as conn:
            row = conn.execute(
                select(t.txns.c.data_json, t.terminals.c.name)
                .join(t.terminals, t.terminals.c.id == t.txns.c.terminal_id)
                .where(t.txns.c.terminal_id == terminal_id, t.txns.c.ref == ref)).first()
            if row is not None:
                return row.name, json.loads(row.data_json)
            basket = conn.execute(
                select(t.sales.c.data_json, t.terminals.c.name)
                .join(t.terminals, t.terminals.c.id == t.sales.c.terminal_id)
                .where(t.sales.c.terminal_id == terminal_id, t.sales.c.sale_id == ref)).first()
        return (basket.name, basket_payload(json.loads(basket.data_json))) if basket else None

    _webhooks_registered = False

    async def run_once(self, *, limit: int = 50) -> int:
        """Forward what is due; how many sales reached Particeep in this pass. The first
        pass of a process also registers the hub's webhook URL."""
        if not self._webhooks_registered and self.settings.webhook_url:
            try:
                await self.ensure_webhooks()
            except PosError as exc:
                log.warning("Particeep webhook registration: %s", exc.message)
        sent = 0
        for row in self._claim(limit):
            sale = self._sale(row.terminal_id, row.ref)
            if sale is None:
                self._finish(row, status="failed", error="sale not on the hub")
                continue
            terminal, data = sale
            try:
                found = None
                if row.attempts > 0:  # an earlier attempt may have arrived: look first
                    found = await self.client.find_transaction(terminal, row.ref)
                entity = found or await self.client.create_transaction(
                    sale_payload(terminal, data))
            except (ProviderUnavailable, RateLimited) as exc:
                self._later(row, exc.message)
                continue
            except AuthError as exc:
                self._later(row, exc.message, seconds=self.settings.retry_max)
                continue
            except ProviderError as exc:
                if exc.http_status is not None and 400 <= exc.http_status < 500:
                    self._finish(row, status="failed", error=exc.message)  # flagged
                else:  # 5xx, timeout, reset, garbage: may have arrived; looked up next time
                    self._later(row, exc.message)
                continue
            self._finish(row, status="sent", particeep_id=str(entity.get("id")))
            sent += 1
        return sent

    def _later(self, row: Any, error: str, seconds: float | None = None) -> None:
        wait = seconds or min(self.settings.retry_max, 5.0 * 2 ** min(int(row.attempts), 8))
        o = t.particeep_outbox
        with self.db.write() as conn:
            conn.execute(update(o).where(o.c.terminal_id == row.terminal_id, o.c.ref == row.ref)
                         .values(next_at=later(self.clock, wait), lease_until=None,
                                 last_error=error[:500]))

    def _finish(self, row: Any, *, status: str, error: str | None = None,
                particeep_id: str | None = None) -> None:
        o = t.particeep_outbox
        with self.db.write() as conn:
            conn.execute(update(o).where(o.c.terminal_id == row.terminal_id, o.c.ref == row.ref)
                         .values(status=status, lease_until=None, last_error=error,
                                 particeep_id=particeep_id))

    # ---------------------------------------------------------------- webhooks
    async def receive_webhook(self, headers: dict[str, str], body: bytes) -> WebhookOutcome:
        from pos.providers.particeep import check_webhook

        s = self.settings
        if not s.enabled or not s.api_key:
            return WebhookOutcome(False, 404, "Particeep is not configured on this hub")
        check = check_webhook(headers, body, key=s.api_key,
                              secret=s.api_secret.get_secret_value(), now=self.clock(),
                              skew_seconds=s.webhook_skew_seconds)
        if not check.ok:
            log.warning("Particeep webhook refused: %s", check.reason)
            return WebhookOutcome(False, check.status, check.reason)
        sig = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        key = hashlib.sha256("|".join((check.event, check.stamp, sig,
                                       check.entity_id or "")).encode()).hexdigest()
        if not self._remember(key, check.event, check.entity_id):
            log.warning("Particeep webhook refused: replay of %s", check.event)
            return WebhookOutcome(False, 409, "duplicate or replayed webhook")
        if not check.entity_id:
            return self._outcome(key, WebhookOutcome(True, 200, "no entity named: nothing to do"))
        try:
            entity = await self.client.get_transaction(check.entity_id)
        except PosError as exc:  # cannot re-read now: not trusted, Particeep will retry
            self._forget(key)
            return WebhookOutcome(False, 503, f"cannot re-read the entity: {exc.message}")
        if entity is None:
            return self._outcome(key, WebhookOutcome(False, 404, "no such entity at Particeep"))
        custom = entity.get("custom") if isinstance(entity.get("custom"), dict) else {}
        o = t.particeep_outbox
        with self.db.write() as conn:
            res = conn.execute(update(o).where(o.c.particeep_id == str(entity.get("id"))).values(
                status="confirmed" if entity.get("status") == "paid" else o.c.status,
                confirmed_at=iso(self.clock()) if entity.get("status") == "paid"
                else o.c.confirmed_at,
                last_error=None))
        if res.rowcount == 0:
            return self._outcome(key, WebhookOutcome(
                False, 404, f"not one of our sales (ref {custom.get('ref')!r})"))
        return self._outcome(key, WebhookOutcome(
            True, 200, f"{check.event}: {custom.get('ref')} is {entity.get('status')}"))

    def _remember(self, key: str, event: str, entity_id: str | None) -> bool:
        """Insert the replay key; False when another request (on any hub) already did."""
        now = self.clock()
        w = t.webhook_seen
        with self.db.write() as conn:
            conn.execute(delete(w).where(w.c.received_at < iso(now - REPLAY_KEEP)))
            # RETURNING, not rowcount: psycopg reports -1 for INSERT .. ON CONFLICT.
            res = conn.execute(self.db.insert(w).values(
                key=key, event=event[:100], entity_id=(entity_id or "")[:64],
                received_at=iso(now), outcome="received").on_conflict_do_nothing()
                .returning(w.c.key))
            return res.first() is not None

    def _forget(self, key: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(t.webhook_seen).where(t.webhook_seen.c.key == key))

    def _outcome(self, key: str, outcome: WebhookOutcome) -> WebhookOutcome:
        with self.db.write() as conn:
            conn.execute(update(t.webhook_seen).where(t.webhook_seen.c.key == key)
                         .values(outcome=outcome.message[:200]))
        return outcome
