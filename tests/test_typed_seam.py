"""The seam between screens and domain (issue 14, point 1): each home choice starts its
own flow, a plain function imported only when the flow starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.screens_support import app_for

ROOT = Path(__file__).resolve().parent.parent

#: What each home choice runs: (module, function).
FLOWS = {
    "card": ("screens.card_payment", "card_payment"),
    "token": ("screens.electricity", "electricity"),
    "bill": ("screens.postpaid", "postpaid"),
    "services": ("screens.card_services", "card_services"),
    "journal": ("screens.journal", "journal"),
    "reports": ("screens.reports", "reports"),
    "sync": ("screens.reports", "sync_now"),
    "settings": ("screens.settings", "settings_flow"),
    "sale": ("screens.basket", "basket_sale"),
    "shift": ("screens.shift", "shift_flow"),
}


async def test_every_home_choice_has_its_flow(term: Any) -> None:
    from screens.home import CHOICES

    app = app_for(term.settings, term)
    assert sorted(key for key, _label in CHOICES) == sorted(FLOWS)
    for key, _label in CHOICES:
        coro = app.flow(key)
        try:
            module, name = FLOWS[key]
            assert coro.cr_code.co_name == name, key
            assert sys.modules[module].__dict__[name].__code__ is coro.cr_code, key
        finally:
            coro.close()


def test_flows_are_imported_when_started_not_at_start_up() -> None:
    probe = "import sys, screens.app\nprint(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                check=True, cwd=ROOT).stdout.split())
    assert "screens.app" in loaded
    early = {module for module, _name in FLOWS.values()} & loaded
    assert not early, f"flow modules imported at start-up: {sorted(early)}"
