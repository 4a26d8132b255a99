"""Measure every escalation step of the decoder on the bench set and order them.

    python -m bench.tune_decode [--per-category 40] [--seeds 1 2] [--budget 6.5]

For each frame the fast path does not read, every step in
``hardware.decode.all_steps()`` is run; the shared intermediates (proposals,
QR box, crops, blur estimate, spectrum) are timed separately, as the chain
computes each once per frame. An order is then built greedily (frames newly
read per millisecond spent on the frames still unread: the min-sum set-cover
heuristic) and improved by moving single steps while the reads within the
budget go up, simulating the chain's stop rule (a step starts only if its
listed cost fits in the time left) with the measured times. Prints the
resulting ``ORDER`` for ``hardware/decode.py``. Pinned to one core; times are
the thread's CPU time (as the live budget), still best measured on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.qrset import build_cache, cache_dir, load_manifest
from hardware import decode as D

Resource = tuple[Any, ...]


class _Logged(D._Frame):
    """A frame that records which shared intermediates a step asks for."""

    used: set[Resource]

    def boxes(self) -> list[tuple[int, int, int, int]]:
        self.used.add(("boxes",))
        return super().boxes()

    def qbox(self, i: int) -> tuple[int, int, int, int] | None:
        self.used.add(("qbox", i))
        return super().qbox(i)

    def crop(self, i: int = 0, target: int = D.CROP_TARGET) -> tuple[np.ndarray, float] | None:
        self.used.add(("crop", i, target))
        return super().crop(i, target)

    def blur(self) -> tuple[float, float] | None:
        self.used.add(("blur",))
        return super().blur()

    def blur_len(self) -> float:
        self.used.add(("blurlen",))
        return super().blur_len()

    def warped(self) -> np.ndarray | None:
        self.used.add(("warp",))
        return super().warped()

    def spectrum(self) -> np.ndarray | None:
        self.used.add(("spec",))
        return super().spectrum()


def _resource_cost(gray: np.ndarray, res: Resource) -> float:
    """ms to compute ``res`` alone, its own prerequisites already computed."""
    fr = D._Frame(gray)
    fr.boxes()
    calls: dict[str, Callable[[], object]] = {
        "boxes": lambda: D._Frame(gray).boxes(),
        "qbox": lambda: fr.qbox(res[1]),
        "crop": lambda: fr.crop(res[1], res[2]),
        "blur": fr.blur,
        "blurlen": fr.blur_len,
        "spec": fr.spectrum,
        "warp": fr.warped,
    }
    if res[0] not in ("boxes", "warp"):
        fr.qbox(res[1] if res[0] in ("qbox", "crop") else 0)
    if res[0] in ("blur", "blurlen", "spec"):
        fr.crop(0, D.DEBLUR_SIDE)
    if res[0] == "blurlen":
        fr.blur()
    t = time.thread_time()
    calls[res[0]]()
    return (time.thread_time() - t) * 1000


def measure(frames: list[tuple[str, str | None, np.ndarray]]) -> dict[str, Any]:
    steps = D.all_steps()
    rows = []
    n_pos = n_fast = 0
    fast_ms = []
    for cat, payload, gray in frames:
        n_pos += payload is not None
        t = time.thread_time()
        hits = D._zxing_found(gray)  # the chain's fast path
        fast_ms.append((time.thread_time() - t) * 1000)
        if payload is not None and payload in [text for text, _ in hits]:
            n_fast += 1
            continue
        # As the chain does: codes the fast path read (not the card) are painted out.
        fr = _Logged(*D.mask_codes(gray, [q for _, q in hits])) if hits else _Logged(gray)
        fr.used = set()
        row: dict[str, Any] = {"cat": cat, "ok": {}, "bad": {}, "ms": {}, "uses": {}, "res": {},
                               "gate": {}, "fast": fast_ms[-1]}
        for name, (_, fn) in steps.items():
            fr.used = set()
            gate = D.GATES.get(name)
            row["gate"][name] = gate is None or gate(fr)
            if not row["gate"][name]:  # skipped: costs only what the gate computed
                row["uses"][name] = set(fr.used)
                row["ms"][name], row["ok"][name], row["bad"][name] = 0.0, False, False
                continue
            out = fn(fr)  # computes the shared parts once
            row["uses"][name] = set(fr.used)
            t = time.thread_time()
            out = fn(fr)
            row["ms"][name] = (time.thread_time() - t) * 1000
            row["ok"][name] = payload is not None and payload in out
            # Wrong: a read on a frame without a code, or another card's payload (a code
            # that is not a card, beside the card, the chain reports after the card).
            row["bad"][name] = any(D.accept(o) and (payload is None or (
                o != payload and D.is_card(o))) for o in out)
        for res in set().union(*row["uses"].values()):
            row["res"][res] = _resource_cost(gray, res)
        rows.append(row)
    return {"rows": rows, "names": list(steps), "n_pos": n_pos, "n_fast": n_fast,
            "fast_ms": fast_ms}


def _step_costs(rows: list[dict[str, Any]], order: list[str]) -> list[list[float]]:
    """Per step of ``order``, each frame's time for it (resources paid by the first user)."""
    out = []
    paid: list[set[Resource]] = [set() for _ in rows]
    for n in order:
        col = []
        for r, p in zip(rows, paid, strict=True):
            new = r["uses"][n] - p
            col.append(r["ms"][n] + sum(r["res"][x] for x in new))
            p |= new
        out.append(col)
    return out


