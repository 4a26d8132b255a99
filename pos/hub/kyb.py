"""Merchant verification (KYB) with Patascore, driven from the hub's database.

The merchant row holds the whole state of its verification (status, batch id, when
to ask next, a lease), so a hub restarted mid-search resumes polling the same batch,
and of several hubs exactly one works on a merchant at a time. The rules
(documents 000 / 001, see :mod:`pos.providers.patascore`):

* submit once; write down that we did before sending, so an answer lost in transit is
  followed by a wait past the 2-minute duplicate window, not by a 429;
* 202: keep the ``batch_id``, poll ``results`` every ``poll_interval`` seconds
  (longer than the 2-minute window);
* 409 (a request is ongoing): keep polling the batch, never resubmit. A 409 to a
  *submit* whose answer we lost leaves us without a batch id: document 001 gives no
  way to find it, so the only way on is to submit again once the window has passed;
* 429: wait (``Retry-After``, at least 2 minutes) and ask the same question again;
* 503 (BRS down), 5xx, no answer: retry later, keeping the batch;
* 403 "Insufficient wallet balance": a billing problem shown to the owner (top up
  the Patascore account, then "Check again"); 401: the hub's API key is wrong;
* 404 / verified "false": final; the owner can correct and check again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import or_, select, update

from pos.hub import schema as t
from pos.hub.clock import iso, later
from pos.hub.config import PatascoreSettings
from pos.hub.worker import ProviderWorker
from pos.providers.patascore import DUPLICATE_WINDOW, BusinessVerification, KybStatus

log = logging.getLogger(__name__)
LEASE_SECONDS = 120.0
DUE_STATES = ("queued", "pending", "retry")


class KybWorker(ProviderWorker):
    settings: PatascoreSettings

    def make_client(self) -> Any:
        from pos.providers.patascore import PatascoreClient

        return PatascoreClient(self.settings, transport=self._transport)

    # ----------------------------------------------------------------- claims
    def _claim(self) -> Any:
        """One due merchant, leased to this process (a conditional UPDATE decides)."""
        now = iso(self.clock())
        m = t.merchants
        due = (m.c.kyb_status.in_(DUE_STATES) & (m.c.kyb_next_at <= now)
               & or_(m.c.kyb_lease_until.is_(None), m.c.kyb_lease_until < now))
        with self.db.write() as conn:
            for row in conn.execute(select(m).where(due).order_by(m.c.kyb_next_at).limit(5)):
                res = conn.execute(update(m).where(m.c.id == row.id, due).values(
                    kyb_lease_until=later(self.clock, LEASE_SECONDS)))
                if res.rowcount == 1:
                    return row
        return None

    async def run_once(self, *, limit: int = 20) -> int:
        """Work on every merchant due now; how many were asked about."""
        n = 0
        for _ in range(limit):
            row = self._claim()
            if row is None:
                break
            n += 1
            try:
                await self._work(row)
            except Exception:
                log.exception("KYB of merchant %s", row.id)
                self._save(row.id, status="retry", message="hub error; retrying",
                           next_in=self.settings.retry_later)
        return n

    async def _work(self, row: Any) -> None:
        if row.kyb_batch_id:
            answer = await self.client.results(row.kyb_batch_id)
        else:
            submitted = row.kyb_submitted_at
            if submitted and self.clock() < _parse(submitted) + dt.timedelta(
                    seconds=DUPLICATE_WINDOW):
                # Sent before and no answer kept: asking again now would be a duplicate.
                self._save(row.id, next_at=iso(_parse(submitted) + dt.timedelta(
                    seconds=DUPLICATE_WINDOW + 5)))
                return
            self._save(row.id, submitted_at=iso(self.clock()), keep_lease=True)
            answer = await self.client.submit(row.registration_no)
        self.apply(row, answer)

    # ---------------------------------------------------------------- answers
    def apply(self, row: Any, a: BusinessVerification) -> None:
        s = self.settings
        log.info("KYB merchant %s: %s (%s)", row.id, a.status, a.message)
        if a.status == KybStatus.verified:
            data = {"partners": a.partners, "share_capital": a.share_capital,
                    "encumbrances": a.encumbrances, "registration_date": a.registration_date,
                    "company_status": a.company_status}
            self._save(row.id, status="verified", message=a.message, batch=None,
                       business_name=a.business_name or row.name,
                       registration=a.registration_no or row.registration_no,
                       verified_at=iso(self.clock()), data=data)
        elif a.status == KybStatus.rejected:
            self._save(row.id, status="rejected", batch=None,
                       message=f"Not verified: {a.company_status or a.message}")
        elif a.status == KybStatus.not_found:
            self._save(row.id, status="not_found", batch=None, message=a.message)
        elif a.status == KybStatus.pending:
            self._save(row.id, status="pending", batch=a.batch_id or row.kyb_batch_id,
                       message=a.message, next_in=s.poll_interval)
        elif a.status == KybStatus.ongoing:
            batch = a.batch_id or row.kyb_batch_id
            self._save(row.id, status="pending", batch=batch, message=a.message,
                       next_in=s.poll_interval if batch else DUPLICATE_WINDOW + 5)
        elif a.status == KybStatus.duplicate:
            wait = max(a.retry_after or 0.0, DUPLICATE_WINDOW) + 5
            self._save(row.id, message=a.message, next_in=wait)
        elif a.status in (KybStatus.brs_down, KybStatus.server):
            attempts = int(row.kyb_attempts or 0) + 1
            wait = min(s.retry_later * 2 ** min(attempts - 1, 4), 6 * 3600)
            self._save(row.id, status="retry", message=a.message, next_in=wait,
                       attempts=attempts)
        elif a.status == KybStatus.billing:
            self._save(row.id, status="billing", next_at=None,
                       message=f"Patascore account: {a.message} (a billing problem: top up "
                               "the Patascore wallet, then check again)")
        elif a.status == KybStatus.auth:
            self._save(row.id, status="error", next_at=None,
                       message="Patascore refused the hub's API key "
                               "(SENTE_POS_HUB__PATASCORE__API_KEY)")
        else:
            self._save(row.id, status="error", next_at=None, message=a.message)

    def _save(self, merchant_id: int, *, status: str | None = None,
              message: str | None = None, batch: Any = ..., next_in: float | None = None,
              next_at: Any = ..., submitted_at: str | None = None, attempts: int | None = None,
              business_name: str | None = None, registration: str | None = None,
              verified_at: str | None = None, data: dict[str, Any] | None = None,
              keep_lease: bool = False) -> None:
        values: dict[str, Any] = {}
        if status is not None:
            values["kyb_status"] = status
            if status not in ("retry",):
                values["kyb_attempts"] = 0
        if attempts is not None:
            values["kyb_attempts"] = attempts
        if message is not None:
            values["kyb_message"] = message[:500]
        if batch is not ...:
            values["kyb_batch_id"] = batch
            if batch is None:
                values["kyb_submitted_at"] = None
        if next_in is not None:
            values["kyb_next_at"] = later(self.clock, next_in)
        elif next_at is not ...:
            values["kyb_next_at"] = next_at
        if submitted_at is not None:
            values["kyb_submitted_at"] = submitted_at
        if business_name is not None:
            values["kyb_business_name"] = business_name
        if registration is not None:
            values["kyb_registration_no"] = registration
        if verified_at is not None:
            values["kyb_verified_at"] = verified_at
        if data is not None:
            values["kyb_data_json"] = json.dumps(data, default=str)
        if not keep_lease:
            values["kyb_lease_until"] = None
        with self.db.write() as conn:
            conn.execute(update(t.merchants).where(t.merchants.c.id == merchant_id)
                         .values(**values))

    def requeue(self, merchant_id: int) -> None:
        """The owner asks again (after a top-up, a corrected number, BRS back)."""
        with self.db.write() as conn:
            conn.execute(update(t.merchants).where(
                t.merchants.c.id == merchant_id,
                t.merchants.c.kyb_status.in_(("rejected", "not_found", "billing", "error",
                                              "retry", "unverified")),
            ).values(kyb_status="queued", kyb_next_at=iso(self.clock()), kyb_attempts=0,
                     kyb_message="check requested"))


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
