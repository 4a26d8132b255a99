"""python-escpos' printer database: parsed by the first process into the cache
directory, loaded from its pickle by the next, no temporary directory left by either;
a damaged pickle or an unusable cache directory never stops a receipt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: A print the way the wiring does it: the CLI's cache set-up, then a real job on a
#: ``file`` printer; reports whether escpos parsed its database or read the pickle.
PRINT = textwrap.dedent("""
    import json, logging, os, sys
    logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
    from pos.config import load_settings
    from sente_pos.cli import use_caches
    settings = load_settings()
    use_caches(settings)
    from hardware.printer import make_printer
    make_printer(settings.printer).print_text("X REPORT")
    import escpos.capabilities as caps
    print(json.dumps({"parsed": caps.full_load, "pickle_dir": caps.pickle_dir,
                      "env": os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR")}))
""")


def run_print(tmp_path: Path, **extra: str) -> tuple[dict[str, object], str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SENTE_POS_", "ESCPOS_"))}
    env.update(SENTE_POS_HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"),
               SENTE_POS_PRINTER__KIND="file",
               SENTE_POS_PRINTER__FILE_PATH=str(tmp_path / "paper.bin"), **extra)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, "-c", PRINT], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    *log, last = out.splitlines()
    assert b"X REPORT" in (tmp_path / "paper.bin").read_bytes()
    return json.loads(last), "\n".join(log)


def pickles(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.capabilities.pickle"))


def test_the_second_process_reads_the_pickle_and_no_temp_dir_piles_up(tmp_path: Path) -> None:
    cache = tmp_path / "home" / "cache" / "escpos"
    first, _ = run_print(tmp_path)
    assert first["parsed"] is True and first["pickle_dir"] == str(cache)
    [pickle] = pickles(cache)
    made = pickle.stat().st_mtime_ns
    second, log = run_print(tmp_path)
    assert second["parsed"] is False and log == ""
    assert pickle.stat().st_mtime_ns == made  # read, not written again
    # python-escpos 3.1 calls mkdtemp() even with the variable set: nothing left here.
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (cache.stat().st_mode & 0o777) == 0o700


def test_a_pickle_cut_short_is_rebuilt_and_the_receipt_prints(tmp_path: Path) -> None:
    run_print(tmp_path)
    [pickle] = pickles(tmp_path / "home" / "cache" / "escpos")
    whole = pickle.read_bytes()
    pickle.write_bytes(whole[: len(whole) // 3])  # a power cut mid-write
    again, log = run_print(tmp_path)
    assert again["parsed"] is True and "rebuilding it" in log
    assert pickle.read_bytes() == whole
    assert run_print(tmp_path)[0]["parsed"] is False


def test_a_cache_dir_that_cannot_be_made_still_prints(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result, log = run_print(tmp_path, SENTE_POS_CACHE_DIR=str(blocker))
    assert result["parsed"] is True and result["env"] is None
    assert "cannot be used" in log


def test_a_cache_dir_others_may_write_is_never_unpickled(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    run_print(tmp_path, SENTE_POS_CACHE_DIR=str(shared))
    assert pickles(shared / "escpos")
    (shared / "escpos").chmod(0o777)
    result, log = run_print(tmp_path, SENTE_POS_CACHE_DIR=str(shared))
    assert result["parsed"] is True and "writable by others" in log
    assert result["pickle_dir"] != str(shared / "escpos")


def test_a_pickle_dir_set_by_the_operator_wins(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    result, _ = run_print(tmp_path, ESCPOS_CAPABILITIES_PICKLE_DIR=str(mine))
    assert result["pickle_dir"] == str(mine) and pickles(mine)


@pytest.mark.parametrize("command", [["config", "show", "--json"], ["--help"]])
def test_start_up_neither_imports_escpos_nor_creates_the_cache(
        tmp_path: Path, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTE_POS_", "ESCPOS_"))}
    env["SENTE_POS_HOME"] = str(tmp_path / "home")
    probe = ("import sys\nfrom sente_pos.cli import main\n"
             f"try:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
             "print('escpos' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, check=True, cwd=ROOT)
    assert proc.stderr.strip() == "False"
    assert not (tmp_path / "home" / "cache").exists()
