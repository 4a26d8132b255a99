"""Decode rate and time per frame: our chain against each library alone.

    python -m bench.bench_decode [--per-category 40] [--seed 1] [--frames 3]

Pinned to one core (``sched_setaffinity``, ``cv2.setNumThreads(1)``). Prints
one table per method (rate per category), then a summary: overall rate on
frames with a QR, wrong payloads, reads on no-QR frames, time per frame
(median / p95 / max), then the multi-frame figure (samples read within
``--frames`` consecutive frames of the same scene), then import costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.qrset import CATEGORIES, build_cache, load_manifest
from hardware.decode import MultiFrameDecoder, QRDecoder, pyzbar_available


def _imread(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {path}; delete the cache directory and rerun")
    return img


def _payload(row: dict[str, object]) -> str | None:
    p = row["payload"]
    return p if isinstance(p, str) else None


def _files(row: dict[str, object]) -> list[str]:
    files = row["files"]
    assert isinstance(files, list)
    return [str(f) for f in files]


def library_methods() -> dict[str, Callable[[np.ndarray], list[str]]]:
    import zxingcpp

    methods: dict[str, Callable[[np.ndarray], list[str]]] = {}
    qr = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)

    def zx(g: np.ndarray) -> list[str]:
        return [r.text for r in zxingcpp.read_barcodes(g, formats=qr)]

    methods["zxing-cpp (QR)"] = zx
    if pyzbar_available():
        from pyzbar import pyzbar

        def zb(g: np.ndarray) -> list[str]:
            return [r.data.decode("utf-8", "replace")
                    for r in pyzbar.decode(g, symbols=[pyzbar.ZBarSymbol.QRCODE])]

        methods["pyzbar (gray)"] = zb
    det = cv2.QRCodeDetector()
    aru = cv2.QRCodeDetectorAruco()

    def cvd(g: np.ndarray) -> list[str]:
        t, _, _ = det.detectAndDecode(g)
        return [t] if t else []

    def cva(g: np.ndarray) -> list[str]:
        t, _, _ = aru.detectAndDecode(g)
        return [t] if t else []

    methods["cv2.QRCodeDetector"] = cvd
    methods["cv2.QRCodeDetectorAruco"] = cva
    libs = list(methods.values())

    def all_libs(g: np.ndarray) -> list[str]:
        for f in libs:
            out = f(g)
            if out:
                return out
        return []

    methods["all libraries (first read)"] = all_libs
    return methods


def run_method(name: str, fn: Callable[[np.ndarray], list[str]],
               frames: list[tuple[str, str | None, np.ndarray]],
               step_of: Callable[[], str | None] | None = None) -> dict[str, Any]:
    ok: Counter[str] = Counter()
    total: Counter[str] = Counter()
    times: list[float] = []
    wrong = fp = 0
    steps: Counter[str] = Counter()
    for cat, payload, img in frames:
        t = time.perf_counter()
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        out = fn(gray)
        times.append((time.perf_counter() - t) * 1000)
        total[cat] += 1
        if payload is None:
            fp += bool(out)
        else:
            ok[cat] += payload in out
            wrong += any(o != payload for o in out)
            if step_of is not None and payload in out:
                steps[step_of() or "?"] += 1
    n_pos = sum(v for c, v in total.items() if c != "noqr")
    rate = sum(ok.values()) / max(1, n_pos)
    return {"name": name, "ok": ok, "total": total, "rate": rate, "wrong": wrong, "fp": fp,
            "median": statistics.median(times), "p95": float(np.percentile(times, 95)),
            "max": max(times), "steps": steps}


def multi_frame(rows: list[dict[str, object]], d: Path, frames: int) -> dict[str, Any]:
    ok: Counter[str] = Counter()
    total: Counter[str] = Counter()
    wrong = fp = 0
    times: list[float] = []
    dec = QRDecoder()
    for row in rows:
        mf = MultiFrameDecoder(dec, window=frames)
        got = None
        for f in _files(row)[:frames]:
            img = _imread(d / f)
            t = time.perf_counter()
            got = mf.feed(img)
            times.append((time.perf_counter() - t) * 1000)
            if got:
                break
        cat, payload = str(row["category"]), _payload(row)
        total[cat] += 1
        if payload is None:
            fp += got is not None
        else:
            ok[cat] += got == payload
            wrong += got is not None and got != payload
    n_pos = sum(v for c, v in total.items() if c != "noqr")
    return {"name": f"our chain, {frames} frames", "ok": ok, "total": total,
            "rate": sum(ok.values()) / max(1, n_pos), "wrong": wrong, "fp": fp,
            "median": statistics.median(times), "p95": float(np.percentile(times, 95)),
            "max": max(times), "steps": Counter()}


def import_costs() -> dict[str, float]:
    """Fresh-interpreter import time (ms) of each decoder module and of our modules."""
    out = {}
    for mod in ("numpy", "cv2", "zxingcpp", "pyzbar.pyzbar", "hardware.decode",
                "hardware.camera", "hardware.scan"):
        code = (f"import time;t=time.perf_counter();import {mod};"
                "print((time.perf_counter()-t)*1000)")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=False)
        out[mod] = float(r.stdout.strip()) if r.returncode == 0 else float("nan")
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    cats = [c for c in CATEGORIES]
    names = [r["name"] for r in results]
    width = max(len(n) for n in names)
    print("\nDecode rate per category (read / frames; noqr column = false reads)")
    print("category".ljust(12) + "".join(f"{i:>9}" for i in range(len(results))))
    for c in cats:
        cells = []
        for r in results:
            if c == "noqr":
                cells.append(f"{r['fp']}/{r['total'][c]}")
            else:
                cells.append(f"{r['ok'][c]}/{r['total'][c]}")
        print(c.ljust(12) + "".join(f"{x:>9}" for x in cells))
    print("\nmethod".ljust(width + 5) + "   rate  wrong  noqr-reads  median ms  p95 ms  max ms")
    for i, r in enumerate(results):
        print(f"[{i}] {r['name']:<{width}}  {100 * r['rate']:5.1f}%  {r['wrong']:5d}"
              f"  {r['fp']:10d}  {r['median']:9.2f}  {r['p95']:6.2f}  {r['max']:6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-category", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frames", type=int, default=3, help="frames per scene for multi-frame")
    ap.add_argument("--no-libraries", action="store_true", help="only our chain")
    args = ap.parse_args()

    os.sched_setaffinity(0, {0})
    cv2.setNumThreads(1)
    t = time.perf_counter()
    d = build_cache(args.per_category, args.seed, args.frames)
    print(f"set: {d} ({args.per_category} per category, {len(CATEGORIES)} categories, "
          f"640x480; built/loaded in {time.perf_counter() - t:.1f} s)")
    print(f"pyzbar available: {pyzbar_available()}")
    rows = load_manifest(d, args.frames)
    frames: list[tuple[str, str | None, np.ndarray]] = [
        (str(r["category"]), _payload(r), _imread(d / _files(r)[0])) for r in rows]

    ours = QRDecoder()
    results = [run_method("our chain (1 frame)", ours.decode, frames, lambda: ours.last_step)]
    nozbar = QRDecoder(use_pyzbar=False)
    results.append(run_method("our chain without pyzbar", nozbar.decode, frames))
    if not args.no_libraries:
        for name, fn in library_methods().items():
            results.append(run_method(name, fn, frames))
    if args.frames > 1:
        results.append(multi_frame(rows, d, args.frames))
    print_table(results)
    print("\nOur chain: which step read the frame:",
          dict(results[0]["steps"].most_common()))
    print("\nImport cost (fresh interpreter, ms):")
    for mod, ms in import_costs().items():
        print(f"  {mod:<16} {ms:7.1f}")


if __name__ == "__main__":
    main()
