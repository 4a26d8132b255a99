"""Layering rules (DESIGN.md / STYLE.md): the domain never imports Textual or OpenCV,
the UI never talks to httpx or SQLite, heavy decoders load only when used."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("textual", "cv2", "numpy", "zxingcpp", "pyzbar", "escpos", "httpx", "uvicorn")


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return set(out.split())


def test_domain_imports_no_ui_and_no_opencv() -> None:
    mods = loaded_after("import sente_pos.cli, pos.terminal, pos.sync, pos.reports, pos.doctor")
    for heavy in HEAVY:
        assert heavy not in mods, f"{heavy} imported by the domain"


def test_hardware_modules_load_decoders_lazily() -> None:
    mods = loaded_after("import hardware.camera, hardware.camproc, hardware.scan, "
                        "hardware.printer, hardware.wedge")
    assert "textual" not in mods
    assert "cv2" not in mods and "zxingcpp" not in mods and "pyzbar" not in mods


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_screens_never_touch_httpx_or_sqlite() -> None:
    for path in (ROOT / "screens").rglob("*.py"):
        bad = _imports(path) & {"httpx", "sqlite3", "sqlite_utils", "cv2"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_domain_source_never_imports_textual_or_cv2() -> None:
    for path in (ROOT / "pos").rglob("*.py"):
        bad = _imports(path) & {"textual", "cv2", "screens", "hardware", "sente_pos"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
    for path in (ROOT / "hardware").rglob("*.py"):
        assert "textual" not in _imports(path), path
