"""The entry point starts without the cyclic collector and turns it back on: a CLI
command once its modules are loaded, the TUI once its first frame is drawn."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from sente_pos import startup

ROOT = Path(__file__).resolve().parent.parent


def test_resume_is_a_no_op_when_collection_was_never_paused():
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    startup.resume_gc()
    assert gc.isenabled() and gc.get_freeze_count() == frozen  # nothing frozen in tests


def _probe(code: str, tmp_path: Path) -> str:
    env = {"SENTE_POS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT, env=env).stdout


def test_a_cli_command_runs_with_collection_back_on(tmp_path):
    out = _probe(
        "import gc, sys\n"
        "from sente_pos import cli, startup\n"
        "seen = []\n"
        "cli.cmd_config_show = lambda args, s: seen.append(gc.isenabled()) or 0\n"
        "startup.pause_gc()\n"
        "rc = cli.main(['config', 'show'])\n"
        "print(rc, seen, gc.isenabled(), gc.get_freeze_count() > 0)\n", tmp_path)
    assert out.split() == ["0", "[True]", "True", "True"]


def test_the_tui_resumes_collection_after_its_first_frame(tmp_path):
    out = _probe(
        "import asyncio, gc\n"
        "from pathlib import Path\n"
        "from sente_pos import startup\n"
        "startup.pause_gc()\n"
        "from sente_pos.launch import demo_app\n"
        "from screens.signin import SignInScreen\n"
        "async def drive(app):\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        while not isinstance(app.screen, SignInScreen):\n"
        "            await pilot.pause(0.01)\n"
        "        before = gc.isenabled()\n"
        "        await pilot.pause(0.2)\n"
        "        print(before, gc.isenabled(), gc.get_freeze_count() > 0)\n"
        f"with demo_app(Path({str(tmp_path / 'demo')!r})) as app:\n"
        "    print(gc.isenabled())\n"
        "    asyncio.run(drive(app))\n", tmp_path)
    lines = out.split("\n")
    assert lines[0] == "False"  # built with collection paused
    assert lines[1].split()[1:] == ["True", "True"]  # on, with the start-up objects frozen
