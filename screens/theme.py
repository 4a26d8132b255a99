"""The two looks of the terminal: ``default`` (truecolour) and ``console`` (16 colours).

The console theme is for the Linux text console of a kiosk (256 glyphs, 16
colours): ANSI colours only, and ``console.tcss`` swaps every border for a
``solid`` (light box-drawing) or ``ascii`` one and drops emoji-like glyphs.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Literal

from textual.theme import Theme

ThemeName = Literal["default", "console"]

HERE = Path(__file__).parent
BASE_CSS = HERE / "pos.tcss"
CONSOLE_CSS = HERE / "console.tcss"

SENTE_THEME = Theme(
    name="sente",
    primary="#1f6feb",
    secondary="#0e7c86",
    accent="#f0a020",
    warning="#e3b341",
    error="#e5534b",
    success="#3fb950",
    foreground="#e6edf3",
    background="#0d1117",
    surface="#161b22",
    panel="#21262d",
    dark=True,
)

CONSOLE_THEME = Theme(
    name="sente-console",
    ansi=True,
    primary="ansi_blue",
    secondary="ansi_cyan",
    accent="ansi_yellow",
    warning="ansi_yellow",
    error="ansi_red",
    success="ansi_green",
    foreground="ansi_white",
    background="ansi_black",
    surface="ansi_black",
    panel="ansi_blue",
    boost="ansi_black",
    dark=True,
    variables={
        "ansi-background": "ansi_black",
        "ansi-foreground": "ansi_white",
        "border-blurred": "ansi_white",
        "block-cursor-foreground": "ansi_black",
        "block-cursor-background": "ansi_white",
        "input-cursor-background": "ansi_white",
        "input-cursor-foreground": "ansi_black",
        "input-cursor-text-style": "none",
        "input-selection-background": "ansi_blue",
        "footer-key-foreground": "ansi_yellow",
        "footer-background": "ansi_black",
        "footer-description-background": "ansi_black",
        "footer-key-background": "ansi_black",
        "button-color-foreground": "ansi_white",
        "button-focus-text-style": "reverse",
    },
)

THEMES: dict[str, Theme] = {"default": SENTE_THEME, "console": CONSOLE_THEME}


def css_paths(theme: str) -> list[str | PurePath]:
    """The stylesheets for ``theme``: the base sheet, plus the console overrides (typed
    as ``App(css_path=...)`` takes them)."""
    return [BASE_CSS, CONSOLE_CSS] if theme == "console" else [BASE_CSS]


def glyphs(theme: str) -> dict[str, str]:
    """Glyphs that differ between themes (the console font has no bullets or emoji)."""
    if theme == "console":
        return {"online": "+", "offline": "x", "warn": "!", "pin_set": "*", "pin_empty": "_",
                "sep": "|"}
    return {"online": "●", "offline": "○", "warn": "▲", "pin_set": "●", "pin_empty": "○",
            "sep": "│"}
