"""Provider clients against the sandbox on loopback: requests/s and our overhead per call.

For each request type the same HTTP request is timed two ways, interleaved:

* through our client (``PawaCardClient.balance()``, ``PatasenteClient.get_card()`` ...),
* as a bare ``httpx.AsyncClient`` call sending the same method, URL, query and
  body and reading the body (no decoding, no mapping, no retry wrapper).

``overhead = client - raw`` is the time spent in our code (error mapping,
tenacity, lenient JSON decoding, building the result objects). Throughput is
measured with several requests in flight. The sandbox runs in a thread of this
process, so both share one GIL: absolute figures are lower than against a
remote server; the overhead difference is what matters.

Run: ``python -m bench.bench_client [--n 300] [--concurrency 8]`` (about 15-30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import SecretStr

from pos.cardqr import parse_card_qr
from pos.config import PatasenteSettings, PawaCardSettings
from pos.money import Money
from pos.providers.http import FAST_RETRY, retrying
from pos.providers.patasente import PatasenteClient
from pos.providers.pawacard import PawaCardClient, parse_vend
from pos.refs import new_ref
from pos.sandbox import data
from pos.sandbox.server import SandboxServer

Call = Callable[[], Awaitable[Any]]


async def _time(call: Call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


async def _paired(ours: Call, raw: Call, n: int) -> tuple[list[float], list[float]]:
    """Interleave the two so drift (GC, CPU frequency) hits both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(3):  # warm up connections and caches
        await ours()
        await raw()
    for _ in range(n):
        a += await _time(ours, 1)
        b += await _time(raw, 1)
    return a, b


async def _throughput(call: Call, total: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return total / (time.perf_counter() - t0)


def _us(xs: list[float]) -> float:
    return statistics.median(xs) * 1e6


async def main(n: int, concurrency: int) -> None:
    with SandboxServer(port=0) as sb:
        sb.state.throttle_seconds = 0  # vend the same meter back to back
        sb.state.daily_limit = None
        pawa_settings = PawaCardSettings(
            base_url=sb.pawacard_url, username=data.VENDOR_USERNAME,
            password=SecretStr(data.VENDOR_PASSWORD),
        )
        pata_settings = PatasenteSettings(
            base_url=sb.patasente_url, username=data.MERCHANT_EMAIL,
            password=SecretStr(data.MERCHANT_PASSWORD),
        )
        card = parse_card_qr(data.CARD_ACTIVE.payload)
        rows: list[tuple[str, float, float, float, float]] = []
        async with (
            PawaCardClient(pawa_settings, retry=FAST_RETRY) as pawa,
            PatasenteClient(pata_settings, retry=FAST_RETRY) as pata,
            httpx.AsyncClient(base_url=sb.pawacard_url) as raw_pawa,
            httpx.AsyncClient(base_url=sb.patasente_url) as raw_pata,
        ):
            await pawa.login()
            await pata.login()
            key = pawa._key  # the bench sends the same body as the client
            token = pata._token
            auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            user = data.VENDOR_USERNAME

            async def raw_balance() -> None:
                r = await raw_pawa.post("balance", json={"username": user, "key": key})
                r.read()

            async def raw_verify() -> None:
                r = await raw_pawa.post(
                    "verify", json={"username": user, "key": key, "meter": data.METER_OK})
                r.read()

            async def raw_txn() -> None:
                r = await raw_pawa.post(
                    "transaction", json={"username": user, "key": key, "ref": vend_ref})
                r.read()

            async def raw_card() -> None:
                r = await raw_pata.get(f"get-patasente-card/{card.card_id}/{card.number}",
                                       headers=auth)
                r.read()

            async def raw_wallet() -> None:
                r = await raw_pata.get("get-wallet-balance", headers=auth)
                r.read()

            vend_ref = new_ref()
            await pawa.vend(data.METER_OK, Money(10_000, "KES"), "Bilbo Baggins", vend_ref)

            cases: list[tuple[str, Call, Call]] = [
                ("pawacard balance", pawa.balance, raw_balance),
                ("pawacard verify", lambda: pawa.verify_meter(data.METER_OK), raw_verify),
                ("pawacard transaction", lambda: pawa.transaction(vend_ref), raw_txn),
                ("patasente get-card", lambda: pata.get_card(card), raw_card),
                ("patasente wallet", pata.wallet_balance, raw_wallet),
            ]
            for name, ours, raw in cases:
                a, b = await _paired(ours, raw, n)
                rps = await _throughput(ours, n, concurrency)
                rows.append((name, _us(a), _us(b), _us(a) - _us(b), rps))

            # Money path: a debit (sent once, no retry wrapper), raw = same request.
            async def debit() -> None:
                await pata.debit_card(card.card_id, Money(1, "UGX"), "bench",
                                      data.CARD_ACTIVE.pin, data.CURRENT, new_ref())

            async def raw_debit() -> None:
                r = await raw_pata.post(
                    f"debit-patasente-card/{card.card_id}",
                    params={"amount": "1", "payment_reason": f"bench ref:{new_ref()}",
                            "pin": data.CARD_ACTIVE.pin, "wallet_account": data.CURRENT},
                    headers=auth)
                r.read()

            m = min(n, 100)  # the card balance bounds how many debits there can be
            a, b = await _paired(debit, raw_debit, m)
            rows.append(("patasente debit", _us(a), _us(b), _us(a) - _us(b),
                         await _throughput(debit, m, concurrency)))

        # Pure parsing cost of a vend answer (no I/O).
        sample = {"status": 0, "msg": "success", "code": "elec000", "token": "1" * 20,
                  "stdTokenRctNum": "R1", "totalAmount": "200", "transactionId": 1,
                  "fixed": [{"A": "1"}, {"B": "2"}], "ref": "1", "customerName": "B"}
        t0 = time.perf_counter()
        for _ in range(10_000):
            parse_vend(sample, "1", "KES")
        parse_us = (time.perf_counter() - t0) / 10_000 * 1e6

        # The retry wrapper around every request that moves no money.
        async def nothing() -> int:
            return 1

        t0 = time.perf_counter()
        for _ in range(10_000):
            await retrying(FAST_RETRY, nothing)
        retry_us = (time.perf_counter() - t0) / 10_000 * 1e6

    print(f"Provider clients vs raw httpx, sandbox on 127.0.0.1 (median of {n} calls; "
          f"throughput with {concurrency} in flight)")
    print(f"{'request':<22}{'client us':>11}{'raw us':>9}{'overhead us':>13}{'req/s':>9}")
    for name, ours_us, raw_us, over, rps in rows:
        print(f"{name:<22}{ours_us:>11.0f}{raw_us:>9.0f}{over:>13.0f}{rps:>9.0f}")
    print(f"of which: parse_vend (no I/O) {parse_us:.1f} us per answer; "
          f"tenacity retry wrapper {retry_us:.1f} us per request")


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="calls per request type")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    t0 = time.perf_counter()
    asyncio.run(main(args.n, args.concurrency))
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    cli()
