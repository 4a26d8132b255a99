"""The electricity token in LARGE digits, groups of four.

Big digits are drawn from a 3x5 pixel font with full and half blocks
(``█ ▀ ▄``), which the Linux console font has, so both themes use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.geometry import Size

_FONT = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", "..#", "..#"),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    " ": ("...", "...", "...", "...", "..."),
    # Narrow punctuation for amounts (screens/widgets/big_amount.py).
    ",": (".", ".", ".", "#", "#"),
    ".": (".", ".", ".", ".", "#"),
}
_HALF = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def _glyph(ch: str) -> list[str]:
    font = _FONT.get(ch, _FONT[" "])
    rows = [*font, "." * len(font[0])]
    out = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        out.append("".join(_HALF[(a == "#", b == "#")] for a, b in zip(top, bottom, strict=True)))
    return out


def big_digits(text: str, gap: int = 1) -> list[str]:
    """Three lines of text drawing ``text`` (digits, spaces, ``,`` and ``.``) in big
    digits."""
    lines = ["", "", ""]
    for i, ch in enumerate(text):
        glyph = _glyph(ch)
        for r in range(3):
            lines[r] += ("" if i == 0 else " " * gap) + glyph[r]
    return lines


GROUP_GAP = 3


def _row_width(groups: list[str]) -> int:
    return sum(len(big_digits(g)[0]) for g in groups) + GROUP_GAP * (len(groups) - 1)


def group_lines(groups: list[str], width: int) -> list[list[str]]:
    """Split token groups into the fewest rows of big digits that fit ``width``, balanced
    (a 20-digit token at 80 columns: 3 groups, then 2)."""
    if not groups:
        return []
    for n_rows in range(1, len(groups) + 1):
        per_row = -(-len(groups) // n_rows)
        rows = [groups[i : i + per_row] for i in range(0, len(groups), per_row)]
        if all(_row_width(r) <= width for r in rows):
            return rows
    return [[g] for g in groups]


def render_rows(groups: list[str], width: int) -> list[str]:
    """The big-digit lines of the token, a blank line between rows."""
    out: list[str] = []
    for row in group_lines(groups, width):
        glyphs = [big_digits(g) for g in row]
        for r in range(3):
            out.append((" " * GROUP_GAP).join(g[r] for g in glyphs))
        out.append("")
    return out


class TokenDisplay(Widget):
    """A 20-digit token drawn large; the plain groups are repeated underneath."""

    DEFAULT_CSS = """
    TokenDisplay { height: auto; width: 100%; }
    """

    def __init__(self, token: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        digits = "".join(c for c in token if c.isdigit())
        self.groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]

    @property
    def plain(self) -> str:
        return " ".join(self.groups)

    def _rows(self, width: int) -> list[list[str]]:
        return group_lines(self.groups, max(width, 20))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._rows(width)) * 4 + 1

    def render(self) -> Text:
        width = self.content_size.width or 80
        out = Text(style="bold")
        for line in render_rows(self.groups, max(width, 20)):
            out.append(line + "\n")
        out.append(self.plain, style="bold reverse")
        return out
