"""What the first print of a process pays to import python-escpos, with and without the
capabilities cache (``hardware/escposcache.py``), and the temporary directories left.

    python -m bench.bench_escpos_import [--runs 15]

Each run is a fresh interpreter timing ``load_capabilities()`` + ``import escpos.printer``
(what ``render_escpos`` does first). "no cache": the variable unset, escpos parses its
printer database into a new temporary directory every time, as before. "cache": the
variable set as the wiring sets it, the pickle written by a first run that is not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import time
t = time.perf_counter()
from hardware.escposcache import load_capabilities
load_capabilities()
import escpos.printer
print((time.perf_counter() - t) * 1000)
"""


def timed_runs(runs: int, env: dict[str, str]) -> list[float]:
    return [float(subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                                 capture_output=True, text=True).stdout)
            for _ in range(runs)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp, cache = Path(scratch, "tmp"), Path(scratch, "cache")
        tmp.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "ESCPOS_CAPABILITIES_PICKLE_DIR"}
        env["TMPDIR"] = str(tmp)
        before = timed_runs(args.runs, env)
        left_before = len(list(tmp.iterdir()))
        env["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(cache)
        timed_runs(1, env)  # writes the pickle
        left_first = len(list(tmp.iterdir())) - left_before
        after = timed_runs(args.runs, env)
        left_after = len(list(tmp.iterdir())) - left_before - left_first
    for name, ms, left in (("no cache", before, left_before), ("cache", after, left_after)):
        print(f"{name:9s} median {statistics.median(ms):6.1f} ms  min {min(ms):6.1f} ms  "
              f"temp dirs left by {len(ms)} runs: {left}")


if __name__ == "__main__":
    main()
