"""The ``sente-pos`` command (placeholder until the real CLI lands)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("sente-pos: not ready", file=sys.stderr)
    return 1