def listed_costs(rows: list[dict[str, Any]], order: list[str], q: float = 75) -> list[float]:
    """The cost to list in ``ORDER``: a high percentile of each step's time at its place
    (over the frames its gate lets through)."""
    out = []
    for n, col in zip(order, _step_costs(rows, order), strict=True):
        ran = [c for c, r in zip(col, rows, strict=True) if r["gate"][n]]
        out.append(round(float(np.percentile(ran, q)), 1) if ran else 0.0)
    return out


def simulate(rows: list[dict[str, Any]], order: list[str], costs: list[float],
             budget: float) -> tuple[int, list[float]]:
    """(frames read, time per escalated frame) with the chain's stop rule."""
    times = _step_costs(rows, order)
    read = 0
    spent = []
    for i, r in enumerate(rows):
        t = r["fast"]
        ran = False
        for j, n in enumerate(order):
            if not r["gate"][n]:
                t += times[j][i]
                continue
            if ran and t + costs[j] > budget:
                break
            ran = True
            t += times[j][i]
            if r["ok"][n]:
                read += 1
                break
        spent.append(t)
    return read, spent


def greedy(rows: list[dict[str, Any]], names: list[str]) -> list[str]:
    running = list(range(len(rows)))  # frames not read yet
    paid: set[Resource] = set()
    order: list[str] = []
    names = list(names)
    while names:
        best: tuple[float, str, list[int]] | None = None
        for n in names:
            gain = [i for i in running if rows[i]["ok"][n]]
            if not gain:
                continue
            cost = sum(rows[i]["ms"][n] + sum(rows[i]["res"][r] for r in rows[i]["uses"][n] - paid)
                       for i in running)
            score = len(gain) / max(1e-3, cost)
            if best is None or score > best[0]:
                best = (score, n, gain)
        if best is None:
            break
        _, n, gain = best
        names.remove(n)
        paid |= set().union(*(r["uses"][n] for r in rows))
        running = [i for i in running if i not in gain]
        order.append(n)
    return order


def improve(rows: list[dict[str, Any]], order: list[str], names: list[str],
            budget: float) -> list[str]:
    """Move or insert single steps while the reads within ``budget`` go up."""
    def score(o: list[str]) -> tuple[int, float]:
        read, spent = simulate(rows, o, listed_costs(rows, o), budget)
        return read, -float(np.mean(spent))

    best = score(order)
    improved = True
    while improved:
        improved = False
        for n in names:
            base = [x for x in order if x != n]
            for pos in range(min(len(base), 14) + 1):
                cand = [*base[:pos], n, *base[pos:]]
                s = score(cand)
                if s > best:
                    best, order, improved = s, cand, True
    return order


def load_frames(per_category: int, seed: int) -> list[tuple[str, str | None, np.ndarray]]:
    d: Path = cache_dir(per_category, seed)
    have = [f for f in (1, 3) if (d / f"manifest-f{f}.json").exists()]
    nf = have[0] if have else 1
    build_cache(per_category, seed, nf)
    frames: list[tuple[str, str | None, np.ndarray]] = []
    for r in load_manifest(d, nf):
        files = r["files"]
        assert isinstance(files, list)
        img = cv2.imread(str(d / files[0]), cv2.IMREAD_GRAYSCALE)
        assert img is not None
        p = r["payload"]
        frames.append((str(r["category"]), p if isinstance(p, str) else None, img))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-category", type=int, default=40)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--budget", type=float, default=6.5)
    args = ap.parse_args()
    os.sched_setaffinity(0, {0})
    cv2.setNumThreads(1)
    D._Libs.load()
    rows: list[dict[str, Any]] = []
    n_pos = n_fast = 0
    names: list[str] = []
    for seed in args.seeds:
        m = measure(load_frames(args.per_category, seed))
        rows += m["rows"]
        n_pos += m["n_pos"]
        n_fast += m["n_fast"]
        names = m["names"]
    print(f"{n_pos} frames with a QR, {n_fast} read by the fast path, {len(rows)} escalated")
    for n in names:
        ok = sum(r["ok"][n] for r in rows)
        bad = sum(r["bad"][n] for r in rows)
        ms = float(np.mean([r["ms"][n] for r in rows]))
        print(f"  {n:<26} reads {ok:3d}  wrong {bad}  marginal {ms:5.2f} ms")
    names = [n for n in names if not any(r["bad"][n] for r in rows)]
    order = greedy(rows, names)
    print(f"greedy: {simulate(rows, order, listed_costs(rows, order), args.budget)[0]} "
          "read within the budget")
    order = improve(rows, order, names, args.budget)
    costs = listed_costs(rows, order)
    read, spent = simulate(rows, order, costs, args.budget)
    print(f"improved: {read} read within the budget ({100 * (n_fast + read) / n_pos:.1f}% "
          f"overall), escalated frames p95 {np.percentile(spent, 95):.1f} ms")
    print("\nORDER = [")
    for n, c in zip(order, costs, strict=True):
        gain = sum(r["ok"][n] for r in rows)
        print(f'    ("{n}", {c}),  # reads {gain} alone')
    print("]")


if __name__ == "__main__":
    main()
