"""The scan screen with the camera running (issue 11, point 4): does the UI stay responsive?

    python -m bench.bench_scan_ui [--keys 60] [--rounds 3] [--per-category 6]
                                  [--modes off,camera,camera-process,camera-nopreview]

1. Key press to paint on the scan screen's code field (Pilot, 80x24, as bench_tui
   measures it) with no camera, and with the simulated camera playing hard frames of
   the bench set (motion, damage, small codes, no code: the decoder escalates on
   each) at 15 fps with the live preview on (6 fps): ``camera`` runs the camera's
   threads in the UI process, ``camera-process`` in a child process of its own
   (``hardware.camproc``, niced and pinned to one core: what ``camera.decoder =
   "process"`` does). Each mode runs in a fresh process, alternated over ``--rounds``
   so drift hits them alike; the peak RSS of the UI process, and of the camera process
   where there is one, is reported too.
2. Decode throughput with the decoder pinned to one core (``sched_setaffinity``,
   ``cv2.setNumThreads(1)``): the MultiFrameDecoder over the same frames as a stream,
   per-frame time (median / p95 / max), frames a second, and the preview's own cost
   (``make_preview`` + ``render_preview``).
3. Those figures extrapolated to one Cortex-A72 core of a Raspberry Pi 4 (1.5 GHz) by
   ``PI4_FACTOR`` (see below).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HARD = ("motion", "damaged", "small", "defocus", "glare", "noqr")
MODES = ("off", "camera", "camera-process", "camera-nopreview")

#: One core of this machine (AMD EPYC, a server core at about 3 GHz) against a Pi 4's
#: Cortex-A72 at 1.5 GHz. Published Geekbench 5 single-core scores: Raspberry Pi 4
#: about 250-270; EPYC (Zen 2/3) cloud cores about 1,000-1,300, so about 4-5x. OpenCV
#: and zxing-cpp lean on SIMD (AVX2: 256-bit, NEON: 128-bit), so 5 rather than 4.
PI4_FACTOR = 5.0


def _frames(per_category: int) -> list[Path]:
    from bench.qrset import build_cache, load_manifest

    d = build_cache(per_category, seed=1, frames=3)
    rows = [r for r in load_manifest(d, frames=3) if r["category"] in HARD]
    files = [f for r in rows for f in r["files"]]  # type: ignore[attr-defined]
    return [d / str(f) for f in files]  # each scene's 3 frames in a row, as a stream


def _file_camera_class() -> Any:
    from hardware.camera import ScanLoop

    class FileCamera(ScanLoop):
        """The real capture/decode/preview threads on bench frames read from disk at 15 fps,
        one after another, as a camera would deliver them (nothing cached)."""

        def __init__(self, files: list[Path], fps: float = 15.0) -> None:
            super().__init__(lambda text: None, preview_fps=6.0, beep="none")
            self.files, self.fps, self._i = files, fps, 0

        def _open(self) -> str | None:
            return None

        def _read(self) -> Any:
            import cv2

            self._stop.wait(1.0 / self.fps)
            path = self.files[self._i % len(self.files)]
            self._i += 1
            return cv2.imread(str(path), cv2.IMREAD_COLOR)

    return FileCamera


def file_camera(files: list[Path | str], preview_fps: float = 6.0) -> Any:
    """A :class:`FileCamera` (made on first use: the hardware imports stay out of the parent;
    ``hardware.camproc`` makes it in its child by this name)."""
    cam = _file_camera_class()([Path(f) for f in files])
    cam.preview_fps = preview_fps
    return cam


def _peak_rss_kib(pid: int) -> int:
    """A running process's peak RSS (VmHWM) in KiB, 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# --------------------------------------------------------------- child: key latency
def child_keys(mode: str, keys: int, per_category: int, home: Path) -> None:
    os.environ["SENTE_POS_HOME"] = str(home)
    from pos.config import Settings
    from pos.terminal import Terminal
    from screens.app import make_app
    from screens.scan import ScanScreen

    dead = "http://127.0.0.1:9/"
    settings = Settings.model_validate({"patasente": {"base_url": dead + "patasente/phantom-api/"},
                                        "pawacard": {"base_url": dead + "pawacard/v3/"}})
    term = Terminal.open_sync(settings)
    if not term.has_operators():
        term.add_operator("bench", "cashier", "1111")
    term.sign_in("bench", "1111")
    camera: Any = None
    if mode == "camera-process":
        from hardware.camproc import CameraProcess

        camera = CameraProcess("bench.bench_scan_ui:file_camera",
                               {"files": [str(f) for f in _frames(per_category)]},
                               preview_fps=6.0, beep="none")
    elif mode.startswith("camera"):
        camera = file_camera(_frames(per_category))
    if mode == "camera-nopreview" and camera is not None:
        camera.preview_fps = 0.0  # decoding only: what the preview's paints add is the rest
    app = make_app(settings, term, camera, background=False, cursor_blink=False)

    async def run() -> tuple[list[float], int, int]:
        out: list[float] = []
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            screen = ScanScreen()
            await app.push_screen(screen)
            await pilot.pause()
            if camera is not None:
                camera.on_scan = lambda text: None  # reads must not leave the screen
                t_end = time.monotonic() + 30
                while camera.frames_decoded < 10 and time.monotonic() < t_end:
                    await pilot.pause(0.05)
            decoded0 = camera.frames_decoded if camera else 0
            for i in range(keys):
                key = "backspace" if i % 4 == 3 else str(i % 10)
                t0 = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()  # the repaint that shows it
                out.append(time.perf_counter() - t0)
                await pilot.pause(0.03)  # keys a cashier's pace apart: frames flow between
            decoded = (camera.frames_decoded - decoded0) if camera else 0
            shown = screen.query_one("#camera-preview").frames_shown  # type: ignore[attr-defined]
        return out, decoded, shown

    lat, decoded, shown = asyncio.run(run())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_rss = 0
    if mode == "camera-process":
        child_rss = _peak_rss_kib(camera.pid) if camera.pid else 0
        camera.close()
    print(json.dumps({"lat": lat, "decoded": decoded, "previews": shown, "rss_kib": rss,
                      "child_rss_kib": child_rss,
                      "heavy": [m for m in ("cv2", "numpy", "zxingcpp") if m in sys.modules]}))


def spawn_keys(mode: str, keys: int, per_category: int, home: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.bench_scan_ui", "--child", mode, "--keys", str(keys),
           "--per-category", str(per_category), "--home", str(home)]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------- decode, one core
def decode_throughput(per_category: int) -> dict[str, Any]:
    import cv2

    from hardware.decode import MultiFrameDecoder, QRDecoder, to_gray
    from hardware.scanview import make_preview
    from screens.widgets.camera_preview import CONSOLE, render_preview

    os.sched_setaffinity(0, {0})
    cv2.setNumThreads(1)
    frames = [to_gray(cv2.imread(str(p))) for p in _frames(per_category)]
    decoder = MultiFrameDecoder(QRDecoder())
    for g in frames[:5]:
        decoder.feed(g)  # warm up
    times = []
    t_all = time.perf_counter()
    for _ in range(3):
        for g in frames:  # each frame once, then again: a stream of changing scenes
            t0 = time.perf_counter()
            decoder.feed(g)
            times.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - t_all
    prev = []
    for g in frames[:30]:
        t0 = time.perf_counter()
        pf = make_preview(g, 40, 9)
        assert pf is not None
        render_preview(pf, CONSOLE)
        prev.append((time.perf_counter() - t0) * 1000)
    ms = sorted(times)
    return {"n": len(ms), "median": statistics.median(ms),
            "p95": ms[int(0.95 * (len(ms) - 1))], "max": ms[-1], "fps": len(ms) / wall,
            "preview_ms": statistics.median(prev)}


def _lat(xs: list[float]) -> tuple[float, float]:
    ms = sorted(x * 1000 for x in xs)
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-category", type=int, default=6)
    parser.add_argument("--modes", default="off,camera,camera-process,camera-nopreview")
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--home")
    args = parser.parse_args(argv)
    if args.child:
        child_keys(args.child, args.keys, args.per_category, Path(args.home))
        return 0

    _frames(args.per_category)  # build the frame cache once, before any timing
    modes = tuple(m for m in args.modes.split(",") if m)
    if "off" not in modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: some of {', '.join(MODES)}, with off")
    lat: dict[str, list[float]] = {m: [] for m in modes}
    rss: dict[str, list[int]] = {m: [] for m in modes}
    child_rss: list[int] = []
    decoded: dict[str, int] = {m: 0 for m in modes}
    previews: dict[str, int] = {m: 0 for m in modes}
    heavy: dict[str, set[str]] = {m: set() for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in (modes if r % 2 == 0 else tuple(reversed(modes))):
                res = spawn_keys(mode, args.keys, args.per_category, Path(tmp) / mode)
                lat[mode] += res["lat"]
                rss[mode].append(res["rss_kib"])
                decoded[mode] += res["decoded"]
                previews[mode] += res["previews"]
                heavy[mode].update(res["heavy"])
                if mode == "camera-process":
                    child_rss.append(res["child_rss_kib"])
    off_med, off_p95 = _lat(lat["off"])
    print(f"key to paint, scan screen, camera off    : median {off_med:.1f} ms, "
          f"p95 {off_p95:.1f} ms (n={len(lat['off'])})")
    for mode in modes[1:] if modes[0] == "off" else [m for m in modes if m != "off"]:
        med, p95 = _lat(lat[mode])
        print(f"key to paint, {mode:<16}           : median {med:.1f} ms, p95 {p95:.1f} ms "
              f"(n={len(lat[mode])}; {decoded[mode]} frames decoded, {previews[mode]} "
              f"previews painted meanwhile) = {med / off_med:.2f}x / {p95 / off_p95:.2f}x "
              f"of camera off")
    for mode in modes:
        print(f"peak RSS, UI process, {mode:<16}   : "
              f"{statistics.median(rss[mode]) / 1024:.1f} MiB; heavy modules loaded: "
              f"{', '.join(sorted(heavy[mode])) or 'none'}")
    if child_rss:
        print(f"peak RSS, camera process                 : "
              f"{statistics.median(child_rss) / 1024:.1f} MiB")
    d = decode_throughput(args.per_category)
    print(f"decode, one core, hard frames as a stream: median {d['median']:.2f} ms, "
          f"p95 {d['p95']:.2f} ms, max {d['max']:.2f} ms, {d['fps']:.0f} frames/s (n={d['n']})")
    print(f"preview (scale + render 40x9 cells)      : median {d['preview_ms']:.2f} ms")
    f = PI4_FACTOR
    print(f"Pi 4 core (x{f:g}, estimate)               : median {d['median'] * f:.1f} ms, "
          f"p95 {d['p95'] * f:.1f} ms, max {d['max'] * f:.1f} ms, {d['fps'] / f:.0f} frames/s; "
          f"preview {d['preview_ms'] * f:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
